"""The options of a video job, from the query of ``POST /v1/jobs``: the video options ``drcn-run`` takes, checked with
the same argument types, so that what drcn-run refuses is refused with the same words."""

from __future__ import annotations

import argparse
import dataclasses
import re

from drcn.errors import InvalidArgument

CONTAINERS = {"mkv": "video/x-matroska", "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
# FFmpeg's input format names -> the container a job writes by default ("the input's", as an output suffix chooses);
# an MP4 and a QuickTime file are one format to FFmpeg ("mov,mp4,..."): the upload's name tells them apart
_INPUT_CONTAINERS = (("matroska", "mkv"), ("mp4", "mp4"), ("webm", "webm"), ("mov", "mov"))
NAMES = ("scale", "codec", "crf", "preset", "pix_fmt", "segment", "container")
# the upload's file name (shown in listings; its suffix picks the default container), and a URL told when it ends
EXTRA = ("name", "callback")
# An encoder, preset or pixel format is a name: nothing that could be a path or an option of something else.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}")


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """What a job was asked for (stored in its record; a resumed job must find the same)."""

    scale: float = 2.0
    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    segment: float = 10.0
    container: str | None = None       # mkv, mp4, mov, webm; None: the input's (mkv where it is none of those)

    def encode(self):
        from drcn.runtime.media.video import EncodeOptions

        return EncodeOptions(codec=self.codec, crf=self.crf, pix_fmt=self.pix_fmt, preset=self.preset,
                             segment=self.segment)


def parse(query: dict[str, str]) -> JobOptions:
    """The query's options, each checked as drcn-run's option of the same name; one line naming the first that is
    wrong (an unknown name, a value drcn-run would refuse, a name that looks like a path)."""
    from drcn import argtypes

    unknown = sorted(set(query) - set(NAMES) - set(EXTRA))
    if unknown:
        raise InvalidArgument(f"{unknown[0]}: not an option of a job (options: {', '.join(NAMES)})")
    found: dict = {}

    def checked(name: str, kind):
        try:
            return kind(query[name])
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise InvalidArgument(f"{name} {query[name]!r}: {exc}") from None

    if "scale" in query:
        found["scale"] = checked("scale", argtypes.scale)
    if "crf" in query:
        found["crf"] = checked("crf", argtypes.non_negative_float)
    if "segment" in query:
        found["segment"] = checked("segment", argtypes.non_negative_float)
    for name in ("codec", "preset", "pix_fmt"):
        if name in query:
            if not _NAME.fullmatch(query[name]) or ".." in query[name]:
                raise InvalidArgument(f"{name} {query[name]!r}: a name such as libx264, slow or yuv420p")
            found[name] = query[name]
    if "container" in query:
        container = query["container"].lower().lstrip(".")
        if container not in CONTAINERS:
            raise InvalidArgument(f"container {query['container']!r}: one of {', '.join(CONTAINERS)}")
        found["container"] = container
    return JobOptions(**found)


def upload_name(query: dict[str, str]) -> str:
    """The upload's name as the client gave it (``name``), reduced to a file name; "upload" without one."""
    given = query.get("name", "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return given[:200] if given and given not in (".", "..") else "upload"


def container_of(format_name: str, name: str) -> str:
    """The container a job writes by default: the upload's suffix where it is one of :data:`CONTAINERS`, else the
    one of FFmpeg's format ``format_name`` ("matroska,webm"), else mkv."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in CONTAINERS:
        return suffix
    formats = format_name.split(",")
    for ffmpeg_name, container in _INPUT_CONTAINERS:
        if ffmpeg_name in formats:
            return container
    return "mkv"
