"""Authentication and authorization for the registry.

``setup_auth(app, config)`` is called by registry.app.create_app after the API routes exist.
With ``auth.mode`` none (the default) it does nothing and everyone may do everything. Otherwise
it adds the token endpoint (/token, token mode), the catalog's sign-in page (/auth/login), and the auth
middleware (registry/auth/middleware.py); settings in registry/auth/settings.py.

For the catalog (registry.web) and anyone else asking "may this caller see that repository?":

``visible_filter(request) -> Callable[[str], bool] | None``
    A predicate ``repository name -> may the caller pull it``, or None when the caller may pull
    everything (auth off, or an admin): None lets the catalog keep its fast unfiltered SQL path.
``can(request_or_identity, repo, action, app=None) -> bool``
    One decision (action: pull, push or delete); an Identity needs ``app=``.
``current_identity(request) -> Identity``
    Who the middleware found (ANONYMOUS when nobody signed in).
"""
from __future__ import annotations

from typing import AsyncIterator, Callable

from aiohttp import web

from ..config import RegistryConfig
from ..index.auth_queries import AuthQueries
from ..state import GRANTS, INDEX, VISIBILITY
from .middleware import auth_middleware
from .rules import ANONYMOUS, Identity
from .service import AUTH, IDENTITY, AuthService
from .settings import AuthSettings, parse_auth
from .tokens import TokenService, granted_actions

__all__ = ["AUTH", "AuthSettings", "Identity", "can", "current_identity", "parse_auth", "setup_auth",
           "visible_filter"]


def setup_auth(app: web.Application, config: RegistryConfig) -> None:
    settings = parse_auth(config)
    if not settings.enabled:
        return

    async def resources(app: web.Application) -> AsyncIterator[None]:
        tokens = TokenService(settings.token_key, settings.token_key_type, settings.issuer, settings.service,
                              settings.token_ttl, settings.refresh_ttl, settings.session_ttl,
                              settings.previous_token_keys)
        app[AUTH] = AuthService(settings, AuthQueries(app[INDEX].db), tokens)
        yield

    # After registry.app's resources: the index is open when this runs.
    app.cleanup_ctx.append(resources)
    from .endpoint import add_token_routes
    from .login import add_login_routes

    if settings.mode == "token":  # basic mode never looks at bearer tokens: no endpoint for them
        add_token_routes(app)
    add_login_routes(app)
    app.middlewares.append(auth_middleware)
    app[VISIBILITY] = visible_filter


def current_identity(request: web.Request) -> Identity:
    return request.get(IDENTITY, ANONYMOUS)


def _service(request: web.Request) -> AuthService | None:
    return request.app.get(AUTH)


def visible_filter(request: web.Request) -> Callable[[str], bool] | None:
    """The one visibility function: what this caller may pull. With a verified access token
    (token mode, on /v2), what the token grants; else the access rules for the caller."""
    svc = _service(request)
    if svc is None:
        return None
    claims = request.get(GRANTS)
    if claims is not None:
        def granted(name: str) -> bool:
            actions = granted_actions(claims, "repository", name) or set()
            return "pull" in actions or "*" in actions
        return granted
    who = current_identity(request)
    if svc.policy.is_admin(who):
        return None
    policy = svc.policy
    return lambda name: policy.can(who, name, "pull")


def can(request_or_identity: web.Request | Identity, repo: str, action: str,
        app: web.Application | None = None) -> bool:
    """May this caller do ``action`` to ``repo``? An Identity needs the ``app`` it is asking."""
    if isinstance(request_or_identity, Identity):
        if app is None:
            raise TypeError("can(identity, repo, action, app=...): the app holds the rules")
        svc, who = app.get(AUTH), request_or_identity
    else:
        svc, who = _service(request_or_identity), current_identity(request_or_identity)
    if svc is None:
        return True
    return svc.policy.can(who, repo, action)
