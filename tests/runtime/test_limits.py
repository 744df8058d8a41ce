"""Hostile and unusual images: a decompression bomb is refused from its header before it is decoded, in every
reader; an image whose upscale would not fit in memory is refused before the work; the Python API is safe to share
between threads and names the argument it refuses."""

from __future__ import annotations

import struct
import threading
import zlib

import numpy as np
import pytest

from conftest import run_cli


def flat_png(path, width: int, height: int) -> None:
    """A grey PNG of ``width`` x ``height`` that compresses to almost nothing (a decompression bomb when large)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """20000 x 20000 pixels (400 M; 1.2 GB decoded) in a file of about 0.4 MB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    flat_png(path, 20000, 20000)
    assert path.stat().st_size < 1_000_000
    return path


def test_read_image_refuses_a_bomb_from_its_header(bomb):
    import tracemalloc

    from drcn.errors import DrcnError
    from drcn.images import read_image

    tracemalloc.start()
    with pytest.raises(DrcnError, match=r"bomb.png: .*400,000,000 pixels, over the limit of 132,710,400"):
        read_image(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000, f"{peak:,} bytes allocated before refusing"


def test_the_limit_follows_the_environment(tmp_path, monkeypatch):
    from drcn.errors import DrcnError
    from drcn.images import read_image
    from drcn.limits import max_pixels

    flat_png(tmp_path / "small.png", 40, 30)
    monkeypatch.setenv("DRCN_MAX_PIXELS", "1000")
    with pytest.raises(DrcnError, match=r"small.png: 40x30 is 1,200 pixels, over the limit of 1,000"):
        read_image(tmp_path / "small.png")
    monkeypatch.setenv("DRCN_MAX_PIXELS", "0")
    assert read_image(tmp_path / "small.png").shape == (30, 40)
    monkeypatch.setenv("DRCN_MAX_PIXELS", "lots")
    with pytest.raises(DrcnError, match="DRCN_MAX_PIXELS='lots'"):
        max_pixels()


def test_formats_pillow_cannot_read_are_checked_after_decoding(tmp_path, monkeypatch):
    import cv2

    from drcn.errors import DrcnError
    from drcn.images import read_image

    # a PNG whose first bytes Pillow does not take but OpenCV decodes: checked on the decoded size
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((30, 40), np.uint8))
    monkeypatch.setattr("drcn.images.check_image_file", lambda path: None)
    monkeypatch.setenv("DRCN_MAX_PIXELS", "1000")
    with pytest.raises(DrcnError, match="a.png: 40x30"):
        read_image(tmp_path / "a.png")


@pytest.mark.slow
@pytest.mark.parametrize("args", [[], ["--ray"]], ids=["local", "ray"])
def test_drcn_run_refuses_a_bomb_in_one_line_without_decoding_it(tmp_path, bomb, args):
    if args:
        pytest.importorskip("ray")
    pytest.importorskip("onnxruntime")
    result = run_cli("drcn.runtime.run_cli", str(bomb), "-o", str(tmp_path / "out.png"), "--backend", "onnxruntime",
                     *args, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "bomb.png" in result.stderr and "over the limit" in result.stderr, result.stderr
    assert not (tmp_path / "out.png").exists()


def test_drcn_run_max_pixels_option(tmp_path, image_folder):
    pytest.importorskip("onnxruntime")
    result = run_cli("drcn.runtime.run_cli", str(image_folder / "a.png"), "-o", str(tmp_path / "o.png"),
                     "--backend", "onnxruntime", "--max-pixels", "100", cwd=tmp_path)
    assert result.returncode != 0
    assert "a.png: 64x48 is 3,072 pixels, over the limit of 100" in result.stderr, result.stderr
    assert result.stderr.count("a.png") == 1


def test_benchmark_and_calibration_readers_refuse_a_bomb(tmp_path, bomb):
    from drcn.calibration import calibration_pairs
    from drcn.errors import DrcnError
    from drcn.evaluation import folder_dataset

    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(bomb.read_bytes())
    with pytest.raises(DrcnError, match="bomb.png: .*over the limit"):
        calibration_pairs([str(folder)], (2.0,))
    with pytest.raises(DrcnError, match="bomb.png: .*over the limit"):
        [load() for _, load in folder_dataset(folder).images]


def test_an_upscale_that_cannot_fit_in_memory_is_refused_before_the_work(tiny_model_files, monkeypatch):
    pytest.importorskip("onnxruntime")
    import drcn
    from drcn.errors import DrcnError

    monkeypatch.setattr("drcn.limits.available_memory", lambda: 1_000_000)
    with drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", scale=4, tile=32) as up:
        with pytest.raises(DrcnError, match=r"image: a 400x320 output needs about .* GiB of working memory"):
            up.upscale(np.zeros((80, 100, 3), np.uint8))
        assert up.upscale(np.zeros((4, 5, 3), np.uint8)).shape == (16, 20, 3)


# -- the Python API ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_one_upscaler_shared_by_threads_gives_what_one_thread_gives(tiny_model_files, backend):
    pytest.importorskip(backend)
    import drcn

    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (30 + i, 40 - i, 3), dtype=np.uint8) for i in range(8)]
    with drcn.Upscaler(tiny_model_files[1], backend=backend, scale=2, tile=16, batch=2) as up:
        expected = [up.upscale(image) for image in images]
        results, errors = {}, []

        def work(index: int) -> None:
            try:
                for _ in range(3):
                    results[index] = up.upscale(images[index])
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not errors, errors
    for index, image in enumerate(expected):
        np.testing.assert_array_equal(results[index], image)


@pytest.mark.parametrize("scale,why", [(float("inf"), "scale must be a finite number"),
                                       (float("nan"), "scale must be a finite number"),
                                       ("2", "scale must be a finite number, got '2'"),
                                       (True, "scale must be a finite number"),
                                       (1, "scale must be greater than 1")])
def test_bad_scales_name_the_argument(tiny_model_files, scale, why):
    import drcn
    from drcn.errors import InvalidArgument

    with pytest.raises(ValueError, match=why) as err:
        drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", scale=scale)
    assert isinstance(err.value, InvalidArgument)


@pytest.mark.parametrize("shape,dtype,why", [((0, 0, 3), np.uint8, "image is empty"),
                                             ((5, 0), np.uint8, "image is empty"),
                                             ((4, 4, 2), np.uint8, "image must be"),
                                             ((4, 4, 3), np.float32, "uint8 or uint16")])
def test_bad_images_name_the_argument(tiny_model_files, shape, dtype, why):
    pytest.importorskip("onnxruntime")
    import drcn

    with drcn.Upscaler(tiny_model_files[1], backend="onnxruntime", scale=2) as up:
        with pytest.raises(ValueError, match=why):
            up.upscale(np.zeros(shape, dtype))


def test_images_too_small_to_measure_are_named(tmp_path):
    import cv2

    from drcn.calibration import calibration_pairs
    from drcn.errors import DrcnError
    from drcn.evaluation import check_measurable

    folder = tmp_path / "calib"
    folder.mkdir()
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DrcnError, match=r"--calib tiny.png \(in calib\): 8x8 is too small to measure at x3"):
        calibration_pairs([str(folder)], (2.0, 3.0))
    with pytest.raises(DrcnError, match="dot.png: 1x1 is too small to measure at x2"):
        check_measurable((1, 1, 3), 2.0, "dot.png")
    check_measurable((6, 6), 2.0, "ok.png")
    check_measurable((9, 9), 3.0, "ok.png")
