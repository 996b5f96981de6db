"""`search`, `history` and `image prune`, worded as docker words them.

search:  GET /v1/search?q=TERM&n=LIMIT on the registry named before the first ``/`` of the term
         (docker's rule; a term without a registry searches docker.io), through the node's
         registry client (same credentials, same plain-HTTP rule for loopback).
history: the image config's history, newest first; each entry that made a layer shows that
         layer's size as `images` counts it.
prune:   removes dangling (untagged) images, or with ``-a`` every image no container uses.
"""
from __future__ import annotations

import argparse
import sys

from node.cli.common import CliError


def register(sub) -> None:
    from node.cli.imageinfo import _errors
    p = sub.add_parser("search", help="search a registry for images")
    p.add_argument("term", metavar="[REGISTRY/]TERM")
    p.add_argument("--limit", type=int, default=25, help="most results (default 25)")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate descriptions")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="NAME=VALUE",
                   help="stars=N, is-official=true|false")
    p.add_argument("--format", default="", help="table, json, or a Go template")
    p.set_defaults(func=_errors(cmd_search))
    _history_args(sub.add_parser("history", help="show the history of an image"))


def _history_args(p: argparse.ArgumentParser) -> None:
    from node.cli.imageinfo import _errors
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-H", "--human", default=True, type=lambda v: v.lower() not in ("false", "0"),
                   help="sizes and dates in human-readable form (default true)")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--format", default="", help="table, json, or a Go template")
    p.set_defaults(func=_errors(cmd_history))


def register_image_group(isub) -> None:
    """`image history` and `image prune` under the `image` group."""
    from node.cli.imageinfo import _errors
    _history_args(isub.add_parser("history", help="show the history of an image"))
    p = isub.add_parser("prune", help="remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="remove every image no container uses, not only dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=_errors(cmd_image_prune))


# -- search -------------------------------------------------------------------------------

SEARCH_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL"}
SEARCH_TABLE = "{{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"


def _split_term(term: str) -> tuple[str, str]:
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", term


def cmd_search(args) -> int:
    import asyncio

    from node.cli import gotemplate, listing
    from node.images.client import RegistryClient
    host, query = _split_term(args.term)
    if not query:
        raise CliError("search needs a term after the registry", 1)
    if not 1 <= args.limit <= 100:
        raise CliError(f"limit {args.limit} is outside the range of [1, 100]", 1)
    filters = listing.parse_filters(args.filter, ("stars", "is-official", "is-automated"))

    async def fetch() -> dict:
        async with RegistryClient(host) as client:
            url = client.url("/v1/search").with_query({"q": query, "n": str(args.limit)})
            resp = await client.request("GET", url, [], expect=(200,))
            async with resp:
                return await resp.json(content_type=None)
    doc = asyncio.run(fetch())
    rows = []
    for result in (doc or {}).get("results") or []:
        if not isinstance(result, dict):
            continue
        stars, official = int(result.get("star_count") or 0), bool(result.get("is_official"))
        if not all(_search_keep(key, v, stars, official, bool(result.get("is_automated")))
                   for key, values in filters.items() for v in values):
            continue
        description = str(result.get("description") or "").replace("\n", " ")
        fields = {"Name": str(result.get("name", "")),
                  "Description": description if args.no_trunc or len(description) <= 45 else description[:44] + "…",
                  "StarCount": str(stars), "IsOfficial": "[OK]" if official else "",
                  "IsAutomated": "[OK]" if result.get("is_automated") else ""}
        rows.append(dict(fields, _json=fields))
    try:
        lines = gotemplate.format_rows(args.format, rows, SEARCH_HEADERS, SEARCH_TABLE)
    except gotemplate.TemplateError as e:
        raise CliError(str(e), 125) from None
    for line in lines:
        print(line.rstrip())
    return 0


def _search_keep(key: str, value: str, stars: int, official: bool, automated: bool) -> bool:
    if key == "stars":
        try:
            return stars >= int(value)
        except ValueError:
            raise CliError(f"invalid filter 'stars={value}'", 125) from None
    wanted = value.lower() in ("true", "1")
    return (official if key == "is-official" else automated) == wanted


# -- history ------------------------------------------------------------------------------

HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_TABLE = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def cmd_history(args) -> int:
    from node.cli import gotemplate, listing
    from node.cli.imageinfo import _human_size, _since
    from node.images.store import ImageStore
    from oci.manifest import chain_ids
    store = ImageStore(args.root)
    image = store.get(args.image)
    chains = chain_ids(image.config.diff_ids)
    rows, layer = [], 0
    for entry in image.config.history:
        if not isinstance(entry, dict):
            continue
        size = 0
        if not entry.get("empty_layer") and layer < len(chains):
            size = store.content.snapshot_size(chains[layer])
            layer += 1
        created_by = str(entry.get("created_by") or "").replace("\t", " ").replace("\n", " ")
        fields = {"ID": "<missing>", "CreatedAt": listing.go_time(entry.get("created")) if not args.human
                  else listing.go_time(entry.get("created")),
                  "CreatedSince": _since(entry.get("created")) if args.human else str(entry.get("created") or ""),
                  "CreatedBy": created_by if args.no_trunc or len(created_by) <= 45 else created_by[:44] + "…",
                  "Size": _human_size(size) if args.human else str(size),
                  "Comment": str(entry.get("comment") or "")}
        rows.append(dict(fields, _json=fields))
    rows.reverse()
    if rows:
        rows[0]["ID"] = rows[0]["_json"]["ID"] = image.id if args.no_trunc else image.short_id
    if args.quiet:
        print(image.id if args.no_trunc else image.short_id)
        return 0
    try:
        lines = gotemplate.format_rows(args.format, rows, HISTORY_HEADERS, HISTORY_TABLE)
    except gotemplate.TemplateError as e:
        raise CliError(str(e), 125) from None
    for line in lines:
        print(line.rstrip())
    return 0


# -- image prune --------------------------------------------------------------------------

def confirm(question: str) -> bool:
    """docker's prompt: anything but y/yes is no; no terminal to ask means no."""
    sys.stderr.write(f"{question}\nAre you sure you want to continue? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline() if sys.stdin and not sys.stdin.closed else ""
    return answer.strip().lower() in ("y", "yes")


def cmd_image_prune(args) -> int:
    from node.cli.imageinfo import _human_size, _in_use
    from node.images.store import ImageStore
    what = ("all images without at least one container associated to them" if args.all
            else "all dangling images")
    if not args.force and not confirm(f"WARNING! This will remove {what}."):
        return 0
    store = ImageStore(args.root)
    in_use = _in_use(args.root)
    before = _store_bytes(store)
    lines = []
    for image in store.list():
        if image.id in in_use or (image.repo_tags and not args.all):
            continue
        # `docker image prune` words them in lower case, unlike `docker rmi`.
        lines += [line[:1].lower() + line[1:] for line in store.remove(image.id, force=True, in_use=in_use)]
    freed = max(0, before - _store_bytes(store))
    if lines:
        print("Deleted Images:")
        print("\n".join(lines))
        print()
    print(f"Total reclaimed space: {_human_size(freed)}")
    return 0


def _store_bytes(store) -> int:
    total = 0
    for digest in store.content.list_blobs():
        try:
            total += store.content.blob_path(digest).stat().st_size
        except OSError:
            pass
    return total
