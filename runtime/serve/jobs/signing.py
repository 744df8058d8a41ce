"""Result links that carry their own token: ``/v1/jobs/{id}/result?expires=T&sig=S`` (HMAC-SHA256 of the id and
the expiry under the job folder's key). A player or a browser's ``<video>`` cannot send a bearer header; such a link
lets it fetch (and seek in) one result until ``T`` (Unix seconds), and nothing else."""

from __future__ import annotations

import hashlib
import hmac
import time

LINK_SECONDS = 3600


def sign(key: bytes, job_id: str, expires: int) -> str:
    return hmac.new(key, f"{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_query(key: bytes, job_id: str, seconds: int = LINK_SECONDS, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + seconds)
    return f"expires={expires}&sig={sign(key, job_id, expires)}"


def check(key: bytes, job_id: str, expires: str | None, sig: str | None, now: float | None = None) -> str | None:
    """None where the link is good for ``job_id`` now; else why not (one line)."""
    if not expires or not sig:
        return "no link token"
    try:
        until = int(expires)
    except ValueError:
        return "a malformed link"
    if not hmac.compare_digest(sign(key, job_id, until), sig):
        return "a link token that is not this server's for this job"
    if (time.time() if now is None else now) > until:
        return "an expired link; ask for the job again for a fresh one"
    return None
