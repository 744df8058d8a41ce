"""Video jobs on drcn-serve, measured against drcn-run on the same clip in one run:

- a job's frames/s against ``drcn-run``'s (same model, options, machine), the job alone on the server;
- a job whose server was killed (every process, SIGKILL) at half its frames and started again, against an
  uninterrupted job: the job's own time (submission to done, the server's restart left out) and the wall time;
- 256x256 x2 image requests while a job runs, against the idle server: p50 and p99.

The clip is made here from a sample photo (a slow pan, libx264, no download); servers listen on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class JobBenchRequest:
    model_args: tuple[str, ...]          # drcn-run / drcn-serve model options
    seconds: float = 10.0                # the clip's length
    size: tuple[int, int] = (180, 320)   # its (height, width)
    fps: int = 24
    segment: float = 2.0
    images: int = 12                     # image requests timed idle and beside the job
    poll_s: float = 1.0                  # how often the client asks for a job's state (the web page: every 1 s)


def make_clip(path: Path, request: JobBenchRequest) -> int:
    """drcn-run's sample clip (a pan over the astronaut photo) of the request's length and size, no audio: (frames)."""
    from drcn.runtime.media.sample_video import write_sample_video

    return write_sample_video(path, request.seconds, request.size, request.fps, audio=False)


def _call(url: str, method: str = "GET", body: bytes | None = None) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method), timeout=120) as answer:
        return json.loads(answer.read())


def _image(url: str, body: bytes) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/v1/upscale?scale=2", data=body, method="POST"),
                                timeout=120) as answer:
        answer.read()
    return time.perf_counter() - start


def measure_jobs(request: JobBenchRequest, log: Callable[[str], None]) -> dict:
    from drcn.benchmarks.serve_bench import ServeProcess, _image as small_image
    from drcn.cpu import cpu_name

    record: dict = {"cpu": cpu_name(), "clip": f"{request.size[1]}x{request.size[0]}, {request.seconds:g} s at "
                                               f"{request.fps} fps, libx264", "segment_s": request.segment,
                    "poll_s": request.poll_s}
    with tempfile.TemporaryDirectory(prefix="drcn-job-bench-") as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip.mkv"
        frames = record["frames"] = make_clip(clip, request)
        options = ["--codec", "ffv1", "--segment", f"{request.segment:g}"]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", str(clip), "-o", str(tmp / "run.mkv"),
                        *request.model_args, *options], check=True, capture_output=True, text=True)
        record["drcn_run_s"] = time.perf_counter() - start
        log(f"drcn-run: {frames} frames in {record['drcn_run_s']:.1f} s")
        query = f"codec=ffv1&segment={request.segment:g}&name=clip.mkv"
        small = small_image((256, 256))
        jobs = tmp / "jobs"
        server = ServeProcess(*request.model_args, "--job-dir", str(jobs), log=log)
        try:
            _image(server.url, small)                                   # warm
            idle = [_image(server.url, small) for _ in range(request.images)]
            # the job alone
            submitted = time.perf_counter()
            job = _call(f"{server.url}/v1/jobs?{query}", "POST", clip.read_bytes())
            while (state := _call(f"{server.url}{job['url']}"))["state"] in ("queued", "running"):
                time.sleep(request.poll_s)
            record["job_s"] = time.perf_counter() - submitted
            if state["state"] != "done":
                raise RuntimeError(f"the job ended {state['state']}: {state['error']}")
            log(f"job: {frames} frames in {record['job_s']:.1f} s")
            # images beside a running job (then cancelled)
            job = _call(f"{server.url}/v1/jobs?{query}", "POST", clip.read_bytes())
            while _call(f"{server.url}{job['url']}")["frames_done"] < 10:
                time.sleep(0.2)
            beside = [_image(server.url, small) for _ in range(request.images)]
            still = _call(f"{server.url}{job['url']}")["state"]
            _call(f"{server.url}{job['url']}", "DELETE")
            if still != "running":
                raise RuntimeError(f"the job was {still} before the images beside it were timed: a longer clip")
            log(f"images: idle p50 {statistics.median(idle):.3f} s, beside a job {statistics.median(beside):.3f} s")
            record.update(image_idle_s=idle, image_beside_job_s=beside)
            # killed at half, started again
            submitted = time.perf_counter()
            job = _call(f"{server.url}/v1/jobs?{query}", "POST", clip.read_bytes())
            while _call(f"{server.url}{job['url']}")["frames_done"] < frames // 2:
                time.sleep(request.poll_s / 2)
            killed = time.perf_counter()
            server.kill()
        except BaseException:
            server.stop()
            raise
        server = ServeProcess(*request.model_args, "--job-dir", str(jobs), log=log)
        try:
            ready = time.perf_counter()
            while True:
                state = _call(f"{server.url}{job['url']}")
                if state["state"] not in ("queued", "running"):
                    break
                time.sleep(request.poll_s)
            done = time.perf_counter()
            if state["state"] != "done":
                raise RuntimeError(f"the resumed job ended {state['state']}: {state['error']}")
            record.update(killed_job_s=(killed - submitted) + (done - ready), killed_wall_s=done - submitted,
                          restart_s=ready - killed, resumed_segments=state["resumed_segments"],
                          segments=state["segments_total"])
            log(f"killed at half: {record['killed_job_s']:.1f} s of job time ({record['killed_wall_s']:.1f} s wall, "
                f"{record['restart_s']:.1f} s restarting); {state['resumed_segments']} of {state['segments_total']} "
                "segments resumed")
        finally:
            server.stop()
    return record


def job_rows(record: dict) -> tuple[list[str], list[list[str]]]:
    frames = record["frames"]
    idle, beside = record["image_idle_s"], record["image_beside_job_s"]

    def p(values, q):
        return float(np.percentile(values, q)) * 1000

    rows = [["clip", record["clip"] + f", {frames} frames, ffv1 out, segments of {record['segment_s']:g} s"],
            ["drcn-run", f"{frames / record['drcn_run_s']:.2f} frames/s"],
            [f"job (POST /v1/jobs to done, its state asked every {record.get('poll_s', 0.2):g} s)",
             f"{frames / record['job_s']:.2f} frames/s "
                                            f"({record['drcn_run_s'] / record['job_s']:.2f}x drcn-run)"],
            ["job killed at half, server started again", f"{record['killed_job_s']:.1f} s of job time "
             f"({record['killed_job_s'] / record['job_s']:.2f}x uninterrupted); {record['killed_wall_s']:.1f} s wall "
             f"with {record['restart_s']:.1f} s of restart; {record['resumed_segments']} of {record['segments']} "
             "segments resumed"],
            ["256x256 x2 image, idle: p50 / p99", f"{p(idle, 50):.0f} / {p(idle, 99):.0f} ms"],
            ["256x256 x2 image, a job running: p50 / p99", f"{p(beside, 50):.0f} / {p(beside, 99):.0f} ms "
             f"({p(beside, 50) / p(idle, 50):.2f}x idle p50)"]]
    return ["", "video jobs"], rows
