"""Video in and out with PyAV (FFmpeg bindings whose wheels bundle x264, x265, SVT-AV1, dav1d and libvpx).

Nothing is lost: every audio, subtitle and data stream is copied packet by packet (never re-encoded) into the
output, container and stream metadata and chapters are kept, and every video frame keeps its presentation
timestamp (a variable frame rate stays variable), so the output has exactly the input's frames at the input's
times. Sample aspect ratio and the colour tags (matrix, primaries, transfer, range) are carried over; frames are
converted to RGB with the input's own matrix and range (said out loud), and back with the same, so the Y the
network sees is the BT.601 Y of the true RGB, as for still images. Video deeper than 8 bits is decoded to 16-bit
RGB and goes through the 16-bit path. A stream the output container cannot hold is reported by name.

Unusual videos are kept or refused, never silently wrong: a display rotation (display matrix) is carried to the
output, or the frames are turned upright where the output container cannot carry it (said); further video streams
(another angle, cover art) are copied as they are, not upscaled (said); a video whose resolution changes mid-stream
is refused at the frame where it changes, with nothing written, because one encoded stream has one size.
"""

from __future__ import annotations

import collections
import dataclasses
import struct
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from drcn.atomic import atomic_output
from drcn.errors import DrcnError
from drcn.limits import check_pixels
from drcn.runtime.media.av_support import load_av as _av, reason as _reason, stream_name, supported_codecs
from drcn.runtime.media.av_support import copy_other_streams
from drcn.runtime.media.jobs import Frame

# Quality option and default per encoder (lower = better for all of these); None: lossless, no quality knob.
QUALITY = {"libx264": ("crf", 18), "libx265": ("crf", 20), "libsvtav1": ("crf", 30), "libvpx-vp9": ("crf", 28),
           "h264_nvenc": ("cq", 19), "hevc_nvenc": ("cq", 21), "av1_nvenc": ("cq", 28), "ffv1": None}
DEFAULT_CODECS = ("libx264", "libsvtav1", "libvpx-vp9", "ffv1")   # the first the output container can hold
# Muxers that store a display matrix (checked by writing one and reading it back); others lose it (MPEG-TS, AVI).
DISPLAY_MATRIX_FORMATS = ("mov", "mp4", "ipod", "3gp", "3g2", "matroska", "webm")
# Slice threads only, never frame threads: a frame-threaded decoder conceals damage differently from run to run, so one
# pass, segments and a resume wrote different pixels around a damaged packet (tests/runtime/test_paths_agree.py,
# seed 9136). One decoding thread per video still outruns the network by far on these paths.
DECODE_THREADS = "SLICE"
# Checked here because libx264/libx265 print a bad preset straight to stderr before FFmpeg sees the error.
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


class ResolutionChange(DrcnError):
    """The video's frames change size mid-stream: refused, nothing written (one encoded stream has one size)."""


@dataclasses.dataclass(frozen=True)
class EncodeOptions:
    codec: str | None = None       # default: libx264, or the first of DEFAULT_CODECS the container holds
    crf: float | None = None       # default: QUALITY's
    pix_fmt: str | None = None     # default: the input's where the codec takes it, else 8- or 10-bit 4:2:0
    preset: str | None = None      # the encoder's own preset names (x264/x265: medium, slow, ...)
    segment: float = 10.0          # seconds of video per segment (drcn.runtime.media.segments); 0: one pass


@dataclasses.dataclass(frozen=True)
class ColourTags:
    """What the stream says about its colour, kept on the output; ``matrix`` decides the RGB conversion."""

    matrix: int          # AVColorSpace
    range: int           # AVColorRange (1 limited/MPEG, 2 full/JPEG)
    primaries: int
    transfer: int
    described: str       # e.g. "BT.709 limited range (from the stream)"


_MATRIX_NAMES = {1: "BT.709", 5: "BT.601", 6: "BT.601", 9: "BT.2020", 10: "BT.2020"}


def colour_tags(stream) -> ColourTags:
    """The stream's colour description; an unspecified matrix is taken as BT.709 for HD (height >= 720) and
    BT.601 below, and an unspecified range as limited, as players do."""
    ctx = stream.codec_context
    matrix, rng = int(ctx.colorspace), int(ctx.color_range)
    origin = "from the stream"
    if matrix in (0, 2):  # RGB / unspecified
        matrix = 1 if ctx.height >= 720 else 6
        origin = "unspecified: assumed from the frame height"
    if rng == 0:
        rng = 1
    name = _MATRIX_NAMES.get(matrix, f"matrix {matrix}")
    return ColourTags(matrix, rng, int(ctx.color_primaries), int(ctx.color_trc),
                      f"{name} {'full' if rng == 2 else 'limited'} range ({origin})")


def _swscale_colorspace(matrix: int) -> int:
    """swscale's SWS_CS_* value for an AVColorSpace (they differ for BT.601 and BT.2020)."""
    return {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}.get(matrix, 5)


@dataclasses.dataclass
class VideoInfo:
    width: int
    height: int
    frames: int            # from the container, or estimated from its duration; 0 if unknown
    bit_depth: int
    pix_fmt: str
    codec: str
    colour: ColourTags
    copied: list[str]      # the other streams, by name, copied as they are
    dropped: list[str]     # streams the output container cannot hold (filled in by VideoSink)
    display: "DisplayTransform | None" = None   # the display matrix of the first frame, if any


@dataclasses.dataclass(frozen=True)
class DisplayTransform:
    """A video's display matrix: how players turn the decoded picture before showing it."""

    matrix: tuple[int, ...]    # the 9 numbers of FFmpeg's display matrix (16.16 fixed point; 2.30 in the last column)
    degrees: int | None        # counter-clockwise quarter turns applied first (0, 90, 180, 270); None: not a multiple
    hflip: bool                # then mirrored left to right

    @classmethod
    def of_matrix(cls, matrix: tuple[int, ...]) -> "DisplayTransform":
        turn = tuple(matrix[:2]) + tuple(matrix[3:5])     # the 2x2 part; the rest is translation and scale
        for degrees in (0, 90, 180, 270):
            for hflip in (False, True):
                candidate = _display_matrix(degrees, hflip)
                if candidate[:2] + candidate[3:5] == turn:
                    return cls(tuple(matrix), degrees, hflip)
        return cls(tuple(matrix), None, False)

    @property
    def identity(self) -> bool:
        return self.degrees == 0 and not self.hflip

    def describe(self) -> str:
        if self.degrees is None:
            return "a display matrix that is not a quarter turn"
        turn = f"rotated {self.degrees}° counter-clockwise" if self.degrees else "not rotated"
        return turn + (", mirrored" if self.hflip else "")

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) as decoded -> as a player shows it."""
        turned = np.rot90(image, self.degrees // 90)
        return np.ascontiguousarray(turned[:, ::-1] if self.hflip else turned)

    def shown_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of a decoded frame -> (H, W) as shown."""
        return (size[1], size[0]) if self.degrees in (90, 270) else size


def _display_matrix(degrees: int, hflip: bool) -> tuple[int, ...]:
    """FFmpeg's av_display_rotation_set(-degrees) then av_display_matrix_flip(hflip): what PyAV's
    ``set_display_rotation(degrees, hflip)`` writes."""
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    one = 1 << 16
    matrix = [cos * one, -sin * one, 0, sin * one, cos * one, 0, 0, 0, 1 << 30]
    if hflip:
        for index in (0, 3, 6):
            matrix[index] = -matrix[index]
    return tuple(matrix)


def _display_of(frame) -> DisplayTransform | None:
    found = frame.side_data or ()
    # PyAV 18.1.1 made side_data a mapping (Type -> SideData); before, iterating it gave the SideData themselves.
    for side in (found.values() if hasattr(found, "values") else found):
        if side.type.name == "DISPLAYMATRIX" and side.buffer_size >= 36:
            transform = DisplayTransform.of_matrix(struct.unpack("=9i", bytes(side)[:36]))
            return None if transform.identity else transform
    return None


def _first_frame(path: Path, index: int) -> tuple[int, int, DisplayTransform | None] | None:
    """(width, height, display matrix) of the first decodable frame of video stream ``index`` (a separate, short
    read): the stream header may describe a later part of a video whose resolution changes."""
    av = _av()
    try:
        with av.open(str(path)) as probe:
            for frame in probe.decode(probe.streams[index]):
                return frame.width, frame.height, _display_of(frame)
    except (av.error.FFmpegError, OSError):
        return None   # the main read reports the damage where it is
    return None


class VideoSource:
    """An input video: its first video stream decoded to RGB frames, everything else handed on as packets."""

    def __init__(self, path: Path):
        av = _av()
        self.path = path
        try:
            self.container = av.open(str(path))
        except (av.error.FFmpegError, OSError) as exc:
            raise DrcnError(f"{path}: not a video FFmpeg can read ({_reason(exc)})") from None
        if not self.container.streams.video:
            kinds = ", ".join(s.type for s in self.container.streams) or "no streams"
            self.container.close()
            raise DrcnError(f"{path}: has no video stream ({kinds})")
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        if ctx.format is None or not ctx.width:
            self.container.close()
            raise DrcnError(f"{path}: cannot decode its video stream (codec '{ctx.name}' unknown to this FFmpeg, or "
                            "the stream is broken)")
        try:
            check_pixels(ctx.width, ctx.height, f"{path}: video stream #{self.stream.index}")
        except DrcnError:
            self.container.close()
            raise
        self.stream.thread_type = DECODE_THREADS
        self.time_base = self.stream.time_base     # kept: a closed container's streams refuse every attribute
        # Every other stream is copied as it is: further video streams (another angle, cover art) too, not upscaled.
        self.others = [s for s in self.container.streams if s.index != self.stream.index
                       and s.type in ("audio", "subtitle", "data", "attachment", "video")]
        depth = max(c.bits for c in ctx.format.components)
        names = [stream_name(s) + (" as it is, not upscaled" if s.type == "video" else "") for s in self.others]
        width, height, display = _first_frame(path, self.stream.index) or (ctx.width, ctx.height, None)
        self.info = VideoInfo(width, height, self._count(), depth, ctx.format.name, ctx.name,
                              colour_tags(self.stream), names, [], display)

    def _count(self) -> int:
        if self.stream.frames:
            return int(self.stream.frames)
        rate = self.stream.average_rate or self.stream.guessed_rate
        if self.container.duration and rate:
            return int(round(self.container.duration / 1e6 * float(rate)))
        return 0

    def frames(self, on_packet: Callable[[object, int], None] | None, span=None) -> Iterator[Frame]:
        """Decoded video frames, in presentation order; every other stream's packet goes to ``on_packet(packet,
        frames_so_far)`` (None: the video stream alone is read). A packet that cannot be decoded, or a read that fails part-way, yields no frame: what is
        missing is found afterwards by comparing :attr:`decoded` (the pts of every frame yielded) with the file's
        :class:`~drcn.runtime.media.timeline.Timeline`. (demux ends with an empty packet per stream, whose decoding
        flushes the decoder's delayed frames.)

        ``span`` (a :class:`~drcn.runtime.media.segments.Segment`, or anything with its ``start``, ``end`` and
        ``ordered``): only the frames it holds (end None: to the last). By timestamp, decoded from the keyframe at or
        before ``start`` (the frames before it decoded and dropped); by position (``ordered``), decoded from the
        start. The other streams are not read (``on_packet`` None).

        The container stays open until the caller closes it (``container.close()``) after the last frame is
        converted: frames are converted later, on the pipeline's threads, and a damaged stream's last frames may
        still point into the decoder's buffers."""
        self.decoded: list[int | None] = []     # every yielded frame's pts as decoded
        self.moved = 0                           # frames moved a tick later (they shared a timestamp)
        self._last_pts: int | None = None
        if span is not None:
            if span.ordered:
                yield from self._positions(span.start, span.end)
            else:
                yield from self._span(span.start, span.end)
            return
        av = _av()
        converter = self._loader
        count = 0
        try:
            for packet in self.container.demux(self.stream, *(self.others if on_packet else ())):
                if packet.stream.index != self.stream.index:
                    if packet.dts is not None:
                        on_packet(packet, count)
                    continue
                for frame in self._decoded(packet):
                    self._check_size(frame, count)
                    yield self._frame(frame, count, converter(frame))
                    count += 1
        except av.error.FFmpegError:
            pass    # cut short or corrupt from here on: the timeline's audit says how much is missing

    def _decoded(self, packet) -> list:
        """The frames one packet gives; none where the decoder refuses it (the audit finds its frame missing)."""
        av = _av()
        try:
            return packet.decode()
        except av.error.FFmpegError:
            return []

    def _check_size(self, frame, position: int | None) -> None:
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            at = f" (frame {position})" if position is not None else ""
            raise ResolutionChange(
                f"{self.path}: the video changes resolution at t={_seconds(frame.pts, frame.time_base)}{at}, from "
                f"{self.info.width}x{self.info.height} to {frame.width}x{frame.height}; one output stream has one "
                "size, so nothing is written: split the video where it changes and upscale each part")

    def _loader(self, frame) -> Callable[[], np.ndarray]:
        """The decoded frame as (H, W, 3) RGB, uint8 or uint16 (deep video), with the stream's matrix and range.

        Converted now, on the decoding thread, not later on the pipeline's: a frame the decoder made while concealing
        damage may share a buffer it goes on writing, and a late conversion then read other pixels on each path
        (found by tests/runtime/test_paths_agree.py)."""
        fmt, colour = ("rgb48le" if self.info.bit_depth > 8 else "rgb24"), self.info.colour

        rgb = frame.reformat(format=fmt, src_colorspace=_swscale_colorspace(colour.matrix),
                             src_color_range=colour.range, interpolation="BICUBIC").to_ndarray()

        def load() -> np.ndarray:
            return rgb
        return load

    def _span(self, start: int, end: int | None) -> Iterator[Frame]:
        av = _av()
        base = float(self.stream.time_base or 0) or 1.0
        back = 0.0          # seconds before ``start`` to seek to; None: from the beginning, no seek
        count = 0
        try:
            while True:
                if back is not None:
                    # backward: a keyframe at or before the target (an open GOP's leading frames decode from the one
                    # before). Containers without an index (MPEG-TS) seek by byte estimate and may land after it.
                    self.container.seek(int(start - back / base), backward=True, any_frame=False, stream=self.stream)
                overshot = back is not None      # until a frame at or before ``start`` shows the seek was right
                for frame in self._decode_from_here():
                    if frame.pts is None:
                        continue
                    if overshot and count == 0:
                        if frame.pts > start:
                            break            # the seek landed after the segment's first frame: seek earlier
                        overshot = False
                    if frame.pts < start:
                        continue
                    if end is not None and frame.pts >= end:
                        return
                    self._check_size(frame, None)
                    yield self._frame(frame, count, self._loader(frame))
                    count += 1
                if not overshot:
                    return
                back = None if back >= 16 else max(1.0, 4 * back)   # or nothing decoded there at all
                self._reopen()
        except av.error.FFmpegError:
            return   # cut short or corrupt from here on: the audit of the whole run says what is missing

    def _positions(self, start: int, end: int | None) -> Iterator[Frame]:
        """The frames at positions start <= n < end of the decoder's output, decoding from the beginning."""
        av = _av()
        position = 0
        try:
            for frame in self._decode_from_here():
                if end is not None and position >= end:
                    return
                if position >= start:
                    self._check_size(frame, position)
                    yield self._frame(frame, position, self._loader(frame))
                position += 1
        except av.error.FFmpegError:
            return

    def _decode_from_here(self) -> Iterator:
        """The video stream's frames, decoded from the container's position (undecodable packets skipped)."""
        for packet in self.container.demux(self.stream):
            yield from self._decoded(packet)

    def _reopen(self) -> None:
        av = _av()
        index = self.stream.index
        self.container.close()
        self.container = av.open(str(self.path))
        self.stream = self.container.streams[index]
        self.stream.thread_type = DECODE_THREADS

    def _frame(self, frame, index: int, load) -> Frame:
        self.decoded.append(frame.pts)
        pts = frame.pts
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            # One encoded stream needs rising timestamps: a frame sharing its predecessor's moves one tick later. The
            # same on every path, since frames found by position are always decoded from the start.
            pts = self._last_pts + 1
            self.moved += 1
        self._last_pts = pts if pts is not None else self._last_pts
        return Frame(f"frame {index} (t={_seconds(pts, frame.time_base)})", load, pts=pts, index=index,
                     decoded_pts=frame.pts)



def _seconds(pts, time_base) -> str:
    return f"{float(pts * time_base):.3f}s" if pts is not None and time_base else "?"


def _check_even(pix_fmt: str, size: tuple[int, int]) -> None:
    """4:2:0 holds only even heights and widths, 4:2:2 only even widths: say so before any work."""
    height, width = size
    if ("420" in pix_fmt and (width % 2 or height % 2)) or ("422" in pix_fmt and width % 2):
        raise DrcnError(f"{width}x{height} output frames: {pix_fmt} cannot hold odd sizes (its chroma is subsampled); "
                        "use --pix-fmt yuv444p, or a scale that gives even sizes")


class VideoSink:
    """The output video, written to a temporary file and renamed into place by ``commit()``.

    Frames arrive in order through ``write`` (from the pipeline's writer thread); the other streams' packets
    through ``queue_packet`` (from the decoding thread) and are muxed between the frames they came between.
    """

    def __init__(self, path: Path, source: VideoSource, options: EncodeOptions, out_size: tuple[int, int],
                 video_only: bool = False):
        """``video_only``: the upscaled stream alone (a segment's part; :mod:`.segments` joins the rest)."""
        av = _av()
        self.path, self.source, self.video_only = path, source, video_only
        self._context = atomic_output(path)
        self._tmp = self._context.__enter__()
        try:
            self.container = av.open(str(self._tmp), "w")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._context.__exit__(DrcnError, DrcnError("aborted"), None)
            raise DrcnError(f"{path}: cannot write a '{path.suffix}' video ({_reason(exc)})") from None
        try:
            self._setup(av, source, options, out_size)
        except BaseException:
            self.abort()
            raise
        self._pending: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.frames_written = 0

    def _setup(self, av, source: VideoSource, options: EncodeOptions, out_size: tuple[int, int]) -> None:
        fmt = self.container.format.name
        supported = supported_codecs(self.container)
        display = source.info.display
        self.turn: DisplayTransform | None = None
        self.display_note = None
        if display is not None:
            if fmt in DISPLAY_MATRIX_FORMATS:
                self.display_note = f"display matrix kept ({display.describe()})"
            elif display.degrees is None:
                raise DrcnError(f"{source.path}: its display matrix ({display.describe()}) cannot be stored in a "
                                f"'{self.path.suffix}' file nor applied as quarter turns: write .mp4, .mov or .mkv")
            else:
                self.turn = display
                out_size = display.shown_size(out_size)
                self.display_note = (f"frames turned upright ({display.describe()}): a '{self.path.suffix}' file "
                                     "cannot carry a display matrix")
        codec = options.codec or next((c for c in DEFAULT_CODECS if c in supported and c in av.codecs_available),
                                      None)
        if codec is None or codec not in av.codecs_available:
            raise DrcnError(f"--codec {options.codec or 'default'}: not an encoder this FFmpeg has (try libx264, "
                            "libx265, libsvtav1, ffv1)")
        if codec not in supported:
            raise DrcnError(f"--codec {codec}: a '{self.path.suffix}' file cannot hold it (choose another codec or "
                            "container)")
        encoder = av.Codec(codec, "w")
        formats = [f.name for f in encoder.video_formats or []]
        deep = source.info.bit_depth > 8
        pix_fmt = options.pix_fmt
        if pix_fmt is None:
            pix_fmt = next((f for f in (source.info.pix_fmt, "yuv420p10le" if deep else "yuv420p", "yuv420p")
                            if f in formats or not formats), formats[0] if formats else "yuv420p")
        elif formats and pix_fmt not in formats:
            raise DrcnError(f"--pix-fmt {pix_fmt}: {codec} takes {', '.join(formats[:12])}")
        self.pix_fmt = pix_fmt
        _check_even(pix_fmt, out_size)
        self.deep_output = max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8
        src = source.stream
        rate = src.average_rate or src.guessed_rate or 25
        stream = self.container.add_stream(codec, rate=rate)
        stream.width, stream.height = out_size[1], out_size[0]
        stream.pix_fmt = pix_fmt
        if display is not None and self.turn is None:
            stream.set_display_matrix(list(display.matrix))   # written with the header, before the first frame
        stream.time_base = src.time_base
        # Frames keep the input's timestamps in the input's time base. Some muxers choose their own stream time base
        # when the header is written (MPEG-TS: 1/90000), so frames say which time base their pts are in.
        self.frame_time_base = src.time_base
        ctx = stream.codec_context
        ctx.time_base = src.time_base
        ctx.framerate = rate
        if src.codec_context.sample_aspect_ratio:
            ctx.sample_aspect_ratio = src.codec_context.sample_aspect_ratio
        tags = source.info.colour
        ctx.colorspace, ctx.color_range = tags.matrix, tags.range
        ctx.color_primaries, ctx.color_trc = tags.primaries, tags.transfer
        quality = QUALITY.get(codec)
        opts = {}
        if quality:
            opts[quality[0]] = f"{options.crf if options.crf is not None else quality[1]:g}"
            if codec == "libvpx-vp9":
                opts["b"] = "0"  # constant quality mode
        elif options.crf is not None:
            raise DrcnError(f"--crf: {codec} is lossless and takes no quality setting")
        if options.preset:
            if codec in ("libx264", "libx265") and options.preset not in X26X_PRESETS:
                raise DrcnError(f"--preset {options.preset}: {codec} presets are {', '.join(X26X_PRESETS)}")
            opts["preset"] = options.preset
        ctx.options = opts
        try:  # open now: an encoder that cannot run here (NVENC without its GPU, a bad option) fails before any work
            ctx.open()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            settings = ", ".join(f"{k}={v}" for k, v in opts.items())
            raise DrcnError(f"--codec {codec}: the encoder cannot start here with {settings or 'its defaults'} "
                            f"({_reason(exc)})") from None
        stream.metadata.update({k: v for k, v in src.metadata.items() if k.lower() in ("language", "title")})
        self.video, self.codec = stream, codec
        self.copies = {}
        if self.video_only:
            return
        self.copies, dropped = copy_other_streams(self.container, source)
        source.info.dropped.extend(dropped)

    def queue_packet(self, packet, before_frame: int) -> None:
        """Hold ``packet`` (another stream's) until the frame it came before has been written."""
        index = packet.stream.index  # read now: the input's streams are gone once its container closes
        if index in self.copies:
            with self._lock:
                self._pending.append((before_frame, index, packet))

    def _mux_pending(self, up_to: int | None) -> None:
        while True:
            with self._lock:
                if not self._pending or (up_to is not None and self._pending[0][0] > up_to):
                    return
                _, index, packet = self._pending.popleft()
            packet.stream = self.copies[index]
            self.container.mux(packet)

    def write(self, frame: Frame, rgb: np.ndarray) -> None:
        """Encode one upscaled frame, (H, W, 3) uint8 or uint16 RGB, at the input frame's timestamp."""
        av = _av()
        self._mux_pending(frame.index)
        if self.turn is not None:
            rgb = self.turn.apply(rgb)
        fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        if rgb.dtype == np.uint8 and self.deep_output:
            rgb, fmt = rgb.astype(np.uint16) * 257, "rgb48le"
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
        tags = self.source.info.colour
        picture = picture.reformat(format=self.pix_fmt, dst_colorspace=_swscale_colorspace(tags.matrix),
                                   dst_color_range=tags.range, interpolation="BICUBIC")
        pts = frame.pts
        if pts is None:  # some containers carry no timestamps: place the frame by its index and the frame rate
            pts = round(frame.index / float(self.video.codec_context.framerate) / self.frame_time_base)
        picture.pts, picture.time_base = pts, self.frame_time_base
        try:
            packets = self.video.encode(picture)
        except av.error.FFmpegError as exc:
            raise DrcnError(f"{self.path}: the {self.codec} encoder failed ({_reason(exc)})") from None
        self.container.mux(packets)
        self.frames_written += 1

    def commit(self) -> None:
        if not self.frames_written:
            self.abort()
            raise DrcnError(f"{self.source.path}: no frame could be decoded, nothing written")
        av = _av()
        try:
            self.container.mux(self.video.encode(None))
            self._mux_pending(None)
            self.container.close()
        except av.error.FFmpegError as exc:
            self.abort()
            raise DrcnError(f"{self.path}: cannot finish the video ({_reason(exc)})") from None
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # already failing: closing a broken muxer must not hide the first error
            pass
        try:
            self._context.__exit__(DrcnError, DrcnError("aborted"), None)
        except DrcnError:
            pass
