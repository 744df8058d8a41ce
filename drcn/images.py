"""Reading, listing and atomically writing image files (OpenCV underneath, RGB order on our side)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from drcn import atomic
from drcn.errors import DrcnError
from drcn.limits import check_image_file, check_pixels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; a clear error if there are none.

    Every entry named like an image that is not a folder is listed, also a dangling or looping symbolic link, so
    that reading it reports it by name instead of it being skipped without a word."""
    folder = Path(folder)
    if not folder.exists():
        raise DrcnError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DrcnError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise DrcnError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as stored.

    Returns:
        (H, W) for grayscale, (H, W, 3) RGB or (H, W, 4) RGBA; uint8 or uint16 as in the file.

    An image over the pixel limit (:mod:`drcn.limits`) is refused from its header, before it is decoded.
    """
    import cv2

    path = Path(path)
    if path.is_file():
        check_image_file(path)   # the header's size against the pixel limit, before any pixel is decoded
    try:
        data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode also handles non-ASCII paths
    except OSError as exc:
        raise DrcnError(f"{path}: cannot read it ({_unreadable(path, exc)})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DrcnError(f"{path}: cannot decode this file as an image")
    return _as_stored(image, str(path))


def decode_image(data: bytes, source: str) -> np.ndarray:
    """An encoded image held in memory (an upload) -> the array :func:`read_image` gives for the same file; its
    header is checked against the pixel limit before any pixel is decoded. ``source`` names it in errors."""
    import io

    import cv2

    if not data:
        raise DrcnError(f"{source}: empty, not an image")
    check_image_file(io.BytesIO(data), source)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DrcnError(f"{source}: cannot decode this file as an image")
    return _as_stored(image, source)


def _as_stored(image: np.ndarray, source: str) -> np.ndarray:
    """OpenCV's decoded array (BGR order) -> RGB order, one plane as (H, W); the pixel limit checked again for
    formats whose header Pillow cannot read."""
    import cv2

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    check_pixels(image.shape[1], image.shape[0], source)
    if image.dtype not in (np.uint8, np.uint16):
        raise DrcnError(f"{source}: unsupported pixel type {image.dtype} (expected 8- or 16-bit)")
    return image


def encode_image(image: np.ndarray, suffix: str = ".png") -> bytes:
    """(H, W), (H, W, 3) RGB or (H, W, 4) RGBA uint8/uint16 -> the bytes :func:`write_image` writes for a file
    with ``suffix``."""
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise DrcnError(f"OpenCV cannot encode an image of type {image.dtype} as '{suffix}'")
    return encoded.tobytes()


def _unreadable(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if path.is_symlink() and not path.exists():
        return f"a symbolic link to {os.readlink(path)}, which does not exist"
    if isinstance(exc, IsADirectoryError):
        return "a folder, not an image file"
    return exc.strerror or str(exc)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write (H, W), (H, W, 3) RGB or (H, W, 4) RGBA uint8/uint16 to ``path`` atomically.

    The file is encoded in memory and written atomically (:mod:`drcn.atomic`).
    """
    path = Path(path)
    try:
        encoded = encode_image(image, path.suffix or ".png")
    except DrcnError as exc:
        raise DrcnError(f"{path}: {exc}") from None
    atomic.write_bytes(path, encoded)
