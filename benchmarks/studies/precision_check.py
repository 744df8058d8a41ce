"""auto's on-CPU evidence for the shipped model (runtime/backends/precision_check.py), measured afresh: every
precision OpenVINO offers here against fp32 on the INT8 recipe's calibration images (Y-PSNR change per scale) and
its time per 282² window. Run from the project root, on this CPU's own kernels and with them capped at AVX2 (what an
AVX2-only CPU runs):
    python benchmarks/studies/precision_check.py > benchmarks/results/cpu/precision_check.txt
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/studies/precision_check.py >> benchmarks/results/cpu/precision_check.txt
"""

import os
import time

import openvino as ov

from drcn.cpu import describe
from drcn.runtime.backends import precision_check
from drcn.runtime.backends.select import shipped_onnx_path

fp32 = shipped_onnx_path()
int8 = fp32.with_name(f"{fp32.stem}_int8.onnx")
capabilities = precision_check.cpu_capabilities()     # without BF16 under ONEDNN_MAX_CPU_ISA=AVX2, as on such a CPU
candidates = precision_check.offered(capabilities, int8.is_file())
start = time.perf_counter()
verdicts = precision_check.measure(str(fp32), str(int8), candidates, capabilities)
print(f"{describe()}, OpenVINO {ov.__version__.split('-')[0]}, kernels capped at "
      f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '(none)')}; capabilities {', '.join(capabilities)}; "
      f"{time.perf_counter() - start:.0f} s")
for precision, v in verdicts.items():
    changes = ", ".join(f"{scale} {change:+.4f}" for scale, change in v.change_db.items())
    print(f"  {precision:5s} {changes} dB; {v.ms_per_window:.0f} ms per 282² window "
          f"({verdicts['fp32'].ms_per_window / v.ms_per_window:.2f}x fp32)")
print(f"  auto: {precision_check.choose(verdicts)}")
