"""Long videos in segments that survive a kill: plan, work folder, parts, join.

A video is cut into consecutive segments of its frames (about ``--segment`` seconds each, at an input keyframe where
one is near). Each segment is decoded from the keyframe at or before its first frame (earlier frames decoded and
dropped), upscaled, and encoded into a part file of its own in a hidden work folder beside the output
(``.<output name>.parts/``), written atomically, with a record of its frames and first/last timestamps and a checksum.
Every part starts with a keyframe of a fresh encoder with the same settings, so the parts join by stream copy: the
join writes their video packets (decode timestamps made continuous) and every other stream of the input, copied
whole, into the output through a temporary file, then removes the work folder.

The work folder's manifest records the input's identity (size, modification time, checksums of its first and last
MiB, stream layout) and every setting that changes pixels or bits; a rerun with the same ones continues at the first
unfinished segment, and one with any other starts over, saying which setting changed. A part whose checksum does not
match its record (damaged, truncated) is redone, never joined.

A video whose frames cannot be found by timestamp (two frames share one, or packets carry none) is cut by position
instead: segment k holds the k-th run of frames in the decoder's output order, and is found by decoding from the
start (a local run decodes once, forward across every segment; a Ray worker decodes from the start to its segment).
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

from drcn.atomic import atomic_output, remove_stale_temps
from drcn.errors import DrcnError
from drcn.runtime.media.av_support import copy_other_streams, load_av, reason, warn_dropped
from drcn.runtime.media.timeline import Timeline

SEGMENT_SECONDS = 10.0
MANIFEST_VERSION = 2
KEYFRAME_REACH = 0.5     # a boundary moves to a keyframe up to this share of a segment later (less decoding waste)


@dataclasses.dataclass(frozen=True)
class Segment:
    index: int
    start: int              # its first frame: pts (the stream's time base), or position in output order (ordered)
    end: int | None         # the next segment's first frame, the same way; None: the last segment
    frames: int             # frames it holds
    keyframe: bool          # it starts at an input keyframe (else its first frames cost extra decoding)
    ordered: bool = False   # start/end are positions in the decoder's output order, not timestamps

    def holds(self, frame_pts: int | None, position: int) -> bool:
        key = position if self.ordered else frame_pts
        return key is not None and self.start <= key and (self.end is None or key < self.end)

    def before(self, frame_pts: int | None, position: int) -> bool:
        key = position if self.ordered else frame_pts
        return key is not None and key < self.start


def plan(timeline: Timeline, seconds: float) -> list[Segment]:
    """Consecutive segments of about ``seconds`` each, covering every frame once."""
    if timeline.ordered:
        return _plan_ordered(timeline, seconds)
    pts, step = timeline.pts, seconds / timeline.time_base
    starts = [0]
    while True:
        target = pts[starts[-1]] + step
        i = next((j for j in range(starts[-1] + 1, len(pts)) if pts[j] >= target), None)
        if i is None:
            break
        reach = pts[i] + KEYFRAME_REACH * step
        key = next((j for j in range(i, len(pts)) if pts[j] > reach or pts[j] in timeline.keyframes), None)
        if key is not None and pts[key] in timeline.keyframes:
            i = key
        starts.append(i)
    if len(starts) > 1 and pts[-1] - pts[starts[-1]] < 0.25 * step:
        starts.pop()        # a tail of a few frames joins the segment before it
    segments = []
    for n, first in enumerate(starts):
        last = starts[n + 1] if n + 1 < len(starts) else len(pts)
        segments.append(Segment(n, pts[first], pts[last] if last < len(pts) else None, last - first,
                                pts[first] in timeline.keyframes))
    return segments


def _plan_ordered(timeline: Timeline, seconds: float) -> list[Segment]:
    """Segments by position in output order: ``seconds`` at the stream's average rate (25 where unknown)."""
    total, size = timeline.packets, max(1, round(seconds * (timeline.rate or 25.0)))
    starts = list(range(0, total, size))
    if len(starts) > 1 and total - starts[-1] < 0.25 * size:
        starts.pop()
    return [Segment(n, first, starts[n + 1] if n + 1 < len(starts) else None,
                    (starts[n + 1] if n + 1 < len(starts) else total) - first, n == 0, ordered=True)
            for n, first in enumerate(starts)]


def input_identity(path: Path, layout: list[str]) -> dict:
    """What says the input is the same file: size, modification time, first and last MiB, stream layout."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        if stat.st_size > 1 << 20:
            handle.seek(max(1 << 20, stat.st_size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ends_sha256": digest.hexdigest(), "streams": layout}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class WorkLock:
    """An exclusive lock (flock) on a file, released by :meth:`release` or when the process ends, however it ends."""

    def __init__(self, path: Path, output: Path):
        import fcntl

        self.path = path
        while True:
            handle = open(path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise DrcnError(f"{output}: another run is writing it now (its lock {path.name} is held); wait for "
                                "it to end, or write another output") from None
            try:
                same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:          # else the holder before us removed the file as we opened it: lock the new one
                break
            handle.close()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)
            self._handle.close()
            self._handle = None


class WorkFolder:
    """``.<output name>.parts/`` beside the output: ``manifest.json``, ``part-NNNNN<suffix>`` and their records."""

    def __init__(self, output: Path):
        self.output = output
        self.path = output.parent / f".{output.name}.parts"

    def part(self, index: int) -> Path:
        return self.path / f"part-{index:05d}{self.output.suffix}"

    def _record(self, index: int) -> Path:
        return self.path / f"part-{index:05d}.json"

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def lock(self) -> "WorkLock":
        """Hold ``.<output name>.lock`` beside the output for this run: a second run writing the same output (another
        drcn-run, a job picked up twice) is refused in one line instead of writing into the same parts."""
        return WorkLock(self.output.parent / f".{self.output.name}.lock", self.output)

    def open(self, manifest: dict, overwrite: bool, log: Callable[[str], None]) -> None:
        """Start, continue or start over: an existing folder with another manifest is removed, saying why."""
        path = self.path / "manifest.json"
        if self.path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError):
                old = None
            changed = _what_changed(old, manifest)
            if overwrite or changed:
                log(f"{self.output.name}: starting over ({'--overwrite' if overwrite else changed}); the "
                    f"{len(list(self.path.glob('part-*.json')))} finished segment(s) of the earlier run are removed")
                self.remove()
        self.path.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with atomic_output(path) as tmp:
                tmp.write_text(json.dumps(manifest, indent=1))

    def done(self, segment: Segment) -> bool:
        """Whether ``segment``'s part is complete: its record is of this segment and the file matches it (size,
        checksum); a segment none of whose frames decoded has a record and no part."""
        saved = self.record(segment)
        if saved is None:
            return False
        part = self.part(segment.index)
        if not saved["frames"]:
            return not part.exists()
        return part.exists() and part.stat().st_size == saved.get("bytes") and _sha256(part) == saved.get("sha256")

    def record(self, segment: Segment) -> dict | None:
        """What was recorded of ``segment``'s part: its frames, their pts (None where a frame had none), bytes,
        checksum; None without a record of this very segment."""
        try:
            saved = json.loads(self._record(segment.index).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(saved, dict) or saved.get("segment") != dataclasses.asdict(segment):
            return None
        return saved

    def finish(self, segment: Segment, decoded: list[int | None]) -> None:
        """Record ``segment``'s part (already in place): the pts of the frames it holds, in order."""
        # A damaged stream's decoder may give more frames than its packets (a lost frame's timestamp reused): they
        # are written, as one pass writes them.
        part = self.part(segment.index)
        record = {"segment": dataclasses.asdict(segment), "frames": len(decoded), "pts": decoded,
                  "bytes": part.stat().st_size if decoded else 0, "sha256": _sha256(part) if decoded else None}
        with atomic_output(self._record(segment.index)) as tmp:
            tmp.write_text(json.dumps(record))

    def claim(self, segment: Segment) -> "WorkLock | None":
        """Hold ``segment`` for this process (another process helping with the same video takes others), or None
        where another holds it; released when done, or when the holder ends however it ends."""
        try:
            return WorkLock(self.path / f".part-{segment.index:05d}.lock", self.output)
        except (DrcnError, FileNotFoundError):
            return None

    def sweep(self, segment: Segment) -> None:
        """Remove what a killed run left of ``segment``: its temporaries and an unrecorded or damaged part."""
        remove_stale_temps(self.part(segment.index))
        remove_stale_temps(self._record(segment.index))
        self.part(segment.index).unlink(missing_ok=True)
        self._record(segment.index).unlink(missing_ok=True)


def _what_changed(old: dict | None, new: dict) -> str | None:
    if not isinstance(old, dict) or old.get("version") != new["version"]:
        return "the work folder is from another drcn version or unreadable"
    if old.get("input") != new["input"]:
        return "the input file changed"
    for key, value in new["settings"].items():
        if old.get("settings", {}).get(key) != value:
            return f"{key} changed from {old.get('settings', {}).get(key)!r} to {value!r}"
    if old.get("segments") != new["segments"]:
        return "the segment plan changed"
    return None


def check_disk(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DrcnError(f"{what}: about {needed / 2**30:.1f} GiB are needed for its parts and the output, and "
                        f"{folder} has {free / 2**30:.1f} GiB free")


def join(parts: list[Path], source, output: Path, expected: int, log: Callable[[str], None] = lambda _: None) -> None:
    """Join the parts' video stream with every other stream of ``source`` (a :class:`VideoSource`) into ``output``,
    by stream copy. The output is renamed into place only when it holds ``expected`` video packets."""
    av = load_av()
    timing = _video_timing(parts)
    with atomic_output(output) as tmp:
        out = av.open(str(tmp), "w")
        try:
            inputs = [av.open(str(p)) for p in parts]
            template = inputs[0].streams.video[0]
            video = out.add_stream_from_template(template)
            video.metadata.update(template.metadata)
            display = source.info.display
            if display is not None:
                try:
                    video.set_display_matrix(list(display.matrix))
                except (AttributeError, ValueError):
                    pass
            copies, dropped = copy_other_streams(out, source)
            warn_dropped(dropped, output.suffix, log)
            written = 0
            for _, _, _, packet, stream in heapq.merge(_video_packets(inputs, timing),
                                                       _other_packets(source, copies), key=lambda item: item[:3]):
                packet.stream = stream if stream is not None else video
                out.mux(packet)
                written += stream is None
                if written == expected // 2 and stream is None:
                    _pause_for_tests()
            for container in inputs:
                container.close()
            out.close()
        except av.error.FFmpegError as exc:
            out.close()
            raise DrcnError(f"{output}: cannot join its segments ({reason(exc)})") from None
        if written != expected:
            raise DrcnError(f"{output}: the joined video has {written} frames where its parts recorded {expected}; "
                            "the parts are kept, nothing is written")


def _pause_for_tests() -> None:
    """Halfway through a join, sleep ``$DRCN_TEST_PAUSE_IN_JOIN`` seconds (unset: not at all), so that a test can
    kill a run inside its join and not merely near it."""
    import os
    import time

    seconds = os.environ.get("DRCN_TEST_PAUSE_IN_JOIN")
    if seconds:
        time.sleep(float(seconds))


def _video_timing(parts: list[Path]) -> tuple[list[int], int]:
    """(every video packet's pts across the parts, sorted; the encoder's reordering delay in packets)."""
    av = load_av()
    pts, delay = [], 0
    for part in parts:
        with av.open(str(part)) as container:
            packets = [(p.pts, p.dts) for p in container.demux(container.streams.video[0]) if p.size]
        first = min(p for p, _ in packets)
        # Matroska stores no decode timestamps: its demuxer leaves the first reordered packets without one.
        delay = max(delay, sum(1 for _, d in packets if d is None or d < first))
        pts += [p for p, _ in packets]
    return sorted(pts), delay


def _video_packets(inputs, timing) -> Iterator[tuple]:
    """The parts' video packets in decode order, their decode timestamps continuous across the joins: packet j
    decodes at the j-delay-th presentation time (what one encoder run gives), the first ``delay`` as encoded."""
    order, delay = timing
    j = 0
    for container in inputs:
        stream = container.streams.video[0]
        base = float(stream.time_base)
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if j >= delay:
                packet.dts = order[j - delay]
            if packet.dts is not None and packet.pts is not None and packet.dts > packet.pts:
                raise DrcnError("the segments cannot be joined: a frame would decode after it is shown")
            j += 1
            yield (packet.dts if packet.dts is not None else packet.pts) * base, 0, j, packet, None


def _other_packets(source, copies: dict) -> Iterator[tuple]:
    """Every packet of the input's other streams, as they are, in the input's order."""
    if not copies:
        return
    streams = [s for s in source.others if s.index in copies]
    for n, packet in enumerate(source.container.demux(*streams)):
        if packet.dts is None:
            continue
        yield packet.dts * float(packet.time_base), 1, n, packet, copies[packet.stream.index]


def estimate_bytes(source_bytes: int, frames: int, out_size: tuple[int, int], lossless: bool, scale: float) -> int:
    """A generous estimate of the output's size (and of all its parts together): lossless about 3 bytes per output
    pixel, else the input's size times the area ratio."""
    pixels = frames * out_size[0] * out_size[1]
    return pixels * 3 if lossless else int(source_bytes * scale * scale)
