"""Admin credentials for the web layer: tokens (only their SHA-256 is stored, in the catalog)
and the sessions a login opens, each with its own CSRF token: in the catalog too, so a server
restart logs no browser out and every server sharing the catalog knows them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
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


class TokenBook:
    """Checks Bearer tokens and session cookies against the catalog (only digests of either
    are stored); a session ends at its expiry, at logout, or when its token is removed."""

    def __init__(self, catalog: Catalog, ttl_s: float = SESSION_TTL_S,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self._catalog = catalog
        self._ttl_s = ttl_s
        self._max = max_sessions

    async def token_name(self, token: str) -> str | None:
        """The name of the token, or None when it is not one of ours."""
        if not token or len(token) > 256:
            return None
        return await asyncio.to_thread(self._catalog.web_token_name, token_digest(token))

    async def open_session(self, name: str) -> tuple[str, Session]:
        """(cookie value, session); the cookie value is stored only as its digest."""
        cookie = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(name, secrets.token_urlsafe(TOKEN_BYTES))
        expires_ms = int((time.time() + self._ttl_s) * 1000)
        await asyncio.to_thread(self._catalog.open_web_session, token_digest(cookie), name,
                                session.csrf, expires_ms, self._max)
        return cookie, session

    async def session(self, cookie: str) -> Session | None:
        if not cookie or len(cookie) > 256:
            return None
        found = await asyncio.to_thread(self._catalog.web_session, token_digest(cookie))
        return None if found is None else Session(*found)

    async def close_session(self, cookie: str) -> None:
        if cookie and len(cookie) <= 256:
            await asyncio.to_thread(self._catalog.close_web_session, token_digest(cookie))


def csrf_matches(session: Session, sent: str) -> bool:
    return hmac.compare_digest(session.csrf.encode(), sent.encode("utf-8", "replace"))
