"""TensorRT backend (standard or RTX flavour): a deserialized engine run with ``execute_async_v3`` on a stream.

Tensors are bound by name (``set_tensor_address``), the input shape is set per batch (``set_input_shape``),
device buffers are allocated once for the profile's largest shape, host buffers are page-locked so the copies
are truly asynchronous. The engine's sidecar is checked first (flavour, version, GPU or RTX targets, checksums),
then, on TensorRT-RTX, the engine header (``get_engine_validity``): a stale engine is refused with the command
that rebuilds it. Given an ONNX file instead of an engine, the engine is built into the cache (and reused).
TensorRT-RTX's JIT kernels are kept in a runtime cache beside the engine, keyed so a stale one is never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from drcn import atomic, cache
from drcn.checksums import bytes_sha256, file_sha256
from drcn.errors import DrcnError
from drcn.onnx_meta import int8_scale_of
from drcn.runtime.backends.table import ModelSpec
from drcn.runtime.tensorrt.cuda import open_cuda_memory, query_gpu
from drcn.runtime.tensorrt.sidecar import EngineSidecar, GpuInfo, check_engine, read_sidecar
from drcn.runtime.tensorrt.flavour import FLAVOURS, import_flavour, make_logger


def runtime_cache_path(engine: Path, sidecar: EngineSidecar, version: str, gpu: GpuInfo) -> Path:
    """Where the JIT kernels of ``engine`` on this GPU and TensorRT-RTX version are kept."""
    key = bytes_sha256(f"{sidecar.engine_sha256}|{version}|{gpu.name}|{gpu.compute_capability}".encode())
    return engine.with_name(f"{engine.name}.{key[:12]}.rtxcache")


def engine_for(model_path: Path, precision: str, tile: int, batch: int, flavour: str,
               log: Callable[[str], None]) -> Path:
    """``model_path`` itself for an engine; for an ONNX file, the cached engine built from it."""
    if model_path.suffix.lower() != ".onnx":
        return model_path
    if not tile:
        raise DrcnError(f"--tile 0 (whole frames) on TensorRT needs an engine built for the largest frame: drcn-trt "
                        f"build --onnx {model_path} --tile 0 --max-size HxW, then --engine")
    if precision not in ("auto", "fp16", "fp32"):
        raise DrcnError(f"--precision {precision}: TensorRT engines are fp16 (auto) or fp32")
    from drcn.runtime.tensorrt.cache import cached_engine

    return cached_engine(model_path, "fp32" if precision == "fp32" else "fp16", tile, batch, flavour=flavour, log=log)


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model_path: str, precision: str = "auto", tile: int = 256, batch: int = 4,
                 flavour: str = "auto", log: Callable[[str], None] = lambda _: None, for_scale: float | None = None,
                 **_):
        self.memory = self.runtime_cache = None
        self.runs_on_gpu = True
        engine_path = engine_for(Path(model_path), precision, tile, batch, flavour, log)
        sidecar = read_sidecar(engine_path)  # plain Python: says what the engine is even where TensorRT is absent
        self.flavour = FLAVOURS[sidecar.flavour]
        trt = import_flavour(self.flavour)
        gpu = query_gpu()
        onnx_file = Path(sidecar.onnx_file)
        check_engine(engine_path, sidecar, engine_sha256=file_sha256(engine_path), tensorrt_version=trt.__version__,
                     gpu=gpu, onnx_sha256=file_sha256(onnx_file) if onnx_file.is_file() else None,
                     flavour=self.flavour.name)
        data = engine_path.read_bytes()
        self._runtime = trt.Runtime(make_logger(trt))
        if self.flavour.validity_check:
            validity, diagnostics = self._runtime.get_engine_validity(data)
            if validity == trt.EngineValidity.INVALID:
                raise DrcnError(f"{engine_path}: TensorRT-RTX {trt.__version__} reports this engine invalid on "
                                f"{gpu.name} (diagnostics {diagnostics}); rebuild it: {sidecar.rebuild_command()}")
        self.memory = open_cuda_memory()
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise DrcnError(f"{engine_path}: TensorRT could not deserialize this engine; rebuild it: "
                            f"{sidecar.rebuild_command()}")
        self.engine_name = engine_path.name
        if self.flavour.runtime_cache:
            self.runtime_cache_file = runtime_cache_path(engine_path, sidecar, trt.__version__, gpu)
            runtime_config = self.engine.create_runtime_config()
            self.runtime_cache = runtime_config.create_runtime_cache()
            if cache.verified(self.runtime_cache_file, log):   # JIT kernels: a damaged file is compiled again
                self.runtime_cache.deserialize(self.runtime_cache_file.read_bytes())
            runtime_config.set_runtime_cache(self.runtime_cache)
            self.context = self.engine.create_execution_context(runtime_config)
        else:
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise DrcnError(f"{engine_path}: expected one input and one output tensor, found {names}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.profile = sidecar.profile
        largest = int(np.prod(self.profile.max))
        self.scale = sidecar.scale
        largest_out = largest * self.scale * self.scale   # a frame graph's output is scale² times its input
        # float32 I/O, also for FP16 engines (the graph casts inside)
        self.d_input, self.d_output = self.memory.device_alloc(largest * 4), self.memory.device_alloc(largest_out * 4)
        self.h_input = self.memory.host_alloc((largest,), np.float32)
        self.h_output = self.memory.host_alloc((largest_out,), np.float32)
        self.context.set_tensor_address(self.input_name, self.d_input)
        self.context.set_tensor_address(self.output_name, self.d_output)
        self.spec = ModelSpec(halo=sidecar.halo, channels=sidecar.channels, scales=sidecar.scales,
                              precision=sidecar.precision, source=str(engine_path), max_shape=self.profile.max,
                              kind=sidecar.kind, scale=sidecar.scale)
        if for_scale and sidecar.precision == "int8" and sidecar.kind == "y" and \
                float(int8_scale_of(for_scale)) not in sidecar.scales:
            log(f"{engine_path} was built from the INT8 graph for x{', x'.join(f'{x:g}' for x in sidecar.scales)}, "
                f"not x{for_scale:g}: its activation ranges may clip there (drcn-trt build --onnx "
                f"<model>_int8_x{int8_scale_of(for_scale)}.onnx makes the engine for x{int8_scale_of(for_scale)})")
        self.description = (f"{self.flavour.label} {trt.__version__} on {gpu.name}, {sidecar.precision} "
                            f"engine ({engine_path}; memory via {self.memory.name})")

    def run(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(batch.shape)
        if not self.profile.accepts(shape):
            raise DrcnError(f"input {shape} is outside the engine's profile {self.profile.min}..{self.profile.max}:"
                            " rebuild with drcn-trt build --tile/--batch (or --max-size) matching drcn-run")
        count = batch.size
        np.copyto(self.h_input[:count], batch.reshape(-1))
        self.memory.htod_async(self.d_input, self.h_input, count * 4)
        if not self.context.set_input_shape(self.input_name, shape):
            raise DrcnError(f"TensorRT rejected the input shape {shape}")
        if not self.context.execute_async_v3(self.memory.stream_handle):
            raise DrcnError("TensorRT execution failed (execute_async_v3 returned False)")
        out_shape = (shape[0], shape[1], shape[2] * self.scale, shape[3] * self.scale)
        out_count = count * self.scale * self.scale
        self.memory.dtoh_async(self.h_output, self.d_output, out_count * 4)
        self.memory.synchronize()
        return self.h_output[:out_count].reshape(out_shape).copy()

    def close(self) -> None:
        if self.runtime_cache is not None:
            # Keep the JIT-compiled kernels for the next run; older keys for this engine are stale.
            for stale in self.runtime_cache_file.parent.glob(f"{self.engine_name}.*.rtxcache"):
                if stale != self.runtime_cache_file:
                    stale.unlink(missing_ok=True)
                    cache.seal_path(stale).unlink(missing_ok=True)
            atomic.write_bytes(self.runtime_cache_file, bytes(self.runtime_cache.serialize()))
            cache.seal(self.runtime_cache_file)
            self.runtime_cache = None
        self.context = None
        self.engine = None
        if self.memory is not None:
            self.memory.close()
            self.memory = None
