"""The exported whole-frame RGB graphs on other runtimes at THEIR defaults, per pixel, against
ONNX Runtime (fp32) on Set5 (LR made with MATLAB bicubic from the HR image): plain OpenVINO (`compile_model(path,
"CPU")`: bf16 on a CPU with AVX-512 BF16 or AMX), OpenVINO with INFERENCE_PRECISION_HINT=f32, an IR saved as `ovc`
saves it by default (weights compressed to fp16) compiled at its default, and the Y graph alone at OpenVINO's
default. Run from the repository root:
    python benchmarks/studies/runtime_defaults.py ../shared/datasets > benchmarks/results/cpu/runtime_defaults.txt
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov

from drcn import matlab
from drcn.deviation import MAX_LEVELS, MAX_SHARE_OVER, OFF_LEVELS, Deviation
from drcn.evaluation import folder_dataset
from drcn.runtime.backends.select import shipped_onnx_path
from drcn.runtime.frame_graph import write_frame_graph

data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
core = ov.Core()
print(f"# python benchmarks/studies/runtime_defaults.py {data}  (OpenVINO {ov.__version__}, ONNX Runtime "
      f"{ort.__version__}; CPU plugin capabilities {core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')})")
print(f"# bound: at most {100 * MAX_SHARE_OVER:g}% of 8-bit values more than {OFF_LEVELS} levels off, none more "
      f"than {MAX_LEVELS}")
images = [load() for _, load in folder_dataset(data / "Set5").images]
with tempfile.TemporaryDirectory() as tmp:
    for scale in (2, 3):
        graph = Path(tmp) / f"rgb_x{scale}.onnx"
        write_frame_graph(shipped_onnx_path(), graph, "rgb", scale)
        ir = Path(tmp) / f"rgb_x{scale}.xml"
        ov.save_model(ov.convert_model(str(graph)), str(ir))        # what `ovc` writes by default
        reference = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        runs = {"OpenVINO default": core.compile_model(str(graph), "CPU"),
                "OpenVINO INFERENCE_PRECISION_HINT=f32": core.compile_model(str(graph), "CPU",
                                                                            {"INFERENCE_PRECISION_HINT": "f32"}),
                "ovc IR (fp16 weights) at default": core.compile_model(str(ir), "CPU")}
        found = {name: Deviation() for name in runs}
        for hr in images:
            hr = matlab.modcrop(hr, scale)
            lr = matlab.imresize(hr, 1 / scale)
            x = (lr.astype(np.float32) / 255).transpose(2, 0, 1)[None]
            expected = matlab.quantize(reference.run(None, {"input": x})[0][0].transpose(1, 2, 0))
            for name, compiled in runs.items():
                found[name].add(expected, matlab.quantize(compiled(x)[0][0].transpose(1, 2, 0)))
        for name, deviation in found.items():
            verdict = deviation.breach() or "within the bound"
            print(f"RGB x{scale}, {name}: {deviation.describe()} ({verdict})")
