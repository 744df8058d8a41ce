"""The geometric self-ensemble (the "+" of EDSR+ / RCAN+): run the network on flipped and rotated copies of its input,
undo each transform on the output, and average.

Both the Y network and the whole-frame graph commute with flips and quarter turns (their convolutions see zero
padding on every side; MATLAB's bicubic kernel is symmetric at integer scales; rounding is per pixel), up to float
rounding. Tiled windows keep image edges at window edges under every transform, so the ensemble of each window
equals the ensemble of the whole image: the ensemble wraps a backend's ``run`` and tiling stays exact.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from drcn.errors import DrcnError

# (quarter turns counter-clockwise, then a left-right mirror). 2 and 4 keep the window's shape (no quarter turn),
# so they cost one batch shape; 8 is every element of the square's symmetry group.
SUBSETS: dict[int, tuple[tuple[int, bool], ...]] = {
    1: ((0, False),),
    2: ((0, False), (0, True)),
    4: ((0, False), (0, True), (2, False), (2, True)),
    8: tuple((k, f) for k in range(4) for f in (False, True)),
}


def groups(size: int) -> list[tuple[tuple[int, bool], ...]]:
    """The transforms of ``size`` in the batches one network call can take: those that keep the input's shape
    (no or two quarter turns), then the quarter-turned ones (height and width swapped); the order every
    implementation (numpy, graph, PyTorch) sums them in."""
    transforms = SUBSETS[check_size(size)]
    found = [tuple(t for t in transforms if t[0] % 2 == 0), tuple(t for t in transforms if t[0] % 2)]
    return [g for g in found if g]


def check_size(size: int, option: str = "--ensemble") -> int:
    if size not in SUBSETS:
        raise DrcnError(f"{option} {size}: 1 (off), 2 (mirror), 4 (mirrors and half turn) or 8 (every flip and "
                        "rotation)")
    return size


def forward(x: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """(..., H, W) -> the transformed copy (quarter turns on the last two axes, then a mirror of the last)."""
    y = np.rot90(x, turns, axes=(-2, -1))
    return y[..., ::-1] if mirror else y


def inverse(y: np.ndarray, turns: int, mirror: bool) -> np.ndarray:
    """Undo :func:`forward` on an output (any size along the last two axes: a frame graph's is s times larger)."""
    y = y[..., ::-1] if mirror else y
    return np.rot90(y, -turns, axes=(-2, -1))


def ensemble_run(run: Callable[[np.ndarray], np.ndarray], size: int,
                 max_batch: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` (N, C, h, w) float32 -> (N, C', s·h, s·w), averaged over ``size`` transforms of its input. The
    transforms that keep the shape go to ``run`` together; quarter-turned ones (h and w swapped) apart; calls hold at
    most ``max_batch`` windows where the backend has a limit (a TensorRT profile)."""
    batches = groups(size)
    if size == 1:
        return run

    def averaged(batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        total = None
        for group in batches:
            stacked = np.concatenate([np.ascontiguousarray(forward(batch, *t)) for t in group])
            step = max_batch or len(stacked)
            out = np.concatenate([run(stacked[i:i + step]) for i in range(0, len(stacked), step)])
            for i, t in enumerate(group):
                part = inverse(out[i * n:(i + 1) * n], *t)
                total = part.astype(np.float32, copy=True) if total is None else total + part
        return np.ascontiguousarray(total / np.float32(size))

    return averaged


def ensemble_backend(backend, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`ensemble_run` around ``backend.run``, each call within the batch its profile allows (a TensorRT
    engine's ``spec.max_shape``)."""
    max_shape = backend.spec.max_shape
    return ensemble_run(backend.run, size, max_shape[0] if max_shape else None)
