"""Peak working memory per output pixel of drcn-run's two paths, measured with tracemalloc (numpy's allocations are
traced; the backend's own buffers are not), on the shipped model with ONNX Runtime: what drcn.limits'
BYTES_PER_OUTPUT_PIXEL is taken from. Run: python benchmarks/studies/host_memory.py"""

import tracemalloc

import numpy as np

from drcn.runtime.api import Upscaler

image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
for path in ("host", "device"):
    for scale in (2, 4):
        with Upscaler(backend="onnxruntime", scale=scale, path=path, tile=128) as upscaler:
            upscaler.upscale(image[:40, :40])          # backend opened and warm: its setup is not counted
            tracemalloc.start()
            out = upscaler.upscale(image)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        print(f"{path} path x{scale}: peak {peak / 1e6:.1f} MB, {peak / (out.shape[0] * out.shape[1]):.1f} bytes per "
              "output pixel")
