"""Training data: HR folders -> (bicubic input, HR target) Y patches, cached on disk, augmented per batch.

Every patch goes through exactly the evaluation pipeline (``drcn.matlab``): Y as uint8, mod-crop, LR by MATLAB
bicubic shrinking, network input by MATLAB bicubic enlarging. Patches are stored as uint8 (that is what the
pipeline produces) and turned into float32 in [0, 1] per batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from drcn import matlab
from drcn.atomic import atomic_output
from drcn.cache import cache_dir, seal, verified
from drcn.errors import DrcnError
from drcn.images import list_images, read_image
from drcn.patches import PatchSpec, extract_patches
from drcn.progress import Progress

PIPELINE_VERSION = 2  # bump when the patch extraction changes, so old caches are not reused

# Workers start from a fresh interpreter, not a fork: forking a process that has threads (a caller's thread pools, a
# backend's runtime threads) can copy a held lock into the child, which then never runs (seen: an in-process caller
# that had used ONNX Runtime hung here).
_WORKER_START = multiprocessing.get_context("forkserver")


def default_cache_dir() -> Path:
    return cache_dir("patches")


def _cache_key(files: list[Path], spec: PatchSpec) -> str:
    # Names and sizes, not mtimes: the same dataset copied to another machine hits the same cache.
    ident = {"v": PIPELINE_VERSION, "spec": dataclasses.asdict(spec),
             "files": [(f.parent.name, f.name, f.stat().st_size) for f in files]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def _image_patches(path: Path, spec: PatchSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches of one file at every scale of ``spec`` (a top-level function, so worker processes can run it).

    Returns:
        (inputs, targets, scale_ids): (P, size, size) uint8 twice, and (P,) uint8 indices into ``spec.scales``.
    """
    y = matlab.luma(read_image(path))
    pairs = [extract_patches(y, scale, spec) for scale in spec.scales]
    ids = np.concatenate([np.full(len(p[0]), k, np.uint8) for k, p in enumerate(pairs)])
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]), ids


class _InlineExecutor:
    def map(self, fn, *iterables):
        return map(fn, *iterables)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class PatchSet:
    """Patches of one or more HR folders, as uint8 arrays ``inputs``/``targets`` of shape (P, size, size).

    ``scale_ids`` (P,) uint8 says which of ``spec.scales`` each patch was degraded with (all 0 if not given).
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, spec: PatchSpec,
                 scale_ids: np.ndarray | None = None):
        self.inputs, self.targets, self.spec = inputs, targets, spec
        self.scale_ids = np.zeros(len(inputs), np.uint8) if scale_ids is None else scale_ids
        self._by_scale: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def from_folders(cls, folders: list[str | Path], spec: PatchSpec, cache_dir: Path | None = None,
                     show_progress: bool = True) -> "PatchSet":
        files = [f for folder in folders for f in list_images(folder)]
        cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
        cache = cache_dir / f"{_cache_key(files, spec)}.npz"
        if verified(cache):   # sealed when written: damaged patches are extracted again, never trained on
            with np.load(cache) as data:
                return cls(data["inputs"], data["targets"], spec, data["scale_ids"])
        inputs, targets, scale_ids = [], [], []
        workers = min(len(files), os.cpu_count() or 1, 16)
        with Progress("preparing patches", len(files), enabled=None if show_progress else False) as progress, \
                ProcessPoolExecutor(workers, mp_context=_WORKER_START) if workers > 1 else _InlineExecutor() as pool:
            for f, (i, t, k) in zip(files, pool.map(_image_patches, files, [spec] * len(files))):
                if len(i):
                    inputs.append(i)
                    targets.append(t)
                    scale_ids.append(k)
                progress.update(extra=f.name)
        if not inputs:
            raise DrcnError(f"{', '.join(map(str, folders))}: no image is at least {spec.size}x{spec.size} "
                            f"pixels (after mod-crop), so no {spec.size}x{spec.size} patch can be taken")
        patches = cls(np.concatenate(inputs), np.concatenate(targets), spec, np.concatenate(scale_ids))
        with atomic_output(cache) as tmp:
            np.savez(tmp, inputs=patches.inputs, targets=patches.targets, scale_ids=patches.scale_ids)
        seal(cache)
        return patches

    def sample(self, rng: np.random.Generator, n: int, scale_weights: tuple[float, ...] = ()) -> np.ndarray:
        """``n`` random patch indices (with replacement).

        Without ``scale_weights`` every patch is equally likely (so each scale in proportion to its patches);
        with them (one weight per ``spec.scales``), a scale is drawn by its weight, then a patch of that scale.
        """
        if not scale_weights:
            return rng.integers(0, len(self), size=n)
        if len(scale_weights) != len(self.spec.scales):
            raise DrcnError(f"{len(scale_weights)} scale weights for {len(self.spec.scales)} scales "
                            f"{self.spec.scales}: give one weight per scale")
        if self._by_scale is None:
            self._by_scale = [np.flatnonzero(self.scale_ids == k) for k in range(len(self.spec.scales))]
        weights = np.array(scale_weights, np.float64) * [len(ix) > 0 for ix in self._by_scale]
        if weights.sum() <= 0:
            raise DrcnError(f"no patches at any weighted scale of {self.spec.scales}")
        chosen = rng.choice(len(weights), size=n, p=weights / weights.sum())
        out = np.empty(n, np.int64)
        for k, members in enumerate(self._by_scale):
            sel = chosen == k
            if sel.any():  # a scale without patches has weight 0 and is never chosen
                out[sel] = members[rng.integers(0, len(members), size=int(sel.sum()))]
        return out

    def batch(self, indices: np.ndarray, transforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Patches ``indices`` with dihedral ``transforms`` (0..7: rot90 k = t % 4, then flip if t >= 4).

        Returns:
            (inputs, targets): each (N, 1, size, size) float32 in [0, 1].
        """
        x, y = self.inputs[indices], self.targets[indices]
        out_x, out_y = np.empty_like(x), np.empty_like(y)
        for t in range(8):
            sel = transforms == t
            if not sel.any():
                continue
            xs, ys = np.rot90(x[sel], t % 4, axes=(1, 2)), np.rot90(y[sel], t % 4, axes=(1, 2))
            if t >= 4:
                xs, ys = xs[:, :, ::-1], ys[:, :, ::-1]
            out_x[sel], out_y[sel] = xs, ys
        scale = np.float32(1.0 / 255.0)
        return out_x[:, None].astype(np.float32) * scale, out_y[:, None].astype(np.float32) * scale
