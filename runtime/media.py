"""What ``drcn-run`` reads and writes: a folder of frames, one image, or a video file.

Outputs never overwrite inputs, are written atomically, and existing outputs are skipped (unless asked), so a
killed run simply resumes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from drcn.atomic import atomic_output
from drcn.errors import DrcnError
from drcn.images import IMAGE_SUFFIXES, list_images, read_image, write_image

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}
VIDEO_SUFFIXES = (*VIDEO_CODECS, ".webm")


@dataclasses.dataclass
class Frame:
    name: str
    load: Callable[[], np.ndarray]     # -> (H, W[, C]) uint8/uint16, RGB(A) order
    target: Path | None = None         # output file, for image outputs


@dataclasses.dataclass
class Job:
    kind: str                          # "folder" | "image" | "video"
    source: Path
    output: Path
    frames: list[Frame] = dataclasses.field(default_factory=list)
    skipped: int = 0                   # outputs that already exist


def _suffix_tag(scale: float) -> str:
    return f"_x{scale:g}"


def plan_job(source: str | Path, output: str | Path | None, scale: float, overwrite: bool) -> Job:
    """Decide what to read and where to write, and check it all before any work starts."""
    source = Path(source)
    if not source.exists():
        raise DrcnError(f"{source}: no such file or folder")
    if source.is_dir():
        files = list_images(source)
        out = Path(output) if output else source.resolve().parent / f"{source.resolve().name}{_suffix_tag(scale)}"
        if out.resolve() == source.resolve():
            raise DrcnError(f"-o {out}: the output folder may not be the input folder")
        if out.exists() and not out.is_dir():
            raise DrcnError(f"-o {out}: exists and is not a folder")
        job = Job("folder", source, out)
        for f in files:
            target = out / f.name
            if target.exists() and not overwrite:
                job.skipped += 1
                continue
            job.frames.append(Frame(f.name, lambda f=f: read_image(f), target))
        return job
    suffix = source.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        out = Path(output) if output else source.with_name(f"{source.stem}{_suffix_tag(scale)}{source.suffix}")
        if out.is_dir():
            out = out / source.name
        if out.resolve() == source.resolve():
            raise DrcnError(f"-o {out}: the output may not be the input file")
        job = Job("image", source, out)
        if out.exists() and not overwrite:
            job.skipped = 1
        else:
            job.frames.append(Frame(source.name, lambda: read_image(source), out))
        return job
    if suffix in VIDEO_SUFFIXES:
        out = Path(output) if output else source.with_name(f"{source.stem}{_suffix_tag(scale)}.mp4")
        if out.is_dir():
            out = out / f"{source.stem}{_suffix_tag(scale)}.mp4"
        if out.suffix.lower() not in VIDEO_CODECS:
            raise DrcnError(f"-o {out}: cannot write '{out.suffix}' videos (use {', '.join(VIDEO_CODECS)})")
        if out.resolve() == source.resolve():
            raise DrcnError(f"-o {out}: the output may not be the input file")
        job = Job("video", source, out)
        if out.exists() and not overwrite:
            job.skipped = 1
        return job
    raise DrcnError(f"{source}: not a folder, an image ({', '.join(IMAGE_SUFFIXES)}) or a video "
                    f"({', '.join(VIDEO_SUFFIXES)})")


class VideoReader:
    """Frames of a video as RGB uint8, in order; ``fps`` and ``count`` (an estimate) from the container."""

    def __init__(self, path: Path):
        import cv2

        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise DrcnError(f"{path}: OpenCV cannot open this video")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        index = 0
        while True:
            ok, frame = self.capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield Frame(f"frame {index}", lambda rgb=rgb: rgb)
            index += 1
        self.capture.release()


class VideoWriter:
    """Writes RGB uint8 frames to a temporary file; ``commit()`` renames it into place."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self._context = atomic_output(path)
        self._tmp = self._context.__enter__()
        self._writer = None

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise DrcnError(f"{self.path}: video frames must be 8-bit RGB, got {rgb.dtype} {rgb.shape}")
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
            if not self._writer.isOpened():
                raise DrcnError(f"{self.path}: OpenCV cannot encode '{self.path.suffix}' video here")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def commit(self) -> None:
        if self._writer is None:
            self.abort()
            raise DrcnError(f"{self.path}: no frame could be decoded, nothing written")
        self._writer.release()
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
        try:
            self._context.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass


def save_frame(frame: Frame, image: np.ndarray) -> None:
    write_image(frame.target, image)
