"""drcn-serve, started for real (a local Ray on 127.0.0.1, the tiny model on ONNX Runtime) and spoken to as its
users would: NVIDIA's tritonclient for the v2 protocol, an HTTP client for the image endpoint. Every request goes to
loopback; every loop is bounded in count and time; every server is stopped by the fixture that started it."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from drcn.benchmarks.serve_bench import free_port

pytest.importorskip("ray.serve")
pytest.importorskip("onnxruntime")
http = pytest.importorskip("tritonclient.http")

pytestmark = pytest.mark.slow


def Server(tmp: Path, *args: str, ready_s: float = 180):
    """A drcn-serve process on 127.0.0.1, run from ``tmp``."""
    from drcn.benchmarks.serve_bench import ServeProcess

    return ServeProcess(*args, ready_s=ready_s, cwd=tmp)


def post(url: str, body: bytes, headers: dict | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    except urllib.error.URLError as error:
        if not isinstance(error.reason, (BrokenPipeError, ConnectionResetError)):
            raise
        return post_refused_early(url, body, headers or {}, timeout)


def post_refused_early(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, dict, bytes]:
    """A server that refuses a body from its Content-Length answers and closes while the client is still sending
    (a broken pipe for urllib): send what it takes, then read the answer it already gave, as HTTP clients do."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    connection.putrequest("POST", parts.path + (f"?{parts.query}" if parts.query else ""))
    for key, value in {**headers, "Content-Length": str(len(body))}.items():
        connection.putheader(key, value)
    connection.endheaders()
    try:
        connection.send(body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = connection.getresponse()
    try:
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def images(tmp_path_factory, tiny_model_files):
    """{name: path} of small images of every kind drcn-run takes, and {name: drcn-run's output bytes}."""
    from drcn.images import write_image

    folder = tmp_path_factory.mktemp("serve-images")
    rng = np.random.default_rng(7)
    smooth = lambda shape, dtype=np.uint8: rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)  # noqa: E731
    made = {"rgb.png": smooth((40, 52, 3)), "grey.png": smooth((33, 30)), "rgba.png": smooth((20, 24, 4)),
            "deep.png": smooth((18, 22, 3), np.uint16), "photo.jpg": smooth((32, 32, 3))}
    for name, image in made.items():
        write_image(folder / name, image)
    out = folder / "out"
    result = run_cli("drcn.runtime.run_cli", str(folder), "-o", str(out), "--onnx", str(tiny_model_files[1]),
                     "--backend", "onnxruntime", "--tile", "32")
    assert result.returncode == 0, result.stderr
    expected = {name: (out / name).read_bytes() for name in made}
    return {name: folder / name for name in made}, expected


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_files):
    tmp = tmp_path_factory.mktemp("serve")
    running = Server(tmp, "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime", "--tile", "32",
                     "--max-batch", "8", "--max-body-mb", "1", "--max-pixels", "200000")
    yield running
    assert running.stop() == 0, running.output()


def test_the_image_endpoint_gives_exactly_what_drcn_run_writes(server, images):
    paths, expected = images
    for name, path in paths.items():
        fmt = "jpeg" if name.endswith(".jpg") else "png"
        status, headers, body = post(f"{server.url}/v1/upscale?scale=2&format={fmt}", path.read_bytes())
        assert status == 200, body
        assert headers["Content-Type"] == f"image/{fmt}" and float(headers["X-Drcn-Compute-Seconds"]) > 0
        assert body == expected[name], name            # byte for byte, as drcn-run writes that file
    status, headers, body = post(f"{server.url}/v1/upscale?scale=3&format=webp", paths["rgb.png"].read_bytes())
    assert status == 200 and headers["Content-Type"] == "image/webp"
    from drcn.images import decode_image

    assert decode_image(body, "webp").shape == (120, 156, 3)


def test_tritonclient_gets_the_pixels_of_the_frame_graph_run_locally(server, images, tiny_model_files, tmp_path):
    import onnxruntime as ort
    from PIL import Image

    from drcn.runtime.frame_graph import write_frame_graph

    client = http.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("drcn")
    # the serving guide's Triton client (docs/guides/serving.md), unchanged but for the URL
    lr = np.asarray(Image.open(images[0]["rgb.png"]).convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 255
    request = http.InferInput("input", lr.shape, "FP32")
    request.set_data_from_numpy(lr)
    hr = client.infer("drcn", [request]).as_numpy("output")[0]
    write_frame_graph(tiny_model_files[1], tmp_path / "rgb.onnx", "rgb", 2)
    local = ort.InferenceSession(str(tmp_path / "rgb.onnx")).run(None, {"input": lr})[0][0]
    assert hr.shape == (3, 80, 104)
    np.testing.assert_allclose(hr, local, atol=1e-6)
    # JSON tensors both ways, a batch of two
    batch = np.concatenate([lr, lr[:, :, ::-1, :]])
    request = http.InferInput("input", batch.shape, "FP32")
    request.set_data_from_numpy(np.ascontiguousarray(batch), binary_data=False)
    wanted = http.InferRequestedOutput("output", binary_data=False)
    both = client.infer("drcn", [request], outputs=[wanted]).as_numpy("output")
    np.testing.assert_allclose(both[0], local, atol=1e-6)
    metadata = client.get_model_metadata("drcn")
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    assert metadata["outputs"][0]["name"] == "output"


@pytest.mark.parametrize("case", ["name", "datatype", "shape", "lying-binary", "values-short"])
def test_bad_tensors_are_400_with_one_json_line(server, case):
    lr = np.zeros((1, 3, 8, 8), np.float32)
    header = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 8, 8],
                          "parameters": {"binary_data_size": lr.nbytes}}]}
    body_tail = lr.tobytes()
    if case == "name":
        header["inputs"][0]["name"] = "pixels"
    elif case == "datatype":
        header["inputs"][0]["datatype"] = "INT8"
    elif case == "shape":
        header["inputs"][0]["shape"] = [1, 4, 8, 8]
    elif case == "lying-binary":
        header["inputs"][0]["parameters"]["binary_data_size"] = lr.nbytes * 4
    else:
        header["inputs"][0].pop("parameters")
        header["inputs"][0]["data"] = [0.0] * 5
        body_tail = b""
    text = json.dumps(header).encode()
    headers = {"Inference-Header-Content-Length": str(len(text))} if body_tail else {}
    status, _, body = post(f"{server.url}/v2/models/drcn/infer", text + body_tail, headers)
    assert status == 400, body
    assert list(json.loads(body)) == ["error"] and "\n" not in json.loads(body)["error"]


def test_limits_and_errors_answer_with_the_right_status(server, images, tmp_path):
    from test_limits import flat_png

    flat_png(tmp_path / "bomb.png", 20000, 20000)
    rgb = images[0]["rgb.png"].read_bytes()
    cases = [
        (f"{server.url}/v1/upscale", (tmp_path / "bomb.png").read_bytes(), 413, "over the limit"),
        (f"{server.url}/v1/upscale", b"not an image at all", 415, "cannot decode"),
        (f"{server.url}/v1/upscale", b"", 400, "empty"),
        (f"{server.url}/v1/upscale", b"x" * (2 << 20), 413, "over the limit"),
        (f"{server.url}/v1/upscale?scale=50", rgb, 400, "scale 50"),
        (f"{server.url}/v1/upscale?scale=abc", rgb, 400, "scale"),
        (f"{server.url}/v1/upscale?format=gif", rgb, 400, "format"),
        (f"{server.url}/v2/models/other/infer", b"{}", 404, "not served here"),
    ]
    for url, body, want, words in cases:
        status, headers, answer = post(url, body)
        assert status == want, (url, status, answer)
        assert words in json.loads(answer)["error"], answer
    status, _, _ = post(f"{server.url}/v1/upscale", rgb)
    assert status == 200   # the server is unchanged afterwards


def test_windows_of_concurrent_requests_share_backend_calls(server, images):
    small = images[0]["rgb.png"].read_bytes()
    before = json.loads(get(f"{server.url}/v1/info")[1])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: post(f"{server.url}/v1/upscale", small)[0], range(16)))
    assert results == [200] * 16
    after = json.loads(get(f"{server.url}/v1/info")[1])
    windows = after["window_calls"] - before["window_calls"]
    backend = after["backend_calls"] - before["backend_calls"]
    assert windows % 16 == 0 and backend < windows, (windows, backend)   # 16 requests, the same calls each


def test_a_model_that_cannot_be_loaded_ends_before_anything_listens(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "drcn.runtime.serve.cli", "--onnx", str(broken), "--port",
                             str(port)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"drcn-serve: error: {broken}: not an ONNX model")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))    # nothing took the port


def test_token_queue_and_deadline(tmp_path_factory, tiny_model_files, images):
    tmp = tmp_path_factory.mktemp("serve-limits")
    (tmp / "token").write_text("s3cret\n")
    running = Server(tmp, "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime", "--tile", "16",
                     "--batch", "1", "--token-file", str(tmp / "token"), "--queue", "1", "--deadline", "2")
    try:
        rgb = images[0]["rgb.png"].read_bytes()
        assert get(f"{running.url}/v2/health/ready")[0] == 200            # health stays open
        status, headers, body = post(f"{running.url}/v1/upscale", rgb)
        assert status == 401 and "bearer token" in json.loads(body)["error"]
        assert post(f"{running.url}/v1/upscale", rgb, {"Authorization": "Bearer wrong"})[0] == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert post(f"{running.url}/v1/upscale", rgb, auth)[0] == 200
        client = http.InferenceServerClient(f"127.0.0.1:{running.port}")
        assert client.get_model_metadata("drcn", headers=auth)["name"] == "drcn"

        from drcn.images import encode_image

        big = encode_image(np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8))
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: post(f"{running.url}/v1/upscale?scale=4", big, auth), range(4)))
        statuses = sorted(a[0] for a in answers)
        assert 503 in statuses, statuses                                   # the queue of one is full
        busy = next(a for a in answers if a[0] == 503)
        assert busy[1]["Retry-After"] == "1" and "busy" in json.loads(busy[2])["error"]
        assert 504 in statuses, statuses                                   # 600x800 x4 on tile 16 > 2 s
        deadline = time.monotonic() + 30
        while json.loads(get(f"{running.url}/v1/info")[1])["cancelled_calls"] == 0:   # its work was stopped
            assert time.monotonic() < deadline, "the work of a request past its deadline went on"
            time.sleep(0.2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:                                 # the replica frees up again
            if post(f"{running.url}/v1/upscale", rgb, auth)[0] == 200:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the server did not recover after the deadline")
    finally:
        assert running.stop() == 0, running.output()


def test_a_killed_replica_never_gives_a_wrong_image_and_serves_again(tmp_path_factory, tiny_model_files, images):
    psutil = pytest.importorskip("psutil")
    tmp = tmp_path_factory.mktemp("serve-fault")
    running = Server(tmp, "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime", "--tile", "32")
    paths, expected = images
    rgb = paths["rgb.png"].read_bytes()
    try:
        replicas = [p for p in psutil.process_iter(["cmdline"])
                    if "ServeReplica:drcn" in " ".join(p.info["cmdline"] or [])]
        assert replicas, "no replica process found"
        statuses = []

        def client(i: int) -> None:
            status, _, body = post(f"{running.url}/v1/upscale", rgb, timeout=60)
            statuses.append(status)
            if status == 200:
                assert body == expected["rgb.png"]      # never a wrong or truncated image

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client, i) for i in range(12)]
            time.sleep(0.3)
            killed = time.monotonic()
            for process in replicas:
                process.send_signal(signal.SIGKILL)
            for future in futures:
                future.result()
        assert all(s == 200 or s >= 500 for s in statuses), statuses
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status, _, body = post(f"{running.url}/v1/upscale", rgb, timeout=30)
            if status == 200:
                assert body == expected["rgb.png"]
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no answer within 90 s of the kill: {running.output()}")
        print(f"served again {time.monotonic() - killed:.1f} s after the replica was killed")

        # SIGTERM drains: a request in hand when the signal comes still gets its whole image
        from drcn.images import encode_image

        big = encode_image(np.random.default_rng(1).integers(0, 256, (400, 520, 3), dtype=np.uint8))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(post, f"{running.url}/v1/upscale?scale=3", big, None, 120)
            time.sleep(0.5)
            assert not slow.done()
            assert running.stop() == 0, running.output()
            status, _, body = slow.result()
        assert status == 200, body
        from drcn.images import decode_image

        assert decode_image(body, "drained").shape == (1200, 1560, 3)
    finally:
        running.stop()


SERVED_CASES = 40


def test_the_served_result_is_drcn_runs_on_generated_images(server, tmp_path, tiny_model_files):
    """SERVED_CASES seeded images of every mode and odd size, at x2 and x3: what the server answers is, byte for
    byte, what drcn-run writes for the same file."""
    import datetime
    import random

    from generated_images import generated_image

    from drcn.images import write_image

    day = datetime.date.today().toordinal()
    cases = {}
    for n in range(SERVED_CASES):
        rng = random.Random(day * 7919 + n)
        scale = rng.choice([2, 3])
        folder = tmp_path / f"x{scale}"
        folder.mkdir(exist_ok=True)
        write_image(folder / f"case{n:03d}.png", generated_image(rng))
        cases[n] = (scale, folder / f"case{n:03d}.png")
    for scale in (2, 3):
        result = run_cli("drcn.runtime.run_cli", str(tmp_path / f"x{scale}"), "-o", str(tmp_path / f"out{scale}"),
                         "--onnx", str(tiny_model_files[1]), "--backend", "onnxruntime", "--tile", "32",
                         "--scale", str(scale))
        assert result.returncode == 0, result.stderr
    for n, (scale, path) in cases.items():
        status, _, body = post(f"{server.url}/v1/upscale?scale={scale}&format=png", path.read_bytes())
        assert status == 200, (n, body)
        assert body == (tmp_path / f"out{scale}" / path.name).read_bytes(), f"case {n} (seed {day * 7919 + n})"
