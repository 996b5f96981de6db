"""The OpenAPI 3 description of the catalog's JSON API (/api/v1) and Docker's v1 search.

Served at ``/api/v1/openapi.json`` and rendered as the /ui/api page; a test validates it
against the OpenAPI 3.0 schema and calls every operation it lists, so the document cannot
drift from the routes (registry/web/api.py). Repository names may contain ``/``: ``{name}``
is sent as it is (``/api/v1/repositories/team/app/tags``), as in the /v2 API.
"""
from __future__ import annotations

from typing import Any

VERSION = "1.1.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def _s(description: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": "string", **({"description": description} if description else {}), **extra}


def _i(description: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": "integer", **({"description": description} if description else {}), **extra}


def _n(description: str = "", nullable: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "number"}
    if description:
        out["description"] = description
    if nullable:
        out["nullable"] = True
    return out


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
TIME = _n("seconds since the epoch", nullable=True)

SCHEMAS: dict[str, Any] = {
    "Error": _obj(("error",), error=_s("what went wrong, in one line")),
    "Stats": _obj(("repositories", "tags"), repositories=_i(), tags=_i(),
                  blobs=_nullable(_i("unique blobs stored (null while the first ranking is built, or when "
                                     "the caller sees only some repositories)")),
                  stored_bytes=_nullable(_i()), saved_bytes=_nullable(_i("bytes deduplication saves"))),
    "Description": _obj(description=_nullable(_s()), source=_nullable(_s()), url=_nullable(_s()),
                        licenses=_nullable(_s()), version=_nullable(_s()),
                        tag=_nullable(_s("the tag these were read from"))),
    "Repository": _obj(("name", "tag_count", "size", "last_push"), name=_s(), tag_count=_i(),
                       size=_i("bytes of the distinct blobs and manifests it holds"), last_push=TIME,
                       headline_tag=_nullable(_s("latest if present, else the most recently pushed tag")),
                       description=_ref("Description"),
                       upstream=_nullable(_s("for a pull-through cache: the upstream registry it copies"))),
    "Listing": _obj(("query", "sort", "order", "page", "per_page", "total", "pages"),
                    query=_s(), sort=_s(), order=_s(enum=["asc", "desc"]), page=_i(), per_page=_i(), total=_i(),
                    pages=_i()),
    "RepositoryList": {"allOf": [_ref("Listing"), _obj(("repositories",), repositories=_arr(_ref("Repository")))]},
    "Badge": _obj(("kind", "digest"), kind=_s(enum=["signature", "sbom", "attestation"]),
                  format=_s("cosign, notation, spdx, cyclonedx, ..."), digest=_s(), artifact_type=_nullable(_s())),
    "Tag": _obj(("name", "digest", "media_type", "kind", "pushed_at"), name=_s(), digest=_s(), media_type=_s(),
                kind=_s(enum=["image", "index", "artifact"]), artifact_type=_nullable(_s()),
                platforms=_arr(_s()), compressed_size=_nullable(_i()), manifest_size=_i(),
                created=_nullable(_s("the image config's own RFC 3339 string")), pushed_at=_n("seconds since the epoch"),
                last_pull=TIME, badges=_arr(_ref("Badge"))),
    "TagList": {"allOf": [_ref("Listing"), _obj(("repository", "tags"), repository=_ref("Repository"),
                                                tags=_arr(_ref("Tag")))]},
    "Layer": _obj(("digest", "size"), digest=_s(), media_type=_s(), size=_i(), created_by=_s()),
    "Referrer": _obj(("digest",), digest=_s(), media_type=_s(), size=_i(), artifact_type=_nullable(_s()),
                     annotations=STRINGS, pushed_at=_n(), badge=_nullable(_ref("Badge"))),
    "Manifest": _obj(("digest", "media_type", "kind"), repository=_s(), digest=_s(), media_type=_s(),
                     kind=_s(enum=["image", "index", "artifact"]), size=_i(), tags=_arr(_s()), pushed_at=_n(),
                     artifact_type=_nullable(_s()), subject=_nullable(_s()), annotations=STRINGS,
                     platform=_s(), created=_nullable(_s()), problem=_nullable(_s()),
                     config=_nullable({"type": "object", "description": "entrypoint, cmd, env, working_dir, user, "
                                       "exposed_ports, volumes, labels, stop_signal"}),
                     layers=_arr(_ref("Layer")), compressed_size=_i(), history=_arr({"type": "object"}),
                     manifests=_arr({"type": "object", "description": "index entries, with platform"}),
                     referrers=_arr(_ref("Referrer")), description=_ref("Description")),
    "FileEntry": _obj(("path", "type", "size", "mode"), path=_s(), type=_s(enum=["file", "dir", "symlink", "hardlink",
                                                                              "char", "block", "fifo", "whiteout",
                                                                              "opaque", "other"]),
                      size=_i(), mode=_s("octal permission bits, e.g. 0755"), uid=_i(), gid=_i(),
                      owner=_s("user:group names when the tar names them, else uid:gid"),
                      link=_nullable(_s("symlink or hardlink target")), layer=_nullable(_i("tree: the layer it came from (1-based)"))),
    "FileList": _obj(("files", "complete"), files=_arr(_ref("FileEntry")), offset=_i(),
                     next_offset=_nullable(_i("pass as ?offset= for the next page; null at the end")),
                     complete=_s("yes: the end was reached; no: the page is full; capped: the per-request work cap "
                                 "stopped the listing early")),
    "Storage": _obj(("repositories", "unique_bytes", "shared_bytes"), name=_s(), repositories=_i(),
                    unique_bytes=_i("bytes only this repository (namespace) holds"),
                    shared_bytes=_i("bytes it holds that other repositories (namespaces) hold too")),
    "StorageList": _obj(("namespaces",), namespaces=_arr(_ref("Storage"))),
    "Search": _obj(("num_results", "results"), num_results=_i(), num_pages=_i(), page=_i(), page_size=_i(),
                   query=_s(), results=_arr(_obj(name=_s(), description=_s(), star_count=_i(),
                                                 is_official={"type": "boolean"}, is_automated={"type": "boolean"}))),
}


def _p(name: str, where: str = "query", description: str = "", required: bool = False,
       schema: dict[str, Any] | None = None, example: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": where, "required": required or where == "path",
                           "schema": schema or {"type": "string"}}
    if description:
        out["description"] = description
    if example is not None:
        out["example"] = example
    return out


NAME = _p("name", "path", "repository name; may contain '/'", example="team/app")
PAGING = [_p("page", schema={"type": "integer", "minimum": 1}), _p("per_page", description="at most 100",
                                                                 schema={"type": "integer", "minimum": 1, "maximum": 100})]
ORDER = _p("order", schema={"type": "string", "enum": ["asc", "desc"]},
           description="names ascend by default, the other sorts descend")
NOT_FOUND = {"description": "unknown repository or reference, or one the caller may not pull",
             "content": {"application/json": {"schema": _ref("Error")}}}


def _get(summary: str, schema: str, params: list[dict[str, Any]] = (), description: str = "",
         not_found: bool = True, tag: str = "catalog") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "parameters": list(params),
                          "responses": {"200": {"description": "OK",
                                                "content": {"application/json": {"schema": _ref(schema)}}}}}
    if description:
        op["description"] = description
    if not_found:
        op["responses"]["404"] = NOT_FOUND
    return {"get": op}


REFERENCE = _p("reference", "path", "a tag or a digest", example="latest")
LAYER = _p("digest", "path", "the layer's digest (a layer of this manifest)")
FILES = [_p("offset", schema={"type": "integer", "minimum": 0}, description="entries to skip (the previous next_offset)"),
         _p("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000}, description="entries per page, default 200")]

PATHS: dict[str, Any] = {
    "/api/v1/": {"get": {"summary": "The list of endpoints", "tags": ["catalog"],
                         "responses": {"200": {"description": "OK", "content": {"application/json": {
                             "schema": _obj(endpoints=_arr(_s()))}}}}}},
    "/api/v1/openapi.json": {"get": {"summary": "This document", "tags": ["catalog"],
                                     "responses": {"200": {"description": "OK", "content": {
                                         "application/json": {"schema": {"type": "object"}}}}}}},
    "/api/v1/stats": _get("Registry totals", "Stats", not_found=False),
    "/api/v1/repositories": _get(
        "Repositories, searched, sorted and paged", "RepositoryList",
        [_p("q", description="substring of the name"),
         _p("sort", schema={"type": "string", "enum": ["name", "tags", "size", "pushed"]}), ORDER, *PAGING],
        not_found=False),
    "/api/v1/repositories/{name}": _get("One repository", "Repository", [NAME]),
    "/api/v1/repositories/{name}/tags": _get(
        "Tags of a repository", "TagList",
        [NAME, _p("q", description="substring of the tag"),
         _p("sort", schema={"type": "string", "enum": ["name", "pushed", "size"]}), ORDER, *PAGING]),
    "/api/v1/repositories/{name}/manifests/{reference}": _get(
        "A manifest: config, layers, history, platforms, annotations, referrers", "Manifest", [NAME, REFERENCE]),
    "/api/v1/repositories/{name}/manifests/{reference}/layers/{digest}/files": _get(
        "The files of one layer, read from the stored blob", "FileList", [NAME, REFERENCE, LAYER, *FILES],
        description="Streamed from the compressed blob (gzip, zstd or plain tar) without unpacking; each "
                    "request reads at most a fixed amount of the layer."),
    "/api/v1/repositories/{name}/manifests/{reference}/tree": _get(
        "The image's merged file tree (whiteouts applied)", "FileList",
        [NAME, REFERENCE, _p("path", description="only paths containing this text"), *FILES]),
    "/api/v1/storage": _get("Storage per namespace (the name up to its first '/')", "StorageList",
                            not_found=False),
    "/api/v1/storage/{name}": _get("Storage of one repository", "Storage", [NAME]),
    "/v1/search": _get("Docker's search (`docker search HOST/TERM`)", "Search",
                       [_p("q", required=True, example="web"), _p("n", schema={"type": "integer", "minimum": 1}),
                        _p("page", schema={"type": "integer", "minimum": 1})], not_found=False, tag="docker"),
}


def document(server_url: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Dockyard catalog API", "version": VERSION,
                 "description": "The data behind the catalog pages. Answers show only the repositories the "
                                "caller may pull: send the same credentials as for `docker pull` (Basic, a "
                                "Bearer token, or the catalog's session cookie). Times are seconds since the "
                                "epoch; sizes are bytes."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
        "tags": [{"name": "catalog", "description": "Repositories, tags, manifests, files and storage"},
                 {"name": "docker", "description": "What the Docker client asks"}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def endpoint_lines() -> list[str]:
    """``GET /api/v1/repositories?q=&sort=&order=&page=&per_page=`` lines, for /api/v1/."""
    lines = []
    for path, item in PATHS.items():
        for method, op in item.items():
            query = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
            lines.append(f"{method.upper()} {path}" + ("?" + "&".join(f"{q}=" for q in query) if query else ""))
    return lines
