"""``drcn-run`` on one video: decode (PyAV), upscale every frame through the overlapped pipeline, encode, and
copy every other stream; written to a temporary file and renamed into place only when complete."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from drcn.runtime.media import colour
from drcn.runtime.pipeline import FrameStages, Summary, prefetch, run_frames
from drcn.runtime.media.video import EncodeOptions, VideoSink, VideoSource


def upscale_video(source: Path, output: Path, scale: float, stages: FrameStages, options: EncodeOptions,
                  log: Callable[[str], None] = lambda _: None) -> Summary:
    """Upscale ``source`` into ``output``; returns the run's summary (failed frames by name)."""
    src = VideoSource(source)
    info = src.info
    size = colour.output_size(info.height, info.width, scale)
    sink = VideoSink(output, src, options, size)
    count = f"{info.frames} frames" if info.frames else "frame count unknown"
    log(f"{source.name}: {info.width}x{info.height} {info.codec} {info.pix_fmt} ({info.bit_depth}-bit), {count}; "
        f"RGB via {info.colour.described}")
    log(f"-> {size[1]}x{size[0]} {sink.codec} {sink.pix_fmt}"
        + (f"; copying {', '.join(info.copied)}" if info.copied else "; no other streams"))
    if sink.display_note:
        log(f"{source.name}: {sink.display_note}")
    for name in info.dropped:
        log(f"warning: stream {name} cannot go into a '{output.suffix}' file and is left out (choose .mkv to keep it)")
    try:
        summary = run_frames(prefetch(src.frames(sink.queue_packet), 8), info.frames, stages, sink.write,
                             ordered_writes=True)
    except BaseException:
        sink.abort()
        raise
    sink.commit()
    return summary
