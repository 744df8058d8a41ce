"""OpenVINO backend for CPUs: the exported ONNX compiled for the CPU plugin, bf16 where the CPU has it.

Precision ``auto`` asks OpenVINO itself whether this CPU supports bf16 (``OPTIMIZATION_CAPABILITIES``; AMX or
AVX-512 BF16) and uses it there, fp32 elsewhere, and says which. One compiled model per input shape (tiles all
have one shape, so this is one compile per run), kept in OpenVINO's model cache under a folder keyed by
everything that affects the compiled blob: ONNX checksum, precision, performance mode, OpenVINO version and
CPU model, so a stale blob is never reused.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from drcn.cache import cache_dir, seal_folder, verified_folder
from drcn.checksums import file_sha256
from drcn.cpu import cpu_name
from drcn.errors import DrcnError, backend_reason
from drcn.memory import COMPILED, rss_bytes
from drcn.optional import require
from drcn.onnx_meta import int8_sibling, read_onnx_info
from drcn.runtime.backends.table import ModelSpec

INSTALL = "pip install 'drcn[openvino]'"
MAX_SHAPES = 6      # compiled input shapes kept: full and last batches of tiles, both orientations with an ensemble


def choose_precision(requested: str, capabilities: list[str], int8_graph: bool = False,
                     checked: Callable[[list[str]], dict] | None = None, scale: float | None = None,
                     excluded: dict[str, str] | None = None) -> tuple[str, str]:
    """(precision, why) for the CPU plugin. ``capabilities``: the CPU's OPTIMIZATION_CAPABILITIES; ``int8_graph``:
    an INT8 graph of the model is at hand; ``checked(candidates)``: the on-CPU verdicts
    (:mod:`drcn.runtime.backends.precision_check`) on fp32 and those candidates, asked for only under ``auto`` when
    the CPU offers something besides fp32; ``scale``: the one scale this backend serves (judged there only), None for
    every scale; ``excluded``: precisions ``auto`` never takes, with why (the INT8 graph's own export measured them
    past the per-pixel bound)."""
    from drcn.runtime.backends import precision_check

    if requested == "auto":
        excluded = excluded or {}
        candidates = [c for c in precision_check.offered(capabilities, int8_graph) if c not in excluded]
        refused = "".join(f"; {name} refused: {why}" for name, why in excluded.items())
        if not candidates or checked is None:
            return "fp32", "auto: OpenVINO offers nothing faster than fp32 on this CPU for this model" + refused
        precision, why = precision_check.choose(checked(candidates), scale)
        return precision, why + refused
    if requested == "bf16" and "BF16" not in capabilities:
        raise DrcnError("--precision bf16: this CPU does not support bf16 (OpenVINO reports "
                        f"{', '.join(capabilities)}); use fp32 or auto")
    if requested in ("int8", precision_check.INT8_F32) and not int8_graph:
        raise DrcnError("--precision int8: no INT8 graph of this model (drcn-export --int8 --onnx NAME_int8.onnx "
                        "beside NAME.onnx, or --onnx an INT8 graph)")
    if requested not in ("fp32", "bf16", "int8", precision_check.INT8_F32):
        raise DrcnError(f"--precision {requested}: the OpenVINO backend runs auto, fp32, bf16, int8 or int8/f32 "
                        "(INT8 with its float parts in f32)")
    return requested, "requested"


def cache_folder(onnx_sha256: str, precision: str, mode: str, version: str) -> Path:
    key = hashlib.sha256(f"{onnx_sha256}|{precision}|{mode}|{version}|{cpu_name()}".encode()).hexdigest()[:24]
    return cache_dir("openvino") / key


class OpenVINOBackend:
    name = "openvino"

    def __init__(self, model_path: str, precision: str = "auto", threads: int | None = None,
                 mode: str = "latency", log: Callable[[str], None] = lambda _: None, for_scale: float | None = None,
                 **_):
        ov = require("openvino", "the OpenVINO backend", INSTALL)
        info = read_onnx_info(model_path)
        self.core = ov.Core()
        from drcn.runtime.backends import precision_check

        capabilities = precision_check.cpu_capabilities(self.core)
        checked_as = "int8"    # which INT8 verdict the float parts follow: "int8" (bf16 where native) or "int8/f32"
        if info.precision == "int8":   # an INT8 graph runs as such; its float parts as the CPU runs them best
            self.precision, why = "int8", "an INT8 graph"
            checked_as = precision_check.INT8_F32 if precision == precision_check.INT8_F32 else "int8"
            if precision not in ("auto", "int8", precision_check.INT8_F32):
                raise DrcnError(f"--precision {precision}: {model_path} is an INT8 graph (run the fp32 graph for "
                                f"{precision})")
        else:
            # The INT8 graph made for the scale this backend serves (x2.5: x3's), and the check at that scale only.
            sibling = (int8_sibling(model_path, for_scale if info.kind == "y" else None, log)
                       if precision in ("auto", "int8", precision_check.INT8_F32) else None)
            scales = ((info.scale,) if info.kind != "y"
                      else precision_check.check_scales(for_scale, info.config.scales))

            def checked(candidates: list[str]) -> dict:
                return precision_check.verdicts(str(model_path), str(sibling) if sibling else None, candidates, log,
                                                scales)

            self.precision, why = choose_precision(
                precision, capabilities, sibling is not None, checked, for_scale,
                precision_check.export_breaches(str(sibling) if sibling else None, capabilities))
            if self.precision == precision_check.INT8_F32:
                self.precision, checked_as = "int8", precision_check.INT8_F32
            if precision != "auto":
                # Forcing a precision says what the on-CPU check measured for it, where it has run; a forced INT8
                # keeps its float parts in f32 where only that way passed the check.
                found = {name: verdict.at(for_scale) for name, verdict in
                         (precision_check.cached(str(model_path), str(sibling) if sibling else None, scales)
                          or {}).items()}
                if self.precision == "int8" and precision_check.INT8_F32 in found and "int8" in found and \
                        not found["int8"].ok and found[precision_check.INT8_F32].ok:
                    checked_as = precision_check.INT8_F32
                verdict = found.get(checked_as if self.precision == "int8" else self.precision)
                if verdict is not None and self.precision != "fp32":
                    why = (f"requested; {verdict.describe(found['fp32'].ms_per_window)}"
                           + ("" if verdict.ok else "; beyond the check's limits: " + verdict.refusal().split(": ", 1)[1]))
            if self.precision == "int8":
                model_path, info = str(sibling), read_onnx_info(sibling)
        # An INT8 graph's float parts (first conv, the ensemble's Add/Mul) run in bf16 where the CPU has it, unless the
        # on-CPU check found only f32 float parts within its per-pixel bound.
        hint = ({"fp32": "f32", "bf16": "bf16"}.get(self.precision)
                or precision_check.int8_float_hint(checked_as, capabilities))
        self.verdict_name = checked_as if self.precision == "int8" else self.precision   # its name in the check
        self.pixel_mode = f"{self.precision}, float parts {hint}"    # what decides the pixels (a resume compares it)
        if mode not in ("latency", "throughput"):
            raise DrcnError(f"--mode {mode}: latency or throughput")
        cache = cache_folder(file_sha256(model_path), f"{self.precision}-{hint}", mode, ov.__version__)
        # OpenVINO trusts the blobs in its cache folder as they are: drcn seals them after every compile and checks
        # them here, so a damaged blob is compiled again instead of computing wrong pixels.
        verified_folder(cache, log)
        self.cache_folder = cache
        self.config = {"INFERENCE_PRECISION_HINT": hint,
                       "PERFORMANCE_HINT": mode.upper(), "CACHE_DIR": str(cache)}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
            # A thread count means the machine is shared (Ray workers of one thread each): OpenVINO would pin every
            # such process to the same first core (measured: two one-thread workers both on core 0, 0.97x of one).
            self.config["ENABLE_CPU_PINNING"] = False
        try:
            self.model = self.core.read_model(str(model_path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line text
            raise DrcnError(f"{model_path}: OpenVINO cannot read it: {backend_reason(exc)}") from None
        self.parts = None
        self.runs_on_gpu = False  # the CPU plugin only
        if info.kind != "y" and hint != "f32":
            # bf16 would lower the colour conversion and the enlargement too (the 0..255 grid needs float32):
            # those parts compile apart, in f32.
            self.parts = self._compile_parts(model_path)
        # input shape -> compiled model (or _Parts), the most recently used last; at most MAX_SHAPES are kept
        self._shapes: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._requests: dict[tuple, object] = {}            # shape / ("free", shape) -> request(s)
        # throughput mode: run() from several threads; reentrant, as making room for a shape may drop another of ours
        self._lock = threading.RLock()
        self._bytes_per_value = 0.0                         # a compiled shape's bytes per input value, the most seen
        self._executor: ThreadPoolExecutor | None = None
        self.mode = mode
        # Throughput mode compiles for several CPU streams (one thread each): only requests in flight on every
        # stream keep every core busy, so a run keeps one per stream, frame-graph parts included.
        self.in_flight = self._streams() if mode == "throughput" else 1
        self.spec = ModelSpec.of_onnx(info, str(model_path), precision=self.precision)
        shown = self.precision + (f", float parts {hint}" if self.precision == "int8" else "")
        how = (f"throughput mode, {self.in_flight} requests in flight" if self.in_flight > 1 else f"{mode} mode")
        self.description = (f"OpenVINO {ov.__version__.split('-')[0]} on CPU ({cpu_name()}), {shown} "
                            f"({why}), {how} ({model_path})")

    def _streams(self) -> int:
        """How many requests the CPU plugin runs side by side in throughput mode (one per stream)."""
        probe = self._compiled(self.model, self.config, (1, *self._probe_shape()))
        return max(1, int(probe.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))

    def _probe_shape(self) -> tuple[int, int, int]:
        channels = self.model.inputs[0].get_partial_shape()[1]
        return (channels.get_length() if channels.is_static else 1, 32, 32)

    def _compile_parts(self, model_path: str):
        from drcn.onnx_files import load_onnx
        from drcn.runtime.frame_graph import split_frame_graph

        parts = split_frame_graph(load_onnx(model_path))
        f32 = {**self.config, "INFERENCE_PRECISION_HINT": "f32"}
        return [(self.core.read_model(part.SerializeToString(), b""), config)
                for part, config in ((parts.pre, f32), (parts.network, self.config), (parts.post, f32))]

    def _compiled(self, model, config: dict, shape: tuple[int, ...]):
        model = model.clone()
        model.reshape({model.inputs[0].get_any_name(): list(shape)})  # static shapes compile faster code
        return self._compile(model, config)

    def _compile(self, model, config: dict):
        try:
            compiled = self.core.compile_model(model, "CPU", config)
        except RuntimeError as exc:     # multi-line C++ text: one line that keeps the reason
            raise DrcnError(f"OpenVINO cannot compile the {self.precision} model for this CPU "
                            f"(inference precision {config.get('INFERENCE_PRECISION_HINT')}): "
                            f"{backend_reason(exc)}") from None
        seal_folder(self.cache_folder)
        return compiled

    def _request(self, shape: tuple[int, ...]):
        request = self._requests.get(shape)
        if request is None:
            request = self._requests[shape] = self._compiled_shape(shape).create_infer_request()
        else:
            self._shapes.move_to_end(shape)
            COMPILED.touch(self, shape)
        return request

    def _compiled_shape(self, shape: tuple[int, ...]):
        """The model compiled for one input shape (a :class:`_Parts` for a frame graph compiled apart). A static
        compile holds its activation buffers (about 1 GB for 16 windows of 282² at F=64), and whole images or the
        last tiles of differently sized frames bring new shapes: only the MAX_SHAPES used last are kept, and fewer
        while this process's compiled models hold more than their share of the memory budget (``drcn.memory``;
        measured: an unbounded cache reached 23 GB over Set5 and Set14 with the self-ensemble, and was killed)."""
        compiled = self._shapes.get(shape)
        if compiled is None:
            # Room first, from what earlier shapes held per input value: compiling beside a full share overshoots.
            COMPILED.make_room(self, shape, int(self._bytes_per_value * float(np.prod(shape))))
            compiled = self._shapes[shape] = (self._compiled(self.model, self.config, shape) if self.parts is None
                                              else _Parts(self, shape))
            while len(self._shapes) > MAX_SHAPES:
                self._forget_oldest()
        self._shapes.move_to_end(shape)
        return compiled

    def _forget_oldest(self) -> None:
        self._forget(next(iter(self._shapes)))

    def _forget(self, shape: tuple[int, ...]) -> None:
        """Drop one compiled shape (the ledger calls this to make room, for this backend or another)."""
        with self._lock:
            self._shapes.pop(shape, None)
            # A request already taken by a thread keeps its compiled model alive until it is done.
            self._requests.pop(shape, None)
            self._requests.pop(("free", shape), None)
        COMPILED.remove(self, shape)

    def _account(self, shape: tuple[int, ...], nbytes: int) -> None:
        """Record what compiling ``shape`` and its first inference added to the process (its buffers are allocated
        then), and drop the least recently used other shapes, of any backend, while the process is over its share."""
        COMPILED.add(self, shape, nbytes, self._forget)
        self._bytes_per_value = max(self._bytes_per_value, nbytes / float(np.prod(shape)))
        COMPILED.make_room(self, shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) float32 -> the network's output. Thread-safe in throughput mode (``in_flight`` > 1): every
        caller's windows share the same requests, so windows of several frames keep every stream busy."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.in_flight > 1:
            return self._run_in_flight(batch)
        shape = tuple(batch.shape)
        fresh, before = shape not in self._shapes, rss_bytes()
        out = _infer(self._request(shape), batch)
        if fresh:
            self._account(shape, rss_bytes() - before)
        return out

    def _run_in_flight(self, batch: np.ndarray) -> np.ndarray:
        """Throughput mode: one window per request, ``in_flight`` requests at a time (one per CPU stream), each run
        by a thread of its own (OpenVINO releases the GIL while it infers); one compiled shape serves every batch
        size. A frame graph's parts chain on the host, which is why this is not an AsyncInferQueue."""
        shape = (1, *batch.shape[1:])
        with self._lock:
            free = self._requests.get(("free", shape))
            if free is None:
                before = rss_bytes()
                compiled = self._compiled_shape(shape)
                free = self._requests[("free", shape)] = queue.SimpleQueue()
                warm = np.zeros(shape, np.float32)
                for _ in range(self.in_flight):
                    # One first inference at a time: requests specialising a shape concurrently deadlocked
                    # drcn-run about one run in three on these 2 cores (all waiting in OpenVINO, no CPU used).
                    request = compiled.create_infer_request()
                    _infer(request, warm)
                    free.put(request)
                self._account(shape, rss_bytes() - before)
            else:
                self._shapes.move_to_end(shape)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.in_flight, thread_name_prefix="drcn-openvino")

        def one(window: np.ndarray) -> np.ndarray:
            request = free.get()
            try:
                return _infer(request, window)
            finally:
                free.put(request)

        futures = [self._executor.submit(one, batch[i:i + 1]) for i in range(len(batch))]
        return np.concatenate([future.result() for future in futures])

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._requests.clear()
        for shape in list(self._shapes):
            COMPILED.remove(self, shape)
        self._shapes.clear()


def _infer(request, batch: np.ndarray) -> np.ndarray:
    if isinstance(request, _PartsRequest):
        return request.run(batch)
    request.infer({0: batch})
    return np.array(request.get_output_tensor(0).data, copy=True)


class _Parts:
    """A frame graph compiled as pre (f32) -> network (bf16, or INT8 with bf16 float parts) -> post (f32) for one
    input shape; each :meth:`create_infer_request` is a chain of three requests."""

    def __init__(self, backend: OpenVINOBackend, shape: tuple[int, ...]):
        (pre, pre_config), (net, net_config), (post, post_config) = backend.parts
        self.pre = backend._compiled(pre, pre_config, shape)
        n, _, h, w = shape
        scale = backend.spec.scale
        self.net = backend._compiled(net, net_config, (n, 1, h * scale, w * scale))
        post = post.clone()
        post.reshape({port.get_any_name(): [n, 1 if i == 0 else 2, h * scale, w * scale]
                      for i, port in enumerate(post.inputs)})
        self.post = backend._compile(post, post_config)

    def create_infer_request(self) -> "_PartsRequest":
        return _PartsRequest(self)


class _PartsRequest:
    """One chain of requests over :class:`_Parts` (used by one thread at a time)."""

    def __init__(self, parts: _Parts):
        self.carried = len(parts.pre.outputs) - 1
        self.requests = [c.create_infer_request() for c in (parts.pre, parts.net, parts.post)]

    def run(self, batch: np.ndarray) -> np.ndarray:
        pre, net, post = self.requests
        pre.infer({0: batch})
        carried = [np.array(pre.get_output_tensor(i).data) for i in range(1, 1 + self.carried)]
        net.infer({0: np.array(pre.get_output_tensor(0).data)})
        post.infer([np.array(net.get_output_tensor(0).data), *carried])
        return np.array(post.get_output_tensor(0).data, copy=True)
