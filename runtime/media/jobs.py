"""What ``drcn-run`` reads and writes: a folder of frames, one image, or a video file (decoded and encoded in
:mod:`drcn.runtime.media.video`).

Outputs never overwrite inputs, are written atomically, and existing outputs are skipped (unless asked), so a
killed run simply resumes.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from drcn.atomic import remove_stale_temps
from drcn.errors import DrcnError
from drcn.images import IMAGE_SUFFIXES, read_image, write_image

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".flv", ".mpg",
                  ".mpeg", ".wmv")


@dataclasses.dataclass
class Frame:
    name: str
    load: Callable[[], np.ndarray]     # -> (H, W[, C]) uint8/uint16, RGB(A) order
    target: Path | None = None         # output file, for image outputs
    source: Path | None = None         # input file, for image inputs (what a remote worker reads)
    pts: int | None = None             # video: presentation timestamp, in the stream's time base
    index: int | None = None           # video: position in the decoded sequence
    decoded_pts: int | None = None     # video: the pts as decoded (``pts`` may be a tick later: see VideoSource)


@dataclasses.dataclass
class Job:
    kind: str                          # "folder" | "image" | "video"
    source: Path
    output: Path
    frames: list[Frame] = dataclasses.field(default_factory=list)
    skipped: int = 0                   # outputs that already exist
    videos: list[tuple[Path, Path]] = dataclasses.field(default_factory=list)   # folder: (video, its output)
    notes: list[str] = dataclasses.field(default_factory=list)   # what planning did, to say


def _suffix_tag(scale: float) -> str:
    return f"_x{scale:g}"


def plan_job(source: str | Path, output: str | Path | None, scale: float, overwrite: bool) -> Job:
    """Decide what to read and where to write, and check it all before any work starts."""
    source = Path(source)
    if not source.exists():
        raise DrcnError(f"{source}: no such file or folder")
    if source.is_dir():
        images, videos = list_media(source)
        out = Path(output) if output else source.resolve().parent / f"{source.resolve().name}{_suffix_tag(scale)}"
        if out.resolve() == source.resolve():
            raise DrcnError(f"-o {out}: the output folder may not be the input folder")
        if out.exists() and not out.is_dir():
            raise DrcnError(f"-o {out}: exists and is not a folder")
        job = Job("folder", source, out)
        for f in images:
            target = out / f.name
            if target.exists() and not overwrite:
                job.skipped += 1
                continue
            remove_stale_temps(target)  # what a killed run was writing: it is redone now
            job.frames.append(Frame(f.name, lambda f=f: read_image(f), target, source=f))
        for f in videos:            # each under its own name in the output folder (film.mkv -> <out>/film.mkv)
            target = out / f.name
            if target.exists() and not overwrite:
                job.skipped += 1
                _sweep_finished(target, job)
                continue
            job.videos.append((f, target))
        return job
    suffix = source.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        out = Path(output) if output else source.with_name(f"{source.stem}{_suffix_tag(scale)}{source.suffix}")
        if out.is_dir():
            out = out / source.name
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise DrcnError(f"-o {out}: an image is written as an image (use {', '.join(IMAGE_SUFFIXES)})")
        if out.resolve() == source.resolve():
            raise DrcnError(f"-o {out}: the output may not be the input file")
        job = Job("image", source, out)
        if out.exists() and not overwrite:
            job.skipped = 1
        else:
            # One image: read now, so that a file that is not one is refused in one line before the model opens.
            image = read_image(source)
            job.frames.append(Frame(source.name, lambda: image, out, source=source))
        return job
    if suffix in VIDEO_SUFFIXES:
        name = f"{source.stem}{_suffix_tag(scale)}{source.suffix}"
        out = Path(output) if output else source.with_name(name)
        if out.is_dir() or not out.suffix:  # a folder (created if missing) gets the default name inside
            out = out / name
        if out.suffix.lower() not in VIDEO_SUFFIXES:
            raise DrcnError(f"-o {out}: cannot write '{out.suffix}' videos (use {', '.join(VIDEO_SUFFIXES)})")
        if out.resolve() == source.resolve():
            raise DrcnError(f"-o {out}: the output may not be the input file")
        job = Job("video", source, out)
        if out.exists() and not overwrite:
            job.skipped = 1
            _sweep_finished(out, job)
        return job
    raise DrcnError(f"{source}: not a folder, an image ({', '.join(IMAGE_SUFFIXES)}) or a video "
                    f"({', '.join(VIDEO_SUFFIXES)})")


def list_media(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, videos) directly inside ``folder``, each sorted by name; one line if there is neither. Hidden files
    (a killed run's temporaries, work folders) are not inputs."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in entries if p.suffix.lower() in VIDEO_SUFFIXES]
    if not images and not videos:
        raise DrcnError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) or videos ({', '.join(VIDEO_SUFFIXES)}) "
                        "in this folder")
    return images, videos


def _sweep_finished(output: Path, job: Job) -> None:
    """A video output in place with its work folder still beside it (a run killed between the rename and the
    folder's removal): the folder goes, said in a note."""
    from drcn.runtime.media.segments import WorkFolder

    folder = WorkFolder(output)
    if folder.path.is_dir():
        try:
            lock = folder.lock()
        except DrcnError:
            return                      # another run is writing this output now: its parts are not left over
        try:
            shutil.rmtree(folder.path, ignore_errors=True)
        finally:
            lock.release()
        job.notes.append(f"{output.name} is finished: removed the segments a stopped run left beside it")


def save_frame(frame: Frame, image: np.ndarray) -> None:
    write_image(frame.target, image)
