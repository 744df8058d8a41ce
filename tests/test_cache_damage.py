"""A damaged cache entry is never used: one flipped bit in each kind of entry under $DRCN_CACHE (frame graphs and
their INT8 siblings, OpenVINO's compiled blobs, TensorRT engines and their sidecars, benchmark exports, training
patches) is noticed on the next read, said, and the entry is made again; the output is what an undamaged cache
gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")


def flip_bit(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def flip_weight_bit(path: Path) -> None:
    """Flip one bit inside the largest initializer's bytes: the file stays a valid ONNX model."""
    import onnx

    model = onnx.load(str(path))
    raw = max((t.raw_data for t in model.graph.initializer), key=len)
    data = path.read_bytes()
    offset = data.index(raw) + len(raw) // 2
    flip_bit(path, offset)
    onnx.checker.check_model(onnx.load(str(path)))  # still valid: only a checksum can tell


def test_seal_and_verify(tmp_path):
    from drcn import cache

    entry = tmp_path / "entry.bin"
    entry.write_bytes(b"abc" * 100)
    said = []
    # No seal: not trusted, but left in place (another process may have just renamed it there and seal it next).
    assert not cache.verified(entry, said.append) and entry.exists()
    assert "no checksum record" in said[-1]
    cache.seal(entry)
    assert cache.verified(entry, said.append)
    flip_bit(entry)
    assert not cache.verified(entry, said.append) and not cache.verified(entry, said.append)   # never trusted again
    assert str(entry) in said[-1] and "no longer matches" in said[-1]
    entry.write_bytes(b"abc" * 100)                         # the rebuild replaces it and seals it
    cache.seal(entry)
    assert cache.verified(entry, said.append)
    assert not cache.verified(tmp_path / "absent", said.append) and len(said) == 3   # a miss says nothing


def test_sealed_folders(tmp_path):
    from drcn import cache

    folder = tmp_path / "blobs"
    folder.mkdir()
    (folder / "a.blob").write_bytes(b"a" * 64)
    (folder / "b.blob").write_bytes(b"b" * 64)
    said = []
    assert not cache.verified_folder(folder, said.append)       # unsealed files are not trusted
    assert not any(folder.glob("*.blob"))
    (folder / "a.blob").write_bytes(b"a" * 64)
    (folder / "b.blob").write_bytes(b"b" * 64)
    cache.seal_folder(folder)
    assert cache.verified_folder(folder, said.append)
    flip_bit(folder / "b.blob")
    assert not cache.verified_folder(folder, said.append)
    assert (folder / "a.blob").exists() and not (folder / "b.blob").exists() and "b.blob" in said[-1]
    assert cache.verified_folder(folder, said.append)           # what is left is sealed again


def test_a_damaged_frame_graph_and_its_int8_sibling_are_rebuilt(tmp_path, tiny_model_files, cache):
    pytest.importorskip("onnxruntime")
    import shutil

    from drcn.runtime.frame_graph import cached_frame_graph

    import onnx

    y_graph = tmp_path / "tiny.onnx"
    shutil.copyfile(tiny_model_files[1], y_graph)
    # an INT8 sibling as drcn-export --int8 names it (metadata says int8; same weights, depth and config)
    sibling = onnx.load(str(y_graph))
    for prop in sibling.metadata_props:
        if prop.key == "drcn.precision":
            prop.value = "int8"
    onnx.save(sibling, str(tmp_path / "tiny_int8.onnx"))
    said = []
    graph = cached_frame_graph(y_graph, "rgb", 2, said.append)
    int8_graph = graph.with_name(f"{graph.stem}_int8.onnx")
    assert int8_graph.is_file()
    for damaged in (graph, int8_graph):
        good = damaged.read_bytes()
        flip_weight_bit(damaged)
        said.clear()
        again = cached_frame_graph(y_graph, "rgb", 2, said.append)
        assert again == graph and damaged.read_bytes() == good
        assert any("no longer matches" in line and damaged.name in line for line in said), said


def test_a_damaged_frame_graph_never_reaches_the_output(tmp_path, tiny_model_files, cache):
    pytest.importorskip("onnxruntime")
    from drcn.runtime.api import Upscaler

    image = np.random.default_rng(1).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    said = []
    with Upscaler(tiny_model_files[1], backend="onnxruntime", path="device", tile=16, log=said.append) as up:
        first = up.upscale(image)
    graphs = [p for p in cache.rglob("*.onnx")]
    assert len(graphs) == 1
    flip_weight_bit(graphs[0])
    with Upscaler(tiny_model_files[1], backend="onnxruntime", path="device", tile=16, log=said.append) as up:
        second = up.upscale(image)
    np.testing.assert_array_equal(first, second)
    assert any("no longer matches" in line for line in said), said


def test_damaged_openvino_blobs_are_compiled_again(tiny_model_files, cache):
    pytest.importorskip("openvino")
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend

    x = np.random.default_rng(2).random((1, 1, 24, 24), np.float32)
    said = []
    backend = OpenVINOBackend(str(tiny_model_files[1]), precision="fp32", log=said.append)
    first = backend.run(x)
    backend.close()
    blobs = [p for p in (cache / "openvino").rglob("*") if p.is_file() and not p.name.startswith(".drcn")]
    assert blobs, "OpenVINO wrote no blob to its cache folder"
    for blob in blobs:
        flip_bit(blob)
    backend = OpenVINOBackend(str(tiny_model_files[1]), precision="fp32", log=said.append)
    np.testing.assert_array_equal(backend.run(x), first)
    backend.close()
    assert any("did not match the checksums" in line for line in said), said
    # compiled again and sealed: the next open trusts the folder and says nothing
    said.clear()
    OpenVINOBackend(str(tiny_model_files[1]), precision="fp32", log=said.append).close()
    assert not any("checksum" in line for line in said), said


def test_a_damaged_engine_or_sidecar_is_rebuilt(tiny_model_files, cache):
    pytest.importorskip("tensorrt_rtx")
    from drcn.runtime.tensorrt.cache import cached_engine
    from drcn.runtime.tensorrt.sidecar import sidecar_path

    said = []
    engine = cached_engine(tiny_model_files[1], "fp32", 32, 2, flavour="rtx", log=said.append)
    built = engine.read_bytes()
    assert any("building" in line for line in said)
    said.clear()
    assert cached_engine(tiny_model_files[1], "fp32", 32, 2, flavour="rtx", log=said.append) == engine
    assert any("using the cached engine" in line for line in said)
    for damaged in (engine, sidecar_path(engine)):
        flip_bit(damaged, len(damaged.read_bytes()) // 3)
        said.clear()
        assert cached_engine(tiny_model_files[1], "fp32", 32, 2, flavour="rtx", log=said.append) == engine
        assert any("building" in line and ("damaged" in line or "checksum" in line or "sidecar" in line)
                   for line in said), said
        assert len(engine.read_bytes()) == len(built)


def test_damaged_training_patches_are_extracted_again(tmp_path, image_folder):
    from drcn.train.data import PatchSet, PatchSpec

    spec = PatchSpec(size=16, stride=16, scales=(2.0,))
    first = PatchSet.from_folders([image_folder], spec, cache_dir=tmp_path / "patches", show_progress=False)
    (entry,) = (tmp_path / "patches").glob("*.npz")
    flip_bit(entry, entry.stat().st_size - 200)
    again = PatchSet.from_folders([image_folder], spec, cache_dir=tmp_path / "patches", show_progress=False)
    np.testing.assert_array_equal(first.inputs, again.inputs)
    np.testing.assert_array_equal(first.targets, again.targets)


def test_a_damaged_benchmark_export_is_exported_again(tiny_model_files, cache):
    pytest.importorskip("torch")
    from drcn.benchmarks.variants import exported_onnx

    path = exported_onnx(str(tiny_model_files[0]), "fp32")
    good = path.read_bytes()
    flip_weight_bit(path)
    assert exported_onnx(str(tiny_model_files[0]), "fp32") == path
    assert path.read_bytes() == good

