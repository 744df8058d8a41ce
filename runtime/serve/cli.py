"""``drcn-serve``: the model behind an HTTP endpoint on Ray Serve.

    drcn-serve                                  # the shipped model on http://127.0.0.1:8000 (a local Ray)
    drcn-serve --onnx model.onnx --replicas 2 --port 8080
    drcn-serve --ray auto --host 0.0.0.0 --token-file token.txt

The model is chosen and opened as drcn-run opens it (same options, same Upscaler), so an image served equals the
file drcn-run writes for it. It is loaded once here before anything listens: a model that cannot be loaded ends
with one line and nothing bound.

Stopping: the command is a small supervisor around the server, which runs in a session (process group) of its own
with Ray's processes under it. A signal to the whole group (Ctrl-C in a terminal, ``kill -- -PGID``) therefore
reaches the supervisor alone; it, or SIGTERM/SIGINT/SIGHUP to the supervisor itself, is passed on as one SIGTERM to
the server, which drains the requests in hand, stops Ray and exits 0. Where every process is signalled at once
(systemd's ``KillMode=control-group``), the same happens: a local Ray's processes start with the stop signals blocked,
so they carry the drain and end when the server stops Ray. With ``--ray ADDRESS`` Ray's processes are not this
server's; if a local Ray's daemons die anyway (killed outright), the server exits 0 within seconds, saying the requests
in hand could not be drained. If the supervisor is killed outright, the server notices within a second and stops too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from drcn.argtypes import frame_scale, memory_size, non_negative_int, positive_float, positive_int
from drcn.errors import ArgumentParser, DrcnError, cli_entry

PROG = "drcn-serve"
SUPERVISED = "DRCN_SERVE_SUPERVISOR"    # set in the server's environment: the supervisor's process id
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def build_parser() -> ArgumentParser:
    from drcn.runtime.run_cli import add_model_arguments

    p = ArgumentParser(prog=PROG, description="Serve DRCN over HTTP on Ray Serve: an image endpoint "
                                              "(POST /v1/upscale), the Open Inference Protocol that Triton clients "
                                              "speak (/v2/...), and a web page at /.")
    add_model_arguments(p)
    p.add_argument("--tile", type=non_negative_int, default=256, help="output tile side in pixels (default 256)")
    p.add_argument("--batch", type=positive_int, default=4, help="windows per call of one request (default 4)")
    p.add_argument("--max-batch", type=positive_int,
                   help="windows per backend call across concurrent requests (default: 8 where the backend runs on a "
                        "GPU; 1 on a CPU, where a window costs the same alone and a batch only holds memory)")
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
    h.add_argument("--memory-budget", type=memory_size, metavar="SIZE",
                   help="resident memory per replica, e.g. 8G (default: $DRCN_MEMORY_BUDGET, else 3G, or 3/4 of "
                        "the machine's divided among --replicas where that is less); of what is left once the model "
                        "is loaded, half for the requests in hand (one that does not fit now gets 503, one that "
                        "never fits 413), 2/5 for compiled models")
    j = p.add_argument_group("video jobs (POST /v1/jobs)")
    j.add_argument("--job-dir", help="folder of the video jobs: uploads, parts, results and their records, which a "
                                     "restarted server continues from (default: jobs/ under drcn's cache folder)")
    j.add_argument("--no-jobs", action="store_true", help="answer no video jobs (the /v1/jobs routes say 404)")
    j.add_argument("--max-jobs", type=positive_int, default=4, help="jobs queued or running per token (default 4)")
    j.add_argument("--max-upload", type=memory_size, default=4 << 30, metavar="SIZE",
                   help="largest video upload (default 4G)")
    j.add_argument("--upload-timeout", type=positive_float, default=60.0, metavar="SECONDS",
                   help="an upload that sends nothing for this long is refused (408; default 60)")
    j.add_argument("--job-ttl", type=positive_float, default=24.0, metavar="HOURS",
                   help="hours a finished job's result is kept (default 24)")
    j.add_argument("--job-disk", type=memory_size, metavar="SIZE",
                   help="bytes the job folder may hold; a job that would not fit is refused with 507 (default: "
                        "half the free space of its disk at start)")
    j.add_argument("--callback-allow", action="append", default=[], metavar="HOST",
                   help="a host a job's callback URL may name (repeat it, or give a comma-separated list; default: "
                        "none, callbacks off)")
    h.add_argument("--metrics-port", type=positive_int,
                   help="port of Ray's own metrics exporter on this machine (Ray Serve's series, appended to "
                        "/metrics; default: a free port, on 127.0.0.1, for the local Ray; with --ray: the cluster's "
                        "exporter port (ray start --metrics-export-port), else none is appended)")
    return p


def settings_from(args, local: bool | None = None):
    """(ServeSettings, ServeLimits) from parsed arguments: the model chosen as drcn-run chooses it. ``local``: a
    Ray started here on this machine (default: no ``--ray``); only then is the machine's memory budget divided among
    the replicas here (on a cluster each replica takes its budget from the machine it runs on)."""
    from drcn import frame, memory
    from drcn.runtime.backends import select
    from drcn.runtime.serve.limits import ServeLimits
    from drcn.runtime.serve.model import ServeSettings
    from drcn.runtime.upscaler import BackendRequest

    frame.require_integer_scale(args.scale)
    choice = select.choose(args.engine, args.onnx, args.weights, args.backend)
    mode = args.mode if args.mode != "auto" else "latency"
    request = BackendRequest(choice.backend, str(Path(choice.model).resolve()), tile=args.tile, batch=args.batch,
                             device=args.device, precision=args.precision, provider=args.provider,
                             threads=args.threads, path=args.path, mode=mode, ensemble=args.ensemble)
    tokens: tuple[str, ...] = ()
    if args.token_file:
        try:
            text = Path(args.token_file).read_text()
        except OSError as exc:
            raise DrcnError(f"--token-file {args.token_file}: cannot read it ({exc.strerror})") from None
        tokens = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
        if not tokens:
            raise DrcnError(f"--token-file {args.token_file}: the file holds no token")
    job_dir, job_probe, job_disk = _job_folder(args)
    settings = ServeSettings(request, choice.reason, scale=args.scale, kind=args.kind, model_name=args.name,
                             max_batch=args.max_batch)
    local = not args.ray if local is None else local
    budget = args.memory_budget
    if budget is None and local and not os.environ.get(memory.ENV):
        whole = memory.budget()
        budget = min(whole // max(args.replicas, args.max_replicas or 1), memory.REPLICA_DEFAULT) if whole else None
    limits = ServeLimits(max_body_bytes=int(args.max_body_mb * (1 << 20)), max_pending=args.queue,
                         deadline_s=args.deadline, tokens=tokens, max_pixels=args.max_pixels, memory_budget=budget,
                         job_dir=job_dir, job_probe=job_probe, max_jobs=args.max_jobs,
                         max_upload=args.max_upload,
                         upload_idle_s=args.upload_timeout, job_ttl_s=args.job_ttl * 3600, job_disk=job_disk,
                         callback_allow=tuple(h.strip().lower() for given in args.callback_allow
                                              for h in given.split(",") if h.strip()),
                         ray_metrics_port=getattr(args, "metrics_port", None), local=local)
    return settings, limits


def _job_folder(args) -> tuple[str | None, str | None, int | None]:
    """(the job folder, made; the probe token written into it, which also shows it writable; the jobs' disk
    budget) from the options; (None, None, None) with --no-jobs."""
    import shutil

    from drcn.runtime.serve.jobs.store import write_probe

    if getattr(args, "no_jobs", False):
        return None, None, None
    from drcn.cache import cache_dir

    folder = Path(args.job_dir).expanduser() if args.job_dir else cache_dir("jobs")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = write_probe(folder)
    except OSError as exc:
        raise DrcnError(f"--job-dir {folder}: cannot write there ({exc.strerror})") from None
    except DrcnError as exc:            # the probe's atomic write names the file and the reason
        raise DrcnError(f"--job-dir {folder}: {exc}") from None
    budget = args.job_disk if args.job_disk else shutil.disk_usage(folder).free // 2
    return str(folder.resolve()), probe, budget


def _say_if_jobs_are_off(url: str, limits) -> None:
    """A replica that does not see the job folder (a cluster without shared storage) says why, once, here."""
    import json
    import urllib.request

    if not limits.job_dir:
        return
    try:
        with urllib.request.urlopen(f"{url}/v1/info", timeout=10) as answer:
            off = json.loads(answer.read()).get("jobs_off")
    except (OSError, ValueError):
        return
    if off:
        print(f"{PROG}: warning: {off}", file=sys.stderr, flush=True)


MIN_WORK = 64 << 20     # a budget must leave at least this beyond what a replica holds with its model loaded


def _check_budget(budget: int | None) -> None:
    """A budget below what a replica holds with its model loaded (about what this process holds now, the model just
    opened) would refuse every request: one line before anything starts."""
    from drcn.memory import rss_bytes

    held = rss_bytes()
    if budget is not None and held and budget < held + MIN_WORK:
        raise DrcnError(f"--memory-budget {budget / 2**20:.0f} MiB: a replica holds about {held / 2**20:.0f} MiB with its "
                        f"model loaded, before any image; give at least {(held + MIN_WORK) / 2**20:.0f} MiB")


def _check_port(host: str, port: int) -> None:
    """Refuse a port something already listens on, before Ray starts (its own failure is a page of logs)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise DrcnError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None


class _Stopping(Exception):
    """A stop signal came while the server was still starting."""


def _start_ray(address: str | None, metrics_port: int) -> None:
    import logging

    import ray

    try:
        if address:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            from drcn.runtime.local_ray import start_local

            start_local(ray, _metrics_export_port=metrics_port)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise DrcnError(f"--ray {address or '(local)'}: cannot start or join Ray "
                        f"({str(exc).strip().splitlines()[0]})") from None


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get(SUPERVISED) or os.name != "posix":
        return _serve(argv)
    build_parser().parse_args(argv)            # option errors: one line from here, before anything starts
    return _supervise(argv)


def _supervise(argv: list[str]) -> int:
    """Run the server in a session of its own and pass it one SIGTERM for any stop signal this process gets; if
    Ray's processes under it are gone (every process got the signal), end what is left of its session."""
    from drcn.optional import require

    require("psutil", "drcn-serve", "pip install 'drcn[serve]'")
    child = subprocess.Popen([sys.executable, "-m", "drcn.runtime.serve.cli", *argv], start_new_session=True,
                             env={**os.environ, SUPERVISED: str(os.getpid())})
    signalled: list[float] = []

    def forward(signum, _frame) -> None:
        signalled.append(time.monotonic())
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)
    stopping_ray: list[float] = []       # the server said it is stopping Ray itself: its daemons ending is no fault
    signal.signal(RAY_STOPPING, lambda *_: stopping_ray.append(time.monotonic()))
    forced, ray_gone_at = None, None
    tree: dict[int, object] = {}      # every process seen under the server: some of Ray's leave its session
    while True:
        try:
            code = child.wait(timeout=SUPERVISE_POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        _note_tree(child.pid, tree)
        if not signalled:
            continue
        # The server cannot drain without Ray: once Ray's GCS or raylet is gone, give the server a moment to
        # finish on its own (Ray's client code in it may block for a minute waiting for them), then end it.
        now = time.monotonic()
        # Only a local Ray's daemons are watched (seen in the tree once): with --ray they run elsewhere.
        started_here = any(_name(p) in RAY_DAEMONS for p in tree.values())
        if ray_gone_at is None and started_here and not stopping_ray and not _ray_daemons_run(child.pid):
            ray_gone_at = now
        if ray_gone_at is not None and now - ray_gone_at > 3:
            forced = "Ray's processes were stopped by the same signal, so the requests in hand could not be drained"
        elif now - signalled[0] > 90:
            forced = "it did not stop within 90 s"
        if forced:
            _kill_session(child.pid)
            code = child.wait()
            break
    _kill_session(child.pid)      # whatever is left of the server's session and tree goes with it
    _kill_tree(tree)
    if forced or (code < 0 and signalled):
        print(f"{PROG}: stopped the server ({forced or f'it ended with signal {-code} while stopping'})",
              file=sys.stderr, flush=True)
        return 0 if (forced is None or ray_gone_at is not None) else 1
    return code if code >= 0 else 1


SUPERVISE_POLL_S = 1.0     # the supervisor's look at the server's tree (a signal is passed on at once regardless)
# Ray Serve's controller runs its control loop every 0.1 s by default: 3-4% of a core here, taken from the replicas
# on a small machine. A local Ray's is slowed to this (autoscaling decisions come that much later); a cluster's is its
# own, and the user's setting wins.
SERVE_CONTROL_LOOP_S = "0.5"
RAY_DAEMONS = ("gcs_server", "raylet")
RAY_STOPPING = signal.SIGUSR1      # server -> supervisor: "I am stopping Ray now" (its daemons will end)


def _tell_supervisor_ray_stops() -> None:
    parent = os.environ.get(SUPERVISED, "")
    if parent.isdigit() and os.getppid() == int(parent):
        os.kill(int(parent), RAY_STOPPING)


def _ray_daemons_run(pid: int) -> bool:
    """Whether the GCS and the raylet of a local Ray started under process ``pid`` both still run (False once either
    has ended or is a zombie: under systemd's control-group stop they got the same SIGTERM, and asking them to drain
    would wait a minute for nothing)."""
    import psutil

    try:
        found = {_name(p): p for p in psutil.Process(pid).children(recursive=True)}
        return all(name in found and found[name].status() != psutil.STATUS_ZOMBIE for name in RAY_DAEMONS)
    except psutil.Error:
        return False


def _note_tree(pid: int, tree: dict) -> None:
    import psutil

    try:
        for process in psutil.Process(pid).children(recursive=True):
            tree.setdefault(process.pid, process)
    except psutil.Error:
        pass


def _kill_tree(tree: dict) -> None:
    """SIGKILL every process noted under the server that still runs (psutil checks it is the same process, not a
    new one with a reused id)."""
    import psutil

    for process in tree.values():
        try:
            if process.is_running():
                process.kill()
        except psutil.Error:
            pass


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _watch_supervisor(stop: threading.Event) -> None:
    """Stop when the supervisor that started this server is gone (killed outright, so it could not say so)."""
    parent = os.environ.get(SUPERVISED)
    if not parent or not parent.isdigit():
        return
    while not stop.wait(1.0):
        if os.getppid() != int(parent):
            print(f"{PROG}: the supervising process is gone; stopping", file=sys.stderr, flush=True)
            stop.set()


def _name(process) -> str:
    try:
        return process.name()
    except Exception:  # noqa: BLE001 - a process that ended while listed
        return ""


def _stop_everything(name: str, local: bool, wait_s: float = 10.0) -> bool:
    """Stop Ray here; then end whatever of this process's tree is left (SIGTERM, then SIGKILL after ``wait_s``).
    Returns False where the local Ray's processes were already gone (stopped by the same signal); with a cluster
    (``local`` False) there is nothing of Ray's here to watch, and the drain always runs."""
    import psutil
    import ray
    from ray import serve

    def ray_runs() -> bool:
        return not local or _ray_daemons_run(os.getpid())

    alive = ray_runs()
    if alive:
        done, ray_stopping = threading.Event(), threading.Event()

        def shutdown() -> None:
            try:
                try:
                    # Deleting the application first lets each replica finish the requests it holds (Ray Serve's
                    # graceful replica shutdown, up to 30 s) while the proxy still carries their answers.
                    serve.delete(name, _blocking=True)
                except Exception as exc:  # noqa: BLE001 - stopping goes on; say why the drain was cut short
                    print(f"{PROG}: draining failed ({type(exc).__name__}: {exc}); stopping", file=sys.stderr)
                serve.shutdown()
                ray_stopping.set()       # from here on Ray's processes end because we asked them to
                _tell_supervisor_ray_stops()
                ray.shutdown()
            finally:
                done.set()

        threading.Thread(target=shutdown, name="drcn-stop", daemon=True).start()
        give_up = time.monotonic() + 60
        # A signal sent to every process at once reaches Ray's a moment later: watch them while draining.
        while not done.wait(0.2) and time.monotonic() < give_up:
            if not ray_stopping.is_set() and not ray_runs():
                alive = False
                break
    if not alive:
        print(f"{PROG}: Ray's processes were stopped by the same signal, so the requests in hand could not be "
              "drained", file=sys.stderr, flush=True)
    left = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    for process in left:
        try:
            process.terminate()
        except psutil.Error:
            pass
    # A local Ray's processes block the stop signals (see _serve): what is left of them once Ray is stopped is
    # given a moment to end on its own, then killed.
    _, stubborn = psutil.wait_procs(left, timeout=min(wait_s, 3.0) if local else wait_s)
    for process in stubborn:
        try:
            process.kill()
        except psutil.Error:
            pass
    return alive


def _serve(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from drcn.optional import require

    if not args.ray:
        from drcn.runtime.local_ray import confine_to_loopback

        confine_to_loopback()       # before Ray is imported: its setting is read then
    require("ray.serve", "drcn-serve", "pip install 'drcn[serve]'")
    require("psutil", "drcn-serve", "pip install 'drcn[serve]'")
    if args.max_pixels is not None:
        from drcn.limits import ENV

        os.environ[ENV] = str(args.max_pixels)
    from drcn.runtime.local_ray import free_port

    if not args.ray:
        # A local Ray binds its exporter to this port; joining a cluster, only a port given (the cluster's own
        # exporter) is real, and without one /metrics holds drcn's series alone.
        args.metrics_port = args.metrics_port or free_port()
    settings, limits = settings_from(args)
    _check_port(args.host, args.port)

    # Load the model here first: a file that cannot be loaded ends with one line before anything listens.
    from drcn.runtime.serve.model import ServedModel

    probe = ServedModel(settings)
    description = probe.description
    _check_budget(limits.memory_budget)
    probe.close()

    from ray import serve

    from drcn.runtime.serve.app import application

    if not args.ray:
        os.environ.setdefault("RAY_SERVE_CONTROL_LOOP_INTERVAL_S", SERVE_CONTROL_LOOP_S)
        # Under systemd's default KillMode=control-group every process of the unit gets the stop signal at once.
        # A local Ray's processes start with the stop signals blocked (the mask passes through fork and exec, to
        # the workers its raylet starts too), so they stay up while this server drains and end when it stops Ray.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        _start_ray(args.ray, args.metrics_port)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    stop, serving = threading.Event(), threading.Event()

    def on_signal(*_) -> None:
        stop.set()
        if not serving.is_set():      # still starting (inside serve.run's wait): stop that wait too
            raise _Stopping

    for sig in STOP_SIGNALS:     # after ray.init, which installs handlers of its own
        signal.signal(sig, on_signal)
    threading.Thread(target=_watch_supervisor, args=(stop,), name="drcn-supervisor-watch", daemon=True).start()
    started = time.monotonic()
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(application(settings, limits, args.replicas, max_replicas=args.max_replicas), name="drcn",
                  route_prefix="/")
        url = f"http://{args.host if ':' not in args.host else f'[{args.host}]'}:{args.port}"
        print(f"{PROG}: {description}; model from {settings.model_reason}", flush=True)
        replicas = f"{args.replicas}-{args.max_replicas} (autoscaled)" if args.max_replicas else args.replicas
        print(f"{PROG}: {replicas} replica(s); v2 model '{settings.model_name}' ({settings.kind}, "
              f"x{settings.scale}); max batch {settings.max_batch or 'auto (8 on a GPU, 1 on a CPU)'} windows "
              "across requests"
              + ("; bearer token required" if limits.tokens else ""), flush=True)
        print(f"{PROG}: serving on {url}/ (page), {url}/v1/upscale, {url}/v2, {url}/metrics"
              + (f", {url}/v1/jobs (video jobs in {limits.job_dir})" if limits.job_dir else "") + " (Ctrl-C stops)",
              flush=True)
        _say_if_jobs_are_off(url, limits)
        serving.set()
        stop.wait()
        print(f"{PROG}: stopping: draining the requests in hand", flush=True)
    except _Stopping:
        print(f"{PROG}: stopping while starting", flush=True)
    finally:
        ray_was_alive = _stop_everything("drcn", local=not args.ray)
    print(f"{PROG}: stopped after {time.monotonic() - started:.0f} s of serving", file=sys.stderr, flush=True)
    if not ray_was_alive:
        # Ray's own exit handlers would wait a minute for its dead GCS and then end the process with code 1.
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
