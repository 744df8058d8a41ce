"""Does a fine-tuned INT8 graph (drcn-qat) beat the shipped one where the choice is made, on calibration images?
Both graphs measured in one run with this CPU's OpenVINO kernels (Y-PSNR change against the fp32 graph, per scale):

  check: the runtime's on-CPU check (runtime/backends/precision_check.py: bundled photos and textures, 168² crops;
         INT8 float parts in bf16 where the CPU has it), as auto decides;
  study: with --calib, the INT8 export's study images (those folders, 80 images, crops up to 384², float parts f32).

Run from the project root; with ONEDNN_MAX_CPU_ISA=AVX2 for the AVX2 kernels:
    python benchmarks/studies/int8_qat.py runs/qat/drcn_f64_d9_int8.onnx --calib ../shared/datasets/T91 \
        ../shared/datasets/BSD200
The test sets only confirm (drcn-bench quality, see int8_qat.sh).
"""

import argparse
import os
import time

import openvino as ov

from drcn.cpu import describe
from drcn.fp16 import change_by_scale, psnr_by_scale
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import read_onnx_info
from drcn.runtime.backends import precision_check
from drcn.runtime.backends.select import shipped_onnx_path

parser = argparse.ArgumentParser()
parser.add_argument("candidate", help="the fine-tuned INT8 graph")
parser.add_argument("--calib", nargs="+", help="also score on the INT8 export's study images from these folders")
args = parser.parse_args()

fp32 = shipped_onnx_path()
graphs = {"shipped": str(fp32.with_name(f"{fp32.stem}_int8.onnx")), "fine-tuned": args.candidate}
capabilities = precision_check.cpu_capabilities()     # without BF16 under ONEDNN_MAX_CPU_ISA=AVX2, as on such a CPU
print(f"{describe()}, OpenVINO {ov.__version__.split('-')[0]}, kernels capped at "
      f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '(none)')}")


def line(label: str, change: dict, extra: str = "") -> None:
    worst = min(change.values())
    print(f"  {label:11s} " + ", ".join(f"{k} {v:+.4f}" for k, v in change.items()) + f" dB; worst {worst:+.4f}"
          + extra)


start = time.perf_counter()
print("check (bundled photos and textures, 168², float parts "
      f"{'bf16' if 'BF16' in capabilities else 'f32'}):")
for name, path in graphs.items():
    v = precision_check.measure(str(fp32), path, ["int8"], capabilities)
    line(name, v["int8"].change_db, f"; {v['fp32'].ms_per_window / v['int8'].ms_per_window:.2f}x fp32's speed")
print(f"  ({time.perf_counter() - start:.0f} s)")

if args.calib:
    from drcn.export.int8 import MAX_IMAGES, MAX_SIDE, runner, study_pairs

    start = time.perf_counter()
    pairs = study_pairs(args.calib, read_onnx_info(fp32).config.scales)
    reference = psnr_by_scale(runner(load_onnx(fp32), "fp32"), pairs)
    print(f"study ({', '.join(os.path.basename(c.rstrip('/')) for c in args.calib)}, {MAX_IMAGES} images up to "
          f"{MAX_SIDE}², float parts f32):")
    for name, path in graphs.items():
        scores = psnr_by_scale(runner(load_onnx(path), "fp32"), pairs)
        line(name, change_by_scale(scores, reference))
    print(f"  ({time.perf_counter() - start:.0f} s)")
