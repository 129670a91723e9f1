"""Who may use the WebDAV export: an admin, as on the rest of the web layer (an admin client
certificate over HTTPS, or Authorization: Bearer TOKEN), plus HTTP Basic with an admin web
token as the password (any user name), which is what Finder, Explorer, darktable and rclone
send. Basic is taken only over HTTPS or from loopback, so a token never crosses a network in
clear. Every refusal of a credential, or of an admitted caller, is logged and audited."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from aiohttp import web

from photonic.logfmt import event
from photonic.web import access
from photonic.web.cert_access import Audit, peer_certificate
from photonic.web.site import is_loopback

log = logging.getLogger("photonic.web.dav")

CHALLENGE = 'Basic realm="photonic", charset="UTF-8"'
AUDIT_ACTION = "webdav"


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    actor: str
    audited: bool = True


class DavGate:
    """admit() answers the actor a request acts as (`web:<token name>`, `cert:<identity>`),
    or the response refusing it."""

    def __init__(self, audit: Audit) -> None:
        self._audit = audit

    async def admit(self, request: web.Request) -> str | web.Response:
        verdict = await self._judge(request)
        if isinstance(verdict, str):
            return verdict
        return await self.refuse(request, verdict)

    async def refuse(self, request: web.Request, refusal: Refusal, *, body: str = "",
                     headers: dict[str, str] | None = None) -> web.Response:
        """Logs (and audits, unless refusal says not) a refusal; answers its response, with
        the reason as the body unless one (XML) is given."""
        event(log, "webdav_refused", logging.WARNING, caller=refusal.actor,
              method=request.method, path=request.path[:200], status=refusal.status,
              reason=refusal.reason)
        if refusal.audited:
            await self._audit(refusal.actor, AUDIT_ACTION,
                              f"{request.method} {request.path[:200]}", "refused",
                              refusal.reason)
        sent = dict(headers or {})
        if refusal.status == 401:
            sent["WWW-Authenticate"] = CHALLENGE
        if body:
            return web.Response(status=refusal.status, body=body.encode(), headers={
                **sent, "Content-Type": "application/xml; charset=utf-8"})
        return web.Response(status=refusal.status, text=refusal.reason + "\n", headers=sent)

    async def _judge(self, request: web.Request) -> str | Refusal:
        certs = request.app.get(access.CERTS)
        der = peer_certificate(request) if certs is not None else None
        verdict = certs.judge(der) if certs is not None and der is not None else None
        if verdict is not None and verdict.admitted:
            return verdict.actor
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        anonymous = f"web:?@{request.remote or '?'}"
        if scheme.lower() == "bearer":
            return await self._token(request, credential.strip(), anonymous)
        if scheme.lower() == "basic":
            return await self._basic(request, credential.strip(), anonymous)
        if scheme:
            return Refusal(401, f"the {scheme[:20]!r} scheme is not accepted: send Basic "
                                "with an admin web token as the password", anonymous)
        if verdict is not None and certs is not None:  # a certificate that may not administer
            await certs.refused(verdict, request)
            return Refusal(403, verdict.refusal, verdict.actor, audited=False)
        return Refusal(401, "log in with an admin web token as the password (any user name; "
                            "`photonic web token create` makes one)", anonymous, audited=False)

    async def _token(self, request: web.Request, token: str, anonymous: str) -> str | Refusal:
        name = await request.app[access.BOOK].token_name(token)
        if name is None:
            return Refusal(401, "that token is not known; make one with "
                                "`photonic web token create`", anonymous)
        return f"web:{name}"

    async def _basic(self, request: web.Request, credential: str,
                     anonymous: str) -> str | Refusal:
        if not (request.secure or is_loopback(request.remote or "")):
            return Refusal(403, "Basic credentials are taken only over HTTPS or from "
                                "loopback", anonymous)
        try:
            pair = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return Refusal(401, "the Basic credentials are not base64 of user:password",
                           anonymous)
        return await self._token(request, pair.partition(":")[2], anonymous)
