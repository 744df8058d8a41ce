"""An upload checked before it becomes a job: what ``drcn-run`` would refuse of it (not a video, no video stream, an
unknown codec, over the pixel limit, an encoder or option the output cannot take) is refused here with drcn-run's
words, the server's path replaced by the upload's name."""

from __future__ import annotations

from pathlib import Path

from drcn.errors import DrcnError
from drcn.runtime.serve.jobs.options import JobOptions, container_of


def probe(upload: Path, options: JobOptions, name: str) -> tuple[dict, str]:
    """(what the upload holds, the output container) for a received upload; DrcnError (one line naming ``name``)
    where drcn-run would refuse it."""
    from drcn.limits import check_pixels
    from drcn.runtime.media import colour
    from drcn.runtime.media.timeline import scan
    from drcn.runtime.media.video import VideoSink, VideoSource

    try:
        source = VideoSource(upload)
        try:
            info = source.info
            container = options.container or container_of(source.container.format.name, name)
            size = colour.output_size(info.height, info.width, options.scale)
            check_pixels(size[1], size[0], f"{name}: its {size[1]}x{size[0]} output")
            trial = upload.parent / f"{upload.name}.probe.{container}"
            sink = VideoSink(trial, source, options.encode(), size)     # the encoder opens with the options, or not
            sink.abort()
            timeline = scan(upload)
            seconds = float(source.container.duration or 0) / 1e6 or None
        finally:
            source.container.close()
    except DrcnError as exc:
        raise DrcnError(str(exc).replace(str(upload), name)) from None
    if not (timeline.frames or info.frames):
        raise DrcnError(f"{name}: no video frame found in it")
    found = {"codec": info.codec, "width": info.width, "height": info.height, "pix_fmt": info.pix_fmt,
             "frames": timeline.frames or info.frames, "seconds": seconds, "streams": info.copied,
             "output": f"{size[1]}x{size[0]}"}
    return found, container
