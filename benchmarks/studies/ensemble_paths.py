"""The self-ensemble's quality three ways: Set5 x2 with every flip and rotation (ensemble 8), OpenVINO fp32, through
drcn-run's host path, its device path, and an exported `drcn-export --rgb --ensemble 8` graph. LR = MATLAB imresize of
the mod-cropped RGB image (as drcn-bench framegraph makes it), Y-PSNR against the HR Y, 2 pixels shaved. Run:
    python benchmarks/studies/ensemble_paths.py ../shared/datasets > benchmarks/results/cpu/ensemble_paths.txt
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import drcn
from drcn import matlab, metrics
from drcn.images import list_images, read_image
from drcn.runtime.backends.select import shipped_onnx_path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
images = [matlab.modcrop(read_image(p), 2) for p in list_images(root / "Set5")]
with tempfile.TemporaryDirectory() as tmp:
    exported = Path(tmp) / "drcn_x2_rgb_e8.onnx"
    subprocess.run([sys.executable, "-m", "drcn.export.cli", "--onnx", str(exported), "--rgb", "--ensemble", "8"],
                   check=True, stdout=subprocess.DEVNULL)
    ways = {"drcn-run host path, --ensemble 8": dict(model=str(shipped_onnx_path()), path="host", ensemble=8),
            "drcn-run device path, --ensemble 8": dict(model=str(shipped_onnx_path()), path="device", ensemble=8),
            "exported --rgb --ensemble 8 graph": dict(model=str(exported))}
    outputs = {}
    for name, options in ways.items():
        with drcn.Upscaler(scale=2, backend="openvino", precision="fp32", tile=256, **options) as upscaler:
            outputs[name] = [upscaler.upscale(matlab.imresize(hr, 0.5)) for hr in images]
        psnr = np.mean([metrics.psnr(matlab.luma(hr), matlab.luma(sr), 2) for hr, sr in zip(images, outputs[name])])
        print(f"Set5 x2, {name}: Y-PSNR {psnr:.3f} dB", flush=True)
    first = next(iter(outputs.values()))
    for name, result in list(outputs.items())[1:]:
        diff = np.concatenate([np.abs(a.astype(int) - b.astype(int)).ravel() for a, b in zip(first, result)])
        print(f"  {name} vs the host path: {100 * (diff > 0).mean():.4f}% of values differ, max {diff.max()}")
