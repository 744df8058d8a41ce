"""``drcn-trt build``: an ONNX graph from ``drcn-export`` -> a serialized TensorRT engine plus its sidecar.

Uses only TensorRT's documented Python API: ``OnnxParser``, an optimisation profile for the tile shapes that
``drcn-run`` will feed, ``build_serialized_network``; a timing cache on standard TensorRT, compute-capability
targets on TensorRT-RTX (see :mod:`drcn.runtime.tensorrt.flavour` for every difference). ``--fp16`` on an FP32
graph: the FP16 builder flag on TensorRT 10, a checked FP16 conversion on strongly typed builders.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from drcn import __version__, atomic
from drcn.checksums import bytes_sha256, file_sha256
from drcn.errors import DrcnError
from drcn.frame import input_tile
from drcn.onnx_meta import int8_scales, read_onnx_info
from drcn.runtime.tensorrt.cuda import visible_gpu
from drcn.runtime.tensorrt.sidecar import EngineSidecar, GpuInfo, plan_profile, sidecar_path
from drcn.runtime.tensorrt.flavour import (RTX_COMPUTE_CAPABILITIES, RTX_DEFAULT_TARGETS, Flavour, choose_flavour,
                                           import_flavour, installed_flavours, make_logger, plan_precision)


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    onnx: Path
    engine: Path
    fp16: bool = False
    tile: int = 256
    batch: int = 4
    max_size: tuple[int, int] | None = None   # (H, W) for --tile 0
    flavour: str = "auto"                     # auto | standard | rtx
    compute_capabilities: tuple[str, ...] = ()   # rtx targets; () = the library's default
    workspace_gib: float = 4.0
    timing_cache: Path | None = None
    calib: tuple[str, ...] | None = None      # calibration folders for the FP16 conversion check
    verbose: bool = False


def default_timing_cache(engine: Path) -> Path:
    return engine.with_name(engine.name + ".timing-cache")


def resolve_flavour(requested: str, gpu: GpuInfo | None) -> Flavour:
    return choose_flavour(requested, installed_flavours(), gpu.compute_capability if gpu else None)


def build_engine(request: BuildRequest, log: Callable[[str], None] = lambda _: None) -> EngineSidecar:
    """Build, check and write ``request.engine`` and its sidecar as one artefact: a failure (a full disk
    included) leaves what was there before untouched, and nothing new."""
    atomic.check_destination(request.engine, "--engine")
    gpu = visible_gpu()
    flavour = resolve_flavour(request.flavour, gpu)
    trt = import_flavour(flavour)
    if gpu is None and not flavour.builds_without_gpu:
        raise DrcnError("standard TensorRT builds on the GPU it targets and none is usable here; build on the "
                        "GPU machine, or use TensorRT for RTX (--flavour rtx) for a GPU-free build")
    if request.compute_capabilities and not flavour.targets:
        raise DrcnError(f"--compute-capability: the {flavour.name} flavour builds for the GPU it runs on; "
                        "targets need TensorRT for RTX (--flavour rtx)")
    info = read_onnx_info(request.onnx)
    plan = plan_precision(flavour, trt.__version__, request.fp16, info.precision, str(request.onnx))
    scale = info.scale or 1
    profile_plan = plan_profile(input_tile(request.tile, scale), request.batch, info.input_halo, info.channels,
                                request.max_size)

    if plan.convert_fp16:
        from drcn.runtime.tensorrt.fp16 import convert_to_fp16

        log(f"converting {request.onnx} to FP16 (ONNX Runtime's float16 converter) and checking it")
        converted = convert_to_fp16(request.onnx, info, list(request.calib) if request.calib else None)
        log(converted.report.summary())
        graph, fp16_source = converted.model_bytes, "converted"
    else:
        graph = request.onnx.read_bytes()
        fp16_source = None if plan.precision == "fp32" else ("builder-flag" if plan.fp16_flag else "graph")

    logger = make_logger(trt, request.verbose)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # With the model's own path, external data resolves beside the model (read_onnx_info has confined it there);
    # without it, TensorRT would resolve locations against the working directory.
    if not parser.parse(graph, str(request.onnx.absolute())):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DrcnError(f"{request.onnx}: TensorRT's ONNX parser failed: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(request.workspace_gib * (1 << 30)))
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, profile_plan.min, profile_plan.opt, profile_plan.max)
    config.add_optimization_profile(profile)

    targets: tuple[str, ...] = ()
    if flavour.targets:
        targets = request.compute_capabilities or RTX_DEFAULT_TARGETS
        if request.compute_capabilities:
            config.num_compute_capabilities = len(targets)
            for index, cc in enumerate(targets):
                config.set_compute_capability(getattr(trt.ComputeCapability, RTX_COMPUTE_CAPABILITIES[cc]), index)
    cache_path = None
    if flavour.timing_cache:
        cache_path = request.timing_cache or default_timing_cache(request.engine)
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    log(f"building with {flavour.label} {trt.__version__}, {plan.precision}, profile "
        f"{profile_plan.min}..{profile_plan.max}" + (f", for compute {', '.join(targets)}" if targets else ""))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DrcnError(f"TensorRT could not build an engine from {request.onnx} (run with --verbose for its log)")
    engine_bytes = bytes(serialized)
    served = tuple(float(x) for x in int8_scales(request.onnx) or ()) if info.precision == "int8" else ()
    if served:   # an INT8 graph's activation ranges were chosen for these scales (drcn-export --int8, per scale)
        log(f"{request.onnx} is the INT8 graph for x{', x'.join(f'{x:g}' for x in served)}: the engine serves "
            "those scales (another scale's engine: build it from that scale's INT8 graph, <model>_int8_x<s>.onnx)")
    sidecar = EngineSidecar(
        engine_sha256=bytes_sha256(engine_bytes), onnx_file=str(request.onnx), onnx_sha256=file_sha256(request.onnx),
        precision=plan.precision, profile=profile_plan, tile=request.tile, batch=request.batch, halo=info.input_halo,
        channels=info.channels, scales=served or info.config.scales, tensorrt_version=trt.__version__, gpu=gpu,
        drcn_version=__version__, flavour=flavour.name, targets=targets, fp16_source=fp16_source, kind=info.kind,
        scale=scale, self_ensemble=info.self_ensemble)
    # Both complete before either is renamed; the engine first, the sidecar that vouches for it last. Between the two
    # renames the old sidecar's checksum does not match the new engine, so that instant is refused, never run.
    with atomic.atomic_outputs(request.engine, sidecar_path(request.engine)) as (engine_tmp, sidecar_tmp):
        engine_tmp.write_bytes(engine_bytes)
        sidecar_tmp.write_text(sidecar.to_json())
    if cache_path is not None:
        atomic.write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return sidecar

