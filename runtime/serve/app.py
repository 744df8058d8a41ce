"""The HTTP application of ``drcn-serve``: a Ray Serve deployment with a FastAPI ingress.

Routes (the v2 ones as KServe's Open Inference Protocol and Triton's HTTP endpoint define them):

    GET  /                                  the web page (pick or drop an image, before/after slider, download)
    GET  /v1/info                           what runs: backend, precision, path, limits
    POST /v1/upscale?scale=2&format=png     an encoded image in the body -> the encoded result
    GET  /v2, /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}[/versions/1], /v2/models/{name}[/versions/1]/ready
    POST /v2/models/{name}[/versions/1]/infer   JSON or binary tensors

Every error is one JSON line ``{"error": "..."}`` with its status: 400 bad request, 401 without the bearer token
(when one is set; health, the page and /v1/info stay open), 404 unknown model, 413 over the body or pixel limit
(pixels checked from the image header before decoding), 415 not an image, 503 with ``Retry-After`` when the
replica's queue is full, 504 past the request deadline. The work of a request runs on a thread of its own; windows
of concurrent requests share backend calls (:mod:`.batching`).
"""


import asyncio
import contextvars
import dataclasses
import functools
import hmac
import threading
import time
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve

from drcn import __version__
from drcn.errors import DrcnError, InvalidArgument, OverLimit
from drcn.runtime.serve import protocol
from drcn.runtime.serve.model import FORMATS, ServedModel, ServeSettings

VERSION = "1"


@dataclasses.dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 64 << 20     # a request body larger than this is refused (413) before it is read
    max_pending: int = 16              # requests a replica holds at once (running + waiting); more: 503
    deadline_s: float = 120.0          # a request still running after this: 504
    token: str | None = None           # bearer token; None: no authentication
    max_pixels: int | None = None      # the pixel limit in the replicas (None: DRCN_MAX_PIXELS or the default)


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(protocol.error_body(message), status_code=status, media_type="application/json",
                    headers=headers)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, OverLimit):
        return 413
    if isinstance(exc, (protocol.ProtocolError, InvalidArgument)):
        return 400
    return 400 if isinstance(exc, DrcnError) else 500


app = FastAPI(title="drcn-serve", docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment(name="drcn", max_ongoing_requests=64, graceful_shutdown_timeout_s=30,
                  health_check_period_s=5, health_check_timeout_s=30)
@serve.ingress(app)
class DrcnDeployment:
    """One replica: the model (:class:`ServedModel`), a bounded count of requests in hand, the routes."""

    def __init__(self, settings: ServeSettings, limits: ServeLimits):
        import os

        from drcn.limits import ENV

        if limits.max_pixels is not None:
            os.environ[ENV] = str(limits.max_pixels)
        self.settings, self.limits = settings, limits
        self.model = ServedModel(settings)
        self._pending = 0
        self._lock = threading.Lock()
        self.started = time.time()

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _authorised(self, request: Request) -> None:
        if self.limits.token is None:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.limits.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HttpError(401, "a bearer token is needed (Authorization: Bearer <token>)",
                            {"WWW-Authenticate": "Bearer"})

    async def _body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(413, f"request body of {int(declared):,} bytes, over the limit of {limit:,}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"request body over the limit of {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _work(self, request: Request, fn, *args):
        """Run ``fn(*args)`` on a thread, within the queue bound and the deadline; a client that goes away stops
        waiting for it."""
        with self._lock:
            if self._pending >= self.limits.max_pending:
                raise HttpError(503, f"busy: {self._pending} requests in hand (the limit); try again shortly",
                                {"Retry-After": "1"})
            self._pending += 1
        # Imported here, not at module level: Ray pickles the ingress app with the globals it names.
        from drcn.runtime.serve.batching import CANCELLED

        given_up = threading.Event()
        context = contextvars.copy_context()
        context.run(CANCELLED.set, given_up)       # the thread's backend calls see it (drcn.runtime.serve.batching)
        try:
            task = asyncio.get_running_loop().run_in_executor(None, functools.partial(context.run, fn, *args))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())   # a given-up task's error is expected
            deadline = time.monotonic() + self.limits.deadline_s
            while True:
                done, _ = await asyncio.wait({task}, timeout=min(0.25, max(0.0, deadline - time.monotonic())))
                if done:
                    return task.result()
                if time.monotonic() >= deadline:
                    given_up.set()
                    raise HttpError(504, f"the request took longer than its deadline of {self.limits.deadline_s:g} s")
                if await request.is_disconnected():
                    given_up.set()
                    raise HttpError(499, "the client went away")
        finally:
            with self._lock:
                self._pending -= 1

    async def _handle(self, request: Request, handler, *args) -> Response:
        try:
            return await handler(request, *args)
        except HttpError as exc:
            return _error(exc.status, exc.message, exc.headers)
        except DrcnError as exc:
            return _error(_status_of(exc), str(exc))

    # -- the page and the image endpoint ------------------------------------------------------------------------
    @app.get("/")
    async def page(self) -> HTMLResponse:
        return HTMLResponse(resources.files("drcn.runtime.serve").joinpath("page.html").read_text())

    @app.get("/v1/info")
    async def info(self) -> JSONResponse:
        from drcn.limits import max_pixels
        from drcn.runtime.serve.model import MAX_SCALE, MIN_SCALE

        model = self.model
        return JSONResponse({"drcn": __version__, "backend": model.backend_name, "precision": model.precision,
                             "description": model.description, "model": self.settings.model_name,
                             "kind": self.settings.kind, "scale": self.settings.scale,
                             "scales": [MIN_SCALE, MAX_SCALE], "formats": sorted(FORMATS),
                             "max_body_bytes": self.limits.max_body_bytes, "max_pixels": max_pixels(),
                             "token_required": self.limits.token is not None,
                             "backend_calls": model.backend_calls, "window_calls": model.window_calls,
                             "cancelled_calls": model.cancelled_calls, "pending": self._pending})

    @app.post("/v1/upscale")
    async def upscale(self, request: Request) -> Response:
        return await self._handle(request, self._upscale)

    async def _upscale(self, request: Request) -> Response:
        self._authorised(request)
        try:
            scale = float(request.query_params.get("scale", "2"))
        except ValueError:
            raise HttpError(400, f"scale {request.query_params.get('scale')!r}: a number") from None
        fmt = request.query_params.get("format", "png").lower()
        if fmt not in FORMATS:
            raise HttpError(400, f"format {fmt!r}: one of {', '.join(sorted(FORMATS))}")
        body = await self._body(request)
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
        start = time.perf_counter()
        result = self.model.upscale_image(image, scale, "request body")
        compute = time.perf_counter() - start
        if fmt == "jpeg" and result.dtype != "uint8":
            result = (result // 257).astype("uint8")
        return encode_image(result, FORMATS[fmt][0]), compute

    # -- the Open Inference Protocol ----------------------------------------------------------------------------
    @app.get("/v2")
    async def server_metadata(self) -> JSONResponse:
        return JSONResponse({"name": "drcn", "version": __version__, "extensions": protocol.EXTENSIONS})

    @app.get("/v2/health/live")
    async def live(self) -> Response:
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def ready(self) -> Response:
        return Response(status_code=200)

    def _model_or_404(self, name: str, version: str | None) -> None:
        if name != self.settings.model_name or version not in (None, VERSION):
            raise HttpError(404, f"model '{name}'{f' version {version}' if version else ''} is not served here "
                                 f"(this server has '{self.settings.model_name}' version {VERSION})")

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(self, request: Request, name: str, version: str | None = None) -> Response:
        return await self._handle(request, self._metadata, name, version)

    async def _metadata(self, request: Request, name: str, version: str | None) -> Response:
        self._authorised(request)
        self._model_or_404(name, version)
        settings = self.settings
        body = protocol.model_metadata(name, VERSION, "drcn_ray_serve", [settings.input_spec()],
                                       [settings.output_spec()], self.model.metadata_parameters())
        return JSONResponse(body)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(self, request: Request, name: str, version: str | None = None) -> Response:
        async def check(request: Request, name: str, version: str | None) -> Response:
            self._model_or_404(name, version)
            return Response(status_code=200)
        return await self._handle(request, check, name, version)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(self, request: Request, name: str, version: str | None = None) -> Response:
        return await self._handle(request, self._infer, name, version)

    async def _infer(self, request: Request, name: str, version: str | None) -> Response:
        self._authorised(request)
        self._model_or_404(name, version)
        body = await self._body(request)
        settings = self.settings
        parsed = protocol.parse_infer(body, request.headers.get(protocol.HEADER_LENGTH), settings.input_spec(),
                                      settings.output_spec().name)
        result = await self._work(request, self.model.infer_tensor, parsed.array)
        data, headers = protocol.infer_response(name, VERSION, parsed, settings.output_spec().name, result)
        return Response(data, headers=headers, media_type=headers["Content-Type"])


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
                                  ray_actor_options={"num_cpus": num_cpus}).bind(settings, limits)


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
    settings, limits = settings_from(parsed)
    return application(settings, limits, parsed.replicas, max_replicas=parsed.max_replicas)

