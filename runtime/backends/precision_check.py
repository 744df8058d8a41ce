"""Which precision OpenVINO's ``auto`` runs, decided by evidence from the CPU it runs on.

Every precision the CPU plugin offers here (``OPTIMIZATION_CAPABILITIES``: INT8 where the model has an INT8 graph,
with its float parts in bf16 and, as ``int8/f32``, in f32; BF16) is run once against fp32 with this machine's own
kernels: its Y-PSNR change on the calibration images the INT8 recipe uses (the bundled photos and textures, centre
crops, at each of the model's scales; the worst scale counts, limit :data:`MAX_PSNR_DROP`), the per-pixel deviation
of its 8-bit Y output from fp32's on the same images (:mod:`drcn.deviation`: at most 0.01% of values more than 4
levels off, none more than 12, at every scale) and its time per 282² window (median of :data:`TIMED` calls).
``auto`` takes the fastest precision within both limits (fp32 always is): an average such as the PSNR change hides
the few values a clipped activation range moves by 20-50 levels. Speed comes from the same measurement, not from a table of
instruction sets: INT8 without VNNI (AVX2) was measured 1.64x faster than fp32 here, which a table had ruled out.

The verdicts are cached as JSON under ``$DRCN_CACHE/precision-checks``, sealed, keyed by both graphs' checksums, the
OpenVINO version, the CPU's model and flags and this check's own version, so the check runs once per model and CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from drcn import __version__, atomic, cache, deviation
from drcn.cache import cache_dir
from drcn.checksums import file_sha256
from drcn.cpu import cpu_flags, cpu_name
from drcn.deviation import MAX_LEVELS, MAX_SHARE_OVER, OFF_LEVELS, Deviation
from drcn.errors import DrcnError, backend_reason

MAX_PSNR_DROP = 0.05      # dB at the worst scale: the INT8 recipe's limit
CHECK_VERSION = 3         # bumped when what is measured changes; part of the cache key (2: the per-pixel bound;
                          # 3: per scale, on demand, with the INT8 graph made for that scale)
PIXEL_MARGIN = deviation.CHECK_MARGIN   # the check images keep half the per-pixel bound (drcn.deviation)
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
    pixels: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # scale -> Deviation counts vs fp32

    @property
    def worst(self) -> float:
        return min(self.change_db.values(), default=0.0)

    def deviations(self) -> dict[str, Deviation]:
        return {scale: Deviation(np.asarray(counts, np.int64)) for scale, counts in self.pixels.items()}

    @property
    def worst_pixels(self) -> tuple[str, Deviation]:
        """(scale, deviation) of the scale furthest from fp32: the most values more than 4 levels off, then the
        largest single deviation."""
        return deviation.worst(self.deviations())

    @property
    def pixel_breach(self) -> str:
        """Why the per-pixel bound fails, naming the scale ("0.475% of values more than 4 levels off at x2 ..."),
        or ""."""
        for scale, found in self.deviations().items():
            exceeded = found.exceeds(PIXEL_MARGIN)
            if exceeded:
                return f"{exceeded[0]} at {scale} (check bound {exceeded[1]}, half the bound)"
        return ""

    @property
    def ok(self) -> bool:
        return not self.error and self.worst >= -MAX_PSNR_DROP and not self.pixel_breach

    def describe(self, fp32_ms: float) -> str:
        scale, found = self.worst_pixels
        pixels = (f", per pixel at most {found.max} levels and {100 * found.share_over(OFF_LEVELS):.4f}% of values "
                  f"more than {OFF_LEVELS} off ({scale})" if scale else "")
        where = f"at {next(iter(self.change_db))}" if len(self.change_db) == 1 else "at the worst scale"
        return (f"checked on this CPU: {self.worst:+.3f} dB {where}{pixels}, "
                f"{fp32_ms / self.ms_per_window:.2f}x fp32's speed")

    def at(self, scale: float | None) -> "Verdict":
        """This verdict judged at one scale only (a run at x2 need not keep x4's limits), when the check measured
        that scale; at every scale otherwise (None, or a scale it did not measure, e.g. x2.5)."""
        key = f"x{scale:g}" if scale else ""
        if key not in self.change_db:
            return self
        return dataclasses.replace(self, change_db={key: self.change_db[key]},
                                   pixels={key: self.pixels[key]} if key in self.pixels else {})

    def refusal(self) -> str:
        """Why ``auto`` does not take it, with the figure ("int8 refused: 1.4% of values more than 4 levels off
        at x2 (bound 0.01%)")."""
        if self.error:
            return f"{self.precision} refused: OpenVINO cannot run it here ({self.error})"
        if self.worst < -MAX_PSNR_DROP:
            return f"{self.precision} refused: {self.worst:+.3f} dB on this CPU's kernels (limit -{MAX_PSNR_DROP} dB)"
        return f"{self.precision} refused: {self.pixel_breach}"


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


INT8_F32 = "int8/f32"      # the INT8 graph with its float parts (first conv, Add/Mul) in f32 where bf16 is native


def offered(capabilities: list[str], has_int8_graph: bool) -> list[str]:
    """The precisions OpenVINO's CPU plugin offers for this model here, besides fp32. Where the CPU has bf16, the
    INT8 graph is checked twice: float parts in bf16 ("int8": faster) and in f32 ("int8/f32": bf16 sums of the
    ensemble's nine predictions and of the skip connection cost up to 13 levels at x4)."""
    found = [p for p, cap, needs in (("int8", "INT8", has_int8_graph), ("bf16", "BF16", True))
             if cap in capabilities and needs]
    if "int8" in found and "BF16" in capabilities:
        found.insert(1, INT8_F32)
    return found


def export_breaches(int8_graph: str | None, capabilities: list[str]) -> dict[str, str]:
    """The INT8 precisions (``int8``, ``int8/f32``) whose own export already measured them past the per-pixel bound
    on its calibration images (the ``pixels`` of its ``drcn.int8`` record, per float-part precision), with why:
    e.g. the x3 graph whose ranges were chosen with f32 float parts, and whose bf16 float parts the export measured at
    0.011% of values more than 4 levels off. The on-CPU check's few images may miss what those many saw."""
    if not int8_graph:
        return {}
    from drcn.onnx_files import load_onnx
    from drcn.onnx_meta import int8_record

    record = int8_record(load_onnx(int8_graph, external=False))
    if "scales" not in record:   # before per-scale graphs the record's figures were not the written graph's
        return {}
    pixels = record.get("pixels", {})
    names = {"bf16": "int8", "fp32": INT8_F32} if "BF16" in capabilities else {"fp32": "int8"}
    found = {}
    for float_parts, name in names.items():
        figures = pixels.get(float_parts) if isinstance(pixels, dict) else None
        if not isinstance(figures, dict):
            continue
        share, worst = float(figures.get("over4_pct", 0.0)), int(figures.get("max", 0))
        if share > 100 * MAX_SHARE_OVER or worst > MAX_LEVELS:
            found[name] = (f"its export measured {share:.4f}% of values more than {OFF_LEVELS} levels off and one "
                           f"{worst} off at {figures.get('scale', '?')} with float parts {float_parts} on its "
                           f"calibration images (bound {100 * MAX_SHARE_OVER:g}%, {MAX_LEVELS} levels)")
    return found


def int8_float_hint(precision: str, capabilities: list[str]) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for an INT8 graph's float parts: f32 for ``int8/f32`` and where the CPU
    has no bf16, else bf16."""
    return "f32" if precision == INT8_F32 or "BF16" not in capabilities else "bf16"


def check_scales(for_scale: float | None, model_scales) -> tuple[int, ...]:
    """The scales the check measures for a run at ``for_scale``: that scale alone (so that a first run at x2 checks
    x2 only); a non-integer scale both integer scales around it (x2.5: x2 and x3, its INT8 graph being x3's); every
    scale of the model for None (a backend serving all)."""
    model_scales = tuple(int(s) for s in model_scales)
    if for_scale is None:
        return model_scales
    around = sorted({int(math.floor(for_scale + 1e-9)), int(math.ceil(for_scale - 1e-9))})
    found = tuple(s for s in around if s in model_scales)
    return found or model_scales


def _verdict_path(fp32_graph: str, int8_graph: str | None, scales: tuple[int, ...] | None = None) -> Path:
    """Where the verdicts on this pair of graphs at ``scales`` (None: every scale of the model), measured with this
    OpenVINO on this CPU, are cached."""
    import openvino as ov

    # ONEDNN_MAX_CPU_ISA caps the kernels OpenVINO's CPU plugin uses (e.g. AVX2 on an AVX-512 machine, measured: its
    # INT8 convolutions become jit_avx2_I8): a verdict is only good for the kernels it was measured with.
    parts = [file_sha256(fp32_graph), file_sha256(int8_graph) if int8_graph else "-", ov.__version__, cpu_name(),
             " ".join(sorted(cpu_flags())), os.environ.get("ONEDNN_MAX_CPU_ISA", ""), str(CHECK_VERSION),
             str(MAX_PSNR_DROP), f"{OFF_LEVELS}/{MAX_SHARE_OVER}/{MAX_LEVELS}/{PIXEL_MARGIN}", __version__,
             ",".join(map(str, scales)) if scales else "all"]
    return cache_dir("precision-checks") / f"{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:24]}.json"


def verdicts(fp32_graph: str, int8_graph: str | None, candidates: list[str],
             log: Callable[[str], None] = lambda _: None, scales: tuple[int, ...] | None = None) -> dict[str, Verdict]:
    """The verdict on fp32 and on each of ``candidates`` for this model on this CPU at ``scales`` (None: every scale
    of the model): from the cache, or measured (seconds; ``log`` says so) and cached."""
    path = _verdict_path(fp32_graph, int8_graph, scales)
    if cache.verified(path, log):
        found = _read(path)
        if found is not None and all(c in found for c in ["fp32", *candidates]):
            return found
    at = f" at x{', x'.join(map(str, scales))}" if scales else ""
    log(f"checking {', '.join(candidates)} against fp32 on this CPU ({cpu_name()}){at}, once for this model")
    start = time.perf_counter()
    measured = measure(fp32_graph, int8_graph, candidates, scales=scales)
    atomic.write_text(path, json.dumps({p: dataclasses.asdict(v) for p, v in measured.items()}, indent=1))
    cache.seal(path)
    log(f"checked in {time.perf_counter() - start:.0f} s: " + "; ".join(
        f"{p} {v.worst:+.3f} dB, max {v.worst_pixels[1].max} levels, {v.ms_per_window:.0f} ms/window"
        for p, v in measured.items()))
    return measured


def _read(path: Path) -> dict[str, Verdict] | None:
    from drcn import bounded_json

    try:
        data = bounded_json.loads(path.read_bytes(), str(path), 100_000)
        found = {p: Verdict(v["precision"], {k: float(x) for k, x in v["change_db"].items()},
                            float(v["ms_per_window"]), str(v.get("error", "")),
                            {k: [int(c) for c in counts] for k, counts in v["pixels"].items()})
                 for p, v in data.items()}
        if any(len(c) != 256 for v in found.values() for c in v.pixels.values()):
            return None
        return found
    except (DrcnError, KeyError, TypeError, ValueError, AttributeError):
        return None


def cached(fp32_graph: str, int8_graph: str | None,
           scales: tuple[int, ...] | None = None) -> dict[str, Verdict] | None:
    """The verdicts already measured for this model on this CPU at ``scales``, or None (nothing is measured)."""
    path = _verdict_path(fp32_graph, int8_graph, scales)
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
            capabilities: list[str] | None = None, scales: tuple[int, ...] | None = None) -> dict[str, Verdict]:
    """Run fp32 and every candidate on the calibration images at ``scales`` (None: the model's) and on a window, here.
    ``capabilities`` (default: :func:`cpu_capabilities`) decide how an INT8 graph's float parts run, as the backend
    decides it."""
    import openvino as ov

    from drcn.calibration import calibration_pairs
    from drcn.fp16 import change_by_scale, psnr_and_outputs
    from drcn.onnx_meta import read_onnx_info

    if capabilities is None:
        capabilities = cpu_capabilities(ov.Core())
    info = read_onnx_info(fp32_graph)
    pairs = sorted(calibration_pairs(None, scales or info.config.scales, max_side=MAX_SIDE), key=lambda p: p[1].shape)
    networks = {"fp32": (_network(fp32_graph), "f32")}
    for precision in candidates:
        if precision in ("int8", INT8_F32):
            if int8_graph is None:
                raise DrcnError("the INT8 precision check needs the model's INT8 graph")
            # The INT8 graph's float parts run as the backend would run them for this verdict.
            networks[precision] = (_network(int8_graph), int8_float_hint(precision, capabilities))
        elif precision == "bf16":
            networks["bf16"] = (networks["fp32"][0], "bf16")
        else:
            raise DrcnError(f"no precision check for {precision}")
    window = np.random.default_rng(0).random((1, 1, WINDOW, WINDOW), np.float32)
    scores, times, errors, outputs, pixels = {}, {}, {}, {}, {}
    for precision, (model, hint) in networks.items():
        run = _runner(model, hint)
        try:
            scores[precision], outputs[precision] = psnr_and_outputs(run, pairs)
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
        pixels[precision] = deviation.by_scale(pairs, outputs["fp32"], outputs[precision])
    reference = scores["fp32"]
    return {p: Verdict(p, change_by_scale(scores[p], reference), times[p],
                       pixels={k: d.counts.tolist() for k, d in pixels[p].items()})
            if p not in errors else Verdict(p, {}, float("inf"), errors[p]) for p in networks}


def choose(verdicts_by_precision: dict[str, Verdict], scale: float | None = None) -> tuple[str, str]:
    """(precision, why) for ``auto``: the fastest precision whose check passed (at ``scale`` where the check measured
    it, else at every scale); the reasons others were not taken."""
    verdicts_by_precision = {p: v.at(scale) for p, v in verdicts_by_precision.items()}
    fp32 = verdicts_by_precision["fp32"]
    passing = [v for v in verdicts_by_precision.values() if v.ok]
    best = min(passing, key=lambda v: v.ms_per_window)
    why = f"auto: {best.describe(fp32.ms_per_window)}" if best.precision != "fp32" else \
        "auto: fp32, the fastest precision within the limits on this CPU"
    refused = [v for v in verdicts_by_precision.values() if not v.ok]
    if refused:
        why += "; " + "; ".join(v.refusal() for v in refused)
    return best.precision, why
