"""argparse ``type=`` validators shared by every command: each rejects bad input with a one-line reason."""

from __future__ import annotations

import argparse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def scale(text: str) -> float:
    """An upscaling factor > 1 (finite)."""
    value = _finite(text)
    if not value > 1.0:
        raise argparse.ArgumentTypeError(f"scale must be greater than 1, got {text}")
    return value


def scales(text: str) -> tuple[float, ...]:
    """Comma-separated upscaling factors, e.g. '2,3,4'."""
    return tuple(scale(t) for t in text.split(","))


def weights(text: str) -> tuple[float, ...]:
    """Comma-separated non-negative weights with a positive sum, e.g. '2,1,1'."""
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. 2,1,1")
    if any(not (v >= 0 and v < float("inf")) for v in values) or sum(values) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': weights must be finite, >= 0 and not all 0")
    return values


def dims(form: str, example: str):
    """A validator for positive integers joined by 'x' in ``form``, e.g. dims("HxW", "1080x1920")."""
    count = len(form.split("x"))

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.lower().split("x"))
        except ValueError:
            values = ()
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"'{text}' is not {form}, e.g. {example}")
        if min(values) < 1:
            raise argparse.ArgumentTypeError(f"'{text}': every dimension must be positive")
        return values

    return parse


def names(text: str) -> list[str]:
    """Comma-separated names, e.g. 'onnxruntime,torch' (at least one)."""
    values = [t.strip() for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give at least one name")
    return values


def positive_ints(text: str) -> list[int]:
    """Comma-separated integers >= 1, e.g. '128,256'."""
    return [positive_int(t) for t in text.split(",")]


def frame_sizes(text: str) -> list[tuple[int, int]]:
    """Comma-separated WxH frame sizes, or 'none'; returned as (H, W) pairs."""
    if text.lower() == "none":
        return []
    parse = dims("WxH", "1280x720")
    return [parse(t)[::-1] for t in text.split(",")]


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a size in GiB)."""
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def opset(text: str) -> int:
    """An ONNX opset that PyTorch's exporter writes: 18 or newer."""
    value = _int(text)
    if value < 18:
        raise argparse.ArgumentTypeError(f"PyTorch's ONNX exporter writes opset 18 or newer, got {text}")
    return value


def frame_scale(text: str) -> int:
    """The integer scale of a whole-frame graph: 2, 3 or 4."""
    value = _int(text)
    if value not in (2, 3, 4):
        raise argparse.ArgumentTypeError(f"a whole-frame graph upscales by 2, 3 or 4, got {text}")
    return value


def frame_scales(text: str) -> tuple[int, ...]:
    """One or more integer scales, comma-separated ("2" or "2,3,4"), each 2, 3 or 4."""
    values = tuple(frame_scale(part) for part in text.split(","))
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"a scale given twice in {text}")
    return values


def ensemble_size(text: str) -> int:
    """Transforms of the geometric self-ensemble: 1 (off), 2, 4 or 8 (drcn.ensemble.SUBSETS)."""
    from drcn.ensemble import SUBSETS

    value = _int(text)
    if value not in SUBSETS:
        raise argparse.ArgumentTypeError(f"1 (off), 2, 4 or 8 transforms, got {text}")
    return value


def ensemble_sizes(text: str) -> list[int]:
    """Comma-separated ensemble sizes, e.g. '1,2,4,8' (benchmarks compare them)."""
    return list(dict.fromkeys(ensemble_size(t) for t in text.split(",")))


def memory_size(text: str) -> int:
    """A memory size such as ``8G``, ``512M``, ``1.5GiB`` or a number of bytes (at least 1M) -> bytes."""
    from drcn.errors import DrcnError
    from drcn.memory import parse_size

    try:
        return parse_size(text, "memory size")
    except DrcnError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("memory size ")) from None
