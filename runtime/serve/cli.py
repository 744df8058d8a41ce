"""``drcn-serve``: the model behind an HTTP endpoint on Ray Serve.

    drcn-serve                                  # the shipped model on http://127.0.0.1:8000 (a local Ray)
    drcn-serve --onnx model.onnx --replicas 2 --port 8080
    drcn-serve --ray auto --host 0.0.0.0 --token-file token.txt

The model is chosen and opened as drcn-run opens it (same options, same Upscaler), so an image served equals the
file drcn-run writes for it. It is loaded once here before anything listens: a model that cannot be loaded ends
with one line and nothing bound. Ctrl-C or SIGTERM drain the requests in hand, then stop.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path

from drcn.argtypes import frame_scale, non_negative_int, positive_float, positive_int
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-serve"


def build_parser() -> ArgumentParser:
    from drcn.runtime.run_cli import add_model_arguments

    p = ArgumentParser(prog=PROG, description="Serve DRCN over HTTP on Ray Serve: an image endpoint "
                                              "(POST /v1/upscale), the Open Inference Protocol that Triton clients "
                                              "speak (/v2/...), and a web page at /.")
    add_model_arguments(p)
    p.add_argument("--tile", type=non_negative_int, default=256, help="output tile side in pixels (default 256)")
    p.add_argument("--batch", type=positive_int, default=4, help="windows per call of one request (default 4)")
    p.add_argument("--max-batch", type=positive_int, default=8,
                   help="windows per backend call across concurrent requests (default 8)")
    s = p.add_argument_group("the v2 endpoint (the contract of drcn-export --triton)")
    s.add_argument("--scale", type=frame_scale, default=2, help="its scale (2, 3 or 4; default 2)")
    s.add_argument("--kind", choices=["rgb", "gray", "y"], default="rgb",
                   help="rgb (default): LR RGB float32 [N, 3, h, w] in, upscaled out; gray: one plane; y: the "
                        "bicubic-upscaled Y plane in, the network's Y out")
    s.add_argument("--name", default="drcn", help="model name (default drcn, as the Triton repository)")
    h = p.add_argument_group("server")
    h.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    h.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    h.add_argument("--replicas", type=positive_int, default=1, help="model replicas (default 1)")
    h.add_argument("--max-replicas", type=positive_int,
                   help="autoscale between --replicas and this many replicas on the requests in hand (Ray Serve's "
                        "autoscaling; default: a fixed --replicas)")
    h.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="serve on a Ray cluster (ADDRESS, or auto); default: a local Ray started here")
    h.add_argument("--token-file", help="file holding a bearer token that every request but health and the page "
                                        "must carry (Authorization: Bearer ...)")
    h.add_argument("--max-body-mb", type=positive_float, default=64.0, help="request body limit in MiB (default 64)")
    h.add_argument("--max-pixels", type=non_negative_int,
                   help="pixel limit of an image or frame, from its header (default: $DRCN_MAX_PIXELS, else a 16K "
                        "frame; 0: none)")
    h.add_argument("--queue", type=positive_int, default=16,
                   help="requests a replica holds at once; more get 503 with Retry-After (default 16)")
    h.add_argument("--deadline", type=positive_float, default=120.0, help="seconds before a request gets 504 "
                                                                         "(default 120)")
    return p


def settings_from(args):
    """(ServeSettings, ServeLimits) from parsed arguments: the model chosen as drcn-run chooses it."""
    from drcn import frame
    from drcn.runtime.backends import select
    from drcn.runtime.serve.app import ServeLimits
    from drcn.runtime.serve.model import ServeSettings
    from drcn.runtime.upscaler import BackendRequest

    frame.require_integer_scale(args.scale)
    choice = select.choose(args.engine, args.onnx, args.weights, args.backend)
    mode = args.mode if args.mode != "auto" else "latency"
    request = BackendRequest(choice.backend, str(Path(choice.model).resolve()), tile=args.tile, batch=args.batch,
                             device=args.device, precision=args.precision, provider=args.provider,
                             threads=args.threads, path=args.path, mode=mode, ensemble=args.ensemble)
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise DrcnError(f"--token-file {args.token_file}: cannot read it ({exc.strerror})") from None
        if not token:
            raise DrcnError(f"--token-file {args.token_file}: the file is empty")
    settings = ServeSettings(request, choice.reason, scale=args.scale, kind=args.kind, model_name=args.name,
                             max_batch=args.max_batch)
    limits = ServeLimits(max_body_bytes=int(args.max_body_mb * (1 << 20)), max_pending=args.queue,
                         deadline_s=args.deadline, token=token, max_pixels=args.max_pixels)
    return settings, limits


def _check_port(host: str, port: int) -> None:
    """Refuse a port something already listens on, before Ray starts (its own failure is a page of logs)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise DrcnError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None


def _start_ray(address: str | None) -> None:
    import logging

    import ray

    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", include_dashboard=False, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise DrcnError(f"--ray {address or '(local)'}: cannot start or join Ray "
                        f"({str(exc).strip().splitlines()[0]})") from None


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from drcn.optional import require

    require("ray.serve", "drcn-serve", "pip install 'drcn[serve]'")
    if args.max_pixels is not None:
        from drcn.limits import ENV

        os.environ[ENV] = str(args.max_pixels)
    settings, limits = settings_from(args)
    _check_port(args.host, args.port)

    # Load the model here first: a file that cannot be loaded ends with one line before anything listens.
    from drcn.runtime.serve.model import ServedModel

    probe = ServedModel(settings)
    description = probe.description
    probe.close()

    from ray import serve

    from drcn.runtime.serve.app import application

    _start_ray(args.ray)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(application(settings, limits, args.replicas, max_replicas=args.max_replicas), name="drcn",
                  route_prefix="/")
        url = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}"
        print(f"{PROG}: {description}; model from {settings.model_reason}", flush=True)
        replicas = f"{args.replicas}-{args.max_replicas} (autoscaled)" if args.max_replicas else args.replicas
        print(f"{PROG}: {replicas} replica(s); v2 model '{settings.model_name}' ({settings.kind}, "
              f"x{settings.scale}); max batch {settings.max_batch} windows across requests"
              + ("; bearer token required" if limits.token else ""), flush=True)
        print(f"{PROG}: serving on {url}/ (page), {url}/v1/upscale, {url}/v2 (Ctrl-C stops)", flush=True)
        stop.wait()
        print(f"{PROG}: stopping: draining the requests in hand", flush=True)
    finally:
        import ray

        try:
            # Deleting the application first lets each replica finish the requests it holds (Ray Serve's graceful
            # replica shutdown, up to 30 s) while the proxy still carries their answers; then everything stops.
            serve.delete("drcn", _blocking=True)
        except Exception as exc:  # noqa: BLE001 - stopping goes on; say why the drain was cut short
            print(f"{PROG}: draining failed ({type(exc).__name__}: {exc}); stopping", file=sys.stderr)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    print(f"{PROG}: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
