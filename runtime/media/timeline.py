"""What a video's container says is there, read without decoding, and what a run's decoded frames lack of it.

:func:`scan` demuxes every packet (no decoding: seconds for an hour of video) into a :class:`Timeline`: the video
stream's presentation timestamps and keyframes, the frames or seconds the container declares, and the places where
its demuxer skipped bytes it could not parse (damage) while the timestamps jump. Segments are cut from it
(:mod:`.segments`), and after a run, one pass or segmented alike, :meth:`Timeline.losses` names what did not decode:
frames the container or the timestamps say are there, how many, how many seconds, and where.
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
from pathlib import Path

from drcn.runtime.media.av_support import load_av, reason

# A jump in the demuxer's byte position larger than this (plus a share of the packet before) means it skipped bytes
# it could not parse. Between two packets of Matroska, MP4 or WebM lie a few header bytes; MPEG-TS and -PS split
# every packet into 188-byte cells with headers, padding and tables between them: (bytes, share) per kind.
SKIP_LIMITS = {"cells": (1024, 0.05), "packets": (256, 0.01)}
CELL_FORMATS = ("mpegts", "mpeg", "mpegps", "vob")
SHOWN_RUNS = 4          # places named in a loss message; the rest counted


@dataclasses.dataclass(frozen=True)
class Gap:
    """Frames the timestamps say are missing where the demuxer skipped damaged bytes (no packet to decode)."""

    after: int              # pts of the last frame before the gap
    before: int             # pts of the first frame after it
    frames: int             # frames that would fill it at the stream's frame interval


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The video stream's frames as its packets and container declare them.

    ``pts`` holds one entry per video packet that carries a timestamp, sorted (duplicates kept); ``ordered``
    says why frames cannot be found by timestamp (duplicates, packets without one) and must be counted in decode
    order instead, None where they can."""

    pts: list[int]
    keyframes: set[int]
    time_base: float        # seconds per pts unit (1.0 where the stream has none)
    packets: int            # video packets read, with or without a timestamp
    declared: int           # frames the container indexes (MP4, MOV); 0: it does not say
    declared_seconds: float | None   # the video stream's length where the container says (Matroska, WebM)
    start: int              # the stream's first pts (0 where unknown)
    rate: float             # frames per second: from the usual step between timestamps, else as the stream says; 0: unknown
    gaps: tuple[Gap, ...] = ()
    read_error: str | None = None    # why reading stopped before the end of the file, if it did
    ordered: str | None = None
    cut: str | None = None           # why the file looks cut short where it declares no length (MPEG-TS), if it does

    @property
    def frames(self) -> int:
        """Frames the input holds by its own account: what it declares, or what its packets and gaps make."""
        return max(self.declared, self.packets + sum(g.frames for g in self.gaps))

    def seconds(self, pts: int) -> float:
        return pts * self.time_base

    def losses(self, decoded: list[int | None]) -> str | None:
        """What the file declares and ``decoded`` (the pts of every frame a run decoded and wrote, None for a frame
        without one) lacks, as one sentence naming how many frames, about how many seconds and where; None when
        nothing is missing."""
        runs: list[tuple[str, int]] = []          # (where, frames) in stream order
        missing = 0
        have = collections.Counter(p for p in decoded if p is not None)
        if self.ordered is None:
            lost = self._undecoded(have)
            missing += sum(count for _, _, count in lost)
            runs += [(f"t={self._span(first, last)}", count) for first, last, count in lost]
        else:
            short = self.packets - len(decoded)
            if short > 0:
                missing += short
                runs.append((f"{short} of {self.packets} packets did not decode", short))
        for gap in self.gaps:
            missing += gap.frames
            runs.append((f"t={self._span(gap.after, gap.before)} (damaged bytes skipped)", gap.frames))
        tail = self._tail()
        if tail:
            missing += tail[1]
            runs.append(tail)
        if self.cut and not tail:
            last = f"t={self.seconds(self.pts[-1]):.3f}s" if self.pts else "its start"
            said = (f"the file is cut short after {last} ({self.cut}; how many frames followed is unknown, and its "
                    "last frame may be damaged)")
            if not missing:
                return f"{said}; the frames that decoded are written"
            runs.append((said, 0))
        if not missing:
            return None
        seconds = f" (about {missing / self.rate:.2f} s)" if self.rate else ""
        runs.sort(key=lambda run: run[0].startswith("after"))
        named = "; ".join(f"{where}: {count}" if count else where for where, count in runs[:SHOWN_RUNS])
        more = f"; and {len(runs) - SHOWN_RUNS} more places" if len(runs) > SHOWN_RUNS else ""
        return (f"{missing} of the {len(decoded) + missing} frames the file declares did not decode{seconds}: "
                f"{named}{more}; the frames that decoded are written")

    def _undecoded(self, have: collections.Counter) -> list[tuple[int, int, int]]:
        """Runs of consecutive packets (in presentation order) with no decoded frame: (first pts, last pts, count)."""
        left = collections.Counter(have)
        runs: list[list[int]] = []
        previous_missing = False
        for pts in self.pts:
            if left[pts] > 0:
                left[pts] -= 1
                previous_missing = False
                continue
            if previous_missing:
                runs[-1][1], runs[-1][2] = pts, runs[-1][2] + 1
            else:
                runs.append([pts, pts, 1])
            previous_missing = True
        return [tuple(run) for run in runs]

    def _tail(self) -> tuple[str, int] | None:
        """Frames the container declares after the last packet that could be read (a file cut short)."""
        last = f"after t={self.seconds(self.pts[-1]):.3f}s" if self.pts else "from the start"
        if self.declared:
            short = self.declared - self.packets
            return (f"{last}, where the file is cut short", short) if short > 0 else None
        if self.declared_seconds is None or not self.rate:
            return None
        reached = self.seconds(self.pts[-1] - self.start) + 1 / self.rate if self.pts else 0.0
        lost = self.declared_seconds - reached
        if lost <= 1.5 / self.rate:
            return None
        return (f"{last}, where the file is cut short (the last {lost:.2f} s of its {self.declared_seconds:.2f} s, "
                "frames counted at its average rate)", round(lost * self.rate))

    def _span(self, first: int, last: int) -> str:
        a, b = self.seconds(first), self.seconds(last)
        return f"{a:.3f}s" if first == last else f"{a:.3f}-{b:.3f}s"


def scan(path: Path) -> Timeline:
    """Read every packet of ``path`` (no decoding). A read that fails part-way keeps what was read before, with the
    reason (the run reports the frames beyond it as missing). Raises nothing for damage; the caller has already
    opened the file as a :class:`VideoSource`, which refuses what cannot be read at all."""
    av = load_av()
    pts: list[int] = []
    keys: set[int] = set()
    positions: list[tuple[int, int, int | None]] = []     # (byte position, size, video pts or None)
    packets, without, error = 0, 0, None
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        return Timeline([], set(), 1.0, 0, 0, None, 0, 0.0, (), reason(exc), "it cannot be read")
    with container:
        stream = container.streams.video[0]
        time_base = float(stream.time_base or 0) or 1.0
        try:
            for packet in container.demux():
                if not packet.size:
                    continue
                video = packet.stream.index == stream.index
                if packet.pos is not None and packet.pos >= 0:
                    positions.append((packet.pos, packet.size, packet.pts if video else None))
                if not video:
                    continue
                packets += 1
                if packet.pts is None:
                    without += 1
                    continue
                pts.append(int(packet.pts))
                if packet.is_keyframe:
                    keys.add(int(packet.pts))
        except (av.error.FFmpegError, OSError) as exc:
            error = reason(exc)
        declared = int(stream.frames or 0)
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        seconds = _declared_seconds(stream, container)
        start = int(stream.start_time or 0)
        container_format = container.format.name
    pts.sort()
    ordered = None
    if without:
        ordered = f"{without} of its {packets} video packets carry no timestamp"
    elif len(set(pts)) != len(pts):
        ordered = f"{len(pts) - len(set(pts))} of its {len(pts)} frames share a timestamp with another"
    elif not pts:
        ordered = "no video packet carries a timestamp"
    interval = _usual_step(pts)
    if interval:
        rate = 1 / (interval * time_base)     # the stream's own average may count duplicates or a long still
    limits = SKIP_LIMITS["cells" if set(container_format.split(",")) & set(CELL_FORMATS) else "packets"]
    gaps = () if without else tuple(_gaps(pts, positions, limits))
    return Timeline(pts, keys, time_base, packets, declared, seconds, start, rate, gaps, error, ordered,
                    _cut_transport_stream(path, container_format))


TS_PACKETS = (188, 192, 204)    # MPEG-TS, M2TS (a 4-byte timestamp before each), and TS with Reed-Solomon bytes


def _cut_transport_stream(path: Path, container_format: str) -> str | None:
    """An MPEG-TS file declares neither its length nor its frames, but it is made of whole packets: one whose size is
    no multiple of any packet size ends inside a packet, cut short (one cut exactly at a packet's end cannot be told
    from a whole file)."""
    if "mpegts" not in container_format.split(","):
        return None
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if any(size % packet == 0 for packet in TS_PACKETS):
        return None
    return f"it ends {size % 188} bytes into an MPEG-TS packet"


def _declared_seconds(stream, container) -> float | None:
    """The video stream's declared length in seconds: Matroska's per-stream DURATION tag, else its duration
    (Matroska gives its first stream the whole segment's duration, which may be another stream's length)."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    others = [s for s in container.streams if s.index != stream.index]
    if not others and container.duration:  # with other streams it may be the audio's length
        return container.duration / 1e6
    return None


def _gaps(pts: list[int], positions: list, limits: tuple[int, float]) -> list[Gap]:
    """Frames lost to damage: where the demuxer skipped bytes it could not parse, the timestamps jump by more than
    1.5 frame intervals. In a regular stream (nine steps in ten within half an interval of the usual one) every such
    jump counts once damage is found anywhere (the demuxer may resume a few frames before or after the damage); in an
    irregular one only a jump over skipped bytes does, since a long still frame is no loss there."""
    skipped = _skipped_regions(positions, *limits)
    steps = [b - a for a, b in zip(pts, pts[1:]) if b > a]
    if not skipped or not steps:
        return []
    interval = _usual_step(pts)
    regular = sum(1 for step in steps if 0.5 * interval <= step <= 1.5 * interval) >= 0.9 * len(steps)
    where = {p: pos for pos, _, p in positions if p is not None}
    gaps = []
    for a, b in zip(pts, pts[1:]):
        if b - a <= 1.5 * interval:
            continue
        if not regular:
            if a not in where or b not in where:
                continue
            low, high = sorted((where[a], where[b]))
            if not any(low <= start < high for start, _ in skipped):
                continue
        gaps.append(Gap(a, b, max(1, round((b - a) / interval) - 1)))
    return gaps


def _usual_step(pts: list[int]) -> float:
    """The mean of the steps between timestamps within half of the median step (0: fewer than two frames): exact
    where timestamps are rounded (24 frames/s in milliseconds: steps of 41 and 42)."""
    steps = [b - a for a, b in zip(pts, pts[1:]) if b > a]
    if not steps:
        return 0.0
    median = statistics.median(steps)
    usual = [step for step in steps if 0.5 * median <= step <= 1.5 * median]
    return sum(usual) / len(usual)


def _skipped_regions(positions: list, slack: int, share: float) -> list[tuple[int, int]]:
    """(start, end) byte ranges no packet covers that are too large for container overhead."""
    regions, end, size = [], None, 0
    for pos, length, _ in sorted(positions):
        if end is not None and pos - end > slack + share * size:
            regions.append((end, pos))
        if end is None or pos + length > end:
            end, size = pos + length, length
    return regions
