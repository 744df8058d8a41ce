"""Why requests in flight cannot speed up this CPU: one request's parallel efficiency, and latency vs throughput
mode, for the network drcn-run picks here (OpenVINO auto) on the windows of 640x360 at --tile 256 (240x206).

Run from the repository root: python benchmarks/studies/in_flight.py > benchmarks/results/cpu/in_flight.txt
"""

import os
import time

import numpy as np

from drcn.runtime.backends.openvino_backend import OpenVINOBackend
from drcn.runtime.backends.select import shipped_onnx_path

WINDOWS, SHAPE, ROUNDS = 16, (1, 206, 240), 3


def ms_per_window(backend: OpenVINOBackend, batch: int) -> float:
    x = np.random.default_rng(0).random((WINDOWS, *SHAPE)).astype(np.float32)
    backend.run(x[:batch])  # compile and warm up outside the timing
    start = time.perf_counter()
    for i in range(0, WINDOWS, batch):
        backend.run(x[i:i + batch])
    return (time.perf_counter() - start) / WINDOWS * 1e3


model = str(shipped_onnx_path())
cores = len(os.sched_getaffinity(0))
for round_ in range(1, ROUNDS + 1):
    one = OpenVINOBackend(model, mode="latency", threads=1)
    latency = OpenVINOBackend(model, mode="latency")
    throughput = OpenVINOBackend(model, mode="throughput")
    t1, tl, tt = ms_per_window(one, 4), ms_per_window(latency, 4), ms_per_window(throughput, 4)
    for backend in (one, latency, throughput):
        backend.close()
    print(f"round {round_}: {latency.precision}, windows {SHAPE[2]}x{SHAPE[1]}, batch 4, {cores} cores: one thread "
          f"{t1:.1f} ms/window, latency mode {tl:.1f} (parallel efficiency {t1 / (cores * tl):.2f}), throughput "
          f"mode with {throughput.in_flight} requests in flight {tt:.1f} ({tl / tt:.2f}x latency mode)")
