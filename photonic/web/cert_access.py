"""The admin client certificate as a web credential. Over HTTPS the server asks for an
optional client certificate, which the TLS handshake verifies against the photonic CA; this
module reads whom a verified certificate names and whether that identity may administer, by
the rules the gRPC side applies (one CN that is an agent id, not a CA, not revoked, scopes
from server.yaml).

A browser presents its certificate on every request to the origin, cross-site ones too, so a
certificate alone never changes state: a POST must also carry a CSRF token, which
GET /api/v1/session answers for the certificate (an HMAC of its identity under a key that
lives as long as the process)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from photonic.logfmt import event
from photonic.models import Scope
from photonic.server.auth import RevocationList
from photonic.tls import certificate_identity

log = logging.getLogger("photonic.web")

ScopesOf = Callable[[str], frozenset[Scope]]
Audit = Callable[[str, str, str, str, str], Awaitable[None]]
"""(actor, action, target, result, detail): Authorizer.audit, budgeted and bounded."""


@dataclass(frozen=True)
class CertVerdict:
    agent_id: str
    """The identity the certificate names ("" when it names none acceptably)."""
    refusal: str = ""
    """Why it is not an admin credential; "" when it is one."""

    @property
    def admitted(self) -> bool:
        return not self.refusal

    @property
    def actor(self) -> str:
        """How the audit log names a request made with this certificate."""
        return f"cert:{self.agent_id or '?'}"


def peer_certificate(request: web.Request) -> bytes | None:
    """The DER of the client certificate the TLS handshake verified, or None (plain HTTP,
    or HTTPS without a certificate)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return der or None


class CertificateGate:
    """Judges verified client certificates and answers and checks their CSRF tokens."""

    def __init__(self, scopes_of: ScopesOf, revocations: RevocationList, audit: Audit) -> None:
        self._scopes_of = scopes_of
        self._revocations = revocations
        self._audit = audit
        self._csrf_key = secrets.token_bytes(32)

    def judge(self, der: bytes) -> CertVerdict:
        peer = certificate_identity(der)
        if peer.agent_id is None:
            return CertVerdict("", f"the client certificate cannot be used: {peer.refusal}")
        if refusal := self._revocations.refusal(peer.agent_id, peer.serial):
            return CertVerdict(peer.agent_id, refusal)
        if Scope.ADMIN not in self._scopes_of(peer.agent_id):
            return CertVerdict(peer.agent_id, (
                f"the client certificate {peer.agent_id!r} lacks the 'admin' scope the "
                "dashboard needs; use an admin certificate or an admin token"))
        return CertVerdict(peer.agent_id)

    async def refused(self, verdict: CertVerdict, request: web.Request) -> None:
        """Logs and audits a certificate refused as a web credential (as gRPC refusals are)."""
        event(log, "web_certificate_refused", logging.WARNING, caller=verdict.actor,
              path=request.path[:200], reason=verdict.refusal)
        await self._audit(verdict.actor, "web", f"{request.method} {request.path}",
                          "refused", verdict.refusal)

    def csrf_token(self, agent_id: str) -> str:
        return hmac.new(self._csrf_key, agent_id.encode(), hashlib.sha256).hexdigest()

    def csrf_matches(self, agent_id: str, sent: str) -> bool:
        return hmac.compare_digest(self.csrf_token(agent_id).encode(),
                                   sent.encode("utf-8", "replace"))
