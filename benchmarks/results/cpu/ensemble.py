"""Y-PSNR of the shipped model with the geometric self-ensemble (drcn.ensemble) on Set5 and Set14 x2, OpenVINO fp32,
tiled as drcn-run tiles (256 + halo), paper conventions (drcn.evaluation). Run:
    python benchmarks/results/cpu/ensemble.py ../shared/datasets > benchmarks/results/cpu/ensemble.txt"""

import sys
import time
from pathlib import Path

import numpy as np

from drcn.ensemble import ensemble_run
from drcn.evaluation import evaluate, folder_dataset, summarise
from drcn.runtime.backends.select import shipped_onnx_path
from drcn.runtime.backends.table import create_backend
from drcn.runtime.tiling import tiled_plane

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
backend = create_backend("openvino", str(shipped_onnx_path()), precision="fp32")
print(backend.description)


class Ensembled:
    def __init__(self, size: int):
        self.name = f"ensemble {size}"
        self.run = tiled_plane(ensemble_run(backend.run, size), 256, backend.spec.halo, 4)

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        return self.run(y)


for name in ("Set5", "Set14"):
    dataset = folder_dataset(root / name)
    for size in (1, 2, 4, 8):
        start = time.perf_counter()
        scores = summarise(evaluate(Ensembled(size), dataset, 2.0))
        print(f"{name} x2 ensemble {size}: {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
