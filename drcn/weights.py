"""Weight files: safetensors with the model config inside, so loading can never execute code.

A weights file holds the tensors of a :class:`drcn.model.DRCN` state dict and, in its safetensors metadata,
``drcn.config`` (the :class:`ModelConfig` JSON) plus free-form provenance (``drcn.*`` keys). Reading the config
needs no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from drcn import bounded_json
from drcn.atomic import atomic_output
from drcn.config import ModelConfig
from drcn.errors import DrcnError, backend_reason
from drcn.optional import require

CONFIG_KEY = "drcn.config"
DEFAULT_WEIGHTS_NAME = "drcn_f64_d9.safetensors"
_INSTALL_HINT = "pip install 'drcn[torch]' (or: pip install safetensors)"


def default_weights_path() -> Path:
    """The shipped model: $DRCN_WEIGHTS if set, else the package data ``drcn.shipped`` (the repository's
    ``weights/`` folder, installed with the package; its ONNX export sits beside it)."""
    env = os.environ.get("DRCN_WEIGHTS")
    if env:
        return Path(env)
    from importlib import resources

    return Path(str(resources.files("drcn.shipped") / DEFAULT_WEIGHTS_NAME))


def resolve_weights(path: str | os.PathLike | None) -> Path:
    """``path`` or the shipped default; a one-line error when the file is missing."""
    resolved = Path(path) if path else default_weights_path()
    if not resolved.is_file():
        if path:
            raise DrcnError(f"{resolved}: no such weights file")
        raise DrcnError(f"no weights given and the shipped model {resolved} is missing: pass --weights FILE")
    return resolved


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors header metadata (strings), without loading any tensor or importing torch."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if size <= 0 or size > 100_000_000:
                raise ValueError("bad header size")
            header = bounded_json.loads(fh.read(size), f"{path}: its safetensors header")
            file_size = os.fstat(fh.fileno()).st_size
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError) as exc:
        raise DrcnError(f"{path}: not a safetensors weights file ({exc})") from None
    _check_complete(path, header, file_size - 8 - size)
    return dict(header.get("__metadata__") or {})


def _check_complete(path: Path, header: dict, data_bytes: int) -> None:
    """A file cut short (a half-copied download) keeps its header: compare what the header promises with what is
    there, so the error is drcn's one line rather than safetensors' 'incomplete metadata'."""
    try:
        needed = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        raise DrcnError(f"{path}: not a safetensors weights file (its tensor table is malformed)") from None
    if data_bytes < needed:
        raise DrcnError(f"{path}: the weights file is cut short ({data_bytes:,} of {needed:,} tensor bytes); "
                        "copy or download it again")


def read_config(path: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` stored in a weights file."""
    meta = read_metadata(path)
    if CONFIG_KEY not in meta:
        raise DrcnError(f"{path}: weights file has no '{CONFIG_KEY}' metadata; was it written by drcn?")
    return ModelConfig.from_json(meta[CONFIG_KEY])


def save_weights(path: str | os.PathLike, model, extra: dict[str, str] | None = None) -> None:
    """Write ``model``'s state dict and config to ``path`` atomically (temporary file, then rename)."""
    st = require("safetensors.torch", "saving weights", _INSTALL_HINT)
    path = Path(path)
    metadata = {CONFIG_KEY: model.config.to_json()}
    metadata.update({f"drcn.{k}": str(v) for k, v in (extra or {}).items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:
        st.save_file(tensors, str(tmp), metadata=metadata)


def load_model(path: str | os.PathLike | None = None, device: str = "cpu"):
    """Build a :class:`drcn.model.DRCN` from a weights file (default: the shipped model), in eval mode."""
    require("torch", "the PyTorch model", "pip install 'drcn[torch]'")
    st = require("safetensors.torch", "loading weights", _INSTALL_HINT)
    from drcn.model import DRCN

    path = resolve_weights(path)
    config = read_config(path)
    model = DRCN(config)
    from safetensors import SafetensorError

    try:
        state = st.load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise DrcnError(f"{path}: cannot read the weights ({backend_reason(exc)})") from None
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise DrcnError(f"{path}: tensors do not match the DRCN model "
                        f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DrcnError(f"{path}: tensor shapes do not match its config: {str(exc).splitlines()[-1]}") from None
    return model.to(device).eval()
