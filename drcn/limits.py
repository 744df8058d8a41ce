"""How large an image the toolkit agrees to work on, checked before the work (before decoding, where a header
says the size): a 1 MB PNG can declare 20000 x 20000 pixels, and the float planes of its upscale would need tens of
gigabytes.

Two bounds:

- **pixels**: width x height of a decoded image or video frame, at most :func:`max_pixels` (default a 16K frame,
  15360 x 8640; ``DRCN_MAX_PIXELS`` or ``drcn-run --max-pixels`` change it, 0 lifts it);
- **memory**: the upscale's working memory, estimated from the output size with the bytes per output pixel measured
  on each path (``benchmarks/studies/host_memory.py``; ``tests/runtime/test_colour.py`` holds the host path to
  it), against the memory this machine has available.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

from drcn.errors import DrcnError, OverLimit, ShortNow

ENV = "DRCN_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 15360 * 8640          # a 16K frame: 132,710,400 pixels
# Peak working memory per output pixel, measured with tracemalloc on the Python API (300x400 RGB, ONNX Runtime;
# benchmarks/studies/host_memory.py; before planes were kept on the integer grid the host path took 120):
# host path 54 (x2) / 34 (x4) bytes, device path 39 / 37 bytes; rounded up for the backend's own buffers.
BYTES_PER_OUTPUT_PIXEL = 64


def max_pixels() -> int:
    """The pixel limit in force: ``$DRCN_MAX_PIXELS`` if set (0: no limit), else :data:`DEFAULT_MAX_PIXELS`."""
    text = os.environ.get(ENV)
    if text is None or text.strip() == "":
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text.replace("_", "").replace(",", ""))
        if value < 0:
            raise ValueError
    except ValueError:
        raise DrcnError(f"{ENV}={text!r}: a whole number of pixels >= 0 (0: no limit)") from None
    return value


def check_pixels(width: int, height: int, source: str) -> None:
    """One line naming ``source`` when a ``width`` x ``height`` image is over the pixel limit."""
    limit = max_pixels()
    if limit and width * height > limit:
        raise OverLimit(f"{source}: {width}x{height} is {width * height:,} pixels, over the limit of {limit:,} "
                        f"(--max-pixels or {ENV} raise it)")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def working_memory(out_height: int, out_width: int) -> int:
    """Estimated peak bytes of upscaling to ``out_width`` x ``out_height`` (either path)."""
    return out_height * out_width * BYTES_PER_OUTPUT_PIXEL


def check_memory(out_height: int, out_width: int, source: str) -> None:
    """One line naming ``source`` when upscaling to ``out_width`` x ``out_height`` needs more memory than is
    available now or than the working share of the memory budget (:mod:`drcn.memory`) allows; only where the pixel
    limit is on (``--max-pixels 0`` lifts both)."""
    if not max_pixels():
        return
    from drcn import memory

    needed, free, whole = working_memory(out_height, out_width), available_memory(), memory.budget()
    share = int(whole * memory.WORK_SHARE) if whole else None
    if share is not None and needed > share:
        raise OverLimit(f"{source}: a {out_width}x{out_height} output needs about {needed / 2**30:.1f} GiB of working "
                        f"memory, over the {share / 2**30:.1f} GiB its memory budget of {whole / 2**30:.1f} GiB "
                        f"allows (--memory-budget or {memory.ENV} raise it)")
    if free is not None and needed > free:
        raise ShortNow(f"{source}: a {out_width}x{out_height} output needs about {needed / 2**30:.1f} GiB of working "
                       f"memory and {free / 2**30:.1f} GiB is available now; try again when other work has finished, "
                       "or upscale a smaller image")


def check_image_file(path: str | os.PathLike | BinaryIO, source: str | None = None) -> None:
    """Check the size an image file's header declares against the pixel limit, without decoding its pixels (Pillow
    reads only the header). ``path`` may be an open binary file (an upload held in memory); ``source`` names it in
    errors (default: the path). Pillow's own decompression-bomb guard answers first for the very largest; a header
    Pillow cannot parse is left to OpenCV's decoder, whose own pixel guard (2^30) still holds."""
    source = source or str(path)
    try:
        from PIL import Image
    except ImportError:
        return
    try:
        with Image.open(path) as image:    # lazy: reads the header only
            width, height = image.size
    except Image.DecompressionBombError as exc:
        digits = re.search(r"\((\d+) pixels\)", str(exc))
        pixels, limit = (int(digits.group(1)) if digits else None), max_pixels()
        if limit and (pixels is None or pixels > limit):
            count = f"{pixels:,} pixels" if pixels else "more pixels than Pillow's decompression-bomb guard allows"
            raise OverLimit(f"{source}: its header declares {count}, over the limit of {limit:,} (--max-pixels or "
                            f"{ENV} raise it)") from None
        return
    except Exception:  # noqa: BLE001 - a header Pillow cannot parse: OpenCV's decoder reports it by name
        return
    check_pixels(int(width), int(height), source)
