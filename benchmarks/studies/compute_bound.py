"""The compute bound, for CPUs where one request already fills the cores: drcn-run's
frames/s against the compute bound, and throughput mode against latency mode, in one run.

The compute bound of a frame is all the work it needs, done by one thread, spread over the cores with no loss:
    (network alone on the frame's windows, one thread + host work of the frame, one thread) / cores
where the host work is what drcn-run's default (host) path does besides the network: reading the PNG, colour
conversion and bicubic enlargement (colour.prepare), cutting the Y windows and putting them back, colour.finish,
writing the PNG. The network is the one drcn-run picks here (OpenVINO auto) on the same windows. drcn-run itself
runs as a user runs it (a subprocess; its own frames/s line), once untimed first so that OpenVINO's compiled-model
cache is warm for every command.

Run from the project root on a quiet machine:
    python benchmarks/studies/compute_bound.py > benchmarks/results/cpu/compute_bound.txt
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# 40 frames: drcn-run's time includes opening the backend and loading each window shape's compiled model from the
# cache, which 16 frames (~10 s) do not amortise.
FRAMES, WIDTH, HEIGHT, SCALE, TILE, ROUNDS = 40, 320, 180, 2, 256, 2
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def one_thread_costs(frames: Path) -> None:
    """Child process, one thread everywhere: prints 'network_ms host_ms' per frame (medians over the frames)."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    from drcn.images import list_images, read_image, write_image
    from drcn.runtime.backends.openvino_backend import OpenVINOBackend
    from drcn.runtime.backends.select import shipped_onnx_path
    from drcn.runtime.media import colour
    from drcn.runtime.tiling import tiled_plane

    backend = OpenVINOBackend(str(shipped_onnx_path()), threads=1, mode="latency")
    files = list_images(frames)
    prepared = [colour.prepare(read_image(f), SCALE) for f in files]
    network = tiled_plane(backend.run, TILE, backend.spec.halo, 4)
    echo = tiled_plane(lambda batch: batch, TILE, backend.spec.halo, 4)
    network(prepared[0].y)                                  # compile outside the timing
    net_ms, host_ms = [], []
    with tempfile.TemporaryDirectory() as out:
        for f, p in zip(files, prepared):
            start = time.perf_counter()
            y = network(p.y)
            middle = time.perf_counter()
            echo(p.y)       # the windows cut and put back: host work, counted below, not the network's
            net_ms.append(1e3 * (2 * middle - start - time.perf_counter()))
            start = time.perf_counter()
            image = read_image(f)
            q = colour.prepare(image, SCALE)
            write_image(Path(out) / f.name, colour.finish(q, echo(q.y)))
            host_ms.append(1e3 * (time.perf_counter() - start))
            assert y.shape == q.y.shape
    print(f"{np.median(net_ms):.2f} {np.median(host_ms):.2f} {backend.precision}")


def drcn_run(frames: Path, out: Path, *options: str) -> float:
    """drcn-run's own frames/s for the folder."""
    result = subprocess.run([sys.executable, "-m", "drcn.runtime.run_cli", str(frames), "-o", str(out),
                             "--overwrite", "--tile", str(TILE), *options], capture_output=True, text=True, check=True)
    return float(re.search(r"\(([\d.]+) frames/s", result.stdout).group(1))


def main() -> None:
    from drcn.benchmarks.pipeline_bench import make_frames
    from drcn.cpu import describe

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        frames = make_frames(Path(tmp) / "frames", FRAMES, WIDTH, HEIGHT)
        drcn_run(frames, Path(tmp) / "warm")                 # OpenVINO's model cache, for every command below
        print(f"{describe()}, {cores} cores; {FRAMES} frames {WIDTH}x{HEIGHT} -> x{SCALE}, --tile {TILE}, "
              "drcn-run defaults (host path, OpenVINO auto)")
        for round_ in range(1, ROUNDS + 1):
            child = subprocess.run([sys.executable, __file__, "--one-thread", str(frames)], capture_output=True,
                                   text=True, check=True, env={**os.environ, **ONE_THREAD})
            net_ms, host_ms, precision = child.stdout.split()
            bound_ms = (float(net_ms) + float(host_ms)) / cores
            throughput = drcn_run(frames, Path(tmp) / "t", "--mode", "throughput")
            latency = drcn_run(frames, Path(tmp) / "l", "--mode", "latency")
            print(f"round {round_}: one thread per frame: network ({precision}) {float(net_ms):.1f} ms + host "
                  f"{float(host_ms):.1f} ms -> compute bound {1e3 / bound_ms:.2f} frames/s over {cores} cores; "
                  f"drcn-run throughput mode {throughput:.2f} frames/s ({throughput * bound_ms / 1e3:.2f} of the "
                  f"bound), latency mode {latency:.2f} ({latency * bound_ms / 1e3:.2f}); throughput/latency "
                  f"{throughput / latency:.2f}x", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one-thread"]:
        one_thread_costs(Path(sys.argv[2]))
    else:
        main()
