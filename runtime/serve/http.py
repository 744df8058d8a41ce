"""The HTTP layer every route of ``drcn-serve`` shares: the FastAPI app, errors as one JSON line (an unexpected one
logged under a request id that the body carries), a bounded request body, and the middleware that counts requests
for the metrics."""

import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from drcn.errors import DrcnError, InvalidArgument, OverLimit, ShortNow
from drcn.runtime.serve import protocol
from drcn.runtime.serve.redact import without_paths


STATUSES = (
    (200, "the answer: an image, a video, JSON, Prometheus text"),
    (202, "a video job accepted (`POST /v1/jobs`), or a cancel under way (`DELETE`)"),
    (206, "part of a job's result, as a `Range` header asked"),
    (400, "a bad request: a query parameter out of range or unknown, a malformed tensor, a damaged image"),
    (401, "no bearer token, or one the server does not hold (where `--token-file` is set); health checks, the page "
          "and `/v1/info` stay open"),
    (404, "no such route, model or job (a job made with another token is not found either)"),
    (405, "a method the route does not take"),
    (408, "a job's upload that sent nothing for `--upload-timeout` seconds"),
    (409, "a job's result asked for before the job is done"),
    (413, "over a limit: the body (`--max-body-mb`, `--max-upload`), the pixels (from the image header, before "
          "decoding) or the working memory the replica could ever give"),
    (415, "not an image (or, for a job, not a video the server can read)"),
    (429, "`--max-jobs` jobs already queued or running for this token; `Retry-After` says when to try again"),
    (499, "the client went away before the answer (logged; the work stopped at its next check)"),
    (500, "an internal error: the body carries the `request_id` the server logged it under"),
    (503, "busy: `--queue` requests in hand, or no working memory free now; `Retry-After` says when to try again"),
    (504, "the request ran past `--deadline`"),
    (507, "the job folder's disk budget (`--job-disk`) cannot hold the job"),
)
"""Every status drcn-serve answers, and when (the HTTP reference renders it as a table)."""


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   request_id: str | None = None) -> Response:
    return Response(protocol.error_body(message, request_id), status_code=status, media_type="application/json",
                    headers=headers)


def unexpected(request: Request, exc: BaseException) -> Response:
    """A failure no check foresaw (a backend's RuntimeError, a bug): logged here in full under a fresh request id,
    answered in one JSON line that carries the id. Memory running out is "not now" (503), the rest 500."""
    import logging
    import uuid

    request_id = uuid.uuid4().hex[:16]
    logging.getLogger("drcn.serve").error("request %s (%s %s) failed", request_id, request.method,
                                          request.url.path, exc_info=(type(exc), exc, exc.__traceback__))
    if isinstance(exc, MemoryError):
        return error_response(503, "busy: the server ran out of memory for this request; try again shortly",
                              {"Retry-After": "5"}, request_id)
    reason = without_paths(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    return error_response(500, f"internal error ({type(exc).__name__}{': ' + reason if reason else ''}); the server "
                               f"logged it as request {request_id}", None, request_id)


async def answer(request: Request, handler, *args) -> Response:
    """``await handler(request, *args)``, with every failure answered as one JSON line: :class:`HttpError` as it
    says, :class:`DrcnError` by its kind (413 over a limit, 503 short now with Retry-After, else 400), anything else
    500 under a logged request id (:func:`unexpected`)."""
    try:
        return await handler(request, *args)
    except HttpError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except DrcnError as exc:
        status = status_of(exc)
        return error_response(status, without_paths(str(exc)), {"Retry-After": "2"} if status == 503 else None)
    except Exception as exc:  # noqa: BLE001 - answered in JSON and logged with its id, never swallowed
        return unexpected(request, exc)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's whole body, refused with 413 as soon as it is known to pass ``limit`` bytes (from its
    Content-Length before reading, else while reading): an image request's body is held in memory."""
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


def status_of(exc: BaseException) -> int:
    if isinstance(exc, OverLimit):
        return 413
    if isinstance(exc, ShortNow):
        return 503
    if isinstance(exc, (protocol.ProtocolError, InvalidArgument)):
        return 400
    return 400 if isinstance(exc, DrcnError) else 500


app = FastAPI(title="drcn-serve", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Unknown routes (404) and methods (405) answer like every other error: one JSON line."""
    what = {404: "no such route", 405: "method not allowed here"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, f"{request.method} {request.url.path}: {what}", exc.headers)


@app.exception_handler(Exception)
async def _internal(request: Request, exc: Exception) -> Response:
    """What escapes every route's own handling still answers in JSON."""
    return unexpected(request, exc)


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    return error_response(400, f"{request.method} {request.url.path}: invalid request")


@app.middleware("http")
async def _measure(request: Request, call_next):
    from drcn.runtime.serve.metrics import installed   # a module imported in the replica, never pickled

    start = time.perf_counter()
    response = await call_next(request)
    metrics = installed()
    if metrics is not None:
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        metrics.observe(route, response.status_code, time.perf_counter() - start)
    return response
