"""Who may use the web API: a Bearer token, or the session cookie a login opens (whose
state-changing requests must also carry the session's CSRF token); and how photonic's errors
become HTTP statuses, in one place."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from photonic import errors
from photonic.models import AgentId, Scope
from photonic.server.auth import Caller
from photonic.web.cert_access import CertificateGate, CertVerdict, peer_certificate
from photonic.web.credentials import TokenBook, csrf_matches

log = logging.getLogger("photonic.web")

COOKIE = "photonic_session"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/login"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BOOK: web.AppKey[TokenBook] = web.AppKey("token_book", TokenBook)
PUBLIC_ROUTES: web.AppKey[frozenset[str]] = web.AppKey("public_routes", frozenset)
"""Names of routes served without a credential (the dashboard's shell and static files, which
hold no data); matched by route, not by path, so no spelling of a path reaches past them."""
SECURE_COOKIE: web.AppKey[bool] = web.AppKey("secure_cookie", bool)
ACTOR = "photonic_actor"
CERTS: web.AppKey[CertificateGate] = web.AppKey("cert_gate", CertificateGate)
"""Set when the dashboard is served over HTTPS: client certificates are then credentials."""
CERT_ID = "photonic_cert_id"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS: tuple[tuple[type[errors.PhotonicError], int], ...] = (
    (errors.UnsupportedMedia, 415),  # before InvalidInput, its base: the first match wins
    (errors.TooLarge, 413),
    (errors.InvalidInput, 400), (errors.AuthError, 403), (errors.NotFound, 404),
    (errors.NotReady, 409), (errors.LimitExceeded, 429), (errors.StorageFull, 507),
    (errors.Transient, 503), (errors.Unimplemented, 501),
)


def problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def caller_of(request: web.Request) -> Caller:
    """The admin caller a request acts as: `web:<token name>` or `cert:<certificate
    identity>` in the audit log."""
    actor = request[ACTOR] if CERT_ID in request else f"web:{request[ACTOR]}"
    return Caller(AgentId(actor), frozenset({Scope.ADMIN}))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except errors.PhotonicError as exc:
        status = next((s for kind, s in _STATUS if isinstance(exc, kind)), 500)
        if status == 500:
            return problem(status, "internal error")
        if exc.client_message is None:
            return problem(status, str(exc))
        cid = uuid.uuid4().hex[:12]  # the message names the server's internals: logged only
        log.warning("web call refused: %s", exc, extra={"correlation_id": cid})
        return problem(status, f"{exc.client_message} (correlation id {cid})")
    except Exception:
        cid = uuid.uuid4().hex[:12]
        log.exception("web handler failed", extra={"correlation_id": cid})
        return problem(500, f"internal error (correlation id {cid})")


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or _public_route(request):
        return await handler(request)
    verdict = _certificate(request)
    if verdict is not None and verdict.admitted:
        return await _as_certificate(request, handler, verdict)
    book = request.app[BOOK]
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        name = await book.token_name(auth[len("Bearer "):].strip())
        if name is None:
            return problem(401, "the Bearer token is not known; make one with "
                                "`photonic web token create`")
        request[ACTOR] = name
        return await handler(request)
    session = await book.session(request.cookies.get(COOKIE, ""))
    if session is None:
        if verdict is not None:  # a certificate that may not administer, and nothing else
            await request.app[CERTS].refused(verdict, request)
            return problem(403, verdict.refusal)
        return problem(401, "log in (POST /login) or send Authorization: Bearer TOKEN")
    if request.method not in SAFE_METHODS and not csrf_matches(
            session, request.headers.get(CSRF_HEADER, "")):
        return problem(403, f"a state-changing request needs the session's {CSRF_HEADER}")
    request[ACTOR] = session.name
    return await handler(request)


def _certificate(request: web.Request) -> CertVerdict | None:
    """The verdict on the client certificate the request's TLS connection verified, or None
    when there is none (or certificates are not credentials here)."""
    gate = request.app.get(CERTS)
    der = peer_certificate(request) if gate is not None else None
    return gate.judge(der) if gate is not None and der is not None else None


async def _as_certificate(request: web.Request, handler: Handler,
                          verdict: CertVerdict) -> web.StreamResponse:
    gate = request.app[CERTS]
    if request.method not in SAFE_METHODS and not gate.csrf_matches(
            verdict.agent_id, request.headers.get(CSRF_HEADER, "")):
        return problem(403, f"a state-changing request made with a client certificate needs "
                            f"the {CSRF_HEADER} that GET /api/v1/session answers")
    request[ACTOR] = verdict.actor
    request[CERT_ID] = verdict.agent_id
    return await handler(request)


def _public_route(request: web.Request) -> bool:
    name = request.match_info.route.name
    return name is not None and name in request.app.get(PUBLIC_ROUTES, frozenset())


async def login(request: web.Request) -> web.Response:
    """Exchanges a token (form field or JSON "token") for a session cookie; answers the CSRF
    token that every POST of the session must send."""
    token = ""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return problem(400, "the body is not JSON")
        token = str(body.get("token", "")) if isinstance(body, dict) else ""
    else:
        token = str((await request.post()).get("token", ""))
    book = request.app[BOOK]
    name = await book.token_name(token.strip())
    if name is None:
        return problem(401, "that token is not known")
    cookie, session = await book.open_session(name)
    response = web.json_response({"name": name, "csrf_token": session.csrf})
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path="/",
                        secure=request.app[SECURE_COOKIE])
    return response


async def logout(request: web.Request) -> web.Response:
    await request.app[BOOK].close_session(request.cookies.get(COOKIE, ""))
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def session_info(request: web.Request) -> web.Response:
    session = await request.app[BOOK].session(request.cookies.get(COOKIE, ""))
    csrf = session.csrf if session else ""
    if CERT_ID in request:  # the POSTs of a certificate carry its own token
        csrf = request.app[CERTS].csrf_token(request[CERT_ID])
    return web.json_response({"name": request[ACTOR], "csrf_token": csrf})
