"""``drcn-trt build``: an ONNX graph from ``drcn-export`` -> a serialized TensorRT engine plus its sidecar.

Uses only TensorRT's documented Python API: ``OnnxParser``, an optimisation profile for the tile shapes that
``drcn-run`` will feed, a persistent timing cache, ``build_serialized_network``. The precision path depends on
the TensorRT version (see :mod:`drcn.runtime.trt_precision`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drcn import __version__, atomic
from drcn.errors import DrcnError
from drcn.onnx_meta import read_onnx_info
from drcn.runtime.cuda_memory import query_gpu
from drcn.runtime.engine_sidecar import EngineSidecar, plan_profile, write_sidecar
from drcn.runtime.tensorrt_common import import_tensorrt, make_logger
from drcn.runtime.trt_precision import plan_precision
from drcn.checksums import file_sha256


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    onnx: Path
    engine: Path
    fp16: bool = False
    tile: int = 256
    batch: int = 4
    max_size: tuple[int, int] | None = None   # (H, W) for --tile 0
    workspace_gib: float = 4.0
    timing_cache: Path | None = None
    verbose: bool = False


def default_timing_cache(engine: Path) -> Path:
    return engine.with_name(engine.name + ".timing-cache")


def build_engine(request: BuildRequest) -> EngineSidecar:
    trt = import_tensorrt()
    gpu = query_gpu()
    info = read_onnx_info(request.onnx)
    plan = plan_precision(trt.__version__, request.fp16, info.precision, str(request.onnx))
    profile_plan = plan_profile(request.tile, request.batch, info.halo, info.config.channels, request.max_size)

    logger = make_logger(trt, request.verbose)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(request.onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DrcnError(f"{request.onnx}: TensorRT's ONNX parser failed: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(request.workspace_gib * (1 << 30)))
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    input_name = network.get_input(0).name
    profile.set_shape(input_name, profile_plan.min, profile_plan.opt, profile_plan.max)
    config.add_optimization_profile(profile)

    cache_path = request.timing_cache or default_timing_cache(request.engine)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DrcnError(f"TensorRT could not build an engine from {request.onnx} (run with --verbose for its log)")
    atomic.write_bytes(request.engine, bytes(serialized))
    atomic.write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))

    sidecar = EngineSidecar(
        engine_sha256=file_sha256(request.engine), onnx_file=str(request.onnx),
        onnx_sha256=file_sha256(request.onnx), precision=plan.precision, profile=profile_plan,
        tile=request.tile, batch=request.batch, halo=info.halo, channels=info.config.channels,
        scales=info.config.scales, tensorrt_version=trt.__version__, gpu=gpu, drcn_version=__version__)
    write_sidecar(request.engine, sidecar)
    return sidecar
