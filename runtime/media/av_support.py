"""What every part of the media room needs from PyAV: the module itself (lazily, with FFmpeg's logging off), an
FFmpeg error as one line, a stream's name for messages, and the copy of a source's other streams into an output."""

from __future__ import annotations

from typing import Callable

from drcn.optional import require

INSTALL = "pip install av (or: pip install 'drcn[onnx]')"
# Codecs a muxer holds that FFmpeg's query (PyAV's supported_codecs) does not list: MPEG-TS answers only its
# defaults (mpeg2video, mp2), yet carries H.264, HEVC, AAC and more (checked by tests/runtime/test_video_unusual.py).
EXTRA_CODECS = {"mpegts": {"libx264", "h264", "libx265", "hevc", "aac", "mp3", "ac3", "eac3", "opus",
                           "dvb_subtitle", "dvbsub"}}


def load_av():
    """The ``av`` module, or a one-line error saying how to install it."""
    av = require("av", "reading and writing video", INSTALL)
    # FFmpeg's own log lines (decoder warnings, x264's complaints) would break the one-line error rule: every
    # failure that matters reaches us as an exception with its reason. None, not a level: any level installs PyAV's
    # Python log callback, which takes the GIL inside FFmpeg's decoder threads; freeing a frame-threaded decoder
    # (which joins those threads with the GIL held) then deadlocks whenever one of them logs (PyAV #751).
    av.logging.set_level(None)
    return av


def reason(exc: BaseException) -> str:
    """An FFmpeg (or OS) error as one line."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0] if text else type(exc).__name__


def stream_name(stream) -> str:
    """``#1 audio (aac, eng)``: how messages name a stream."""
    language = stream.metadata.get("language") or stream.language
    return f"#{stream.index} {stream.type} ({stream.codec_context.name}{', ' + language if language else ''})"


def supported_codecs(container) -> set[str]:
    """What an output container can hold, FFmpeg's answer and what it leaves out."""
    return set(container.supported_codecs) | EXTRA_CODECS.get(container.format.name, set())


def copy_other_streams(out, source) -> tuple[dict, list[str]]:
    """Add to ``out`` (an output container) a copy of each of ``source``'s other streams (a :class:`VideoSource`),
    with their metadata and dispositions, and the source's container metadata and chapters.

    Returns ({input stream index: output stream}, names of the streams ``out`` cannot hold)."""
    supported = supported_codecs(out)
    copies, dropped = {}, []
    for other in source.others:
        if other.codec_context.name not in supported:
            dropped.append(stream_name(other))
            continue
        copy = out.add_stream_from_template(other)
        copy.metadata.update(other.metadata)
        copy.disposition = other.disposition
        copies[other.index] = copy
    out.metadata.update(source.container.metadata)
    chapters = source.container.chapters()
    if chapters:
        out.set_chapters(chapters)
    return copies, dropped


def warn_dropped(names: list[str], suffix: str, log: Callable[[str], None]) -> None:
    for name in names:
        log(f"warning: stream {name} cannot go into a '{suffix}' file and is left out (choose .mkv to keep it)")
