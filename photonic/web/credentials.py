"""Admin credentials for the web layer: tokens (only their SHA-256 is stored, in the catalog)
and the sessions a login opens (held in memory, each with its own CSRF token)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from photonic import errors
from photonic.server.catalog import Catalog

TOKEN_BYTES = 32
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 1000
"""Open sessions kept; a login beyond it ends the oldest."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create_token(catalog: Catalog, name: str) -> str:
    """A new random token stored (hashed) under name; the token itself is returned once."""
    if not NAME_PATTERN.match(name):
        raise errors.InvalidInput(
            f"token name {name[:80]!r}: 1-64 letters, digits, '.', '_' or '-'")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    if not catalog.add_web_token(name, token_digest(token)):
        raise errors.InvalidInput(f"a web token named {name!r} exists; choose another --name")
    return token


@dataclass(frozen=True)
class Session:
    name: str
    csrf: str
    expires_s: float


class TokenBook:
    """Checks Bearer tokens against the catalog and keeps the sessions logins open."""

    def __init__(self, catalog: Catalog, ttl_s: float = SESSION_TTL_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self._catalog = catalog
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    async def token_name(self, token: str) -> str | None:
        """The name of the token, or None when it is not one of ours."""
        if not token or len(token) > 256:
            return None
        return await asyncio.to_thread(self._catalog.web_token_name, token_digest(token))

    def open_session(self, name: str) -> tuple[str, Session]:
        """(cookie value, session); the cookie value is stored only as its digest."""
        cookie = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(name, secrets.token_urlsafe(TOKEN_BYTES), time.time() + self._ttl_s)
        self._sessions[token_digest(cookie)] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return cookie, session

    def session(self, cookie: str) -> Session | None:
        key = token_digest(cookie)
        found = self._sessions.get(key)
        if found is None:
            return None
        if found.expires_s < time.time():
            del self._sessions[key]
            return None
        return found

    def close_session(self, cookie: str) -> None:
        self._sessions.pop(token_digest(cookie), None)


def csrf_matches(session: Session, sent: str) -> bool:
    return hmac.compare_digest(session.csrf.encode(), sent.encode("utf-8", "replace"))
