"""Who calls: the bearer tokens of ``drcn-serve --token-file`` (any of them is accepted; each caller sees only the
jobs made with its own token)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

from starlette.requests import Request

from drcn.runtime.serve.http import HttpError


@dataclasses.dataclass(frozen=True)
class Caller:
    owner: str            # a digest of the token given ("" where the server has no token): what a job records
    token: str | None     # the token itself (None where the server has none)


class Tokens:
    """The accepted bearer tokens; none: every caller is let in, as the owner ""."""

    def __init__(self, tokens: tuple[str, ...]):
        self.tokens = tuple(tokens)

    def caller(self, request: Request) -> Caller:
        """The caller of ``request``: 401 (:class:`HttpError`) without an accepted ``Authorization: Bearer``."""
        if not self.tokens:
            return Caller("", None)
        given = request.headers.get("authorization", "").encode()
        found = None
        for token in self.tokens:       # every token compared, in constant time each: no timing tells which
            if hmac.compare_digest(given, f"Bearer {token}".encode()):
                found = token
        if found is None:
            raise HttpError(401, "a bearer token is needed (Authorization: Bearer <token>)",
                            {"WWW-Authenticate": "Bearer"})
        return Caller(hashlib.sha256(found.encode()).hexdigest()[:16], found)
