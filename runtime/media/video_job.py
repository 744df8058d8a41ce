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
from typing import Callable, Iterable, Iterator

from drcn.errors import DrcnError
from drcn.runtime.media import colour, segments
from drcn.runtime.media.av_support import warn_dropped
from drcn.runtime.media.jobs import Frame
from drcn.runtime.media.timeline import Timeline, scan
from drcn.runtime.media.video import EncodeOptions, ResolutionChange, VideoSink, VideoSource
from drcn.runtime.pipeline import FrameStages, Summary, prefetch, run_frames


@dataclasses.dataclass
class VideoProgress:
    """Where a video's run stands, kept up to date by :func:`upscale_video` for a caller that reports it (a server's
    job): counts of the whole video, and what an earlier run had finished when this one picked it up."""

    frames_total: int = 0
    segments_total: int = 0
    segments_done: int = 0
    resumed_segments: int = 0
    resumed_frames: int = 0
    helped_segments: int = 0       # done by another process helping with this run (a server's other replicas)


def upscale_video(source: Path, output: Path, scale: float, stages: FrameStages, options: EncodeOptions,
                  log: Callable[[str], None] = lambda _: None, overwrite: bool = False,
                  progress: VideoProgress | None = None) -> Summary:
    """Upscale ``source`` into ``output``; returns the run's summary (failed frames by name, and in ``lost`` what the
    file declares that did not decode: the rest is written). ``progress``: updated as the run goes."""
    progress = progress if progress is not None else VideoProgress()
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
    timeline = scan(source)
    pieces = plan_segments(timeline, options)
    progress.frames_total = timeline.frames or info.frames or 0
    progress.segments_total = len(pieces)
    if len(pieces) > 1:
        sink.abort()
        if timeline.ordered:
            log(f"{source.name}: its frames cannot be found by timestamp ({timeline.ordered}): segments are cut by "
                "position in decoding order")
        try:
            return _segmented(src, output, scale, stages, options, pieces, size, log, overwrite, timeline, progress)
        finally:
            src.container.close()
    warn_dropped(info.dropped, output.suffix, log)
    try:
        with prefetch(src.frames(sink.queue_packet), 8) as frames:
            summary = run_frames(frames, timeline.frames or info.frames, stages, sink.write, ordered_writes=True)
    except BaseException:
        sink.abort()
        raise
    finally:
        src.container.close()
    sink.commit()
    progress.segments_done = 1
    _say_moved(src, log)
    loss = timeline.losses(src.decoded)
    if loss:
        summary.lost.append(f"{source}: {loss}")
    return summary


def upscale_videos(videos: list[tuple[Path, Path]], scale: float, stages: FrameStages, options: EncodeOptions,
                   log: Callable[[str], None] = lambda _: None, overwrite: bool = False) -> Summary:
    """Every (video, output) of a folder, one after the other; a video refused or failing (one line) is counted
    as a failure by its name and the next one goes on."""
    summary = Summary()
    for number, (source, output) in enumerate(videos, 1):
        log(f"video {number} of {len(videos)}: {source.name} -> {output}")
        try:
            summary.add(upscale_video(source, output, scale, stages, options, log, overwrite))
        except DrcnError as exc:
            summary.failed.append((source.name, str(exc)))
    return summary


def plan_segments(timeline: Timeline, options: EncodeOptions) -> list[segments.Segment]:
    """The segments a video is cut into (empty: one pass; a short video is one segment)."""
    if not options.segment or not timeline.packets:
        return []
    return segments.plan(timeline, options.segment)


def pixel_settings(stages: FrameStages, scale: float, options: EncodeOptions, output: Path) -> dict:
    """Every setting that changes the pixels or bits of a part (the work folder's manifest compares them): the
    precision and path as resolved on this machine (an ``auto`` that chooses otherwise on another CPU starts over)."""
    settings = {"scale": scale, "container": output.suffix.lower(), **dataclasses.asdict(options)}
    request = getattr(stages, "request", None)
    if request is None:
        return {**settings, "stages": type(stages).__name__}
    from drcn.checksums import file_sha256

    primary = getattr(stages, "primary", None)
    precision = (getattr(primary, "pixel_mode", None) or getattr(primary, "precision", None)
                 or getattr(getattr(stages, "spec", None), "precision", None))
    kinds = sorted(getattr(stages, "device_kinds", None) or ())
    return {**settings, "model": Path(request.model).name, "model_sha256": file_sha256(request.model),
            "backend": request.backend, "precision": precision, "ensemble": request.ensemble,
            "path": f"device ({', '.join(kinds)} frames)" if kinds else "host", "tile": request.tile}


def upscale_segment(source: Path, segment: segments.Segment, work: segments.WorkFolder, scale: float,
                    stages: FrameStages, options: EncodeOptions, frames: Iterable[Frame] | None = None) -> Summary:
    """One segment of ``source`` into its part in ``work`` (atomically, with its record of the frames that decoded).
    ``frames``: the segment's decoded frames where the caller decodes forward across segments; else they are
    decoded here from the keyframe before the segment (or from the start, for a segment cut by position)."""
    src = VideoSource(source)
    try:
        size = colour.output_size(src.info.height, src.info.width, scale)
        sink = VideoSink(work.part(segment.index), src, options, size, video_only=True)
        seen: list[int | None] = []

        def write(frame, rgb) -> None:
            sink.write(frame, rgb)
            seen.append(frame.decoded_pts)

        try:
            with prefetch(frames if frames is not None else src.frames(None, segment), 8) as decoded:
                summary = run_frames(decoded, segment.frames, stages, write, ordered_writes=True,
                                     show_progress=False)
            if summary.failed:
                raise DrcnError(f"{source.name}: segment {segment.index}: {summary.failed[0][0]}: "
                                f"{summary.failed[0][1]}")
        except BaseException:
            sink.abort()
            raise
        if seen:
            sink.commit()
        else:
            sink.abort()     # none of its frames decoded: recorded as such, and the audit says so
        work.finish(segment, seen)
        return summary
    finally:
        src.container.close()


class _Forward:
    """One decoder's frames handed out segment by segment (a local run decodes its video once, forward)."""

    def __init__(self, frames: Iterator[Frame]):
        self.frames, self.held = frames, None

    def take(self, piece: segments.Segment) -> Iterator[Frame]:
        while True:
            frame, self.held = (self.held if self.held is not None else next(self.frames, None)), None
            if frame is None:
                return
            if piece.before(frame.pts, frame.index):
                continue        # a finished segment's frame
            if not piece.holds(frame.pts, frame.index):
                self.held = frame
                return
            yield frame


class SegmentedRun:
    """A video's segments from plan to join: the work folder opened (continued or started over), what is left to
    do, progress as segments finish (here or on Ray workers), the join and the audit of what decoded."""

    def __init__(self, src: VideoSource, output: Path, options: EncodeOptions, pieces: list[segments.Segment],
                 size: tuple[int, int], settings: dict, log: Callable[[str], None], overwrite: bool,
                 progress: VideoProgress | None = None):
        source = src.path
        self.src, self.output, self.pieces, self.log = src, output, pieces, log
        self.progress = progress if progress is not None else VideoProgress()
        self.work = segments.WorkFolder(output)
        layout = [f"{s.index}:{s.type}:{s.codec_context.name}" for s in src.container.streams]
        manifest = {"version": segments.MANIFEST_VERSION, "input": segments.input_identity(source, layout),
                    "settings": settings, "segments": [dataclasses.asdict(p) for p in pieces]}
        self.total = sum(p.frames for p in pieces)
        output.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self.work.lock()        # held until close(): one run at a time writes these parts
        try:
            self._open(source, manifest, options, pieces, size, settings, overwrite)
        except BaseException:
            self.close()
            raise

    def _open(self, source: Path, manifest: dict, options: EncodeOptions, pieces: list[segments.Segment],
              size: tuple[int, int], settings: dict, overwrite: bool) -> None:
        output, log = self.output, self.log
        self.work.open(manifest, overwrite, log)
        done = [p for p in pieces if self.work.done(p)]
        self.pending = [p for p in pieces if p not in done]
        self.frames_done = sum(p.frames for p in done)
        self.progress.segments_total = len(pieces)
        self.progress.segments_done = self.progress.resumed_segments = len(done)
        self.progress.resumed_frames = self.frames_done
        # The parts still to write and the output; the finished parts are on the disk already.
        whole = segments.estimate_bytes(source.stat().st_size, self.total, size, options.codec == "ffv1",
                                        settings["scale"])
        left = sum(p.frames for p in self.pending) / max(1, self.total)
        segments.check_disk(output.parent, int(whole * (1 + left)), str(output))
        cold = sum(1 for p in pieces if not p.keyframe)
        log(f"{'resuming ' if done else ''}{source.name}: {len(done)} of {len(pieces)} segments done"
            + (f" ({self.frames_done} of {self.total} frames)" if done else "")
            + f"; segments of about {options.segment:g} s"
            + (f", {cold} starting between keyframes (their first frames decoded from the keyframe before)"
               if cold and not pieces[0].ordered else ""))
        self.summary = Summary()
        self.start = time.perf_counter()
        self._new_frames = 0

    def close(self) -> None:
        """Let another run write this output (the lock also goes when the process ends, however it ends)."""
        self._lock.release()

    def finished(self, piece: segments.Segment, part: Summary) -> None:
        """Count a segment done (its part recorded) and say where the run stands."""
        summary = self.summary
        summary.done += part.done
        summary.compute_seconds += part.compute_seconds
        summary.output_pixels += part.output_pixels
        self.frames_done += piece.frames
        self._new_frames += piece.frames
        self.progress.segments_done += 1
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

    def join(self, timeline: Timeline) -> Summary:
        """Join the parts into the output (renamed into place only when it holds every recorded frame), remove the
        work folder, and say what the file declares that no part holds."""
        records = [self.work.record(p) for p in self.pieces]
        if any(r is None for r in records):
            raise DrcnError(f"{self.output}: a segment's record is missing or damaged; rerun to redo it")
        parts = [self.work.part(p.index) for p, r in zip(self.pieces, records) if r["frames"]]
        if not parts:
            self.work.remove()
            raise DrcnError(f"{self.src.path}: no frame could be decoded, nothing written")
        segments.join(parts, self.src, self.output, sum(r["frames"] for r in records), self.log)
        self.work.remove()
        self.summary.seconds = time.perf_counter() - self.start
        loss = timeline.losses([pts for r in records for pts in r["pts"]])
        if loss:
            self.summary.lost.append(f"{self.src.path}: {loss}")
        return self.summary


def _segmented(src: VideoSource, output: Path, scale: float, stages: FrameStages, options: EncodeOptions,
               pieces: list[segments.Segment], size: tuple[int, int], log: Callable[[str], None],
               overwrite: bool, timeline: Timeline, progress: VideoProgress) -> Summary:
    run = SegmentedRun(src, output, options, pieces, size, pixel_settings(stages, scale, options, output), log,
                       overwrite, progress)
    try:
        return _run_segments(run, src, scale, stages, options, log, timeline)
    finally:
        run.close()


def _run_segments(run: SegmentedRun, src: VideoSource, scale: float, stages: FrameStages, options: EncodeOptions,
                  log: Callable[[str], None], timeline: Timeline) -> Summary:
    with run.refusing():
        if run.pending:
            # One decoder from the first frame, whatever is done already: a damaged stream decodes the same frames as
            # in an uninterrupted run only when decoding starts where that run's did. (Decoding is cheap beside the
            # network; the finished segments' frames are dropped before any conversion.) src's container stays
            # open for the join's other streams.
            decoder = VideoSource(src.path)
            forward = _Forward(decoder.frames(None))
            try:
                left = _claimed_in_turn(run, lambda piece: upscale_segment(src.path, piece, run.work, scale, stages,
                                                                          options, forward.take(piece)))
            finally:
                decoder.container.close()
            _say_moved(decoder, log)
            # Segments a helper held when their turn came (a server's other replicas): done by it, or, where it
            # stopped, here (decoded from the keyframe before, as a helper does).
            while left:
                left = _claimed_in_turn(run, lambda piece: upscale_segment(src.path, piece, run.work, scale, stages,
                                                                          options), left)
                if left:
                    time.sleep(HELPER_POLL_S)
    return run.join(timeline)


HELPER_POLL_S = 0.5


def _take(work: segments.WorkFolder, piece: segments.Segment, finished: Callable[[segments.Segment], bool],
          do: Callable[[segments.Segment], None]) -> str:
    """Do ``piece`` here unless it is ``finished`` or another process holds it: "finished", "held" or "done"."""
    if finished(piece):
        return "finished"
    claim = work.claim(piece)
    if claim is None:
        return "held"
    try:
        if finished(piece):                   # finished by another as we took it
            return "finished"
        work.sweep(piece)
        do(piece)
        return "done"
    finally:
        claim.release()


def _claimed_in_turn(run: "SegmentedRun", work, pieces=None) -> list[segments.Segment]:
    """Do each of ``pieces`` (default: the run's pending ones) that no other process holds or has done, in order;
    count those another process finished; return those another process still holds."""
    held = []
    for piece in run.pending if pieces is None else pieces:
        taken = _take(run.work, piece, run.work.done, lambda piece: run.finished(piece, work(piece)))
        if taken == "finished":
            run.progress.helped_segments += 1
            run.finished(piece, Summary(done=piece.frames))      # a helper's
        elif taken == "held":
            held.append(piece)
    return held


def help_with_segments(source: Path, output: Path, scale: float, stages: FrameStages, options: EncodeOptions,
                       settings: dict, stop: Callable[[], bool] = lambda: False) -> int:
    """Another process's segmented run of ``source`` into ``output`` is under way: take its segments that nobody
    holds, one at a time, each decoded from the keyframe before it, while ``stop()`` is False; the number done. A
    work folder whose settings are not ``settings`` (another model or precision) is left alone. A segment with a
    record counts as finished here without checking its part's checksum (a helper polls; the run that owns the
    video checks every part at its turn and redoes a damaged one)."""
    import json

    work = segments.WorkFolder(output)
    try:
        manifest = json.loads((work.path / "manifest.json").read_text())
    except (OSError, ValueError):
        return 0
    if manifest.get("settings") != settings or manifest.get("version") != segments.MANIFEST_VERSION:
        return 0
    done = 0
    for piece in (segments.Segment(**d) for d in manifest.get("segments", [])):
        if stop():
            break
        taken = _take(work, piece, lambda piece: work.record(piece) is not None,
                      lambda piece: upscale_segment(source, piece, work, scale, stages, options))
        done += taken == "done"
    return done


def _say_moved(src: VideoSource, log: Callable[[str], None]) -> None:
    if getattr(src, "moved", 0):
        log(f"{src.path.name}: {src.moved} frame(s) shared a timestamp with the frame before; each is written one "
            f"tick ({src.time_base} s) later, as one encoded stream needs rising timestamps")
