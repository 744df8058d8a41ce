"""Which precision OpenVINO's ``auto`` runs, decided by evidence from the CPU it runs on.

Every precision the CPU plugin offers here (``OPTIMIZATION_CAPABILITIES``: INT8 where the model has an INT8 graph,
BF16) is run once against fp32 with this machine's own kernels: its Y-PSNR change on the calibration images the INT8
recipe uses (the bundled photos and textures, centre crops, at each of the model's scales; the worst scale counts,
limit :data:`MAX_PSNR_DROP`) and its time per 282² window (median of :data:`TIMED` calls). ``auto`` takes
the fastest precision within the limit (fp32 always is). Speed comes from the same measurement, not from a table of
instruction sets: INT8 without VNNI (AVX2) was measured 1.64x faster than fp32 here, which a table had ruled out.

The verdicts are cached as JSON under ``$DRCN_CACHE/precision-checks``, sealed, keyed by both graphs' checksums, the
OpenVINO version, the CPU's model and flags and this check's own version, so the check runs once per model and CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from drcn import __version__, atomic, cache
from drcn.cache import cache_dir
from drcn.checksums import file_sha256
from drcn.cpu import cpu_flags, cpu_name
from drcn.errors import DrcnError, backend_reason

MAX_PSNR_DROP = 0.05      # dB at the worst scale: the INT8 recipe's limit
CHECK_VERSION = 1         # bumped when what is measured changes; part of the cache key
# Centre crops of 168² (2, 3 and 4 divide it; every bundled image has both sides >= 171): one input shape, so each
# precision compiles once. Measured unloaded on this 2-core EPYC: 35 s for the whole check with 192² crops (9 shapes),
# to stay within the 30 s a first run may spend on it.
MAX_SIDE = 168
WINDOW = 282              # the shipped model's window at --tile 256
TIMED = 3


@dataclasses.dataclass(frozen=True)
class Verdict:
    precision: str
    change_db: dict[str, float]       # scale ("x2") -> Y-PSNR change against fp32 on this CPU (negative: a loss)
    ms_per_window: float
    error: str = ""                   # why the plugin could not run it here (then it is never chosen)

    @property
    def worst(self) -> float:
        return min(self.change_db.values(), default=0.0)

    @property
    def ok(self) -> bool:
        return not self.error and self.worst >= -MAX_PSNR_DROP

    def describe(self, fp32_ms: float) -> str:
        return (f"checked on this CPU: {self.worst:+.3f} dB at the worst scale, {fp32_ms / self.ms_per_window:.2f}x "
                "fp32's speed")


# oneDNN instruction-set caps (ONEDNN_MAX_CPU_ISA) below which its kernels have no bf16: OpenVINO's CPU plugin still
# reports BF16 under such a cap, and then cannot compile bf16 (measured with AVX2: "object is not initialized").
NO_BF16_ISAS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


def cpu_capabilities(core=None) -> list[str]:
    """What OpenVINO's CPU plugin can run here (``OPTIMIZATION_CAPABILITIES``), without BF16 where
    ``ONEDNN_MAX_CPU_ISA`` caps the kernels below it (as on a CPU without bf16)."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    found = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() in NO_BF16_ISAS:
        found = [c for c in found if c not in ("BF16", "FP16")]
    return found


def offered(capabilities: list[str], has_int8_graph: bool) -> list[str]:
    """The precisions OpenVINO's CPU plugin offers for this model here, besides fp32."""
    return [p for p, cap, needs in (("int8", "INT8", has_int8_graph), ("bf16", "BF16", True))
            if cap in capabilities and needs]


def _verdict_path(fp32_graph: str, int8_graph: str | None) -> Path:
    """Where the verdicts on this pair of graphs, measured with this OpenVINO on this CPU, are cached."""
    import openvino as ov

    # ONEDNN_MAX_CPU_ISA caps the kernels OpenVINO's CPU plugin uses (e.g. AVX2 on an AVX-512 machine, measured: its
    # INT8 convolutions become jit_avx2_I8): a verdict is only good for the kernels it was measured with.
    parts = [file_sha256(fp32_graph), file_sha256(int8_graph) if int8_graph else "-", ov.__version__, cpu_name(),
             " ".join(sorted(cpu_flags())), os.environ.get("ONEDNN_MAX_CPU_ISA", ""), str(CHECK_VERSION),
             str(MAX_PSNR_DROP), __version__]
    return cache_dir("precision-checks") / f"{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:24]}.json"


def verdicts(fp32_graph: str, int8_graph: str | None, candidates: list[str],
             log: Callable[[str], None] = lambda _: None) -> dict[str, Verdict]:
    """The verdict on fp32 and on each of ``candidates`` for this model on this CPU: from the cache, or measured
    (seconds; ``log`` says so) and cached."""
    path = _verdict_path(fp32_graph, int8_graph)
    if cache.verified(path, log):
        found = _read(path)
        if found is not None and all(c in found for c in ["fp32", *candidates]):
            return found
    log(f"checking {', '.join(candidates)} against fp32 on this CPU ({cpu_name()}), once for this model")
    start = time.perf_counter()
    measured = measure(fp32_graph, int8_graph, candidates)
    atomic.write_text(path, json.dumps({p: dataclasses.asdict(v) for p, v in measured.items()}, indent=1))
    cache.seal(path)
    log(f"checked in {time.perf_counter() - start:.0f} s: " + "; ".join(
        f"{p} {v.worst:+.3f} dB, {v.ms_per_window:.0f} ms/window" for p, v in measured.items()))
    return measured


def _read(path: Path) -> dict[str, Verdict] | None:
    from drcn import bounded_json

    try:
        data = bounded_json.loads(path.read_bytes(), str(path), 100_000)
        return {p: Verdict(v["precision"], {k: float(x) for k, x in v["change_db"].items()}, float(v["ms_per_window"]),
                           str(v.get("error", ""))) for p, v in data.items()}
    except (DrcnError, KeyError, TypeError, ValueError, AttributeError):
        return None


def cached(fp32_graph: str, int8_graph: str | None) -> dict[str, Verdict] | None:
    """The verdicts already measured for this model on this CPU, or None (nothing is measured)."""
    path = _verdict_path(fp32_graph, int8_graph)
    return _read(path) if cache.verified(path, lambda _: None) else None


def _network(graph: str):
    """The Y network of ``graph`` (a Y graph, or the network inside a whole-frame graph) as a ModelProto."""
    from drcn.onnx_files import load_onnx
    from drcn.onnx_meta import model_info

    model = load_onnx(graph)
    if model_info(model, graph).kind == "y":
        return model
    from drcn.runtime.frame_graph import network_part

    return network_part(model)


def _runner(model, hint: str) -> Callable[[np.ndarray], np.ndarray]:
    """(N, 1, H, W) float32 -> the network's output, compiled per shape with OpenVINO's CPU plugin at ``hint``."""
    import openvino as ov

    core = ov.Core()
    base = core.read_model(model.SerializeToString(), b"")
    requests = {}

    def run(x: np.ndarray) -> np.ndarray:
        if x.shape not in requests:
            shaped = base.clone()
            shaped.reshape({shaped.inputs[0].get_any_name(): list(x.shape)})
            requests.clear()   # one shape at a time: calibration pairs come grouped by shape
            requests[x.shape] = core.compile_model(shaped, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                                   "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()
        request = requests[x.shape]
        request.infer({0: np.ascontiguousarray(x, np.float32)})
        return np.array(request.get_output_tensor(0).data, copy=True)

    return run


def measure(fp32_graph: str, int8_graph: str | None, candidates: list[str],
            capabilities: list[str] | None = None) -> dict[str, Verdict]:
    """Run fp32 and every candidate on the calibration images and on a window, here. ``capabilities`` (default:
    :func:`cpu_capabilities`) decide how an INT8 graph's float parts run, as the backend decides it."""
    import openvino as ov

    from drcn.calibration import calibration_pairs
    from drcn.fp16 import psnr_by_scale
    from drcn.onnx_meta import read_onnx_info

    if capabilities is None:
        capabilities = cpu_capabilities(ov.Core())
    info = read_onnx_info(fp32_graph)
    pairs = sorted(calibration_pairs(None, info.config.scales, max_side=MAX_SIDE), key=lambda p: p[1].shape)
    networks = {"fp32": (_network(fp32_graph), "f32")}
    for precision in candidates:
        if precision == "int8":
            if int8_graph is None:
                raise DrcnError("the INT8 precision check needs the model's INT8 graph")
            # The INT8 graph's float parts run as the backend runs them: bf16 where the CPU has it.
            networks["int8"] = (_network(int8_graph), "bf16" if "BF16" in capabilities else "f32")
        elif precision == "bf16":
            networks["bf16"] = (networks["fp32"][0], "bf16")
        else:
            raise DrcnError(f"no precision check for {precision}")
    window = np.random.default_rng(0).random((1, 1, WINDOW, WINDOW), np.float32)
    scores, times, errors = {}, {}, {}
    for precision, (model, hint) in networks.items():
        run = _runner(model, hint)
        try:
            scores[precision] = psnr_by_scale(run, pairs)
            run(window)
        except RuntimeError as exc:   # offered, yet the plugin cannot compile it here: recorded, never chosen
            if precision == "fp32":
                raise DrcnError(f"{fp32_graph}: OpenVINO cannot run it in fp32 here: {backend_reason(exc)}") from None
            errors[precision] = backend_reason(exc)
            continue
        timed = []
        for _ in range(TIMED):
            start = time.perf_counter()
            run(window)
            timed.append(time.perf_counter() - start)
        times[precision] = 1000 * float(np.median(timed)) / len(window)
    reference = scores["fp32"]
    return {p: Verdict(p, {f"x{s:g}": round(scores[p][s] - reference[s], 4) for s in reference}, times[p])
            if p not in errors else Verdict(p, {}, float("inf"), errors[p]) for p in networks}


def choose(verdicts_by_precision: dict[str, Verdict]) -> tuple[str, str]:
    """(precision, why) for ``auto``: the fastest precision whose check passed; the reasons others were not taken."""
    fp32 = verdicts_by_precision["fp32"]
    passing = [v for v in verdicts_by_precision.values() if v.ok]
    best = min(passing, key=lambda v: v.ms_per_window)
    why = f"auto: {best.describe(fp32.ms_per_window)}" if best.precision != "fp32" else \
        "auto: fp32, the fastest precision within the limit on this CPU"
    refused = [v for v in verdicts_by_precision.values() if not v.ok]
    if refused:
        why += "; " + "; ".join(f"{v.precision} refused: " + (f"OpenVINO cannot run it here ({v.error})" if v.error
                                else f"{v.worst:+.3f} dB on this CPU's kernels (limit -{MAX_PSNR_DROP} dB)")
                                for v in refused)
    return best.precision, why
