"""The JSON sidecar beside every TensorRT engine: everything that makes the engine valid, checked on load.

A serialized engine is only valid for the TensorRT flavour and version that built it, on the GPU it was built on
(standard TensorRT) or on the compute capabilities it targets (TensorRT-RTX), and only means what its ONNX meant.
The sidecar records all of that (like vs-mlrt's engine cache key) so that a stale engine is refused with a message
that says to rebuild, never run into a crash or silent garbage. Plain Python: tested on machines without TensorRT.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from drcn import atomic, bounded_json
from drcn.errors import DrcnError
from drcn.runtime.tensorrt.flavour import FLAVOURS, RTX_DEFAULT_TARGETS

FORMAT = 2


@dataclasses.dataclass(frozen=True)
class Profile:
    """One TensorRT optimisation profile for the input tensor, (N, C, H, W) each."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


def plan_profile(tile: int, batch: int, halo: int, channels: int,
                 max_size: tuple[int, int] | None = None) -> Profile:
    """The profile ``drcn-run --tile T --batch B`` needs.

    Tiled runs feed windows of at most tile + 2·halo (tiles are evened out per frame, so smaller windows are
    common: 240x206 for 640x360 at tile 256), so that is the maximum and the optimum for large frames. ``tile == 0`` (whole frames) needs ``max_size`` (H, W).
    """
    assert batch >= 1, "the CLI validates --batch"
    if tile > 0:
        side = tile + 2 * halo
        top = (batch, channels, side, side)
    else:
        if not max_size:
            raise DrcnError("--tile 0 (whole frames) needs --max-size HxW, the largest frame the engine must take")
        top = (batch, channels, *max_size)
    return Profile(min=(1, channels, 1, 1), opt=top, max=top)


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str   # "9.0"


@dataclasses.dataclass(frozen=True)
class EngineSidecar:
    engine_sha256: str
    onnx_file: str            # as given at build time
    onnx_sha256: str
    precision: str            # fp32 | fp16: the engine's arithmetic
    profile: Profile
    tile: int
    batch: int
    halo: int                 # in the graph's input pixels (low-resolution ones for a frame graph)
    channels: int             # of the input
    scales: tuple[float, ...]
    tensorrt_version: str
    gpu: GpuInfo | None       # the GPU the build ran on; None for a GPU-free (TensorRT-RTX) build
    drcn_version: str
    flavour: str = "standard"           # standard | rtx
    targets: tuple[str, ...] = ()       # compute capabilities the engine runs on (rtx); () = the build GPU only
    fp16_source: str | None = None      # fp16 engines: "graph" (an FP16 ONNX), "converted", "builder-flag"
    kind: str = "y"                     # the graph's kind (drcn.frame.KINDS); rgb/gray: whole frames, LR in
    scale: int = 1                      # output pixels per input pixel (the frame graph's scale)
    self_ensemble: int = 1              # flips/rotations the graph averages inside (drcn-export --ensemble)
    format: int = FORMAT

    def rebuild_command(self) -> str:
        parts = ["drcn-trt build", f"--onnx {self.onnx_file}", "--fp16" if self.precision == "fp16" else "",
                 f"--flavour {self.flavour}", f"--tile {self.tile} --batch {self.batch}"]
        if not self.tile:
            parts.append(f"--max-size {self.profile.max[2]}x{self.profile.max[3]}")
        if self.targets and self.targets != RTX_DEFAULT_TARGETS:
            parts.append(f"--compute-capability {','.join(self.targets)}")
        return " ".join(p for p in parts if p)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "sidecar") -> "EngineSidecar":
        try:
            data = bounded_json.loads(text, source, max_bytes=1_000_000)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            data["profile"] = Profile(**{k: tuple(v) for k, v in data["profile"].items()})
            data["gpu"] = GpuInfo(**data["gpu"]) if data.get("gpu") else None
            data["scales"] = tuple(data["scales"])
            data["targets"] = tuple(data.get("targets", ()))
            return cls(**data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DrcnError(f"{source}: not a valid drcn engine sidecar ({exc})") from None


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine)
    atomic.write_text(path, sidecar.to_json())
    return path


def read_sidecar(engine: str | Path) -> EngineSidecar:
    path = sidecar_path(engine)
    if not path.is_file():
        raise DrcnError(f"{engine}: no sidecar {path.name} beside it, so nothing says what this engine was built "
                        "for; rebuild it with drcn-trt build")
    return EngineSidecar.from_json(path.read_text(), str(path))


def mismatches(sidecar: EngineSidecar, *, engine_sha256: str, tensorrt_version: str, gpu: GpuInfo | None,
               onnx_sha256: str | None = None, flavour: str = "standard") -> list[str]:
    """Why this engine must not run here (empty: it may). ``gpu`` None: no GPU to compare (building, info)."""
    problems = []
    if sidecar.engine_sha256 != engine_sha256:
        problems.append("the engine file changed after it was built")
    if sidecar.flavour != flavour:
        problems.append(f"built by the {sidecar.flavour} TensorRT flavour, this is {flavour}")
    elif sidecar.tensorrt_version != tensorrt_version:
        label = FLAVOURS[flavour].label
        problems.append(f"built with {label} {sidecar.tensorrt_version}, this is {label} {tensorrt_version}")
    if gpu is not None and sidecar.targets:
        if gpu.compute_capability not in sidecar.targets:
            problems.append(f"built for compute capabilities {', '.join(sidecar.targets)}, this GPU is {gpu.name} "
                            f"(compute {gpu.compute_capability})")
    elif gpu is not None and (sidecar.gpu is None or sidecar.gpu != gpu):
        built = f"{sidecar.gpu.name} (compute {sidecar.gpu.compute_capability})" if sidecar.gpu else "no GPU"
        problems.append(f"built for {built}, this GPU is {gpu.name} (compute {gpu.compute_capability})")
    if onnx_sha256 is not None and onnx_sha256 != sidecar.onnx_sha256:
        problems.append(f"{sidecar.onnx_file} changed since the engine was built from it")
    return problems


def check_engine(engine: str | Path, sidecar: EngineSidecar, **current) -> None:
    """Raise a one-line error that says to rebuild when :func:`mismatches` finds anything."""
    problems = mismatches(sidecar, **current)
    if problems:
        raise DrcnError(f"{engine} cannot be used here: {'; '.join(problems)}. Rebuild it: "
                        f"{sidecar.rebuild_command()}")
