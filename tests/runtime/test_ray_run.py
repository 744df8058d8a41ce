"""drcn-run --ray on a local Ray (2 workers on this machine): same outputs as a local run, skip existing, corrupt
frames by name, a killed driver leaves no partial file and the next run finishes, Ray stays optional."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("onnxruntime")

from drcn.images import read_image, write_image  # noqa: E402

pytestmark = pytest.mark.slow


def make_frames(folder, count, size=(40, 56)):
    import cv2

    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_image(folder / f"f{i:03d}.png", cv2.GaussianBlur(rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                                                               (5, 5), 0))
    return folder


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=env)


def test_ray_matches_local_skips_existing_and_reports_corrupt_frames(tmp_path, tiny_model_files):
    onnx = tiny_model_files[1]
    frames = make_frames(tmp_path / "frames", 7)
    (frames / "f003.png").write_bytes(b"\x89PNG broken")
    common = ("--onnx", onnx, "--backend", "onnxruntime", "--tile", "16", "--threads", "1")
    local = run(frames, "-o", tmp_path / "local", *common)
    remote = run(frames, "-o", tmp_path / "ray", "--ray", "--workers", "2", *common)
    for result in (local, remote):
        assert result.returncode == 1, result.stderr
        assert "failed: f003.png: " in result.stderr and "1 frame(s) failed" in result.stderr
    assert remote.stdout.count("worker: ONNX Runtime") == 2
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(names) == 6
    for name in names:  # the same backend with the same settings: byte-identical
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    again = run(frames, "-o", tmp_path / "ray", "--ray", "--workers", "2", *common)
    assert "skipped 6 existing output(s)" in again.stdout


def test_killed_driver_leaves_no_partial_file_and_the_next_run_finishes(tmp_path):
    frames = make_frames(tmp_path / "frames", 10, size=(96, 128))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "drcn.runtime.run_cli", str(frames), "-o", str(out), "--ray", "--workers", "2",
            "--backend", "onnxruntime", "--tile", "64", "--threads", "1"]
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out.is_dir() and any(p.suffix == ".png" and not p.name.startswith(".")
                                                              for p in out.iterdir())):
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)   # the driver and what it started: as a crash or Ctrl-\ would
    driver.wait()
    # Ray's workers notice their driver is gone within moments; one may still finish the frame it holds.
    settle, seen = time.time() + 30, None
    while time.time() < settle:
        now = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        if now == seen:
            break
        seen = now
        time.sleep(2)
    written = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert 0 < len(written) < 10, "killed mid-run"
    for path in written:   # every file under its final name is complete
        assert read_image(path).shape == (192, 256, 3)
    result = run(frames, "-o", out, "--ray", "--workers", "2", "--backend", "onnxruntime", "--tile", "64",
                 "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:03d}.png" for i in range(10)]   # no temporaries left
    assert f"skipped {len(written)} existing" in result.stdout


def test_ray_is_not_imported_without_ray(tmp_path, tiny_model_files):
    frames = make_frames(tmp_path / "frames", 1)
    code = ("import sys; from drcn.runtime import run_cli; "
            f"run_cli.main([{str(frames)!r}, '--onnx', {str(tiny_model_files[1])!r}, '--tile', '16']); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def test_bad_address_is_one_line(tmp_path, tiny_model_files):
    frames = make_frames(tmp_path / "frames", 1)
    result = run(frames, "--ray", "127.0.0.1:1", "--onnx", tiny_model_files[1], "--tile", "16")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "--ray 127.0.0.1:1" in lines[-1], result.stderr


def test_a_video_goes_to_one_worker_whole(tmp_path, tiny_model_files):
    pytest.importorskip("av")
    from test_video import frame_times, make_clip, packets

    clip = tmp_path / "clip.mp4"
    times = make_clip(clip, frames=8)
    result = run(clip, "--ray", "--onnx", tiny_model_files[1], "--backend", "onnxruntime", "--tile", "32")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("worker: ") == 1 and "copying #1 audio" in result.stdout
    out = tmp_path / "clip_x2.mp4"
    assert max(abs(a - b) for a, b in zip(frame_times(out), times)) <= 0.001 and len(frame_times(out)) == 8
    assert packets(out, "audio") == packets(clip, "audio")


def test_an_address_that_accepts_and_never_answers_fails_in_one_line_within_15_s(tmp_path, tiny_model_files):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)   # accepts (the kernel completes the handshake) and never says a word
    port = listener.getsockname()[1]
    frames = make_frames(tmp_path / "frames", 1)
    try:
        start = time.time()
        result = run("--ray", f"127.0.0.1:{port}", frames, "--onnx", tiny_model_files[1])
        elapsed = time.time() - start
    finally:
        listener.close()
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "did not answer" in lines[0], result.stderr
    assert elapsed < 15, elapsed
    assert not (tmp_path / "frames_x2").exists()


def test_the_probe_names_what_answers():
    """gRPC (what a Ray head speaks) passes; an HTTP/1 server is 'not Ray'; a closed port is 'nothing answers'."""
    import socket
    import threading
    from concurrent import futures

    grpc = pytest.importorskip("grpc")
    from drcn.errors import DrcnError
    from drcn.runtime.ray_run import probe_address

    server = grpc.server(futures.ThreadPoolExecutor(1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        probe_address(f"127.0.0.1:{port}", timeout=5)
    finally:
        server.stop(0)
    web = socket.socket()
    web.bind(("127.0.0.1", 0))
    web.listen(1)

    def answer():
        connection, _ = web.accept()
        connection.recv(64)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        connection.close()

    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(DrcnError, match="is not Ray"):
        probe_address(f"127.0.0.1:{web.getsockname()[1]}", timeout=5)
    web.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(DrcnError, match="nothing answers there"):
        probe_address(f"127.0.0.1:{closed_port}", timeout=5)


def test_an_existing_folder_after_ray_is_the_input(tmp_path):
    from drcn.runtime.ray_run import ray_address_or_input

    folder = tmp_path / "in"
    folder.mkdir()
    assert ray_address_or_input(str(folder), None)[:2] == (None, str(folder))
    assert ray_address_or_input("ray://head:10001", str(folder))[:2] == ("ray://head:10001", str(folder))
    assert ray_address_or_input("127.0.0.1:6379", None)[:2] == ("127.0.0.1:6379", None)


def test_a_long_video_spreads_its_segments_over_the_workers(tmp_path, tiny_model_files):
    """--ray with two local workers: the segments go to both, the driver joins, the output equals one local pass; a
    worker killed in the middle of a segment costs that segment only."""
    pytest.importorskip("av")
    psutil = pytest.importorskip("psutil")
    from test_video import make_clip, packets
    from test_video_segments import assert_same_video

    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=90, size=(72, 96))
    onnx = tiny_model_files[1]
    common = ["--onnx", onnx, "--backend", "onnxruntime", "--tile", "16", "--codec", "ffv1", "--segment", "0.5"]
    reference = tmp_path / "ref.mkv"
    assert run(clip, "-o", reference, *common[:-2], "--segment", "0").returncode == 0
    result = run(clip, "--ray", "--workers", "2", "-o", tmp_path / "ray.mkv", *common)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("worker: ") == 2 and "segment(s) to do on 2 worker(s)" in result.stdout
    assert_same_video(reference, tmp_path / "ray.mkv")
    assert packets(tmp_path / "ray.mkv", "audio") == packets(clip, "audio")

    out = tmp_path / "killed.mkv"
    command = [sys.executable, "-m", "drcn.runtime.run_cli", str(clip), "--ray", "--workers", "2", "-o", str(out),
               *map(str, common), "--threads", "1"]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    work = tmp_path / ".killed.mkv.parts"
    deadline, killed = time.monotonic() + 180, None
    while time.monotonic() < deadline and driver.poll() is None and killed is None:
        if len(list(work.glob("part-*.json"))) >= 1:
            for process in psutil.Process(driver.pid).children(recursive=True):
                try:
                    if "FrameWorker" in " ".join(process.cmdline()):
                        process.kill()           # one worker dies, whatever segment it is in
                        killed = process.pid
                        break
                except psutil.Error:
                    continue
        time.sleep(0.02)
    stdout, stderr = driver.communicate(timeout=300)
    assert killed, "no worker was found to kill"
    assert driver.returncode == 0, stderr
    assert "died; a new worker does it again" in stdout, stdout
    assert_same_video(reference, out)


def test_a_folder_of_videos_and_images_is_upscaled_whole_locally_and_on_ray(tmp_path, tiny_model_files):
    """Images, a long video (several segments) and a short one in one folder: each output under its input's name
    in the output folder; --ray spreads the segments and the images over one pool; the outputs are the local run's."""
    pytest.importorskip("av")
    from test_video import make_clip, packets
    from test_video_segments import assert_same_video

    import dataclasses
    import datetime
    import random

    import generated_videos
    from generated_images import generated_image

    folder = make_frames(tmp_path / "in", 3)
    make_clip(folder / "film.mkv", frames=60, size=(40, 56))
    make_clip(folder / "short.mp4", frames=8, size=(40, 56), audio=False)
    # and generated inputs: undamaged clips of any kind, images of any mode (seeded by the day; named in failures)
    day = datetime.date.today().toordinal()
    generated = []
    for n in range(4):
        rng = random.Random(day * 31 + n)
        # Matroska: the one container that holds the lossless ffv1 this comparison writes (MPEG-TS and MP4 do not)
        spec = dataclasses.replace(generated_videos.draw(rng), damage="none", container="mkv")
        generated_videos.write(spec, folder / f"g{n}{spec.suffix}", day * 31 + n)
        generated.append(f"g{n}{spec.suffix}")
        write_image(folder / f"i{n}.png", generated_image(rng))
    common = ["--onnx", tiny_model_files[1], "--backend", "onnxruntime", "--tile", "16", "--codec", "ffv1",
              "--segment", "0.5"]
    local = run(folder, "-o", tmp_path / "local", *common)
    assert local.returncode == 0, local.stderr
    assert "film.mkv -> " in local.stdout and "segments done" in local.stdout
    ray = run(folder, "--ray", "--workers", "2", "-o", tmp_path / "ray", *common)
    assert ray.returncode == 0, ray.stderr
    assert "film.mkv: " in ray.stdout and "segment(s) to do on 2 worker(s)" in ray.stdout
    assert "short.mp4: one worker takes it whole" in ray.stdout
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    videos = ["film.mkv", "short.mp4", *generated]
    assert names == sorted(["f000.png", "f001.png", "f002.png", *videos, *(f"i{n}.png" for n in range(4))])
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == names        # no work folder or probe left
    for name in names:
        if name in videos:
            assert_same_video(tmp_path / "local" / name, tmp_path / "ray" / name)
        else:
            assert np.array_equal(read_image(tmp_path / "local" / name), read_image(tmp_path / "ray" / name)), name
    assert packets(tmp_path / "ray" / "film.mkv", "audio") == packets(folder / "film.mkv", "audio")
    again = run(folder, "-o", tmp_path / "local", *common)
    assert again.returncode == 0 and f"nothing to do: {len(names)} output(s) exist already" in again.stdout, \
        again.stdout
