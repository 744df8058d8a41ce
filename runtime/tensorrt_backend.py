"""TensorRT backend: a deserialized engine run with ``execute_async_v3`` on a CUDA stream.

Tensors are bound by name (``set_tensor_address``), the input shape is set per batch (``set_input_shape``),
device buffers are allocated once for the profile's largest shape, host buffers are page-locked so the copies
are truly asynchronous. The engine's sidecar is checked first: a stale engine is refused with a rebuild hint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drcn.errors import DrcnError
from drcn.runtime.backend import ModelSpec
from drcn.runtime.cuda_memory import open_cuda_memory, query_gpu
from drcn.runtime.engine_sidecar import check_engine, read_sidecar
from drcn.runtime.tensorrt_common import import_tensorrt, make_logger
from drcn.checksums import file_sha256


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model_path: str, **_):
        engine_path = Path(model_path)
        sidecar = read_sidecar(engine_path)  # plain Python: says what the engine is even where TensorRT is absent
        trt = import_tensorrt()
        onnx_file = Path(sidecar.onnx_file)
        check_engine(engine_path, sidecar, engine_sha256=file_sha256(engine_path),
                     tensorrt_version=trt.__version__, gpu=query_gpu(),
                     onnx_sha256=file_sha256(onnx_file) if onnx_file.is_file() else None)
        self.memory = open_cuda_memory()
        self._runtime = trt.Runtime(make_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise DrcnError(f"{engine_path}: TensorRT could not deserialize this engine; rebuild it")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise DrcnError(f"{engine_path}: expected one input and one output tensor, found {names}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.profile = sidecar.profile
        largest = int(np.prod(self.profile.max))
        nbytes = largest * 4  # float32 I/O, also for FP16 engines (the graph casts inside)
        self.d_input, self.d_output = self.memory.device_alloc(nbytes), self.memory.device_alloc(nbytes)
        self.h_input = self.memory.host_alloc((largest,), np.float32)
        self.h_output = self.memory.host_alloc((largest,), np.float32)
        self.context.set_tensor_address(self.input_name, self.d_input)
        self.context.set_tensor_address(self.output_name, self.d_output)
        self.spec = ModelSpec(halo=sidecar.halo, channels=sidecar.channels, scales=sidecar.scales,
                              precision=sidecar.precision, source=str(engine_path), max_shape=self.profile.max)
        self.description = (f"TensorRT {trt.__version__} on {sidecar.gpu.name}, {sidecar.precision} engine "
                            f"({engine_path}; memory via {self.memory.name})")

    def run(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(batch.shape)
        if not self.profile.accepts(shape):
            raise DrcnError(f"input {shape} is outside the engine's profile {self.profile.min}..{self.profile.max}:"
                            " rebuild with drcn-trt build --tile/--batch (or --max-size) matching drcn-run")
        count = batch.size
        nbytes = count * 4
        np.copyto(self.h_input[:count], batch.reshape(-1))
        self.memory.htod_async(self.d_input, self.h_input, nbytes)
        if not self.context.set_input_shape(self.input_name, shape):
            raise DrcnError(f"TensorRT rejected the input shape {shape}")
        if not self.context.execute_async_v3(self.memory.stream_handle):
            raise DrcnError("TensorRT execution failed (execute_async_v3 returned False)")
        self.memory.dtoh_async(self.h_output, self.d_output, nbytes)
        self.memory.synchronize()
        return self.h_output[:count].reshape(shape).copy()

    def close(self) -> None:
        self.context = None
        self.engine = None
        if self.memory is not None:
            self.memory.close()
            self.memory = None
