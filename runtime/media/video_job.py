"""``drcn-run`` on one video: decode (PyAV), upscale every frame through the overlapped pipeline, encode, and
copy every other stream; written to a temporary file and renamed into place only when complete.

A video longer than one segment (``EncodeOptions.segment`` seconds, default 10) goes through
:mod:`drcn.runtime.media.segments`: parts that survive a kill, a rerun that continues at the first unfinished one,
and a join by stream copy. :func:`upscale_segment` is one segment's work, what a Ray worker runs too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Callable

from drcn.errors import DrcnError
from drcn.runtime.media import colour, segments
from drcn.runtime.media.video import EncodeOptions, ResolutionChange, VideoSink, VideoSource
from drcn.runtime.pipeline import FrameStages, Summary, prefetch, run_frames


def upscale_video(source: Path, output: Path, scale: float, stages: FrameStages, options: EncodeOptions,
                  log: Callable[[str], None] = lambda _: None, overwrite: bool = False) -> Summary:
    """Upscale ``source`` into ``output``; returns the run's summary (failed frames by name)."""
    src = VideoSource(source)    # what is refused (no video stream, an unknown codec) is refused here, before any part
    info = src.info
    size = colour.output_size(info.height, info.width, scale)
    sink = VideoSink(output, src, options, size)    # the encoder opens now: a bad codec or option fails before work
    count = f"{info.frames} frames" if info.frames else "frame count unknown"
    log(f"{source.name}: {info.width}x{info.height} {info.codec} {info.pix_fmt} ({info.bit_depth}-bit), {count}; "
        f"RGB via {info.colour.described}")
    log(f"-> {size[1]}x{size[0]} {sink.codec} {sink.pix_fmt}"
        + (f"; copying {', '.join(info.copied)}" if info.copied else "; no other streams"))
    if sink.display_note:
        log(f"{source.name}: {sink.display_note}")
    for name in info.dropped:
        log(f"warning: stream {name} cannot go into a '{output.suffix}' file and is left out (choose .mkv to keep it)")
    pieces = plan_segments(source, options)
    if len(pieces) > 1:
        sink.abort()
        try:
            return _segmented(src, output, scale, stages, options, pieces, size, log, overwrite)
        finally:
            src.container.close()
    try:
        summary = run_frames(prefetch(src.frames(sink.queue_packet), 8), info.frames, stages, sink.write,
                             ordered_writes=True)
    except BaseException:
        sink.abort()
        raise
    sink.commit()
    return summary


def plan_segments(source: Path, options: EncodeOptions) -> list[segments.Segment]:
    """The segments ``source`` is cut into (empty: one pass; a short video is one segment)."""
    if not options.segment:
        return []
    timeline = segments.scan(source)
    return segments.plan(timeline, options.segment) if timeline else []


def pixel_settings(stages: FrameStages, scale: float, options: EncodeOptions, output: Path) -> dict:
    """Every setting that changes the pixels or bits of a part (the work folder's manifest compares them)."""
    settings = {"scale": scale, "container": output.suffix.lower(), **dataclasses.asdict(options)}
    request = getattr(stages, "request", None)
    if request is None:
        return {**settings, "stages": type(stages).__name__}
    from drcn.checksums import file_sha256

    primary = getattr(stages, "primary", None)
    precision = getattr(primary, "precision", None) or getattr(getattr(stages, "spec", None), "precision", None)
    return {**settings, "model": Path(request.model).name, "model_sha256": file_sha256(request.model),
            "backend": request.backend, "precision": precision, "ensemble": request.ensemble, "path": request.path,
            "tile": request.tile}


def upscale_segment(source: Path, segment: segments.Segment, work: segments.WorkFolder, scale: float,
                    stages: FrameStages, options: EncodeOptions) -> Summary:
    """One segment of ``source`` into its part in ``work`` (atomically, with its record)."""
    src = VideoSource(source)
    size = colour.output_size(src.info.height, src.info.width, scale)
    sink = VideoSink(work.part(segment.index), src, options, size, video_only=True)
    seen: list[int] = []

    def write(frame, rgb) -> None:
        sink.write(frame, rgb)
        seen.append(frame.pts)

    try:
        summary = run_frames(prefetch(src.frames(None, (segment.start, segment.end)), 8), segment.frames, stages,
                             write, ordered_writes=True, show_progress=False)
        if summary.failed:
            raise DrcnError(f"{source.name}: segment {segment.index}: {summary.failed[0][0]}: "
                                     f"{summary.failed[0][1]} (--segment 0 writes what decodes in one pass)")
    except BaseException:
        sink.abort()
        raise
    sink.commit()
    work.finish(segment, len(seen), min(seen), max(seen))
    return summary


class SegmentedRun:
    """A video's segments from plan to join: the work folder opened (continued or started over), what is left to
    do, progress as segments finish (here or on Ray workers), and the join."""

    def __init__(self, src: VideoSource, output: Path, options: EncodeOptions, pieces: list[segments.Segment],
                 size: tuple[int, int], settings: dict, log: Callable[[str], None], overwrite: bool):
        source = src.path
        self.src, self.output, self.pieces, self.log = src, output, pieces, log
        self.work = segments.WorkFolder(output)
        layout = [f"{s.index}:{s.type}:{s.codec_context.name}" for s in src.container.streams]
        manifest = {"version": segments.MANIFEST_VERSION, "input": segments.input_identity(source, layout),
                    "settings": settings, "segments": [dataclasses.asdict(p) for p in pieces]}
        self.total = sum(p.frames for p in pieces)
        needed = segments.estimate_bytes(source.stat().st_size, self.total, size, options.codec == "ffv1",
                                         settings["scale"])
        output.parent.mkdir(parents=True, exist_ok=True)
        segments.check_disk(output.parent, needed, str(output))
        self.work.open(manifest, overwrite, log)
        done = [p for p in pieces if self.work.done(p)]
        self.pending = [p for p in pieces if p not in done]
        self.frames_done = sum(p.frames for p in done)
        cold = sum(1 for p in pieces if not p.keyframe)
        log(f"{'resuming ' if done else ''}{source.name}: {len(done)} of {len(pieces)} segments done"
            + (f" ({self.frames_done} of {self.total} frames)" if done else "")
            + f"; segments of about {options.segment:g} s"
            + (f", {cold} starting between keyframes (their first frames decoded from the keyframe before)" if cold
               else ""))
        self.summary = Summary()
        self.start = time.perf_counter()
        self._new_frames = 0

    def finished(self, piece: segments.Segment, part: Summary) -> None:
        """Count a segment done (its part recorded) and say where the run stands."""
        summary = self.summary
        summary.done += part.done
        summary.compute_seconds += part.compute_seconds
        summary.output_pixels += part.output_pixels
        self.frames_done += piece.frames
        self._new_frames += piece.frames
        elapsed = time.perf_counter() - self.start
        rate = self._new_frames / elapsed if elapsed > 0 else 0.0
        left = self.total - self.frames_done
        self.log(f"{self.src.path.name}: segment {piece.index + 1}/{len(self.pieces)} done; {self.frames_done} of "
                 f"{self.total} frames, {rate:.2f} frames/s, ETA {left / rate if rate else 0:.0f} s")

    @contextlib.contextmanager
    def refusing(self):
        """Around the segments' work: a video refused in the middle (its resolution changes) leaves no part."""
        try:
            yield
        except ResolutionChange:
            self.work.remove()
            raise

    def join(self) -> Summary:
        joined = segments.join([self.work.part(p.index) for p in self.pieces], self.src, self.output, self.log)
        if joined != self.total:
            self.output.unlink(missing_ok=True)
            raise DrcnError(f"{self.output}: the joined video has {joined} frames where {self.total} were planned; "
                            "the parts are kept, the output removed")
        self.work.remove()
        self.summary.seconds = time.perf_counter() - self.start
        return self.summary


def _segmented(src: VideoSource, output: Path, scale: float, stages: FrameStages, options: EncodeOptions,
               pieces: list[segments.Segment], size: tuple[int, int], log: Callable[[str], None],
               overwrite: bool) -> Summary:
    run = SegmentedRun(src, output, options, pieces, size, pixel_settings(stages, scale, options, output), log,
                       overwrite)
    with run.refusing():
        for piece in run.pending:
            run.work.sweep(piece)
            run.finished(piece, upscale_segment(src.path, piece, run.work, scale, stages, options))
    return run.join()
