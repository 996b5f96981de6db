"""HTML pages of the catalog: Jinja2 templates rendered on the server, autoescaped.

Routes (names in parentheses; repository names may contain slashes, so the parts after a name
start with ``/-/``, which no repository name can contain):

    GET /                                   -> 302 /ui/
    GET /ui/                                (ui.home)        repositories: ?q= &sort= &order= &page=
                                                             (&fragment=1: just the results block)
    GET /ui/api                             (ui.api)         the JSON API's documentation (from its OpenAPI document)
    GET /ui/storage                         (ui.storage)     unique and shared bytes per namespace
    GET /ui/r/{name}                        (ui.repository)  tags: ?q= &sort= &order= &page=
    GET /ui/r/{name}/-/manifest/{ref}       (ui.image)       ref is a digest or a tag
    GET /ui/r/{name}/-/manifest/{digest}/raw (ui.raw)        the stored manifest bytes
    GET /ui/r/{name}/-/manifest/{digest}/descriptor (ui.descriptor) its OCI descriptor (JSON)

Every page works without JavaScript; static/catalog.js only adds search-as-you-type and the
copy buttons. Unknown pages and names get an HTML 404. Actions (delete, copy) are in
registry/web/actions.py, layer files and the merged tree in registry/web/files_views.py.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape
from aiohttp import web

from oci.digest import Digest, InvalidDigest

from ..storage.driver import StorageError
from . import csrf
from .access import catalog_service, may_pull_filter, signed_in_as, sorting, visible_name
from .insight import link
from .registry_ops import rights
from .service import PER_PAGE, REPO_SORTS, TAG_SORTS, NotFound, Paging

NAME = "{name:[^-][^?#]*?}"
_TEMPLATES = None  # the jinja2 Environment, made on the first page render (see templates())


def human_size(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def ago(ts: float | None) -> str:
    if ts is None:
        return "—"
    seconds = max(0, time.time() - ts)
    for limit, div, unit in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h"), (86400 * 60, 86400, "d"),
                             (86400 * 730, 86400 * 30, "mo")):
        if seconds < limit:
            return f"{int(seconds // div)} {unit} ago"
    return f"{int(seconds // (86400 * 365))} y ago"


def utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def short_digest(digest: str | None) -> str:
    if not digest:
        return ""
    alg, _, hex_ = digest.partition(":")
    return f"{alg}:{hex_[:12]}" if hex_ else digest


MEDIA_TYPE_LABELS = {
    "application/vnd.oci.image.manifest.v1+json": "OCI manifest",
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker manifest",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
}


def media_type_label(media_type: str | None) -> str:
    return MEDIA_TYPE_LABELS.get(media_type or "", media_type or "")


def query_params(listing: dict[str, Any]):
    """``params(**changes)`` -> the query string of this listing with some parameters changed."""
    base = {"q": listing["query"], "sort": listing["sort"], "order": listing["order"], "page": listing["page"],
            "per_page": listing["per_page"]}

    def params(**changes: Any) -> str:
        merged = {**base, **changes}
        if not merged["q"]:
            del merged["q"]
        if merged["page"] == 1:
            del merged["page"]
        if merged["per_page"] == PER_PAGE:
            del merged["per_page"]
        return urlencode(merged)

    return params


def created_by(line: str | None) -> str:
    """A history line as people read it: Docker's "/bin/sh -c #(nop) " prefix says nothing."""
    text = (line or "").strip()
    for prefix in ("/bin/sh -c #(nop) ", "/bin/sh -c "):
        if text.startswith(prefix):
            return ("RUN " if prefix == "/bin/sh -c " else "") + text[len(prefix):].strip()
    return text


def breakable(name: str) -> Markup:
    """A repository name that may wrap after each slash on narrow screens (escaped first)."""
    return Markup("/<wbr>").join(escape(part) for part in name.split("/"))


def rfc3339(text: str | None) -> str:
    """``2026-11-28T09:28:56.208478792Z`` -> ``2026-11-28 09:28:56 UTC`` (other forms as given)."""
    if not text:
        return ""
    if len(text) >= 19 and text[10] == "T" and text.endswith("Z"):
        return f"{text[:10]} {text[11:19]} UTC"
    return text


def templates():
    """The template environment. jinja2 is imported on the first page render, not at start-up:
    a registry nobody browses never pays its few MiB."""
    global _TEMPLATES
    if _TEMPLATES is None:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("registry.web", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters.update(size=human_size, ago=ago, utc=utc, short=short_digest, mediatype=media_type_label,
                           created_by=created_by, rfc3339=rfc3339, breakable=breakable,
                           num=lambda n: f"{n:,}" if isinstance(n, int) else "—", link=link)
        env.globals.update(query_params=query_params)
        _TEMPLATES = env
    return _TEMPLATES


_STATIC_URLS: dict[str, str] = {}


def _static_url(app: web.Application, path: str) -> str:
    """The versioned URL of a static file (aiohttp hashes the file on every url_for: once here)."""
    url = _STATIC_URLS.get(path)
    if url is None:
        url = _STATIC_URLS[path] = str(app.router["ui.static"].url_for(filename=path))
    return url


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("host", request.host)
    context["auth_enabled"], context["user"] = signed_in_as(request)
    context.setdefault("here", request.path_qs)
    context.setdefault("static", lambda path: _static_url(request.app, path))
    context.setdefault("csrf_token", lambda: csrf.token(request))
    context.setdefault("signing_in", False)
    html = templates().get_template(template).render(request=request, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def not_found(request: web.Request, what: str) -> web.Response:
    return render(request, "404.html", status=404, what=what)




async def home(request: web.Request) -> web.Response:
    svc = catalog_service(request)
    sort, desc = sorting(request, REPO_SORTS)
    paging = Paging.parse(request.query.get("page"), request.query.get("per_page"))
    may_pull = may_pull_filter(request)
    listing = await svc.repositories(request.query.get("q", ""), sort, desc, paging, may_pull)
    if request.query.get("fragment") == "1":
        return render(request, "_repositories.html", listing=listing)
    return render(request, "home.html", listing=listing, stats=await svc.stats(may_pull))


async def repository(request: web.Request) -> web.Response:
    try:
        name = visible_name(request)
        sort, desc = sorting(request, TAG_SORTS)
        paging = Paging.parse(request.query.get("page"), request.query.get("per_page"))
        data = await catalog_service(request).repository(name, request.query.get("q", ""), sort, desc, paging)
    except NotFound:
        return not_found(request, f"repository {request.match_info['name']}")
    return render(request, "repository.html", data=data, repo=data["repository"], rights=rights(request, name),
                  notice=_notice(request))


def _notice(request: web.Request) -> str | None:
    """The line shown after an action (coded: a link cannot make the page say anything else)."""
    from .actions import NOTICES

    template = NOTICES.get(request.query.get("done", ""))
    return template.format(ref=request.query.get("ref", "")[:200]) if template else None


async def image(request: web.Request) -> web.Response:
    try:
        name = visible_name(request)
        data = await catalog_service(request).image(name, request.match_info["reference"])
    except NotFound:
        return not_found(request, f"{request.match_info['name']}@{request.match_info['reference']}")
    return render(request, "image.html", image=data, rights=rights(request, name))


async def raw_manifest(request: web.Request) -> web.Response:
    """The stored bytes, as JSON text: shown by the browser, never interpreted as a page."""
    try:
        name = visible_name(request)
        digest = str(Digest.parse(request.match_info["reference"]))
        data = await catalog_service(request).image(name, digest)
        body = await catalog_service(request).images.raw(data["digest"])
    except (NotFound, InvalidDigest, StorageError):
        return not_found(request, f"manifest {request.match_info['reference']}")
    return web.Response(body=body, content_type="application/json", headers={"Docker-Content-Digest": data["digest"]})


async def descriptor(request: web.Request) -> web.Response:
    """The OCI descriptor of a manifest, as the referrers API lists it (what a signature or an
    SBOM badge links to), with a link on to the manifest itself."""
    try:
        name = visible_name(request)
        data = await catalog_service(request).image(name, str(Digest.parse(request.match_info["reference"])))
    except (NotFound, InvalidDigest):
        return not_found(request, f"manifest {request.match_info['reference']}")
    body: dict[str, Any] = {"mediaType": data["media_type"], "digest": data["digest"], "size": data["size"]}
    if data["artifact_type"]:
        body["artifactType"] = data["artifact_type"]
    if data["annotations"]:
        body["annotations"] = data["annotations"]
    if data["subject"]:
        body["subject"] = data["subject"]
    return web.json_response(body, dumps=lambda v: json.dumps(v, indent=2), headers={
        "Link": f'</ui/r/{name}/-/manifest/{data["digest"]}/raw>; rel="describes"'})


async def api_docs(request: web.Request) -> web.Response:
    from .openapi import document

    return render(request, "api.html", doc=document())


async def storage_page(request: web.Request) -> web.Response:
    from ..api.common import index
    from ..lifecycle.quotas import list_quotas
    data = await catalog_service(request).namespace_storage(may_pull_filter(request))
    shown = {n["name"] for n in data.get("namespaces") or []}
    # each namespace's quota beside its usage (usage as the quota counts it: every blob once)
    quotas = {ns: {"used": used, "limit": limit} for ns, used, limit in await list_quotas(index(request))
              if ns in shown}
    return render(request, "storage.html", data=data, quotas=quotas)


def login_page(request: web.Request, message: str, next_: str, user: str, status: int) -> web.Response:
    """The sign-in page with the site's header (registry.auth.login asks for it)."""
    response = render(request, "signin.html", status=status, message=message, next=next_, username=user,
                      signing_in=True)
    response.headers["Cache-Control"] = "no-store"
    return response


async def to_home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", to_home, name="ui.root")
    r.add_get("/ui", to_home, name="ui.root_noslash")
    r.add_get("/ui/", home, name="ui.home")
    r.add_get("/ui/api", api_docs, name="ui.api")
    r.add_get("/ui/storage", storage_page, name="ui.storage")
    r.add_get(f"/ui/r/{NAME}/-/manifest/{{reference}}/raw", raw_manifest, name="ui.raw")
    r.add_get(f"/ui/r/{NAME}/-/manifest/{{reference}}/descriptor", descriptor, name="ui.descriptor")
    r.add_get(f"/ui/r/{NAME}/-/manifest/{{reference}}", image, name="ui.image")
    r.add_get(f"/ui/r/{NAME}", repository, name="ui.repository")
