"""drcn-run end to end on a tiny exported model: folders, files, videos, kinds, resume, failures."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from drcn.images import read_image, write_image  # noqa: E402
from drcn.runtime import run_cli  # noqa: E402


def frames(folder, n=3, shape=(30, 41, 3), dtype=np.uint8):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(folder / f"f{i:03d}.png", rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype))
    return folder


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_folder_as_written_resume_and_overwrite(tiny_model_files, tmp_path, capsys):
    src = frames(tmp_path / "video_frames")
    onnx = tiny_model_files[1]
    assert run_cli.main(["--tile", "16", str(src), "--onnx", str(onnx), "--backend", "onnxruntime"]) == 0
    out = tmp_path / "video_frames_x2"
    assert sorted(p.name for p in out.iterdir()) == ["f000.png", "f001.png", "f002.png"]
    assert read_image(out / "f000.png").shape == (60, 82, 3)
    printed = capsys.readouterr().out
    assert "ONNX Runtime" in printed and "3 frame(s)" in printed and "halo" in printed
    # A second run skips what exists; --overwrite redoes it.
    (out / "f001.png").unlink()
    assert run_cli.main(["--tile", "16", str(src), "--onnx", str(onnx)]) == 0
    printed = capsys.readouterr().out
    assert "1 frame(s)" in printed and "skipped 2 existing" in printed
    assert run_cli.main(["--tile", "16", str(src), "--onnx", str(onnx), "--overwrite"]) == 0
    assert "3 frame(s)" in capsys.readouterr().out


def test_tiled_equals_untiled_within_one_grey_level(tiny_model_files, tmp_path):
    src = frames(tmp_path / "in", n=2, shape=(53, 47, 3))
    onnx = tiny_model_files[1]
    assert run_cli.main([str(src), "-o", str(tmp_path / "tiled"), "--tile", "8", "--batch", "3", "--onnx", str(onnx)]) == 0
    assert run_cli.main([str(src), "-o", str(tmp_path / "whole"), "--tile", "0", "--onnx", str(onnx)]) == 0
    for name in ("f000.png", "f001.png"):
        a = read_image(tmp_path / "tiled" / name).astype(int)
        b = read_image(tmp_path / "whole" / name).astype(int)
        assert np.abs(a - b).max() <= 1


@pytest.mark.parametrize("shape, dtype", [((20, 24), np.uint8), ((20, 24, 4), np.uint8), ((20, 24, 3), np.uint16)])
def test_single_images_keep_their_kind(tiny_model_files, tmp_path, shape, dtype):
    path = tmp_path / "img.png"
    write_image(path, np.random.default_rng(1).integers(0, np.iinfo(dtype).max, shape, dtype=dtype))
    assert run_cli.main([str(path), "--scale", "3", "--onnx", str(tiny_model_files[1])]) == 0
    out = read_image(tmp_path / "img_x3.png")
    assert out.dtype == dtype and out.shape == (60, 72, *shape[2:])


def test_video_round_trip(tiny_model_files, tmp_path):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(5):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    assert run_cli.main([str(video), "--onnx", str(tiny_model_files[1]), "--tile", "16"]) == 0
    capture = cv2.VideoCapture(str(tmp_path / "clip_x2.avi"))  # the input's container by default
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (48, 64, 3)
        count += 1
    assert count == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_corrupt_frame_is_reported_and_the_rest_processed(tiny_model_files, tmp_path):
    src = frames(tmp_path / "in", n=3, shape=(16, 16, 3))
    (src / "f001.png").write_bytes(b"\x89PNG broken")
    result = run(src, "--onnx", tiny_model_files[1], "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "f001.png" in result.stderr and "cannot decode" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f000.png", "f002.png"]


@pytest.mark.parametrize("make, args, message", [
    (lambda p: p / "missing", [], "no such file or folder"),
    (lambda p: (p / "empty").mkdir() or p / "empty", [], "no images"),
    (lambda p: frames(p / "in", 1), ["-o", "{src}"], "may not be the input folder"),
    (lambda p: frames(p / "in", 1), ["--scale", "1"], "scale must be greater than 1"),
    (lambda p: frames(p / "in", 1), ["--tile", "-3"], "must be 0 or more"),
    (lambda p: frames(p / "in", 1), ["--onnx", "/nope.onnx"], "no such file"),
    (lambda p: frames(p / "in", 1), ["--backend", "warp"], "unknown backend"),
    (lambda p: frames(p / "in", 1), ["--engine", "{src}/f000.png"], "no sidecar"),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", [], "not a folder, an image"),
])
def test_bad_input_one_line(tmp_path, make, args, message):
    src = make(tmp_path)
    result = run(src, *[a.format(src=src) for a in args], cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_onnxruntime_path_never_imports_torch(tiny_model_files, tmp_path):
    src = frames(tmp_path / "in", n=1, shape=(12, 12))
    code = ("import sys, drcn.runtime; from drcn.runtime import run_cli; "
            f"rc = run_cli.main([{str(src)!r}, '--onnx', {str(tiny_model_files[1])!r}, '--backend', 'onnxruntime']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def test_make_samples(tmp_path, capsys):
    assert run_cli.main(["--make-samples", str(tmp_path / "s")]) == 0
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert len(files) == 5 and read_image(tmp_path / "s" / "astronaut.png").shape == (256, 256, 3)


def test_trt_build_without_tensorrt_is_one_line(tmp_path, tiny_model_files):
    """Where no TensorRT flavour imports (here: shadowed by packages that fail to import), one line says what to
    install."""
    pytest.importorskip("onnx")
    import os
    import shutil

    shadow = tmp_path / "shadow"
    for module in ("tensorrt", "tensorrt_rtx"):
        (shadow / module).mkdir(parents=True)
        (shadow / module / "__init__.py").write_text(f"raise ImportError('not here', name='{module}')\n")
    shutil.copy(tiny_model_files[1], tmp_path / "model.onnx")
    env = {**os.environ, "PYTHONPATH": str(shadow)}
    result = subprocess.run([sys.executable, "-m", "drcn.runtime.tensorrt.cli", "build", "--fp16"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "tensorrt" in lines[0] and "pip install" in lines[0], result.stderr
    assert not (tmp_path / "model.engine").exists()
