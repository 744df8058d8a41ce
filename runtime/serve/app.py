"""The HTTP application of ``drcn-serve``: a Ray Serve deployment with a FastAPI ingress.

Routes (the v2 ones as KServe's Open Inference Protocol and Triton's HTTP endpoint define them):

    GET  /                                  the web page (pick or drop an image, before/after slider, download)
    GET  /v1/info                           what runs: backend, precision, path, limits, counters
    GET  /metrics                           Prometheus text: drcn's series and Ray Serve's (:mod:`.metrics`)
    POST /v1/upscale?scale=2&format=png     an encoded image in the body -> the encoded result
    POST /v1/jobs?scale=2&codec=...         a video in the body -> 202, a job (:mod:`.jobs.routes`)
    GET  /v1/jobs, /v1/jobs/{id}            the caller's jobs; one job's state and progress
    GET  /v1/jobs/{id}/result               the finished video (Range, If-Range; a signed link needs no token)
    DELETE /v1/jobs/{id}                    cancel a job in hand, or remove a finished one
    GET  /v2, /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}[/versions/1], /v2/models/{name}[/versions/1]/ready
    POST /v2/models/{name}[/versions/1]/infer   JSON or binary tensors

Every error is one JSON line ``{"error": "..."}`` with its status (:data:`.http.STATUSES` lists them all).

Where each part of a request is handled: the bearer token in :mod:`.auth`; the bound on requests in hand and their
working memory in :mod:`.admission`; the thread, ticket and deadline of the work in :mod:`.work` (a client that goes
away or a deadline passed stops the work at its next check); errors and bodies in :mod:`.http`; the series in
:mod:`.metrics`. Windows of concurrent requests share backend calls, the least-served request first
(:mod:`.batching`). Nothing an unauthenticated client reads names a path on the server.
"""


import asyncio
import os
import time
from importlib import resources

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve

from drcn import __version__
from drcn.errors import DrcnError, OverLimit
from drcn.runtime.serve import protocol
from drcn.runtime.serve.http import HttpError, answer, app, read_body
from drcn.runtime.serve.jobs.routes import JobRoutes
from drcn.runtime.serve.limits import ServeLimits
from drcn.runtime.serve.model import FORMATS, ServedModel, ServeSettings
from drcn.runtime.serve.redact import without_paths

VERSION = "1"
__all__ = ["DrcnDeployment", "ServeLimits", "application", "from_args"]


@serve.deployment(name="drcn", max_ongoing_requests=64, graceful_shutdown_timeout_s=30,
                  health_check_period_s=5, health_check_timeout_s=30)
@serve.ingress(app)
class DrcnDeployment(JobRoutes):
    """One replica: the model (:class:`ServedModel`), who may call (:mod:`.auth`), what it lets in
    (:mod:`.admission`), the threads its requests run on (:mod:`.work`), its metrics (:mod:`.metrics`), the video
    jobs' runner (:mod:`.jobs`), and the routes."""

    def __init__(self, settings: ServeSettings, limits: ServeLimits):
        # Ray sends this class to the replica by value, and the job routes' methods by reference: this module's
        # ingress decorator must run in the replica too, where it binds those methods' ``self`` (else FastAPI takes
        # ``self`` for a query parameter). Nothing else imports this module in a replica.
        import importlib

        importlib.import_module("drcn.runtime.serve.app")
        from drcn import memory
        from drcn.limits import ENV
        from drcn.runtime.serve.admission import Admission
        from drcn.runtime.serve.auth import Tokens
        from drcn.runtime.serve.metrics import ReplicaMetrics, install
        from drcn.runtime.serve.work import RequestThreads

        if limits.local:
            from drcn.runtime.local_ray import keep_replica_grpc_on_loopback

            keep_replica_grpc_on_loopback()
        if limits.max_pixels is not None:
            os.environ[ENV] = str(limits.max_pixels)
        if limits.memory_budget is not None:
            os.environ[memory.ENV] = str(limits.memory_budget)
        elif not os.environ.get(memory.ENV):
            whole = memory.budget()
            os.environ[memory.ENV] = str(min(whole, memory.REPLICA_DEFAULT) if whole else memory.REPLICA_DEFAULT)
        self.settings, self.limits = settings, limits
        self.model = ServedModel(settings)
        self.started = time.time()
        self.budget = memory.budget()
        self.baseline = memory.rss_bytes()
        memory.set_baseline(self.baseline)              # the model loaded: the shares are of what is left
        self.tokens = Tokens(limits.tokens)
        self.admission = Admission(limits.max_pending, memory.WorkReservations(memory.available()),
                                   lambda reason: self.metrics.refused.labels(reason=reason).inc())
        self.threads = RequestThreads(limits.max_pending, limits.deadline_s,
                                      lambda reason: self.metrics.cancelled.labels(reason=reason).inc())
        self.metrics = install(ReplicaMetrics(self._state))
        self.jobs, self.job_runner, self.jobs_off = None, None, None
        if limits.job_dir:
            from pathlib import Path

            from drcn.runtime.serve.jobs.runner import JobRunner
            from drcn.runtime.serve.jobs.store import JobStore, check_probe

            self.jobs_off = check_probe(Path(limits.job_dir), limits.job_probe)
            if self.jobs_off is None:
                self.jobs = JobStore(Path(limits.job_dir))
                self.job_runner = JobRunner(self.jobs, self.model.upscaler, self.admission.job_memory,
                                            limits.job_ttl_s, limits.callback_allow)
                self.job_runner.start()

    def __del__(self):
        """Ray Serve's replica shutdown: the job in hand stops and stays unfinished on disk (resumed at the next
        start); the model's threads end."""
        runner = getattr(self, "job_runner", None)
        if runner is not None:
            runner.close()

    def _state(self) -> dict:
        """What the metrics read when scraped (:mod:`.metrics` names every series)."""
        from drcn.memory import rss_bytes
        from drcn.runtime.serve.jobs.runner import job_gauges

        stats = self.model.scheduler.stats
        return {"drcn_requests_in_hand": self.admission.pending, "drcn_queued_calls": self.model.scheduler.queued,
                "drcn_memory_rss_bytes": rss_bytes(), "drcn_memory_budget_bytes": self.budget or 0,
                "drcn_memory_reserved_bytes": self.admission.work.reserved, "drcn_windows_total": stats.windows,
                "drcn_backend_calls_total": stats.backend_calls,
                "drcn_dropped_windows_total": self.threads.counts["dropped_windows"],
                **job_gauges(self.job_runner), "batch_sizes": stats.batch_sizes}

    async def _work(self, request: Request, fn, *args):
        """``fn(*args)`` on a request thread (:mod:`.work`) within the bound of requests in hand (:mod:`.admission`)."""
        with self.admission.request():
            return await self.threads.run(request, fn, *args)

    async def _handle(self, request: Request, handler, *args) -> Response:
        return await answer(request, handler, *args)

    # -- the page and the image endpoint ------------------------------------------------------------------------
    @app.get("/")
    async def page(self) -> HTMLResponse:
        """The web page: pick or drop an image, before/after slider, download (text/html)."""
        return HTMLResponse(resources.files("drcn.runtime.serve").joinpath("page.html").read_text())

    @app.get("/v1/info")
    async def info(self) -> JSONResponse:
        """What runs (backend, precision, path, limits) and the replica's counters, as JSON; no path of the server."""
        from drcn.limits import max_pixels
        from drcn.memory import COMPILED, rss_bytes
        from drcn.runtime.serve.model import MAX_SCALE, MIN_SCALE

        model, stats = self.model, self.model.scheduler.stats
        return JSONResponse({"drcn": __version__, "backend": model.backend_name, "precision": model.precision,
                             "description": without_paths(model.description), "model": self.settings.model_name,
                             "kind": self.settings.kind, "scale": self.settings.scale,
                             "scales": [MIN_SCALE, MAX_SCALE], "formats": sorted(FORMATS),
                             "max_body_bytes": self.limits.max_body_bytes, "max_pixels": max_pixels(),
                             "memory_budget_bytes": self.budget, "working_memory_bytes": self.admission.work.limit,
                             "reserved_bytes": self.admission.work.reserved, "max_batch": model.scheduler.max_batch,
                             "baseline_bytes": self.baseline,
                             "rss_bytes": rss_bytes(), "compiled_bytes": COMPILED.total(),
                             "compiles": COMPILED.compiles,
                             "token_required": bool(self.limits.tokens), "jobs": self.jobs is not None,
                             "jobs_off": without_paths(self.jobs_off) if self.jobs_off else None,
                             "backend_calls": stats.backend_calls, "window_calls": stats.calls,
                             "windows": stats.windows, "cancelled_calls": stats.dropped_calls,
                             "dropped_windows": self.threads.counts["dropped_windows"],
                             "cancelled_requests": self.threads.counts["cancelled_requests"],
                             "pending": self.admission.pending,
                             "queued_calls": model.scheduler.queued})

    @app.get("/metrics")
    async def prometheus(self, request: Request) -> Response:
        """Prometheus text: drcn's series and Ray Serve's (the token when one is set)."""
        async def scrape(request: Request) -> Response:
            from drcn.runtime.serve.metrics import fetch_ray_metrics

            self.tokens.caller(request)
            ray_text = await asyncio.get_running_loop().run_in_executor(
                self.threads.pool, fetch_ray_metrics, self.limits.ray_metrics_port)
            return Response(self.metrics.render() + ray_text, media_type="text/plain; version=0.0.4; charset=utf-8")
        return await self._handle(request, scrape)

    @app.post("/v1/upscale")
    async def upscale(self, request: Request) -> Response:
        """An encoded image in the body, `?scale=2&format=png` -> the encoded result."""
        return await self._handle(request, self._upscale)

    async def _upscale(self, request: Request) -> Response:
        self.tokens.caller(request)
        try:
            scale = float(request.query_params.get("scale", "2"))
        except ValueError:
            raise HttpError(400, f"scale {request.query_params.get('scale')!r}: a number") from None
        fmt = request.query_params.get("format", "png").lower()
        if fmt not in FORMATS:
            raise HttpError(400, f"format {fmt!r}: one of {', '.join(sorted(FORMATS))}")
        body = await read_body(request, self.limits.max_body_bytes)
        start = time.perf_counter()
        encoded, compute = await self._work(request, self._upscale_bytes, body, scale, fmt)
        headers = {"X-Drcn-Compute-Seconds": f"{compute:.4f}",
                   "Server-Timing": f"compute;dur={compute * 1000:.1f}, total;dur="
                                    f"{(time.perf_counter() - start) * 1000:.1f}",
                   "X-Drcn-Backend": self.model.backend_name}
        return Response(encoded, media_type=FORMATS[fmt][1], headers=headers)

    def _upscale_bytes(self, body: bytes, scale: float, fmt: str) -> tuple[bytes, float]:
        from drcn.images import decode_image, encode_image

        try:
            image = decode_image(body, "request body")
        except OverLimit:
            raise
        except DrcnError as exc:
            raise HttpError(415 if body else 400, str(exc)) from None
        from drcn.limits import working_memory
        from drcn.runtime.serve.model import MAX_SCALE, MIN_SCALE, output_size

        if not MIN_SCALE <= scale <= MAX_SCALE:    # before the size below is worked out for it
            raise HttpError(400, f"scale {scale:g}: between {MIN_SCALE:g} and {MAX_SCALE:g}")
        height, width = output_size(image, scale)
        # The body and the decoded image are held until the answer is sent, and the encoded answer beside the result:
        # counted with the upscaling's working memory.
        channels = image.shape[2] if image.ndim == 3 else 1
        held = len(body) + image.nbytes + height * width * channels * image.itemsize
        with self.admission.memory(working_memory(height, width) + held, f"a {width}x{height} output"):
            start = time.perf_counter()
            result = self.model.upscale_image(image, scale, "request body")
            compute = time.perf_counter() - start
        if fmt == "jpeg" and result.dtype != "uint8":
            result = (result // 257).astype("uint8")
        return encode_image(result, FORMATS[fmt][0]), compute

    # -- the Open Inference Protocol ----------------------------------------------------------------------------
    @app.get("/v2")
    async def server_metadata(self) -> JSONResponse:
        """Open Inference Protocol server metadata (name, version, extensions)."""
        return JSONResponse({"name": "drcn", "version": __version__, "extensions": protocol.EXTENSIONS})

    @app.get("/v2/health/live")
    async def live(self) -> Response:
        """Liveness: 200 while the replica runs."""
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def ready(self) -> Response:
        """Readiness: 200 once the model is open."""
        return Response(status_code=200)

    def _model_or_404(self, name: str, version: str | None) -> None:
        if name != self.settings.model_name or version not in (None, VERSION):
            raise HttpError(404, f"model '{name}'{f' version {version}' if version else ''} is not served here "
                                 f"(this server has '{self.settings.model_name}' version {VERSION})")

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(self, request: Request, name: str, version: str | None = None) -> Response:
        """The model's inputs and outputs (names, datatypes, shapes) and the precision it runs."""
        return await self._handle(request, self._metadata, name, version)

    async def _metadata(self, request: Request, name: str, version: str | None) -> Response:
        self.tokens.caller(request)
        self._model_or_404(name, version)
        settings = self.settings
        body = protocol.model_metadata(name, VERSION, "drcn_ray_serve", [settings.input_spec()],
                                       [settings.output_spec()],
                                       {k: without_paths(v) for k, v in self.model.metadata_parameters().items()})
        return JSONResponse(body)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(self, request: Request, name: str, version: str | None = None) -> Response:
        """200 when the named model is ready, 404 for another name."""
        async def check(request: Request, name: str, version: str | None) -> Response:
            self._model_or_404(name, version)
            return Response(status_code=200)
        return await self._handle(request, check, name, version)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(self, request: Request, name: str, version: str | None = None) -> Response:
        """Inference with JSON or binary tensors (Triton's binary extension), as tritonclient sends them."""
        return await self._handle(request, self._infer, name, version)

    async def _infer(self, request: Request, name: str, version: str | None) -> Response:
        self.tokens.caller(request)
        self._model_or_404(name, version)
        body = await read_body(request, self.limits.max_body_bytes)
        settings = self.settings
        parsed = protocol.parse_infer(body, request.headers.get(protocol.HEADER_LENGTH), settings.input_spec(),
                                      settings.output_spec().name)
        result = await self._work(request, self._infer_reserved, parsed.array)
        data, headers = protocol.infer_response(name, VERSION, parsed, settings.output_spec().name, result)
        return Response(data, headers=headers, media_type=headers["Content-Type"])

    def _infer_reserved(self, batch):
        from drcn.limits import working_memory

        n, _, height, width = batch.shape
        scale = 1 if self.settings.kind == "y" else self.settings.scale
        held = batch.nbytes * (1 + scale * scale)      # the decoded tensor and the answer's
        with self.admission.memory(working_memory(n * height * scale, width * scale) + held,
                            f"a batch of {n} {height}x{width}"):
            return self.model.infer_tensor(batch)


# glibc gives each thread that allocates its own arena (up to 8 per core), and memory freed in one is rarely given
# back: a replica's 30-odd request and backend threads held gigabytes that no request used. Two arenas, and the
# heap trimmed whenever the replica holds no request (drcn.memory.WorkReservations), keep its resident memory near
# what its requests use.
REPLICA_ENV = {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}    # drcn-serve's own setting wins


def application(settings: ServeSettings, limits: ServeLimits, replicas: int = 1, num_cpus: float = 0,
                max_replicas: int | None = None):
    """The Ray Serve application ``drcn-serve`` runs (and a RayService manifest's import path names); with
    ``max_replicas``, Ray Serve autoscales between ``replicas`` and it on the requests each replica holds."""
    if max_replicas is not None and max_replicas < replicas:
        raise DrcnError(f"--max-replicas {max_replicas}: at least --replicas ({replicas})")
    scaling = {} if max_replicas is None else {"num_replicas": "auto", "autoscaling_config": {
        "min_replicas": replicas, "max_replicas": max_replicas, "target_ongoing_requests": 2}}
    options = {"num_replicas": replicas, **scaling}
    return DrcnDeployment.options(**options, max_ongoing_requests=max(64, 2 * limits.max_pending),
                                  max_queued_requests=4 * limits.max_pending,
                                  ray_actor_options={"num_cpus": num_cpus, "runtime_env": {"env_vars": REPLICA_ENV}}
                                  ).bind(settings, limits)


def from_args(args: dict):
    """A Ray Serve application builder for ``serve run`` / KubeRay's RayService: ``import_path:
    drcn.runtime.serve.app:from_args`` with the drcn-serve options as ``args`` (e.g. {"onnx": "/models/m.onnx",
    "replicas": 2})."""
    from drcn.runtime.serve.cli import build_parser, settings_from

    argv = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    parsed = build_parser().parse_args(argv)
    settings, limits = settings_from(parsed, local=False)     # a cluster's replicas: their own machines' budgets
    return application(settings, limits, parsed.replicas, max_replicas=parsed.max_replicas)

