"""What fp16 storage and fp16 arithmetic do to the shipped model's whole-frame graphs, on Set5 + Set14 (LR made as
the paper does; 8-bit output values compared with the fp32 graph's). Run from the project root:
    python benchmarks/studies/fp16_storage.py ../shared/datasets > benchmarks/results/cpu/fp16_storage.txt

- stored (ORT): every float32 initializer and Constant rounded to fp16, run in ONNX Runtime (float32 arithmetic);
- ovc: OpenVINO's converter with its default compress_to_fp16=True, run by OpenVINO's CPU plugin in f32, against
  the same conversion uncompressed;
- fp16 arithmetic: onnxruntime's float16 converter (keep_io_types, as vs-mlrt's fp16=True lowers a graph), run in
  ONNX Runtime on the CPU.
Each for the exported graph (weights on the fp16 grid, the default) and with --no-fp16-grid."""

import sys
import tempfile
from pathlib import Path

import onnx
import openvino as ov
from onnxruntime.transformers.float16 import convert_float_to_float16

from drcn import frame, matlab
from drcn.evaluation import folder_dataset
from drcn.export.frame_export import Agreement, export_frame_graph, stored_in_fp16
from drcn.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from drcn.runtime.backends.select import shipped_onnx_path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
images = [load() for name in ("Set5", "Set14") for _, load in folder_dataset(root / name).images]


def agreement(run_a, run_b, kind: str, scale: int) -> Agreement:
    result = Agreement()
    for image in images:
        image = matlab.luma(image) if kind == "gray" and image.ndim == 3 else image
        if kind == "rgb" and image.ndim == 2:
            continue
        x = frame.to_input(matlab.imresize(matlab.modcrop(image, scale), 1.0 / scale))
        result.add(frame.from_output(run_a(x)), frame.from_output(run_b(x)))
    return result


def line(label: str, a: Agreement) -> str:
    return f"  {label:<34} {100 * a.fraction:8.4f}% of {a.total:,} values differ, max {a.worst} level(s)"


core = ov.Core()
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    for kind, scale in (("rgb", 2), ("rgb", 3), ("gray", 2)):
        for grid in (True, False):
            graph = tmp / f"{kind}{scale}{grid}.onnx"
            made = export_frame_graph(shipped_onnx_path(), graph, kind, scale, fp16_grid=grid)
            name = "weights on the fp16 grid (default)" if grid else "--no-fp16-grid"
            print(f"{kind} x{scale}, {name}" + (f": calibration Y-PSNR {made.grid_psnr[0]:.4f} -> "
                                                 f"{made.grid_psnr[1]:.4f} dB" if made.grid_psnr else ""), flush=True)
            fp32 = OnnxRuntimeBackend(str(graph))
            stored_in_fp16(graph, tmp / "stored.onnx")
            print(line("stored in fp16 (ORT)", agreement(fp32.run, OnnxRuntimeBackend(str(tmp / "stored.onnx")).run,
                                                          kind, scale)), flush=True)
            compiled = {}
            for compress in (False, True):
                ov.save_model(ov.convert_model(str(graph)), str(tmp / f"m{compress}.xml"), compress_to_fp16=compress)
                compiled[compress] = core.compile_model(core.read_model(str(tmp / f"m{compress}.xml")), "CPU",
                                                        {"INFERENCE_PRECISION_HINT": "f32"})
            print(line("ovc (compress_to_fp16) vs ovc fp32", agreement(lambda x: compiled[False](x)[0],
                                                                      lambda x: compiled[True](x)[0], kind, scale)),
                  flush=True)
            half = convert_float_to_float16(onnx.load(str(graph)), keep_io_types=True)
            onnx.save(half, str(tmp / "half.onnx"))
            print(line("fp16 arithmetic (ORT CPU)", agreement(fp32.run, OnnxRuntimeBackend(str(tmp / "half.onnx")).run,
                                                               kind, scale)), flush=True)
