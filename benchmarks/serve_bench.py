"""``drcn-bench serve``: load on a drcn-serve (started here on 127.0.0.1, or one already running), beside what
drcn-run and a warm ``drcn.upscale`` do with the same images in the same run.

The load generator is asyncio with aiohttp (one connection per client, no thread per request): for each count of
concurrent clients, every client sends the images in turn for ``seconds`` (or until ``max_requests``), and the
run reports requests/s, p50/p90/p99 latency and errors by status. Then ``drcn-run`` upscales the same images (its
own frames/s line, model load excluded) and the Python API upscales one image warm (its median), so the ratios
compare like with like on this machine.
"""

from __future__ import annotations

import asyncio
import http.client
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np

from drcn.cpu import cpu_name
from drcn.errors import DrcnError
from drcn.optional import require


@dataclasses.dataclass(frozen=True)
class ServeBenchRequest:
    model_args: tuple[str, ...] = ()          # drcn-serve / drcn-run model options (--onnx m.onnx --backend ...)
    url: str | None = None                    # a running server; None: start one on 127.0.0.1
    sizes: tuple[tuple[int, int], ...] = ((256, 256),)   # (H, W) of the LR images sent
    images: int = 4                           # distinct images (made from the bundled photos)
    clients: tuple[int, ...] = (1, 4, 16)
    seconds: float = 20.0                     # per client count
    max_requests: int = 100_000               # per client count, a bound on the loop
    scale: int = 2
    server_args: tuple[str, ...] = ()         # drcn-serve's own options (--max-batch ...)


def free_port() -> int:
    from drcn.runtime.local_ray import free_port as below_ephemeral

    return below_ephemeral()


def _make_images(folder: Path, request: ServeBenchRequest) -> list[Path]:
    from drcn import matlab
    from drcn.images import write_image
    from drcn.samples import SAMPLE_NAMES, load_sample

    paths = []
    for i in range(request.images):
        h, w = request.sizes[i % len(request.sizes)]
        photo = load_sample(SAMPLE_NAMES[i % len(SAMPLE_NAMES)])
        photo = photo[:, :, :3] if photo.ndim == 3 else np.dstack([photo] * 3)
        image = matlab.imresize(photo, output_shape=(h, w))
        paths.append(folder / f"bench_{i}_{w}x{h}.png")
        write_image(paths[-1], image)
    return paths


class ServeProcess:
    """A ``drcn-serve`` process on 127.0.0.1 (a free port), ready when its health endpoint answers: ``url``,
    ``output()``, ``stop()`` (SIGTERM, which drains; SIGKILL of its process group after ``stop_s``). Used by this
    benchmark and by the serving tests."""

    def __init__(self, *args: str, ready_s: float = 300, stop_s: float = 90, cwd: Path | None = None,
                 log: Callable[[str], None] = lambda _: None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stop_s = stop_s
        self.log = tempfile.TemporaryFile("w+")
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.process = subprocess.Popen([sys.executable, "-m", "drcn.runtime.serve.cli", "--port", str(self.port),
                                         *args], stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                        start_new_session=True)
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DrcnError(f"drcn-serve ended: {self.said()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2):
                    log(f"drcn-serve ready on {self.url}")
                    return
            except (urllib.error.URLError, OSError, http.client.HTTPException):
                time.sleep(0.5)
        self.stop()
        raise DrcnError(f"drcn-serve was not ready within {ready_s:g} s: {self.said()}")

    def output(self) -> str:
        """The last 4000 characters the process printed."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def said(self) -> str:
        """drcn-serve's own last lines, joined into one."""
        return " | ".join([line for line in self.output().splitlines() if line.startswith("drcn-serve")][-3:])

    def kill(self) -> None:
        """SIGKILL every process of the server's tree at once (a power cut, or an OOM kill of its cgroup)."""
        import psutil

        root = psutil.Process(self.process.pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        self.process.wait(30)

    def stop(self) -> int:
        if self.process.poll() is None:
            try:
                import psutil

                tree = psutil.Process(self.process.pid).children(recursive=True)
            except Exception:  # noqa: BLE001 - without psutil (or a process already gone) the group kill remains
                tree = []
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_s)
            except subprocess.TimeoutExpired:
                # The server runs in a session of its own under drcn-serve's supervisor: end every process seen.
                os.killpg(self.process.pid, signal.SIGKILL)
                for child in tree:
                    try:
                        child.kill()
                    except Exception:  # noqa: BLE001 - already gone
                        pass
                self.process.wait(timeout=30)
        return self.process.returncode


async def _load(url: str, bodies: list[bytes], clients: int, seconds: float, limit: int) -> dict:
    aiohttp = require("aiohttp", "drcn-bench serve", "pip install 'drcn[serve]'")
    latencies, statuses = [], {}
    sent = 0
    stop_at = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=max(60.0, seconds))

    async def client(index: int, session) -> None:
        nonlocal sent
        turn = index
        while time.monotonic() < stop_at and sent < limit:
            sent += 1
            body = bodies[turn % len(bodies)]
            turn += 1
            start = time.perf_counter()
            try:
                async with session.post(f"{url}/v1/upscale?scale=2", data=body) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = "connection"
            latencies.append(time.perf_counter() - start) if status == 200 else None
            statuses[status] = statuses.get(status, 0) + 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        elapsed = time.perf_counter() - start
    done = statuses.get(200, 0)
    q = np.percentile(latencies, [50, 90, 99]) if latencies else [float("nan")] * 3
    return {"clients": clients, "requests": sum(statuses.values()), "ok": done, "seconds": elapsed,
            "rps": done / elapsed, "p50_ms": q[0] * 1000, "p90_ms": q[1] * 1000, "p99_ms": q[2] * 1000,
            "errors": {str(k): v for k, v in statuses.items() if k != 200}}


def _drcn_run_fps(images: list[Path], model_args: tuple[str, ...], folder: Path) -> float:
    """drcn-run's own frames/s line over the images (model loading excluded by drcn-run itself)."""
    frames = folder / "frames"
    frames.mkdir(exist_ok=True)
    for i in range(3):       # three passes over the images: a run long enough to measure
        for path in images:
            (frames / f"{i}_{path.name}").write_bytes(path.read_bytes())
    result = subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", str(frames), "-o", str(folder / "out"),
                             "--overwrite", *model_args], capture_output=True, text=True, timeout=3600)
    found = re.search(r"\(([\d.]+) frames/s", result.stdout)
    if result.returncode or not found:
        raise DrcnError(f"drcn-run failed in the benchmark: {result.stderr.strip()[-300:]}")
    return float(found.group(1))


def _api_p50(image: Path, model_args: tuple[str, ...]) -> float:
    """Median seconds of a warm ``Upscaler.upscale`` of one image, the model options of drcn-serve."""
    from drcn.images import read_image
    from drcn.runtime.api import Upscaler
    from drcn.runtime.run_cli import build_parser

    args = build_parser().parse_args([str(image), *model_args])
    model = args.engine or args.onnx or args.weights
    array = read_image(image)
    with Upscaler(model, backend=args.backend, precision=args.precision, tile=args.tile, batch=args.batch,
                  path=args.path) as upscaler:
        upscaler.upscale(array)
        times = []
        for _ in range(7):
            start = time.perf_counter()
            upscaler.upscale(array)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure_serve(request: ServeBenchRequest, log: Callable[[str], None]) -> dict:
    with tempfile.TemporaryDirectory(prefix="drcn-bench-serve-") as tmp:
        folder = Path(tmp)
        images = _make_images(folder, request)
        bodies = [p.read_bytes() for p in images]
        server = None if request.url else ServeProcess("--queue", "64", *request.model_args, *request.server_args,
                                                        log=log)
        url = request.url or server.url
        with urllib.request.urlopen(f"{url}/v1/info", timeout=30) as answer:
            served = json.loads(answer.read())
        log(f"serving: {served['description']}")
        try:
            runs = []
            for clients in request.clients:
                asyncio.run(_load(url, bodies[:1], clients, min(2.0, request.seconds), 20))   # warm-up
                record = asyncio.run(_load(url, bodies, clients, request.seconds, request.max_requests))
                log(f"{clients} client(s): {record['rps']:.2f} requests/s, p50 {record['p50_ms']:.0f} ms, p99 "
                    f"{record['p99_ms']:.0f} ms, errors {record['errors'] or 'none'}")
                runs.append(record)
            single = asyncio.run(_load(url, bodies[:1], 1, min(10.0, request.seconds), 15))
            with urllib.request.urlopen(f"{url}/v1/info", timeout=30) as answer:
                served_after = json.loads(answer.read())
        finally:
            if server is not None:
                server.stop()
        fps = _drcn_run_fps(images, request.model_args, folder)
        api = _api_p50(images[0], request.model_args)
        log(f"drcn-run: {fps:.2f} frames/s; warm drcn.upscale of one image: {api * 1000:.0f} ms")
    best = max(r["rps"] for r in runs)
    return {"runs": runs, "served": served["description"], "server_args": list(request.server_args),
            "backend_calls": served_after["backend_calls"] - served["backend_calls"],
            "window_calls": served_after["window_calls"] - served["window_calls"], "cpu": cpu_name(),
            "drcn_run_fps": fps, "api_p50_ms": api * 1000, "single_p50_ms": single["p50_ms"],
            "saturation_vs_drcn_run": best / fps if fps else float("nan"),
            "single_vs_api": single["p50_ms"] / (api * 1000), "images": [p.name for p in images]}


# -- scenarios of a busy service: clients that hang up, a small request beside a large one ---------------
@dataclasses.dataclass(frozen=True)
class ScenarioRequest:
    model_args: tuple[str, ...] = ()
    url: str | None = None
    scenario: str = "abandoned"                   # abandoned | mixed
    large: tuple[int, int] = (720, 1280)          # (H, W) of the large request's image, sent at ``large_scale``
    large_scale: int = 4
    small: tuple[int, int] = (120, 160)           # (H, W) of the small request's image, sent at x2
    clients: int = 6                              # abandoned: clients that send the large image and hang up;
                                                  # memory: clients sending the mix at once
    hang_up_s: float = 1.0
    server_args: tuple[str, ...] = ()
    seconds: float = 60.0                         # memory: how long the mixed load runs


def _info(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/v1/info", timeout=30) as answer:
        return json.loads(answer.read())


def _post_timed(url: str, body: bytes, scale: float, timeout: float = 600) -> tuple[int, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/v1/upscale?scale={scale:g}", data=body),
                                    timeout=timeout) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - start


def _hang_up(url: str, body: bytes, scale: int, seconds: float, clients: int) -> None:
    """``clients`` connections each send a whole request, then close after ``seconds`` without reading."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    head = (f"POST /v1/upscale?scale={scale} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    connections = []
    for _ in range(clients):
        connection = socket.create_connection((host, int(port)), timeout=30)
        connection.sendall(head + body)
        connections.append(connection)
    time.sleep(seconds)
    for connection in connections:
        connection.close()


def _image(size: tuple[int, int]) -> bytes:
    from drcn import matlab
    from drcn.images import encode_image
    from drcn.samples import load_sample

    return encode_image(matlab.imresize(load_sample("astronaut")[:, :, :3], output_shape=size))


def measure_scenario(request: ScenarioRequest, log: Callable[[str], None]) -> dict:
    """One scenario on a drcn-serve (started here on 127.0.0.1 unless ``url``): the small request's seconds alone
    and in the scenario, the replica's counters and its peak resident memory (sampled every 0.25 s)."""
    import threading

    server = None if request.url else ServeProcess(*request.model_args, *request.server_args, log=log)
    url = request.url or server.url
    large, small = _image(request.large), _image(request.small)
    peak, sampling = [0], threading.Event()

    def sample() -> None:
        while not sampling.wait(0.25):
            try:
                peak[0] = max(peak[0], _info(url).get("rss_bytes", 0))
            except (urllib.error.URLError, OSError, ValueError):
                pass

    try:
        _post_timed(url, small, 2)                                    # warm
        alone = [_post_timed(url, small, 2)[1] for _ in range(3)]
        before = _info(url)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        record = {"scenario": request.scenario, "small_alone_s": float(np.median(alone)), "cpu": cpu_name(),
                  "served": before["description"], "large": list(request.large), "large_scale": request.large_scale,
                  "small": list(request.small)}
        if request.scenario == "abandoned":
            _hang_up(url, large, request.large_scale, request.hang_up_s, request.clients)
            status, after_s = _post_timed(url, small, 2)
            settled = time.perf_counter()
            deadline = settled + 600
            while _info(url)["pending"] and time.perf_counter() < deadline:
                time.sleep(0.1)
            after = _info(url)
            # .get: a drcn-serve from before these counters (--url) still gives the timings
            delta = {key: after.get(key, 0) - before.get(key, 0) for key in ("cancelled_requests", "dropped_windows",
                                                                             "windows", "window_calls")}
            record.update(clients=request.clients, hang_up_s=request.hang_up_s, small_status=status,
                          small_after_s=after_s, idle_after_s=time.perf_counter() - settled,
                          cancelled_requests=delta["cancelled_requests"], dropped_windows=delta["dropped_windows"],
                          windows_computed=delta["windows"], calls_computed=delta["window_calls"])
            log(f"abandoned: a small request took {after_s:.2f} s after {request.clients} clients hung up "
                f"(alone {record['small_alone_s']:.2f} s); {record['cancelled_requests']} requests cancelled, "
                f"{record['dropped_windows']} windows dropped")
        elif request.scenario == "mixed":
            result: dict = {}
            worker = threading.Thread(target=lambda: result.update(large=_post_timed(url, large,
                                                                                       request.large_scale)))
            started = time.perf_counter()
            worker.start()
            time.sleep(2.0)
            beside = []
            while worker.is_alive() and len(beside) < 5:
                beside.append(_post_timed(url, small, 2)[1])
            worker.join()
            record.update(large_status=result["large"][0], large_s=time.perf_counter() - started,
                          small_beside_s=beside, small_beside_max_s=max(beside) if beside else float("nan"))
            log(f"mixed: small alone {record['small_alone_s']:.2f} s, beside the large one up to "
                f"{record['small_beside_max_s']:.2f} s; the large one {record['large_s']:.1f} s")
        elif request.scenario == "memory":
            record.update(_mixed_load(url, request, small, log))
        else:
            raise DrcnError(f"--scenario {request.scenario}: load, abandoned, mixed or memory")
        sampling.set()
        sampler.join()
        record["peak_rss_bytes"] = peak[0]
        record["memory_budget_bytes"] = before.get("memory_budget_bytes")
        return record
    finally:
        sampling.set()
        if server is not None:
            server.stop()


MIX = (("small", 2), ("small", 3), ("small", 4), ("medium", 2), ("medium", 3), ("medium", 4), ("large", 2),
       ("large", 3), ("large", 4))


def _mixed_load(url: str, request: ScenarioRequest, small: bytes, log: Callable[[str], None]) -> dict:
    """``clients`` threads for ``seconds``, each sending a random (size, scale) of :data:`MIX` in turn (seeded):
    small 160x120, medium 480x270 and the large image at x2-x4. Statuses and latency by size."""
    import random
    import threading

    bodies = {"small": small, "medium": _image((270, 480)), "large": _image(request.large)}
    results: list[tuple[str, int, int, float]] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + request.seconds

    def client(index: int) -> None:
        rng = random.Random(index)
        while time.perf_counter() < stop_at:
            size, scale = rng.choice(MIX)
            status, seconds = _post_timed(url, bodies[size], scale, timeout=max(600.0, request.seconds))
            with lock:
                results.append((size, scale, status, seconds))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(request.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    info = _info(url)
    by_size = {}
    for size in ("small", "medium", "large"):
        ok = sorted(s for name, _, status, s in results if name == size and status == 200)
        statuses: dict[str, int] = {}
        for name, _, status, _ in results:
            if name == size:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        by_size[size] = {"statuses": statuses, "p50_s": float(np.median(ok)) if ok else float("nan"),
                         "p99_s": float(np.percentile(ok, 99)) if ok else float("nan")}
    log(f"memory: {len(results)} requests from {request.clients} clients in {request.seconds:g} s; "
        + "; ".join(f"{k}: {v['statuses']}" for k, v in by_size.items()))
    return {"clients": request.clients, "seconds": request.seconds, "requests": len(results), "by_size": by_size,
            "compiles": info.get("compiles"), "compiled_bytes_end": info.get("compiled_bytes"),
            "rss_end_bytes": info.get("rss_bytes")}


def scenario_rows(record: dict) -> tuple[list[str], list[list[str]]]:
    rows = [["small request alone", f"{record['small_alone_s']:.2f} s"]]
    if record["scenario"] == "abandoned":
        rows += [[f"small request after {record['clients']} clients hung up ({record['large'][1]}x"
                  f"{record['large'][0]} x{record['large_scale']}, after {record['hang_up_s']:g} s)",
                  f"{record['small_after_s']:.2f} s (HTTP {record['small_status']})"],
                 ["requests cancelled", str(record["cancelled_requests"])],
                 ["windows dropped (never computed)", str(record["dropped_windows"])],
                 ["windows computed meanwhile (calls of requests)",
                  f"{record['windows_computed']} ({record['calls_computed']})"],
                 ["replica idle again after", f"{record['idle_after_s']:.2f} s"]]
    elif record["scenario"] == "memory":
        rows += [[f"requests ({record['clients']} clients, {record['seconds']:g} s; x2-x4 of 160x120, 480x270, "
                  f"{record['large'][1]}x{record['large'][0]})", str(record["requests"])]]
        for size, found in record["by_size"].items():
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(found["statuses"].items()))
            rows.append([f"{size}: answers; p50 / p99 of the 200s", f"{statuses}; {found['p50_s']:.2f} / "
                         f"{found['p99_s']:.2f} s"])
        rows += [["compiled shapes (OpenVINO compiles)", str(record.get("compiles"))],
                 ["replica resident memory at the end", f"{(record.get('rss_end_bytes') or 0) / 2**20:.0f} MiB"]]
    else:
        rows += [[f"small request beside a large one ({record['large'][1]}x{record['large'][0]} "
                  f"x{record['large_scale']})", ", ".join(f"{s:.2f}" for s in record["small_beside_s"]) + " s"],
                 ["the large request", f"{record['large_s']:.1f} s (HTTP {record['large_status']})"]]
    rows.append(["replica peak resident memory", f"{record['peak_rss_bytes'] / 2**20:.0f} MiB (budget "
                 f"{(record['memory_budget_bytes'] or 0) / 2**30:.1f} GiB)"])
    return ["", record["scenario"]], rows


def serve_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["clients", "requests", "requests/s", "p50 ms", "p90 ms", "p99 ms", "errors"]
    rows = [[r["clients"], r["requests"], f"{r['rps']:.2f}", f"{r['p50_ms']:.0f}", f"{r['p90_ms']:.0f}",
             f"{r['p99_ms']:.0f}", ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"]
            for r in result["runs"]]
    rows.append(["drcn-run", "", f"{result['drcn_run_fps']:.2f}", "", "", "", "frames/s, same images"])
    rows.append(["api", "", "", f"{result['api_p50_ms']:.0f}", "", "", "warm drcn.upscale, one image"])
    rows.append(["batching", "", "", "", "", "", f"{result['backend_calls']} backend calls for "
                 f"{result['window_calls']} calls of requests (drcn-serve {' '.join(result['server_args'])})"])
    rows.append(["ratio", "", f"{result['saturation_vs_drcn_run']:.2f}x", f"{result['single_vs_api']:.2f}x", "",
                 "", f"best requests/s / drcn-run; one client's p50 ({result['single_p50_ms']:.0f} ms, one image) "
                     "/ api"])
    return headers, [[str(c) for c in row] for row in rows]
