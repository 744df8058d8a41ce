"""``drcn-export --int8``: a QDQ ONNX graph (int8 weights per channel, symmetric int8 activations) that OpenVINO,
ONNX Runtime and TensorRT all accept, quantized by NNCF and refused when it costs more than a limit.

What stays in float is measured, not guessed: a small quantization study quantizes the graph with each candidate
scope kept in float, most quantized first: the last convolution (the reconstruction output, nearly free); plus the
ensemble and residual Add/Mul chain; plus the first convolution (the layer that sees raw pixels). It takes the
first candidate whose Y-PSNR change on the calibration images (never the test sets), at its worst scale, stays
within half the limit (the other half is the margin for images it has not seen; failing that, the best within the
limit), for every way the runtime runs it (the float parts in f32, and in bf16 where this CPU has it). Symmetric activations
(NNCF's PERFORMANCE preset) because TensorRT refuses non-zero zero points. Then each scale gets its own activation
ranges (:mod:`drcn.export.int8_ranges`), held to the per-pixel bound: a graph per scale where they differ.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from drcn import bounded_json, deviation
from drcn.atomic import atomic_output
from drcn.calibration import calibration_pairs
from drcn.checksums import file_sha256
from drcn.errors import DrcnError
from drcn.fp16 import change_by_scale, psnr_and_outputs
from drcn.onnx_files import load_onnx
from drcn.onnx_meta import OnnxModelInfo, read_onnx_info, scale_sibling_name
from drcn.optional import require
from drcn.export.int8_ranges import ScaleRanges, activation_quantizers, in_float, study_scale, widened

INSTALL = "pip install 'drcn[int8]'"
MAX_INT8_PSNR_DROP = 0.05     # dB, mean Y-PSNR on calibration images, at the worst of the model's scales
# The study takes the most quantized scope within HALF the limit on the calibration images, so that images it has
# not seen (textures, text) keep the other half; only where none does, the best one within the limit.
CHOICE_FRACTION = 0.5
WINDOWS = 30                  # calibration windows of WINDOW² pixels
WINDOW = 96
MAX_IMAGES = 80               # calibration images measured per candidate (spread over the --calib folders)
# Centre crops of up to 384 pixels: with 192, the bundled images hid what quantizing the first conv costs (the study
# kept it in INT8 and Set5 x4 lost 0.054 dB); with 384 it measures -0.10 dB there and stays in float, as on T91.
MAX_SIDE = 384
# Bumped whenever the choice could differ for the same model (recorded as drcn.int8 "recipe"): 2 = per-scale limit,
# 384² crops, bundled textures; 3 = activation ranges chosen per scale against the per-pixel bound, a graph per scale.
# Caches of derived INT8 graphs (drcn-bench's --depth variants) re-quantize on a change.
RECIPE = 3


@dataclasses.dataclass
class Candidate:
    label: str
    names: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    drops: dict[str, float] = dataclasses.field(default_factory=dict)   # float-part precision -> worst-scale dB loss
    by_scale: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)   # precision -> scale -> dB
    # precision -> the per-pixel deviation of the 8-bit Y output from fp32's at the worst scale (Deviation.summary)
    pixels: dict[str, dict] = dataclasses.field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.drops.values())


@dataclasses.dataclass
class Int8Export:
    path: Path
    info: OnnxModelInfo
    chosen: Candidate
    study: list[Candidate]
    psnr_fp32: float
    windows: int
    seconds: float


def edge_convolutions(model) -> tuple[str, str]:
    """(first, last) Conv node names: the one reading the graph input, and the one feeding the output's Add."""
    graph = model.graph
    first = next(n.name for n in graph.node if n.op_type == "Conv" and n.input[0] == graph.input[0].name)
    producers = {out: n for n in graph.node for out in n.output}
    final = producers[graph.output[0].name]
    last = next(producers[i].name for i in final.input if i in producers and producers[i].op_type == "Conv")
    return first, last


def candidates(model) -> list[Candidate]:
    """The scopes kept in float, most quantized first. The last convolution (F -> 1 channels: 1/F of one recursion's
    work) is in float in every one: its input is the sum of the D reconstructions, where one int8 step is about 2.7
    grey levels of output (measured: with it quantized, x3 had 0.0075% of values more than 4 levels off fp32 on
    BSD200 crops, with it in float 0.0034%, at no measurable cost in speed)."""
    first, last = edge_convolutions(model)
    chain = ("Add", "Mul")
    return [Candidate("the last conv in float", names=(last,)),
            Candidate("Add/Mul (ensemble, residual) and the last conv in float", names=(last,), types=chain),
            Candidate("Add/Mul, first and last conv in float", names=(first, last), types=chain)]


def study_pairs(calib: list[str] | None, scales):
    """The calibration pairs the quantization study scores on (:data:`MAX_IMAGES` images of ``calib``, crops up to
    :data:`MAX_SIDE`)."""
    return calibration_pairs(calib, scales, max_side=MAX_SIDE, max_images=MAX_IMAGES)


def calibration_windows(pairs, count: int = WINDOWS, side: int = WINDOW, seed: int = 0) -> list[np.ndarray]:
    """``count`` (1, 1, side, side) float32 windows of the network's input (bicubic-enlarged Y in [0, 1])."""
    rng = np.random.default_rng(seed)
    windows = []
    for i in range(count):
        up = pairs[i % len(pairs)][1]
        top = int(rng.integers(0, max(1, up.shape[0] - side + 1)))
        left = int(rng.integers(0, max(1, up.shape[1] - side + 1)))
        windows.append((up[top:top + side, left:left + side].astype(np.float32) / 255.0)[None, None])
    return windows


def runner(model, precision: str):
    """(1, 1, H, W) -> (1, 1, H, W) with OpenVINO (the CPU path that runs INT8; float parts in ``precision``), or
    ONNX Runtime where OpenVINO is not installed."""
    from drcn.optional import installed

    if installed("openvino"):
        import openvino as ov

        core = ov.Core()
        base = core.read_model(model.SerializeToString(), b"")
        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        requests = {}

        def run(x):
            if x.shape not in requests:
                shaped = base.clone()
                shaped.reshape({shaped.inputs[0].get_any_name(): list(x.shape)})
                compiled = core.compile_model(shaped, "CPU", {"INFERENCE_PRECISION_HINT": hint})
                requests[x.shape] = compiled.create_infer_request()
            request = requests[x.shape]
            request.infer({0: x})
            return np.array(request.get_output_tensor(0).data)

        return run
    ort = require("onnxruntime", "checking an INT8 graph", INSTALL)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0]


def float_precisions() -> tuple[str, ...]:
    """How the runtime may run the graph's float parts on this machine (OpenVINO: f32, and bf16 where native)."""
    from drcn.optional import installed

    if installed("openvino"):
        from drcn.runtime.backends.precision_check import cpu_capabilities

        if "BF16" in cpu_capabilities():
            return ("fp32", "bf16")
    return ("fp32",)


def quantize(model, windows: list[np.ndarray], candidate: Candidate):
    nncf = require("nncf", "drcn-export --int8", INSTALL)
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    scope = nncf.IgnoredScope(names=list(candidate.names), types=list(candidate.types))
    # Activation ranges from histograms: on training-image calibration it kept 0.02 dB where plain min/max lost
    # 0.026 (and mean-quantile 0.11); full bias correction fails on the tied recursive weights, the fast one is used.
    advanced = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.HISTOGRAM)
    return nncf.quantize(model, nncf.Dataset(windows, lambda x: {"input": x}),
                         preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(windows), ignored_scope=scope,
                         target_device=nncf.TargetDevice.ANY, advanced_parameters=advanced)


def recipe_of(path: str | Path) -> int:
    """The :data:`RECIPE` an INT8 graph was made with (1: before it was recorded)."""
    props = {p.key: p.value for p in load_onnx(path, external=False).metadata_props}
    record = bounded_json.loads(props.get("drcn.int8", "{}"), f"{path}: metadata drcn.int8")
    return int(record.get("recipe", 1)) if isinstance(record, dict) else 1


@dataclasses.dataclass
class Int8Graph:
    """One written INT8 graph: the scales it serves, its range factor, and per float-part precision its Y-PSNR change
    (scale -> dB) and per-pixel figures (:meth:`drcn.deviation.Deviation.summary`, the worst of its scales)."""

    path: Path
    scales: tuple[int, ...]
    factor: float
    change_db: dict[str, dict[str, float]]
    pixels: dict[str, dict]


@dataclasses.dataclass
class Int8Export:
    path: Path                      # the main graph (``target``)
    info: OnnxModelInfo
    chosen: Candidate               # the scope kept in float
    study: list[Candidate]
    psnr_fp32: float
    windows: int
    seconds: float
    graphs: list[Int8Graph] = dataclasses.field(default_factory=list)   # the main graph first, then per-scale ones
    ranges: dict[int, ScaleRanges] = dataclasses.field(default_factory=dict)
    no_graph: dict[int, str] = dataclasses.field(default_factory=dict)  # scale -> why no graph holds there
    removed: list[Path] = dataclasses.field(default_factory=list)       # stale per-scale graphs of an older export


def _requested_scales(info: OnnxModelInfo, scales) -> tuple[int, ...]:
    model_scales = tuple(int(s) for s in info.config.scales)
    if not scales:
        return model_scales
    wanted = tuple(sorted({int(s) for s in scales}))
    missing = [s for s in wanted if s not in model_scales]
    if missing:
        raise DrcnError(f"--scale {missing[0]}: the model serves x{', x'.join(map(str, model_scales))}")
    return wanted


def export_int8(y_onnx: Path, target: Path, calib: list[str] | None = None, limit: float = MAX_INT8_PSNR_DROP,
                log: Callable[[str], None] = lambda _: None, scales=None,
                pixel_fraction: float = deviation.CHECK_MARGIN, start_from: Path | None = None) -> Int8Export:
    """Quantize the FP32 Y graph ``y_onnx``: the graph for the smallest of ``scales`` (default: the model's) that
    holds into ``target``, and one ``<target>_x<s>.onnx`` beside it for each other scale whose activation ranges
    differ (:mod:`drcn.export.int8_ranges`), each written atomically, each recording in ``drcn.int8`` the scales it
    serves. A scale where no ranges keep ``pixel_fraction`` of the per-pixel bound and half of ``limit`` gets no graph
    (recorded, said); a one-line error, nothing written, when no scale does or no scope keeps the PSNR limit.
    ``start_from``: an INT8 graph of the same model (e.g. fine-tuned by drcn-qat) whose weights and scope are kept:
    only its ranges are chosen per scale."""
    onnx = require("onnx", "drcn-export --int8", INSTALL)
    nncf = require("nncf", "drcn-export --int8", INSTALL)
    info = read_onnx_info(y_onnx)
    if info.kind != "y" or info.precision != "fp32":
        raise DrcnError(f"--int8 quantizes the fp32 Y graph, not a {info.precision} {info.kind} graph")
    wanted = _requested_scales(info, scales)
    start = time.perf_counter()
    model = load_onnx(y_onnx)
    pairs = study_pairs(calib, wanted)
    windows = calibration_windows(pairs)
    precisions = float_precisions()
    reference, reference_outputs = psnr_and_outputs(runner(model, "fp32"), pairs)
    psnr32 = float(np.mean(list(reference.values())))
    if start_from is not None:
        chosen, chosen_model, given_record = _given_int8(start_from, y_onnx, info)
        study = []
        log(f"int8: starting from {start_from} ({chosen.label}); choosing its activation ranges per scale")
    else:
        given_record = None
        chosen, chosen_model, study = _scope_study(model, windows, pairs, reference, reference_outputs, precisions,
                                                   limit, log)
    ranges = _range_study(chosen_model, wanted, pairs, reference, reference_outputs, limit, pixel_fraction, log)
    no_graph = {s: _why_none(r, limit, pixel_fraction) for s, r in ranges.items() if r.chosen is None}
    holding = [s for s in wanted if s not in no_graph]
    if not holding:
        s, why = next(iter(no_graph.items()))
        raise DrcnError(f"--int8: no activation ranges keep the per-pixel bound at any scale (x{s}: {why}); nothing "
                        "written. Quantization-aware fine-tuning (drcn-qat --tail-weight) would be needed")
    groups: dict[float, list[int]] = {}
    for s in holding:
        groups.setdefault(ranges[s].chosen.factor, []).append(s)
    main_factor = ranges[holding[0]].chosen.factor
    files = [(target, tuple(groups[main_factor]))] + [
        (scale_sibling_name(target, s), (s,)) for s in holding if s not in groups[main_factor]]
    base = {"recipe": RECIPE, "tool": f"nncf {nncf.__version__}", "preset": "PERFORMANCE (symmetric activations)",
            "weights": "int8, per channel", "scope": chosen.label, "ignored_names": list(chosen.names),
            "ignored_types": list(chosen.types), "activation_ranges": "histogram, times a factor chosen per scale",
            "calibration": (", ".join(Path(c).name for c in calib) if calib
                            else "bundled photos and textures (scikit-image)"),
            "windows": len(windows), "window": WINDOW, "psnr_fp32": round(psnr32, 4), "limit_db": limit,
            "measure": "mean Y-PSNR per scale, the worst scale",
            "choice": f"the most quantized scope within {CHOICE_FRACTION:g} x the limit on calibration images; per "
                      f"scale, of the range factors within {pixel_fraction:g} x the bound's share of values more than "
                      f"{deviation.OFF_LEVELS} levels off and within its worst value, the one using least of the "
                      "bound together with the factors beside it",
            "study": [{"scope": c.label, "psnr_change_db": {p: round(-d, 4) for p, d in c.drops.items()},
                       "by_scale": c.by_scale, "pixels": c.pixels} for c in study],
            "ranges": {f"x{s}": r.record() for s, r in ranges.items()},
            "no_graph": {f"x{s}": why for s, why in no_graph.items()}}
    if given_record is not None:   # how the graph it started from was made (its NNCF study, a drcn-qat run)
        base["started_from"] = {k: v for k, v in given_record.items() if k in ("tool", "scope", "calibration", "study",
                                                                              "psnr_change_db", "started_from")}
        if "qat" in given_record:
            base["qat"] = given_record["qat"]
    int8_info = dataclasses.replace(info, precision="int8")
    graphs = []
    for path, served in files:
        factor = ranges[served[0]].chosen.factor
        graph = widened(chosen_model, factor)
        change, pixels = _measure_graph(graph, served, pairs, reference, reference_outputs, precisions,
                                        ranges)
        record = {**base, "scales": list(served), "range_factor": factor, "psnr_change_db_by_scale": change,
                  "psnr_change_db": {p: round(min(c.values()), 4) for p, c in change.items()}, "pixels": pixels}
        props = {**int8_info.to_props(), "drcn.int8": json.dumps(record), "drcn.int8_of": file_sha256(y_onnx)}
        del graph.metadata_props[:]
        onnx.helper.set_model_props(graph, props)
        with atomic_output(path) as tmp:
            onnx.save(graph, str(tmp))
        graphs.append(Int8Graph(path, served, factor, change, pixels))
    written = {g.path for g in graphs}
    removed = [stale for s in wanted if (stale := scale_sibling_name(target, s)).is_file() and stale not in written]
    for stale in removed:        # an older export's graph for a scale this one serves otherwise: never used again
        stale.unlink()
    return Int8Export(target if target in written else graphs[0].path, int8_info, chosen, study, psnr32,
                      len(windows), time.perf_counter() - start, graphs, ranges, no_graph, removed)


def _scope_study(model, windows, pairs, reference, reference_outputs, precisions, limit, log):
    """(chosen candidate, its quantized model, every candidate measured): the most quantized scope within
    :data:`CHOICE_FRACTION` of ``limit`` at the worst scale (else the best within ``limit``; else a one-line error)."""
    study, chosen, chosen_model = [], None, None
    for candidate in candidates(model):
        quantized = quantize(model, windows, candidate)
        for precision in precisions:
            scores, outputs = psnr_and_outputs(runner(quantized, precision), pairs)
            candidate.by_scale[precision] = change_by_scale(scores, reference)
            candidate.drops[precision] = max(reference[s] - scores[s] for s in reference)
            scale, found = deviation.worst(deviation.by_scale(pairs, reference_outputs, outputs))
            candidate.pixels[precision] = {"scale": scale, **found.summary()}
        study.append(candidate)
        log(f"int8 study: {candidate.label}: worst scale " + ", ".join(
            f"{-d:+.4f} dB, per pixel max {candidate.pixels[p]['max']} levels and {candidate.pixels[p]['over4_pct']:.4f}%"
            f" > {deviation.OFF_LEVELS} at {candidate.pixels[p]['scale']} (float parts {p})"
            for p, d in candidate.drops.items()))
        if candidate.worst <= CHOICE_FRACTION * limit:
            chosen, chosen_model = candidate, quantized
            break
        if candidate.worst <= limit and (chosen is None or candidate.worst < chosen.worst):
            chosen, chosen_model = candidate, quantized    # within the limit: kept unless a later one does better
    if chosen is None:
        best = min(study, key=lambda c: c.worst)
        raise DrcnError(f"--int8: even with {best.label} the calibration PSNR drops by {best.worst:.3f} dB (limit "
                        f"{limit} dB); nothing written. Quantization-aware fine-tuning would be needed")
    return chosen, chosen_model, study


def _given_int8(path: Path, y_onnx: Path, info: OnnxModelInfo):
    """An INT8 graph of the same model given to start from (e.g. one drcn-qat fine-tuned), as (candidate, model, its
    ``drcn.int8`` record):
    its weights and scope kept, the last conv's input put in float where it was quantized (as every scope of the
    study keeps it)."""
    from drcn.onnx_meta import int8_record, is_int8_of, model_info

    given = load_onnx(path)
    theirs = model_info(given, str(path))
    if not is_int8_of(theirs, info):
        raise DrcnError(f"--int8-from {path}: not an INT8 graph of {y_onnx} (another model, depth or kind)")
    record = int8_record(given)
    label = record.get("scope", "as given")
    quantizers = activation_quantizers(given)
    producers = {out: n for n in given.graph.node for out in n.output}
    last_conv = [n for n in given.graph.node if n.op_type == "Conv"][-1]
    if quantizers and _reads_activation(last_conv, quantizers[-1].input[0], producers):
        given, label = in_float(given, {quantizers[-1].input[0]}), f"{label}; the last conv's input in float"
    candidate = Candidate(label, names=tuple(record.get("ignored_names", ())),
                          types=tuple(record.get("ignored_types", ())))
    del given.metadata_props[:]
    return candidate, given, record


def _reads_activation(conv, tensor: str, producers) -> bool:
    """Whether ``conv`` reads ``tensor`` through its Q/DQ pair (DequantizeLinear <- QuantizeLinear <- tensor)."""
    dq = producers.get(conv.input[0])
    q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    return q is not None and q.op_type == "QuantizeLinear" and q.input[0] == tensor


def _range_study(model, scales, pairs, reference, reference_outputs, limit, pixel_fraction, log):
    """Per scale, :func:`drcn.export.int8_ranges.study_scale` on that scale's calibration pairs, float parts in f32
    (how CPUs without bf16 run them, and the slowest-to-break of the two)."""
    found = {}
    for s in scales:
        index = [i for i, p in enumerate(pairs) if p[2] == float(s)]
        found[s] = study_scale(model, s, [pairs[i] for i in index], reference[float(s)],
                               [reference_outputs[i] for i in index], lambda m: runner(m, "fp32"),
                               CHOICE_FRACTION * limit, pixel_fraction, log)
        chosen = found[s].chosen
        log(f"int8 ranges at x{s}: " + (f"chose x{chosen.factor:g}" if chosen else "none holds"))
    return found


def _why_none(ranges: ScaleRanges, limit: float, pixel_fraction: float) -> str:
    best = min(ranges.trials, key=lambda t: t.key())
    share = best.pixels.share_over(deviation.OFF_LEVELS)
    if share > pixel_fraction * deviation.MAX_SHARE_OVER:
        return (f"the best ranges (x{best.factor:g}) leave {100 * share:.4f}% of values more than "
                f"{deviation.OFF_LEVELS} levels off (bound {100 * pixel_fraction * deviation.MAX_SHARE_OVER:g}%)")
    if best.pixels.max > deviation.MAX_LEVELS * max(1.0, pixel_fraction):
        return f"the best ranges (x{best.factor:g}) leave a value {best.pixels.max} levels off (bound {deviation.MAX_LEVELS})"
    return f"the best ranges (x{best.factor:g}) lose {-best.change_db:.3f} dB (limit {CHOICE_FRACTION * limit:g})"


def _measure_graph(graph, served, pairs, reference, reference_outputs, precisions, ranges):
    """(scale -> dB change, worst per-pixel summary) per float-part precision of ``graph`` on the pairs of the scales
    it serves; f32 from the range study, the others measured here."""
    change, pixels = {}, {}
    index = [i for i, p in enumerate(pairs) if int(p[2]) in served]
    mine = [pairs[i] for i in index]
    for precision in precisions:
        if precision == "fp32":
            trials = {s: ranges[s].chosen for s in served}
            change[precision] = {f"x{s}": round(t.change_db, 4) for s, t in trials.items()}
            found = {f"x{s}": t.pixels for s, t in trials.items()}
        else:
            scores, outputs = psnr_and_outputs(runner(graph, precision), mine)
            change[precision] = change_by_scale(scores, {float(s): reference[float(s)] for s in served})
            found = deviation.by_scale(mine, [reference_outputs[i] for i in index], outputs)
        scale, worst = deviation.worst(found)
        pixels[precision] = {"scale": scale, **worst.summary()}
    return change, pixels
