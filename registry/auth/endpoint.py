"""The token endpoint, ``/token``, as Docker's token and OAuth2 specs describe it.

``GET /token?service=S&scope=repository:NAME:pull,push[&scope=...][&account=A][&offline_token=true]``
    with Basic credentials (a user, ``robot$NAME`` with its secret) or none (anonymous: only
    what anonymous callers may do). Answers ``{"token", "access_token", "expires_in",
    "issued_at"}`` (+ ``refresh_token`` when offline_token=true and signed in).
``POST /token`` (form): ``grant_type=password`` (username, password) or
    ``grant_type=refresh_token`` (refresh_token), ``service``, ``scope`` (space-separated),
    ``client_id``, ``access_type=offline`` for a refresh token. ``docker login`` uses these.

The token grants the subset of each requested scope the caller holds (requested and not granted
appears with an empty action list, so the registry answers that request 403 DENIED rather than
sending the client round for another token). Wrong credentials: 401; too many failures: 429.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from oci.reference import InvalidReference, validate_name

from ..api.errors import ApiError, Unauthorized
from .middleware import AUTH, password_identity
from .rules import ANONYMOUS, Identity
from .service import AuthService, basic_credentials
from .tokens import Scope, TokenError, parse_scopes

MAX_SCOPES = 32


class UnknownService(ApiError):
    code = "DENIED"
    status = 400
    message = "unknown service"


def _access(svc: AuthService, who: Identity, scopes: list[Scope]) -> list[dict[str, Any]]:
    access: list[dict[str, Any]] = []
    for scope in scopes[:MAX_SCOPES]:
        if scope.type == "registry" and scope.name == "catalog":
            access.append({"type": "registry", "name": "catalog", "actions": ["*"] if "*" in scope.actions else []})
            continue
        if scope.type != "repository":
            continue
        try:
            validate_name(scope.name)
        except InvalidReference:
            continue
        access.append({"type": "repository", "name": scope.name,
                       "actions": svc.policy.grant(who, scope.name, scope.actions)})
    return access


def _answer(svc: AuthService, who: Identity, scopes: list[Scope], refresh: bool) -> web.Response:
    access = _access(svc, who, scopes)
    token, issued, expires_in = svc.tokens.issue_access(who.name or "", access)
    body: dict[str, Any] = {
        "token": token, "access_token": token, "expires_in": expires_in,
        "issued_at": datetime.fromtimestamp(issued, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if scopes:
        body["scope"] = " ".join(str(s) for s in scopes[:MAX_SCOPES])
    if refresh and not who.anonymous:
        body["refresh_token"] = svc.tokens.issue_refresh(who.name or "")
    # Tokens are credentials: no cache may keep them.
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _check_service(svc: AuthService, service: str | None) -> None:
    if service and service != svc.settings.service:
        raise UnknownService(message=f"unknown service {service[:100]!r}")


def _bad_credentials(svc: AuthService, request: web.Request) -> Unauthorized:
    return Unauthorized(message="incorrect username or password",
                        headers={"WWW-Authenticate": f'Basic realm="{svc.settings.service}"'})


async def get_token(request: web.Request) -> web.Response:
    svc = request.app[AUTH]
    q = request.query
    _check_service(svc, q.get("service"))
    who: Identity = ANONYMOUS
    creds = basic_credentials(request.headers.get("Authorization", ""))
    if creds is not None:
        found = await password_identity(svc, request, *creds)
        if found is None:
            raise _bad_credentials(svc, request)
        who = found
    elif request.headers.get("Authorization"):
        raise _bad_credentials(svc, request)
    offline = q.get("offline_token", "").lower() == "true"
    return _answer(svc, who, parse_scopes(q.getall("scope", [])), offline)


async def post_token(request: web.Request) -> web.Response:
    svc = request.app[AUTH]
    form = await request.post()
    _check_service(svc, str(form.get("service") or ""))
    grant = str(form.get("grant_type") or "")
    scopes = parse_scopes([str(v) for v in form.getall("scope", [])])
    offline = str(form.get("access_type") or "") == "offline"
    if grant == "password":
        found = await password_identity(svc, request, str(form.get("username") or ""), str(form.get("password") or ""))
        if found is None:
            raise _bad_credentials(svc, request)
        return _answer(svc, found, scopes, offline)
    if grant == "refresh_token":
        refresh = str(form.get("refresh_token") or "")
        try:
            claims = svc.tokens.verify_refresh(refresh)
        except TokenError as e:
            raise Unauthorized(message=f"invalid refresh token: {e}") from None
        who = await svc.authenticator.lookup(claims["sub"])
        if who is None or who.changed_at > claims["iat"] + 1:
            raise Unauthorized(message="invalid refresh token: the account changed; sign in again")
        # The client keeps the refresh token it has (its lifetime is fixed at sign-in).
        return _answer(svc, who, scopes, False)
    raise ApiError(message="unsupported grant_type (expected password or refresh_token)", status=400)


def add_token_routes(app: web.Application) -> None:
    app.router.add_get("/token", get_token, name="auth.token")
    app.router.add_post("/token", post_token, name="auth.token_post")
