"""A finished job's status POSTed to the ``callback`` URL given at its creation: JSON, signed, retried, never blocking
the server. Only hosts on ``--callback-allow`` are called (none by default: callbacks are off), so that a job cannot
make the server reach into its own network.

The signature header ``X-Drcn-Signature: sha256=<hex>`` is the HMAC-SHA256 of the body under a key the client can
make itself: ``sha256("drcn-callback:" + <its bearer token>)`` (hex), or, on a server without tokens, under the key
in the job folder's ``.secret`` file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from drcn.errors import InvalidArgument

LOG = logging.getLogger("drcn.serve.jobs")
HEADER = "X-Drcn-Signature"
TRIES = 4
TIMEOUT_S = 10.0


def callback_key(token: str | None, secret: bytes) -> str:
    """The key a job's callbacks are signed with (hex), from the token that made the job."""
    if token:
        return hashlib.sha256(f"drcn-callback:{token}".encode()).hexdigest()
    return hashlib.sha256(b"drcn-callback:" + secret).hexdigest()


def check_url(url: str, allowed: tuple[str, ...]) -> str:
    """``url`` if it may be called (http or https, its host on the allow-list); one line naming it otherwise."""
    if not allowed:
        raise InvalidArgument("callback: callbacks are off on this server (drcn-serve --callback-allow HOST)")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"callback {url!r}: an http or https URL")
    if parts.hostname.lower() not in allowed:
        raise InvalidArgument(f"callback {url!r}: host {parts.hostname} is not on this server's --callback-allow")
    return url


def sign(key_hex: str, body: bytes) -> str:
    return "sha256=" + hmac.new(bytes.fromhex(key_hex), body, hashlib.sha256).hexdigest()


def send(url: str, key_hex: str, status: dict, allowed: tuple[str, ...], backoff_s: float = 1.0) -> threading.Thread:
    """POST ``status`` to ``url`` on a thread of its own: up to :data:`TRIES` tries, waiting 1, 2, 4 s between them
    (a 2xx ends it; a 4xx other than 408/429 is final); logged, never raised."""
    body = json.dumps(status).encode()

    def deliver() -> None:
        try:
            check_url(url, allowed)          # the allow-list in force now, not at the job's creation
        except InvalidArgument as exc:
            LOG.warning("job %s: callback not sent: %s", status.get("id"), exc)
            return
        for attempt in range(TRIES):
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", HEADER: sign(key_hex, body), "User-Agent": "drcn-serve"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                    LOG.info("job %s: callback answered %s", status.get("id"), answer.status)
                    return
            except urllib.error.HTTPError as error:
                if 400 <= error.code < 500 and error.code not in (408, 429):
                    LOG.warning("job %s: callback refused (%s)", status.get("id"), error.code)
                    return
                why = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError) as error:
                why = str(getattr(error, "reason", error))
            LOG.warning("job %s: callback try %d failed (%s)", status.get("id"), attempt + 1, why)
            time.sleep(backoff_s * 2 ** attempt)

    thread = threading.Thread(target=deliver, name="drcn-callback", daemon=True)
    thread.start()
    return thread
