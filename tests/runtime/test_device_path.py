"""drcn-run's two paths through one pipeline: the device path (the whole frame in a frame graph, tiles in LR pixels)
equals the host path and itself at any tile size, frames it cannot take go the host path, a frame graph given by
the user runs as it is, and the line that names the backend says which path a run takes."""

import numpy as np
import pytest

from conftest import run_cli
from drcn.images import read_image, write_image

pytest.importorskip("onnxruntime")


def frames(folder, rng):
    import cv2

    folder.mkdir()
    smooth = lambda shape: cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (5, 5), 0)  # noqa: E731
    write_image(folder / "rgb.png", smooth((45, 61, 3)))
    write_image(folder / "tiny.png", smooth((5, 4, 3)))             # smaller than one window
    write_image(folder / "grey.png", smooth((30, 22)))
    alpha = smooth((20, 26, 4))
    write_image(folder / "alpha.png", alpha)                        # the host path's
    write_image(folder / "deep.png", smooth((18, 16, 3)).astype(np.uint16) * 257)
    return folder


def run(folder, out, onnx, *extra):
    return run_cli("drcn.runtime.run_cli", str(folder), "-o", str(out), "--onnx", str(onnx), "--backend",
                   "onnxruntime", *extra)


def test_device_path_tiles_equal_whole_frames_and_the_host_path(tmp_path, tiny_model_files):
    folder = frames(tmp_path / "in", np.random.default_rng(0))
    onnx = tiny_model_files[1]
    results = {name: run(folder, tmp_path / name, onnx, *extra) for name, extra in (
        ("device64", ("--path", "device", "--tile", "64")), ("device0", ("--path", "device", "--tile", "0")),
        ("host", ("--path", "host", "--tile", "64")), ("auto", ("--tile", "64")))}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
    assert "device path: the whole frame on the backend" in results["device64"].stdout
    assert "tiles of 32+2x5 low-resolution pixels" in results["device64"].stdout
    assert "host path (--path host)" in results["host"].stdout
    assert "host path (the backend runs on the CPU" in results["auto"].stdout
    for name in ("rgb.png", "tiny.png", "grey.png", "alpha.png", "deep.png"):
        tiled, whole, host = (read_image(tmp_path / run_name / name) for run_name in ("device64", "device0", "host"))
        assert tiled.shape == whole.shape == host.shape and tiled.dtype == host.dtype
        assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1, name
        assert np.abs(tiled.astype(int) - host.astype(int)).max() <= 3 * (257 if host.dtype == np.uint16 else 1), name


def test_a_frame_graph_given_by_the_user_runs_as_it_is(tmp_path, tiny_model_files):
    from drcn.runtime.frame_graph import write_frame_graph

    rgb = tmp_path / "m_x3_rgb.onnx"
    write_frame_graph(tiny_model_files[1], rgb, "rgb", 3)
    folder = frames(tmp_path / "in", np.random.default_rng(1))
    result = run(folder, tmp_path / "out", rgb, "--scale", "3", "--tile", "48")
    assert result.returncode == 1, result.stderr       # grey, alpha and 16-bit frames need the Y graph
    assert "device path" in result.stdout
    for name in ("grey.png", "alpha.png", "deep.png"):
        assert f"failed: {name}: this rgb graph cannot take it" in result.stderr
    assert read_image(tmp_path / "out" / "rgb.png").shape == (135, 183, 3)
    wrong = run(folder, tmp_path / "out2", rgb, "--scale", "2")
    assert wrong.returncode == 2 and "is a x3 rgb graph" in wrong.stderr


def test_device_path_refusals_are_one_line(tmp_path, tiny_model_files):
    folder = frames(tmp_path / "in", np.random.default_rng(2))
    result = run(folder, tmp_path / "out", tiny_model_files[1], "--path", "device", "--scale", "2.5")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "--path device: x2.5 is not an integer scale" in lines[0]
    auto = run(folder, tmp_path / "out", tiny_model_files[1], "--scale", "2.5")
    assert auto.returncode == 0 and "host path (x2.5 is not an integer scale)" in auto.stdout


def test_video_takes_the_device_path(tmp_path, tiny_model_files):
    av = pytest.importorskip("av")
    clip = tmp_path / "clip.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv444p"
        rng = np.random.default_rng(4)
        for i in range(4):
            picture = av.VideoFrame.from_ndarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(picture.reformat(format="yuv444p")))
        out.mux(stream.encode(None))
    outputs = {}
    for path in ("device", "host"):
        result = run_cli("drcn.runtime.run_cli", str(clip), "-o", str(tmp_path / f"{path}.mkv"), "--onnx",
                         str(tiny_model_files[1]), "--backend", "onnxruntime", "--path", path, "--codec", "ffv1",
                         "--pix-fmt", "yuv444p", "--tile", "32")
        assert result.returncode == 0, result.stderr
        with av.open(str(tmp_path / f"{path}.mkv")) as c:
            outputs[path] = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    assert len(outputs["device"]) == len(outputs["host"]) == 4
    for a, b in zip(outputs["device"], outputs["host"]):
        assert np.abs(a - b).max() <= 4
