"""``drcn-run``: upscale a folder of frames, one image, or a video, with exact tiled inference.

    drcn-run --tile 256 video_frames/                 # -> video_frames_x2/, same file names
    drcn-run photo.png --scale 3 -o big.png
    drcn-run clip.mp4 --engine model.engine --tile 256 --batch 8     # audio, subtitles, timestamps kept
    drcn-run clip.mkv -o out/ --codec libx265 --crf 20 --pix-fmt yuv420p10le
    drcn-run --make-samples frames/                   # sample frames made from scikit-image's photos
    drcn-run --make-sample-video clip.mp4             # a 2 s sample clip with audio
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from drcn.argtypes import ensemble_size, memory_size, non_negative_float, non_negative_int, positive_float, positive_int, scale
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-run"


def add_model_arguments(p: ArgumentParser) -> None:
    """The model and backend options drcn-run and drcn-serve share (the same choice, the same words)."""
    m = p.add_argument_group("model (default: model.engine / model.onnx here, else the shipped model)")
    m.add_argument("--engine", help="TensorRT engine (built by drcn-trt build)")
    m.add_argument("--onnx", help="ONNX file (written by drcn-export)")
    m.add_argument("--weights", help="safetensors weights, run by PyTorch")
    m.add_argument("--backend", default="auto",
                   help="auto (TensorRT on a GPU, else OpenVINO on a CPU where installed, else ONNX Runtime), "
                        "tensorrt, openvino, onnxruntime or torch")
    m.add_argument("--device", default="auto", help="PyTorch backend device: auto, cpu, cuda")
    m.add_argument("--precision", default="auto",
                   help="OpenVINO: auto (the fastest of int8/bf16/fp32 that stays within 0.05 dB of fp32 and, per "
                        "pixel, within 12 levels with at most 0.01%% of values more than 4 off; checked once on this "
                        "CPU), fp32, bf16, int8, int8/f32 (INT8, float parts in f32); PyTorch: fp32 (auto), fp16, bf16; "
                        "TensorRT engines built from an ONNX file: fp16 (auto), fp32")
    m.add_argument("--provider", default="auto", help="ONNX Runtime provider: auto, cpu, cuda, tensorrt")
    m.add_argument("--threads", type=positive_int, help="CPU threads for inference (default: the library's)")
    m.add_argument("--mode", default="auto", choices=["auto", "latency", "throughput"],
                   help="OpenVINO: throughput keeps one request per CPU stream in flight (default for folders and "
                        "videos), latency runs one at a time (default for a single image)")
    m.add_argument("--path", default="auto", choices=["auto", "host", "device"],
                   help="device: the whole frame runs on the backend (8-bit RGB/grey, integer scales); host: colour "
                        "and bicubic in numpy, the Y network on the backend; auto (default): device where a frame "
                        "allows")
    m.add_argument("--ensemble", type=ensemble_size, default=1,
                   help="geometric self-ensemble: average the network over 2 (mirror), 4 (mirrors, half turn) or 8 "
                        "(every flip and rotation) transforms of each window, at that many times the compute "
                        "(default 1: off)")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Upscale images, frame folders and videos with DRCN. The network "
                                              "runs on Y; Cb, Cr and alpha are enlarged with MATLAB bicubic.")
    p.add_argument("input", nargs="?", help="a folder of frames, an image file or a video file")
    p.add_argument("-o", "--output", help="output folder (for a folder) or file (default: beside the input, _x2)")
    p.add_argument("--scale", type=scale, default=2.0, help="upscaling factor > 1 (default 2)")
    p.add_argument("--tile", type=non_negative_int, default=256,
                   help="output tile side in pixels; 0 = whole frames (default 256)")
    p.add_argument("--batch", type=positive_int, default=4, help="tiles per inference call (default 4)")
    add_model_arguments(p)
    v = p.add_argument_group("video output (other streams are copied as they are)")
    v.add_argument("--codec", help="video encoder: libx264 (default), libx265, libsvtav1, libvpx-vp9, ffv1 (lossless), "
                                   "h264_nvenc/hevc_nvenc where the GPU allows")
    v.add_argument("--crf", type=non_negative_float, help="quality, lower is better (default: libx264 18, libx265 20, "
                                                          "libsvtav1 30; NVENC: its cq)")
    v.add_argument("--pix-fmt", help="e.g. yuv420p (8 bit) or yuv420p10le (10 bit); default: the input's")
    v.add_argument("--preset", help="encoder preset, e.g. slow (x264/x265) or 6 (SVT-AV1)")
    v.add_argument("--segment", type=non_negative_float, default=10.0, metavar="SECONDS",
                   help="cut a video into segments of about SECONDS (default 10), each encoded into a part beside "
                        "the output: a killed run continues at the first unfinished segment, and the parts are "
                        "joined by stream copy; 0: one pass")
    r = p.add_argument_group("scale-out (extra 'ray')")
    r.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on a Ray cluster: ADDRESS (e.g. ray://head:10001 or auto), or a local Ray on this "
                        "machine when none is given; outputs are written by the workers (shared storage)")
    r.add_argument("--workers", type=positive_int,
                   help="Ray workers (default: one per GPU in the cluster, else one per CPU core, each running "
                        "--threads threads, default 1)")
    r.add_argument("--task-timeout", type=positive_float, default=600.0, metavar="SECONDS",
                   help="a task (a video segment, a batch of images, a short video) running longer than SECONDS "
                        "(default 600), and 5 times the slowest finished one, counts its worker as lost: a fresh "
                        "worker does it again")
    p.add_argument("--max-pixels", type=non_negative_int, metavar="N",
                   help="refuse images and video frames of more than N pixels, from their header, before decoding "
                        "(default: $DRCN_MAX_PIXELS, else a 16K frame, 132710400; 0: no limit)")
    p.add_argument("--memory-budget", type=memory_size, metavar="SIZE",
                   help="memory this run may use, e.g. 8G (default: $DRCN_MEMORY_BUDGET, else 3/4 of the machine's): "
                        "half for the frames in hand (a frame that needs more is refused by name), 2/5 for the "
                        "compiled models OpenVINO keeps per input shape")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist (default: skip)")
    p.add_argument("--make-samples", metavar="DIR",
                   help="write sample low-resolution frames (from scikit-image's bundled photos) to DIR and exit")
    p.add_argument("--make-sample-video", metavar="FILE",
                   help="write a 2 s sample clip (a pan over a bundled photo, 160x90 H.264 with an AAC tone) to FILE "
                        "(.mp4, .mkv or .mov) and exit")
    return p


def make_samples(folder: Path) -> int:
    from drcn import matlab
    from drcn.images import write_image
    from drcn.samples import SAMPLE_NAMES, load_sample

    folder.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_NAMES:
        image = matlab.modcrop(load_sample(name), 2)
        write_image(folder / f"{name}.png", matlab.imresize(image, 0.5))  # LR frames: x2 gives the originals
    print(f"{PROG}: wrote {len(SAMPLE_NAMES)} sample frames to {folder}")
    return 0


def make_sample_video(path: Path) -> int:
    from drcn.runtime.media.sample_video import CONTAINERS, FPS, SIZE, write_sample_video

    if path.suffix.lower() not in CONTAINERS:
        raise DrcnError(f"--make-sample-video {path}: name a {', '.join(CONTAINERS[:-1])} or {CONTAINERS[-1]} file")
    frames = write_sample_video(path)
    print(f"{PROG}: wrote a sample clip of {frames} frames ({SIZE[1]}x{SIZE[0]}, {FPS} fps, with audio) to {path}")
    return 0


def log(message: str) -> None:
    print(f"{PROG}: {message}", flush=True)


def _encode_options(args):
    from drcn.runtime.media.video import EncodeOptions

    return EncodeOptions(codec=args.codec, crf=args.crf, pix_fmt=args.pix_fmt, preset=args.preset,
                         segment=args.segment)


def _report(summary, job) -> int:
    seconds = max(summary.seconds, 1e-9)
    line = (f"{PROG}: {summary.done} frame(s) in {summary.seconds:.1f} s ({summary.fps:.2f} frames/s, "
            f"{summary.output_pixels / seconds / 1e6:.2f} output Mpx/s; network busy "
            f"{100 * summary.compute_seconds / seconds / summary.workers:.0f}% of the time"
            + (f" on each of {summary.workers} workers" if summary.workers > 1 else "") + f") -> {job.output}")
    print(line)
    if job.skipped:
        print(f"{PROG}: skipped {job.skipped} existing output(s) (use --overwrite to redo them)")
    for name, why in summary.failed:
        # Messages from readers start with the file's path: say the frame's name once.
        first, _, rest = why.partition(": ")
        print(f"{PROG}: failed: {name}: {rest if rest and first.endswith(name) else why}", file=sys.stderr)
    for loss in summary.lost:
        print(f"{PROG}: error: {loss}", file=sys.stderr)
    if summary.failed:
        print(f"{PROG}: error: {len(summary.failed)} frame(s) failed", file=sys.stderr)
    return 1 if summary.failed or summary.lost else 0


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_pixels is not None:
        from drcn.limits import ENV

        os.environ[ENV] = str(args.max_pixels)   # every reader, and the local Ray workers this process starts
    if args.memory_budget is not None:
        from drcn.memory import ENV as BUDGET

        os.environ[BUDGET] = str(args.memory_budget)
    if args.make_samples:
        return make_samples(Path(args.make_samples))
    if args.make_sample_video:
        return make_sample_video(Path(args.make_sample_video))
    if args.ray:
        from drcn.runtime.ray_run import ray_address_or_input

        args.ray, args.input, note = ray_address_or_input(args.ray, args.input)
        args.ray = args.ray or ""
        if note:
            log(note)
    if not args.input:
        raise DrcnError("give a folder of frames, an image or a video (or --make-samples DIR)")
    from drcn.runtime.backends import select
    from drcn.runtime.media.jobs import plan_job, save_frame
    from drcn.runtime.pipeline import run_frames
    from drcn.runtime.upscaler import BackendRequest, Upscaler

    job = plan_job(args.input, args.output, args.scale, args.overwrite)  # all path checks before any loading
    for note in job.notes:
        log(note)
    if not job.frames and not job.videos and job.kind != "video" or (job.kind == "video" and job.skipped):
        print(f"{PROG}: nothing to do: {job.skipped} output(s) exist already (use --overwrite to redo them)")
        return 0
    choice = select.choose(args.engine, args.onnx, args.weights, args.backend)
    # Many frames: keep several requests in flight (OpenVINO's throughput mode); one image: the lowest latency.
    mode = args.mode if args.mode != "auto" else ("latency" if job.kind == "image" else "throughput")
    request = BackendRequest(choice.backend, str(choice.model), tile=args.tile, batch=args.batch, device=args.device,
                             precision=args.precision, provider=args.provider, threads=args.threads, path=args.path,
                             mode=mode, ensemble=args.ensemble)
    options = _encode_options(args)
    if args.ray is not None:
        from drcn.runtime.ray_run import RayRequest, run_on_ray

        summary = run_on_ray(job, RayRequest(request, args.scale, address=args.ray or None, workers=args.workers,
                                             task_timeout=args.task_timeout,
                                             encode=options, overwrite=args.overwrite), log)
        return _report(summary, job)
    upscaler = Upscaler(request, args.scale, log)
    try:
        spec = upscaler.spec
        print(f"{PROG}: {upscaler.description}; model from {choice.reason}")
        print(f"{PROG}: x{args.scale:g}, {upscaler.tiling()}" + (f", batch {args.batch}" if args.tile else ""))
        if spec.scales and not min(spec.scales) <= args.scale <= max(spec.scales):
            print(f"{PROG}: note: the model was trained for x{', x'.join(f'{s:g}' for s in spec.scales)}; "
                  f"x{args.scale:g} works but may be less sharp")
        if job.kind == "video":
            from drcn.runtime.media.video_job import upscale_video

            summary = upscale_video(job.source, job.output, args.scale, upscaler, options, log=log,
                                    overwrite=args.overwrite)
        else:
            from drcn.runtime.pipeline import Summary

            summary = run_frames(job.frames, len(job.frames), upscaler, save_frame) if job.frames else Summary()
            if job.videos:
                from drcn.runtime.media.video_job import upscale_videos

                summary.add(upscale_videos(job.videos, args.scale, upscaler, options, log, args.overwrite))
    finally:
        upscaler.close()
    return _report(summary, job)


if __name__ == "__main__":
    sys.exit(main())
