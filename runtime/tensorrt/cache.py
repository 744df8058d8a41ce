"""Engines that rebuild themselves: ``drcn-run --backend tensorrt --onnx model.onnx`` builds the engine it needs
into the cache folder, keyed by everything that makes an engine valid, reuses it next time, and rebuilds (saying
why) when anything changed: the ONNX file, the TensorRT flavour or version, the GPU (or RTX targets), the
precision or the profile.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from drcn import __version__, atomic, bounded_json, cache
from drcn.cache import cache_dir
from drcn.checksums import bytes_sha256, file_sha256
from drcn.errors import DrcnError
from drcn.runtime.tensorrt.cuda import visible_gpu
from drcn.runtime.tensorrt.build import BuildRequest, build_engine, resolve_flavour
from drcn.runtime.tensorrt.sidecar import read_sidecar, sidecar_path
from drcn.runtime.tensorrt.flavour import RTX_DEFAULT_TARGETS, import_flavour


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """Everything an engine's validity depends on; its hash names the cached file."""

    onnx_sha256: str
    flavour: str
    tensorrt_version: str
    device: str               # "NVIDIA RTX 4090 (8.9)" for builds on a GPU, "targets 8.0,8.6,..." without one
    precision: str
    tile: int
    batch: int
    max_size: tuple[int, int] | None
    drcn_version: str

    def digest(self) -> str:
        return bytes_sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())[:20]

    @classmethod
    def read(cls, path: Path) -> "EngineKey | None":
        """The key stored at ``path``; None where there is none or it is from another drcn version's format."""
        try:
            data = bounded_json.loads(path.read_bytes(), str(path), max_bytes=1_000_000)
            data["max_size"] = tuple(data["max_size"]) if data.get("max_size") else None
            return cls(**data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, DrcnError):
            return None

    def changes_from(self, other: "EngineKey") -> list[str]:
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [f"{k} {theirs[k]} -> {mine[k]}" for k in mine if mine[k] != theirs[k]]


def engine_key(onnx: Path, precision: str, tile: int, batch: int, max_size, flavour_name: str = "auto") -> EngineKey:
    gpu = visible_gpu()
    flavour = resolve_flavour(flavour_name, gpu)
    trt = import_flavour(flavour)
    if flavour.targets and gpu is None:
        device = "targets " + ",".join(RTX_DEFAULT_TARGETS)
    else:
        device = f"{gpu.name} ({gpu.compute_capability})" if gpu else "no GPU"
    return EngineKey(file_sha256(onnx), flavour.name, trt.__version__, device, precision, tile, batch,
                     tuple(max_size) if max_size else None, __version__)


def cached_engine(onnx: Path, precision: str, tile: int, batch: int, max_size: tuple[int, int] | None = None,
                  flavour: str = "auto", log: Callable[[str], None] = lambda _: None) -> Path:
    """The cached engine for this ONNX file and these settings, built first where there is none."""
    onnx = Path(onnx).resolve()
    key = engine_key(onnx, precision, tile, batch, max_size, flavour)
    folder = cache_dir("engines")
    engine = folder / f"{onnx.stem}-{key.digest()}.engine"
    last = folder / f"{onnx.stem}-{bytes_sha256(str(onnx).encode())[:12]}.last.json"
    if engine.is_file():
        # The sidecar vouches for the engine's bytes, its seal for the sidecar's: both are checked on every use.
        try:
            usable = cache.verified(sidecar_path(engine), log) and \
                read_sidecar(engine).engine_sha256 == file_sha256(engine)
            reason = "the cached engine no longer matches the checksum it was built with (damaged)"
        except DrcnError as exc:  # an unreadable sidecar is a cache miss: the engine is rebuilt below
            usable, reason = False, f"the cached engine's sidecar is unreadable ({exc})"
        if usable:
            log(f"using the cached engine {engine}")
            return engine
        engine.unlink(missing_ok=True)
        sidecar_path(engine).unlink(missing_ok=True)
    else:
        reason = "no cached engine for these settings"
        previous = EngineKey.read(last)
        if previous is not None and previous != key:
            reason = "changed since the last build: " + "; ".join(key.changes_from(previous))
    log(f"building a TensorRT engine for {onnx.name} ({reason})")
    build_engine(BuildRequest(onnx=onnx, engine=engine, fp16=precision == "fp16", tile=tile, batch=batch,
                              max_size=max_size, flavour=key.flavour), log)
    cache.seal(sidecar_path(engine))
    atomic.write_text(last, json.dumps(dataclasses.asdict(key), sort_keys=True))
    return engine

