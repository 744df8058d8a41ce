"""The job folder: one sub-folder per job, the truth a restarted server continues from.

    <job dir>/<id>/job.json        the record (:class:`JobRecord`): options, state, counts, error
    <job dir>/<id>/input           the upload as it came
    <job dir>/<id>/result.<ext>    the output, renamed into place when complete (drcn-run's atomic write)
    <job dir>/<id>/.result.<ext>.parts/   its finished segments while it runs (:mod:`drcn.runtime.media.segments`)
    <job dir>/<id>/cancel          asks whichever replica runs the job to stop it
    <job dir>/<id>/.job.lock       held by the replica running the job (released when its process ends)
    <job dir>/.incoming/           uploads being received (never a job until probed)

Every record is written to a temporary file and renamed, so a kill at any moment leaves the last complete one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import time
from pathlib import Path

from drcn.atomic import atomic_output

STATES = ("queued", "running", "done", "failed", "cancelled")
UNFINISHED = ("queued", "running")


@dataclasses.dataclass
class JobRecord:
    """One job, as stored in ``job.json`` and (less its owner) answered by ``GET /v1/jobs/{id}``."""

    id: str
    owner: str                      # digest of the token that made it ("" without a token)
    options: dict                   # JobOptions as a dict
    name: str = "upload"            # the upload's file name, as the client gave it
    container: str = "mkv"          # the output's
    input_bytes: int = 0
    input: dict = dataclasses.field(default_factory=dict)    # what the probe found: codec, size, frames, seconds
    state: str = "queued"
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    frames_done: int = 0
    frames_total: int = 0
    segments_done: int = 0
    segments_total: int = 0
    resumed_segments: int = 0
    helped_segments: int = 0        # segments another replica did while this one ran the job
    fps: float | None = None
    eta_s: float | None = None
    error: str | None = None        # the one line of a failed job
    warning: str | None = None      # a finished job whose input had frames that did not decode: the rest is written
    result_bytes: int | None = None
    input_sha256: str = ""          # of the upload: a job whose input changed on disk is failed, never joined
    settings: dict | None = None    # what changes the pixels, as the job's first run resolved it (model, precision)
    callback: str | None = None     # POSTed the job's status when it ends (:mod:`.callbacks`)
    callback_key: str | None = None

    def public(self) -> dict:
        view = dataclasses.asdict(self)
        for private in ("owner", "settings", "input_sha256", "callback_key"):
            view.pop(private)
        return view


class JobStore:
    """The job folder of a server (every replica of it opens the same one)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.incoming = self.root / ".incoming"
        self.incoming.mkdir(exist_ok=True)
        self._secret: bytes | None = None

    # -- places ------------------------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def input(self, job_id: str) -> Path:
        return self.folder(job_id) / "input"

    def result(self, record: JobRecord) -> Path:
        return self.folder(record.id) / f"result.{record.container}"

    def cancel_marker(self, job_id: str) -> Path:
        return self.folder(job_id) / "cancel"

    def lock_path(self, job_id: str) -> Path:
        return self.folder(job_id) / ".job.lock"

    # -- records -----------------------------------------------------------------------------------------------
    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    def create(self, record: JobRecord, upload: Path) -> JobRecord:
        """A new job from a probed upload (moved into its folder); the record is written last, so a folder without
        one is an unfinished creation, swept at start."""
        folder = self.folder(record.id)
        folder.mkdir()
        os.replace(upload, self.input(record.id))
        record.created = time.time()
        self.save(record)
        return record

    def save(self, record: JobRecord) -> None:
        folder = self.folder(record.id)
        if not folder.is_dir():
            return                   # removed meanwhile (deleted): nothing to record
        with atomic_output(folder / "job.json") as tmp:
            tmp.write_text(json.dumps(dataclasses.asdict(record), indent=1))

    def get(self, job_id: str) -> JobRecord | None:
        if not _is_id(job_id):
            return None
        try:
            data = json.loads((self.folder(job_id) / "job.json").read_text())
            return JobRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def all(self) -> list[JobRecord]:
        """Every job with a readable record, oldest first."""
        found = [self.get(p.name) for p in self.root.iterdir() if p.is_dir() and _is_id(p.name)]
        return sorted((r for r in found if r is not None), key=lambda r: r.created)

    def remove(self, job_id: str) -> None:
        if _is_id(job_id):
            shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def clear_work(self, record: JobRecord) -> None:
        """Remove a job's input, parts and any result, keeping its record (a cancelled job)."""
        folder = self.folder(record.id)
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.name in ("job.json", ".job.lock"):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    # -- upkeep ------------------------------------------------------------------------------------------------
    def disk_used(self) -> int:
        """Bytes under the job folder (uploads in progress included)."""
        total = 0
        for base, _, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(base, name)).st_size
                except OSError:
                    pass
        return total

    def sweep(self, ttl_s: float, now: float | None = None) -> list[str]:
        """Remove finished jobs older than ``ttl_s`` (from when they ended), folders left by a creation cut short,
        and uploads abandoned for an hour; the ids removed."""
        now = time.time() if now is None else now
        removed = []
        for path in self.root.iterdir():
            if not path.is_dir() or not _is_id(path.name):
                continue
            record = self.get(path.name)
            if record is None:
                if now - path.stat().st_mtime > 60:
                    shutil.rmtree(path, ignore_errors=True)
                continue
            if record.state not in UNFINISHED and now - (record.finished or record.created) > ttl_s:
                self.remove(record.id)
                removed.append(record.id)
        for upload in self.incoming.iterdir():
            try:
                if now - upload.stat().st_mtime > 3600:
                    upload.unlink()
            except OSError:
                pass
        return removed

    def secret(self) -> bytes:
        """The key of the signed result links, kept in the job folder (links stay valid across restarts); read once."""
        if self._secret is None:
            self._secret = self._read_or_make_secret()
        return self._secret

    def _read_or_make_secret(self) -> bytes:
        path = self.root / ".secret"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        key = secrets.token_bytes(32)
        temp = self.root / f".secret.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        try:
            os.link(temp, path)           # the first replica to write it wins; the others read its key
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
        return path.read_bytes()


PROBE = ".shared-probe"


def write_probe(root: Path) -> str:
    """Write a fresh token into the job folder (the server, at start); each replica reads it back
    (:func:`check_probe`): on a cluster the job folder must be one shared folder."""
    token = secrets.token_hex(16)
    with atomic_output(Path(root) / PROBE) as tmp:
        tmp.write_text(token)
    return token


def check_probe(root: Path, token: str | None) -> str | None:
    """None where this process sees the job folder the server wrote ``token`` into; else why not, in one line."""
    if token is None:
        return None
    import socket

    try:
        seen = (Path(root) / PROBE).read_text().strip()
    except OSError as exc:
        seen = f"unreadable ({exc.strerror})"
    if seen == token:
        return None
    return (f"--job-dir {root}: the replica on {socket.gethostname()} does not see the job folder the server wrote "
            "(on a cluster it must be one shared folder, mounted at the same path on every node); video jobs are "
            "off on this replica")


def _is_id(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)
