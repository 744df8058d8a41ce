"""A short sample clip made here, no download: a slow pan over scikit-image's astronaut photo with a 440 Hz tone, for
the tutorial, ``drcn-run --make-sample-video`` and ``drcn-bench jobs``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SECONDS, SIZE, FPS = 2.0, (90, 160), 24          # drcn-run --make-sample-video's clip: (height, width)
CONTAINERS = (".mp4", ".mkv", ".mov")


def write_sample_video(path: Path, seconds: float = SECONDS, size: tuple[int, int] = SIZE, fps: int = FPS,
                       audio: bool = True) -> int:
    """Write the clip to ``path`` (its suffix chooses the container, one of :data:`CONTAINERS`): H.264 (yuv420p,
    crf 18) of ``size`` = (height, width), even sides, ``seconds`` at ``fps``, and, with ``audio``, an AAC mono track.
    Returns the frames written. The file appears whole or not at all (written beside it, then renamed)."""
    import av

    from drcn import matlab
    from drcn.atomic import atomic_output
    from drcn.samples import load_sample

    height, width = size
    photo = matlab.imresize(load_sample("astronaut")[:, :, :3], output_shape=(height * 2, width * 2))
    frames = max(1, int(round(seconds * fps)))
    with atomic_output(Path(path)) as tmp:
        with av.open(str(tmp), "w") as out:      # the temporary keeps the suffix: the container
            stream = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            sound = None
            if audio:
                sound = out.add_stream("aac", rate=48000)
                sound.layout = "mono"
            for i in range(frames):
                y, x = (i * height) // frames, (i * width) // frames
                picture = np.ascontiguousarray(photo[y:y + height, x:x + width])
                out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            out.mux(stream.encode(None))
            if sound is not None:
                samples = int(48000 * frames / fps)
                wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
                frame.sample_rate = 48000
                out.mux(sound.encode(frame))
                out.mux(sound.encode(None))
    return frames
