"""The job routes of a replica (a mixin of the deployment class, on the same FastAPI app):

    POST   /v1/jobs?scale=2&codec=...        the video as the raw body -> 202 {"id", "url", "state", ...}
    GET    /v1/jobs                          the caller's jobs
    GET    /v1/jobs/{id}                     one job: state, frames and segments done, fps, eta, error, result_url
    GET    /v1/jobs/{id}/result              the finished file (Range, ETag, If-Range); a signed link needs no token
    DELETE /v1/jobs/{id}                     cancel a job in hand (its parts removed), or remove a finished one

The upload is streamed to the job folder (never held in memory), bounded by ``--max-upload`` and an idle timeout, and
probed before it becomes a job: what drcn-run refuses is refused here in its words, and nothing stays on disk. A job
is visible only with the token that made it.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, Response

from drcn.errors import DrcnError, OverLimit
from drcn.runtime.serve.http import HttpError, app
from drcn.runtime.serve.jobs.store import UNFINISHED, JobRecord

CHUNK_WRITE = 1 << 20
CANCEL_WAIT_S = 10.0


class JobRoutes:
    """Routes that need, from the deployment: ``limits`` (job options), ``jobs`` (a JobStore, None: jobs off),
    ``jobs_off`` (why not, or None), ``tokens`` (:class:`~drcn.runtime.serve.auth.Tokens`), ``threads``
    (:class:`~drcn.runtime.serve.work.RequestThreads`) and ``_handle``."""

    # -- create ------------------------------------------------------------------------------------------------
    @app.post("/v1/jobs")
    async def create_job(self, request: Request) -> Response:
        """A video in the body, drcn-run's video options in the query -> 202 with the job's id and url."""
        return await self._handle(request, self._create_job)

    async def _create_job(self, request: Request) -> Response:
        from drcn.runtime.serve.jobs import callbacks, intake, options

        store = self._job_store()
        caller = self.tokens.caller(request)
        owner, token = caller.owner, caller.token
        query = dict(request.query_params)
        chosen = options.parse(query)           # 400 before a byte of the upload is read
        name = options.upload_name(query)
        callback = callbacks.check_url(query["callback"], self.limits.callback_allow) if "callback" in query else None
        mine = [r for r in store.all() if r.owner == owner and r.state in UNFINISHED]
        if len(mine) >= self.limits.max_jobs:
            raise HttpError(429, f"{len(mine)} jobs queued or running for this token, the limit (--max-jobs "
                                 f"{self.limits.max_jobs}); wait for one to finish or cancel one",
                            {"Retry-After": "30"})
        upload, size, digest = await self._receive(request, store)
        try:
            try:
                found, container = await asyncio.get_running_loop().run_in_executor(
                    self.threads.pool, intake.probe, upload, chosen, name)
            except OverLimit as exc:
                raise HttpError(413, str(exc)) from None
            except DrcnError as exc:
                text = str(exc)
                unreadable = any(words in text for words in ("not a video", "no video stream", "cannot decode",
                                                             "no video frame"))
                raise HttpError(415 if unreadable else 400, text) from None
            self._check_job_disk(store, size, found, chosen)
            record = JobRecord(id=store.new_id(), owner=owner, options=chosen.__dict__.copy(), name=name,
                               container=container, input_bytes=size, input=found, input_sha256=digest,
                               frames_total=found["frames"], callback=callback,
                               callback_key=callbacks.callback_key(token, store.secret()) if callback else None)
            store.create(record, upload)
        finally:
            upload.unlink(missing_ok=True)
        return JSONResponse(self._job_view(record, request), status_code=202,
                            headers={"Location": f"/v1/jobs/{record.id}"})

    async def _receive(self, request: Request, store) -> tuple[Path, int, str]:
        """The body streamed into the job folder's incoming area: (file, bytes, sha256). Over ``--max-upload`` 413,
        ended before its declared length 400, idle past ``--upload-timeout`` 408; nothing kept on failure."""
        from starlette.requests import ClientDisconnect

        limit, idle = self.limits.max_upload, self.limits.upload_idle_s
        declared = request.headers.get("content-length")
        declared = int(declared) if declared is not None and declared.isdigit() else None
        if declared is not None and declared > limit:
            raise HttpError(413, f"an upload of {declared:,} bytes, over the limit of {limit:,} (--max-upload)")
        path = store.incoming / secrets.token_hex(8)
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "wb") as handle:
                stream = request.stream().__aiter__()
                while True:
                    try:
                        chunk = await asyncio.wait_for(stream.__anext__(), idle)
                    except StopAsyncIteration:
                        break
                    except asyncio.TimeoutError:
                        raise HttpError(408, f"the upload stalled: nothing came for {idle:g} s "
                                             f"(after {size:,} bytes)") from None
                    size += len(chunk)
                    if size > limit:
                        raise HttpError(413, f"an upload over the limit of {limit:,} bytes (--max-upload)")
                    handle.write(chunk)
                    digest.update(chunk)
            if declared is not None and size < declared:
                raise HttpError(400, f"the upload ended after {size:,} of its {declared:,} bytes")
            if size == 0:
                raise HttpError(400, "an empty body: send the video itself as the request body")
        except ClientDisconnect:
            path.unlink(missing_ok=True)
            raise HttpError(400, f"the client went away during the upload (after {size:,} bytes)") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size, digest.hexdigest()

    def _check_job_disk(self, store, size: int, found: dict, chosen) -> None:
        from drcn.runtime.media.segments import estimate_bytes

        budget = self.limits.job_disk
        if budget is None:
            return
        height, width = (int(v) for v in found["output"].split("x")[::-1])
        # the upload, its parts and the output: the parts and the output are about the same size
        needed = size + 2 * estimate_bytes(size, found["frames"], (height, width), chosen.codec == "ffv1",
                                           chosen.scale)
        used = store.disk_used() - size          # the upload is counted in what it needs
        if used + needed > budget:
            raise HttpError(507, f"not enough room for this job: it needs about {needed / 2**30:.2f} GiB and the "
                                 f"jobs hold {max(0, used) / 2**30:.2f} GiB of their {budget / 2**30:.2f} GiB "
                                 "(--job-disk)")

    # -- watch -------------------------------------------------------------------------------------------------
    @app.get("/v1/jobs")
    async def list_jobs(self, request: Request) -> Response:
        """The caller's jobs, oldest first."""
        async def listing(request: Request) -> Response:
            store, owner = self._job_store(), self.tokens.caller(request).owner
            return JSONResponse({"jobs": [self._job_view(r, request) for r in store.all() if r.owner == owner]})
        return await self._handle(request, listing)

    @app.get("/v1/jobs/{job_id}")
    async def job(self, request: Request, job_id: str) -> Response:
        """One job's state."""
        async def one(request: Request, job_id: str) -> Response:
            return JSONResponse(self._job_view(self._my_job(request, job_id), request))
        return await self._handle(request, one, job_id)

    # -- fetch -------------------------------------------------------------------------------------------------
    @app.get("/v1/jobs/{job_id}/result")
    async def job_result(self, request: Request, job_id: str) -> Response:
        """The finished file: Range, ETag and If-Range (Starlette's FileResponse)."""
        return await self._handle(request, self._result, job_id)

    async def _result(self, request: Request, job_id: str) -> Response:
        from drcn.runtime.serve.jobs import signing
        from drcn.runtime.serve.jobs.options import CONTAINERS

        store = self._job_store()
        params = request.query_params
        if "sig" in params or "expires" in params:
            why = signing.check(store.secret(), job_id, params.get("expires"), params.get("sig"))
            if why:
                raise HttpError(403, f"job {job_id}: {why}")
            record = store.get(job_id)
            if record is None:
                raise HttpError(404, f"job {job_id}: no such job")
        else:
            record = self._my_job(request, job_id)
        if record.state != "done":
            raise HttpError(409, f"job {job_id} is {record.state}: no result"
                                 + (" yet" if record.state in UNFINISHED else ""))
        path = store.result(record)
        if not path.is_file():
            raise HttpError(410, f"job {job_id}: its result was removed")
        stem = record.name.rsplit(".", 1)[0] if "." in record.name else record.name
        return FileResponse(path, media_type=CONTAINERS.get(record.container, "application/octet-stream"),
                            filename=f"{stem}_x{record.options['scale']:g}.{record.container}",
                            content_disposition_type="inline")

    # -- cancel and remove -------------------------------------------------------------------------------------
    @app.delete("/v1/jobs/{job_id}")
    async def delete_job(self, request: Request, job_id: str) -> Response:
        """Cancel a queued or running job (its work stops within a window, its parts go), or remove a finished one."""
        return await self._handle(request, self._delete, job_id)

    async def _delete(self, request: Request, job_id: str) -> Response:
        store = self._job_store()
        record = self._my_job(request, job_id)
        if record.state not in UNFINISHED:
            store.remove(job_id)
            return JSONResponse({"id": job_id, "state": "removed"})
        store.cancel_marker(job_id).touch()
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            now = store.get(job_id)
            if now is None or now.state == "cancelled":
                return JSONResponse(self._job_view(now or record, request) if now else {"id": job_id,
                                                                                       "state": "cancelled"})
        return JSONResponse({**self._job_view(record, request), "state": "cancelling"}, status_code=202)

    # -- helpers -----------------------------------------------------------------------------------------------
    def _job_store(self):
        if self.jobs is None:
            if self.jobs_off:
                from drcn.runtime.serve.redact import without_paths

                raise HttpError(503, without_paths(self.jobs_off))
            raise HttpError(404, "video jobs are off on this server (drcn-serve --no-jobs)")
        return self.jobs

    def _my_job(self, request: Request, job_id: str) -> JobRecord:
        owner = self.tokens.caller(request).owner
        record = self._job_store().get(job_id)
        if record is None or record.owner != owner:
            raise HttpError(404, f"job {job_id}: no such job")       # another token's job is not said to exist
        return record

    def _job_view(self, record: JobRecord, request: Request) -> dict:
        from drcn.runtime.serve.jobs import signing

        view = record.public()
        view["url"] = f"/v1/jobs/{record.id}"
        view["result_url"] = (f"/v1/jobs/{record.id}/result?{signing.signed_query(self.jobs.secret(), record.id)}"
                              if record.state == "done" else None)
        return view
