"""What segments cost and buy, in one run on this machine: ``python benchmarks/studies/segments.py``.

A clip is made here (a slow pan over scikit-image's astronaut, 320x180, 25 fps, AAC silence-free tone), then:
1. drcn-run in one pass (--segment 0) and in segments (--segment 5), same settings: frames/s of each;
2. a segmented run killed (SIGKILL) at about half its frames, then resumed: total seconds against one uninterrupted run;
3. --ray with two local workers of one thread each against one local process of one thread;
4. libx264 at the default crf: bytes of the one-pass and the segmented output (the cost of a keyframe per segment);
5. the same clip with a single keyframe: seconds of the segmented run against one pass (decoding from the keyframe).
Every output is checked to have the clip's frame count. Prints a table.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from drcn import matlab
from drcn.samples import load_sample

SECONDS, FPS, SIZE = 24, 25, (180, 320)


def make_clip(path: Path, keyint: int) -> None:
    photo = matlab.imresize(load_sample("astronaut")[:, :, :3], output_shape=(400, 400))
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
    video.codec_context.options = {"crf": "16", "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"}
    sound = out.add_stream("aac", rate=16000)
    sound.layout = "mono"
    for i in range(SECONDS * FPS):
        x, y = int(40 * (1 + np.sin(i / 60))), int(i * 200 / (SECONDS * FPS))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[y:y + SIZE[0], x:x + SIZE[1]]), format="rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    samples = SECONDS * 16000
    wave = (0.2 * np.sin(2 * np.pi * 330 * np.arange(samples) / 16000)).astype(np.float32)[None]
    for start in range(0, samples, 1024):
        chunk = av.AudioFrame.from_ndarray(wave[:, start:start + 1024].copy(), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, start
        out.mux(sound.encode(chunk))
    out.mux(sound.encode(None))
    out.close()


def drcn_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "drcn.runtime.run_cli", *map(str, args)]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-1500:]}")
    return time.perf_counter() - start


def frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> None:
    rows = []
    total = SECONDS * FPS
    with tempfile.TemporaryDirectory(prefix="drcn-segments-") as tmp:
        tmp = Path(tmp)
        clip, single = tmp / "clip.mp4", tmp / "single.mp4"
        make_clip(clip, 50)           # a keyframe every 2 s
        make_clip(single, 10 ** 6)    # one keyframe
        common = ["--overwrite", "--threads", "2"]
        one = timed(drcn_run(clip, "-o", tmp / "one.mp4", "--segment", "0", *common))
        seg = timed(drcn_run(clip, "-o", tmp / "seg.mp4", "--segment", "5", *common))
        assert frames(tmp / "one.mp4") == frames(tmp / "seg.mp4") == total
        rows.append(("one pass / segments of 5 s, frames/s", f"{total / one:.2f} / {total / seg:.2f} "
                     f"(segmented {one / seg:.2f}x the speed)"))
        sizes = (tmp / "one.mp4").stat().st_size, (tmp / "seg.mp4").stat().st_size
        rows.append(("libx264 crf 18 bytes, one pass / segments", f"{sizes[0]:,} / {sizes[1]:,} "
                     f"({100 * (sizes[1] / sizes[0] - 1):+.1f}%)"))

        # killed at about half its frames, then resumed
        out, work = tmp / "killed.mp4", tmp / ".killed.mp4.parts"
        command = drcn_run(clip, "-o", out, "--segment", "5", *common)
        start = time.perf_counter()
        victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while victim.poll() is None and len(list(work.glob("part-*.json"))) < 2:
            time.sleep(0.05)
        time.sleep(0.4 * seg / 5)     # a little into the third of five segments
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        first = time.perf_counter() - start
        resumed = timed(drcn_run(clip, "-o", out, "--segment", "5", "--threads", "2"))
        assert frames(out) == total
        rows.append(("killed at about half, resumed: seconds", f"{first:.1f} + {resumed:.1f} = {first + resumed:.1f} "
                     f"against {seg:.1f} uninterrupted ({(first + resumed) / seg:.2f}x)"))

        # Ray: two workers of one thread against one process of one thread
        local1 = timed(drcn_run(clip, "-o", tmp / "l1.mp4", "--segment", "5", "--overwrite", "--threads", "1"))
        ray2 = timed(drcn_run(clip, "--ray", "--workers", "2", "-o", tmp / "r2.mp4", "--segment", "5", "--overwrite",
                              "--threads", "1"))
        assert frames(tmp / "r2.mp4") == total
        rows.append(("--ray 2 workers x 1 thread vs 1 process x 1 thread", f"{local1:.1f} s / {ray2:.1f} s "
                     f"({local1 / ray2:.2f}x)"))

        # one keyframe: segments decode from it
        one_s = timed(drcn_run(single, "-o", tmp / "s1.mp4", "--segment", "0", *common))
        seg_s = timed(drcn_run(single, "-o", tmp / "s5.mp4", "--segment", "5", *common))
        assert frames(tmp / "s5.mp4") == total
        rows.append(("a single keyframe: one pass / segments, seconds", f"{one_s:.1f} / {seg_s:.1f} "
                     f"({seg_s / one_s:.2f}x)"))
    cpu = re.sub(r"\s+", " ", next((line.split(":", 1)[1] for line in Path("/proc/cpuinfo").read_text().splitlines()
                                    if line.startswith("model name")), "?")).strip()
    print(f"# drcn-run on a {SECONDS} s clip of {SIZE[1]}x{SIZE[0]} at {FPS} fps (x2, the shipped model, defaults), "
          f"{os.cpu_count()} cores, {cpu}")
    for name, value in rows:
        print(f"{name:55s} {value}")


if __name__ == "__main__":
    main()
