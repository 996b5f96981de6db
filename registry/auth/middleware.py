"""The auth middleware: every /v2 request is authenticated and authorised before its handler.

It runs inside the error envelope middleware, after routing (registry/app.py), and decides from
the route's action (registry.api.routes.ACTIONS: pull, push, delete, catalog, or "" for /v2/):

- a Bearer token (token mode): signature, expiry, audience, issuer, then its ``access`` claim
  must cover the repository and action. A token that does not mention the repository at all
  gets a fresh 401 challenge carrying the scope (the client fetches a token for it); a token
  that mentions it without the action was refused that action by the token server: 403 DENIED.
- Basic credentials (basic mode; also accepted in token mode, for curl and simple clients) and
  anonymous callers: the access rules decide directly. Anonymous callers refused anything get a
  401 challenge (they may sign in); signed-in callers get 403 DENIED.

It only decides whether the request may reach its handler, and puts the caller's identity (and
in token mode the token's claims) on the request. What a handler shows is the handler's call:
``/v2/_catalog`` and cross-repository mounts ask ``registry.auth.visible_filter`` (through
registry.state.VISIBILITY) which repositories the caller may pull.

Other paths (the catalog pages, their JSON API) never require sign-in here: the caller's
identity, if any (Basic, Bearer or the session cookie), is put on the request for
``registry.auth.visible_filter``.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web

from ..api.errors import Denied, TooManyRequests, Unauthorized
from ..api.routes import ACTIONS
from ..state import GRANTS
from .identities import TooManyFailures
from .rules import ANONYMOUS, Identity
from .service import AUTH, IDENTITY, AuthService, basic_credentials, bearer_token, client_address
from .tokens import TokenError, granted_actions

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SCOPE_ACTIONS = {"pull": "pull", "push": "pull,push", "delete": "delete"}


def _scope(action: str, repo: str | None) -> str | None:
    if action == "catalog":
        return "registry:catalog:*"
    if repo and action in SCOPE_ACTIONS:
        return f"repository:{repo}:{SCOPE_ACTIONS[action]}"
    return None


def unauthorized(svc: AuthService, request: web.Request, scope: str | None, error: str | None = None,
                 message: str | None = None) -> Unauthorized:
    return Unauthorized(message=message, headers={"WWW-Authenticate": svc.challenge(request, scope, error)})


async def password_identity(svc: AuthService, request: web.Request, user: str, password: str) -> Identity | None:
    try:
        return await svc.authenticator.login(user, password, client_address(request))
    except TooManyFailures as e:
        raise TooManyRequests(message="too many failed logins; try again later",
                              headers={"Retry-After": str(e.retry_after)}) from None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    svc = request.app[AUTH]
    if request.path == "/v2" or request.path.startswith("/v2/"):
        return await _guard_api(svc, request, handler)
    if not request.path.startswith(("/token", "/auth/")):
        request[IDENTITY] = await _soft_identity(svc, request)
    return await handler(request)


async def _soft_identity(svc: AuthService, request: web.Request) -> Identity:
    header = request.headers.get("Authorization", "")
    creds = basic_credentials(header)
    if creds is not None:
        try:
            who = await svc.authenticator.login(*creds, client_address(request))
        except TooManyFailures:
            who = None
        return who or ANONYMOUS
    token = bearer_token(header)
    if token is not None:
        return await svc.identity_from_token(token) or ANONYMOUS
    return await svc.identity_from_session(request) or ANONYMOUS


async def _guard_api(svc: AuthService, request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    action = ACTIONS.get(route.name or "", "")
    repo = request.match_info.get("name")
    scope = _scope(action, repo)
    header = request.headers.get("Authorization", "")
    token = bearer_token(header)
    if token is not None and svc.settings.mode == "token":
        try:
            claims = svc.tokens.verify_access(token)
        except TokenError as e:
            raise unauthorized(svc, request, scope, "invalid_token", f"authentication required: {e}") from None
        return await _with_claims(svc, request, handler, claims, action, repo, scope)

    who = ANONYMOUS
    creds = basic_credentials(header)
    if creds is not None:
        found = await password_identity(svc, request, *creds)
        if found is None:
            raise unauthorized(svc, request, scope, message="incorrect username or password")
        who = found
    request[IDENTITY] = who
    if action == "":
        if who.anonymous:
            raise unauthorized(svc, request, None)
        return await handler(request)
    if action == "catalog":
        if who.anonymous:  # clients fetch a token (an anonymous one lists the public repositories)
            raise unauthorized(svc, request, scope)
        return await handler(request)  # which names it lists: the handler asks visible_filter
    if repo is None or not svc.policy.can(who, repo, action):
        if who.anonymous:
            raise unauthorized(svc, request, scope)
        raise Denied(detail=_detail(repo, action))
    return await handler(request)


async def _with_claims(svc: AuthService, request: web.Request, handler: Handler, claims: dict[str, Any],
                       action: str, repo: str | None, scope: str | None) -> web.StreamResponse:
    sub = claims["sub"]
    if action == "":
        request[IDENTITY] = ANONYMOUS if not sub else Identity(sub, via="token")
        return await handler(request)
    if action == "catalog":
        granted = granted_actions(claims, "registry", "catalog")
        if not granted or "*" not in granted:
            raise unauthorized(svc, request, scope, "insufficient_scope")
        who = ANONYMOUS if not sub else await svc.authenticator.lookup(sub)
        if who is None:
            raise unauthorized(svc, request, scope, "invalid_token")
        request[IDENTITY] = who
        return await handler(request)
    granted = granted_actions(claims, "repository", repo or "")
    if granted is None:
        raise unauthorized(svc, request, scope, "insufficient_scope")
    if action not in granted and "*" not in granted:
        raise Denied(detail=_detail(repo, action))
    request[IDENTITY] = ANONYMOUS if not sub else Identity(sub, via="token")
    request[GRANTS] = claims  # what else it may pull is what the token grants (visible_filter)
    return await handler(request)


def _detail(repo: str | None, action: str) -> list[dict[str, str]]:
    return [{"Type": "repository", "Name": (repo or "")[:255], "Action": action}]
