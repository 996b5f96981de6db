"""Changes people make from the catalog: delete a tag, delete a manifest, copy a tag.

Each action is two steps: a GET that shows what will happen and asks to confirm (a page, so it
works without JavaScript), and the POST of that page's form (CSRF-checked by
registry/web/csrf.py before it gets here). Rights are checked on both steps: callers who may
not pull the repository get 404, those who may pull but not act get 403 and no form. The work
itself is done by registry/web/registry_ops.py (the registry's own index calls).

    GET|POST /ui/r/{name}/-/tags/{tag}/delete
    GET|POST /ui/r/{name}/-/tags/{tag}/copy          (form field new_tag)
    GET|POST /ui/r/{name}/-/manifest/{digest}/delete
"""
from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from oci.digest import Digest, InvalidDigest
from oci.reference import is_tag

from . import registry_ops as ops
from .access import catalog_service, visible_name
from .service import NotFound
from .views import NAME, not_found, render

NOTICES = {
    "deleted-tag": "Tag {ref} deleted.",
    "deleted-manifest": "Manifest {ref} deleted, with every tag that pointed at it.",
    "copied-tag": "Tag {ref} created.",
}


def _back(name: str, done: str, ref: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/ui/r/{name}?" + urlencode({"done": done, "ref": ref}))


def _forbidden(request: web.Request, name: str, what: str) -> web.Response:
    return render(request, "confirm.html", status=403, repo=name, action="forbidden", what=what, tag=None,
                  digest=None, tags=[], error=None, new_tag="")


async def _tag_target(request: web.Request) -> tuple[str, str, str] | web.Response:
    """(repository, tag, digest) of the URL, or the 404 page."""
    try:
        name = visible_name(request)
    except NotFound:
        return not_found(request, f"repository {request.match_info['name']}")
    tag = request.match_info["tag"]
    found = await ops.resolve(request, name, tag) if is_tag(tag) else None
    if found is None:
        return not_found(request, f"tag {name}:{tag}")
    return name, tag, found[0]


async def delete_tag(request: web.Request) -> web.Response:
    target = await _tag_target(request)
    if isinstance(target, web.Response):
        return target
    name, tag, digest = target
    if not ops.rights(request, name).delete:
        return _forbidden(request, name, "delete tags in this repository")
    if request.method == "POST":
        await ops.delete_tag(request, name, tag)
        raise _back(name, "deleted-tag", tag)
    return render(request, "confirm.html", repo=name, action="delete-tag", tag=tag, digest=digest, tags=[],
                  error=None, new_tag="", what="")


async def copy_tag(request: web.Request) -> web.Response:
    target = await _tag_target(request)
    if isinstance(target, web.Response):
        return target
    name, tag, digest = target
    if not ops.rights(request, name).push:
        return _forbidden(request, name, "push to this repository")
    error, new_tag = None, ""
    if request.method == "POST":
        new_tag = str((await request.post()).get("new_tag") or "").strip()
        if not is_tag(new_tag):
            error = "A tag is 1 to 128 letters, digits, '_', '.' or '-', and does not start with '.' or '-'."
        elif await ops.resolve(request, name, new_tag) is not None and (await request.post()).get("replace") != "yes":
            error = f"Tag {new_tag} exists. Tick “replace” to point it at this manifest instead."
        else:
            await ops.copy_tag(request, name, tag, new_tag)
            raise _back(name, "copied-tag", new_tag)
    return render(request, "confirm.html", status=400 if error else 200, repo=name, action="copy-tag", tag=tag,
                  digest=digest, tags=[], error=error, new_tag=new_tag, what="")


async def delete_manifest(request: web.Request) -> web.Response:
    try:
        name = visible_name(request)
        digest = str(Digest.parse(request.match_info["reference"]))
        image = await catalog_service(request).image(name, digest)
    except (NotFound, InvalidDigest):
        return not_found(request, f"manifest {request.match_info['reference']}")
    if not ops.rights(request, name).delete:
        return _forbidden(request, name, "delete manifests in this repository")
    if request.method == "POST":
        await ops.delete_manifest(request, name, digest)
        raise _back(name, "deleted-manifest", digest)
    return render(request, "confirm.html", repo=name, action="delete-manifest", tag=None, digest=digest,
                  tags=image["tags"], referrers=len(image["referrers"]), error=None, new_tag="", what="")


def add_routes(app: web.Application) -> None:
    r = app.router
    for method in ("GET", "POST"):
        r.add_route(method, f"/ui/r/{NAME}/-/tags/{{tag}}/delete", delete_tag)
        r.add_route(method, f"/ui/r/{NAME}/-/tags/{{tag}}/copy", copy_tag)
        r.add_route(method, f"/ui/r/{NAME}/-/manifest/{{reference}}/delete", delete_manifest)
