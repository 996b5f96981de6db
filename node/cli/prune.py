"""`system df`, `system prune` and the `container|volume|network prune` commands, with docker's
prompts and wording.

Every prune asks first (``-f`` skips the question; no answer on stdin is a no) and then prints
what it removed and the space it reclaimed. "Unused" is docker's: a container that is not running,
a network or volume that no container refers to, an image no container was created from
(``-a``) or one without a tag (dangling). Volume prune takes anonymous volumes only unless
``-a`` (docker 23 and later).
"""
from __future__ import annotations

from node.cli.common import CliError, engine_errors as _engine_errors


def register(sub) -> None:
    group = sub.add_parser("system", help="manage the node: df, prune, info")
    gsub = group.add_subparsers(dest="system_command", metavar="COMMAND")
    p = gsub.add_parser("df", help="show disk usage")
    p.add_argument("--format", default="", help="table, json, or a Go template")
    p.set_defaults(func=_engine_errors(cmd_df))
    p = gsub.add_parser("prune", help="remove unused data")
    p.add_argument("-a", "--all", action="store_true", help="remove all unused images, not only dangling ones")
    p.add_argument("--volumes", action="store_true", help="prune anonymous volumes too")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=_engine_errors(cmd_system_prune))
    p = gsub.add_parser("info", help="show system-wide information")
    p.add_argument("-f", "--format", default="")
    from node.cli.system import cmd_info
    p.set_defaults(func=cmd_info)


def add_volume_prune(vsub, wrap) -> None:
    p = vsub.add_parser("prune", help="remove unused volumes")
    p.add_argument("-a", "--all", action="store_true", help="all unused volumes, not only anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=wrap(cmd_volume_prune))


def add_container_prune(gsub, wrap) -> None:
    p = gsub.add_parser("prune", help="remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=wrap(cmd_container_prune))


def add_network_prune(nsub, wrap) -> None:
    p = nsub.add_parser("prune", help="remove all unused networks")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=wrap(cmd_network_prune))


def _tree_size(path) -> int:
    from node.images.content import content_size
    try:
        return content_size(path)
    except OSError:
        return 0


def _human(n: int) -> str:
    from node.cli.imageinfo import _human_size
    return _human_size(n)


def _ask(args, what: str) -> bool:
    from node.cli.imagetools import confirm
    return args.force or confirm(f"WARNING! This will remove {what}.")


# -- the pieces -----------------------------------------------------------------------------

def _stopped(root) -> list:
    from node.engine.inspect import inspect_container
    from node.engine.records import list_containers
    return [c for c in list_containers(root)
            if (inspect_container(c).get("State") or {}).get("Status") in ("exited", "created", "dead")]


def prune_containers(root) -> tuple[list[str], int]:
    from node.engine.remove import remove_container
    removed, freed = [], 0
    for c in _stopped(root):
        size = _tree_size(c.dir / "upper")
        remove_container(root, c)
        removed.append(c.id)
        freed += size
    return removed, freed


def prune_volumes(root, everything: bool) -> tuple[list[str], int]:
    from node.engine.volumes import list_volumes, remove_volume, users_of
    removed, freed = [], 0
    for vol in list_volumes(root):
        if users_of(root, vol["Name"]) or not (everything or vol.get("Anonymous")):
            continue
        size = _tree_size(vol["Mountpoint"])
        remove_volume(root, vol["Name"])
        removed.append(vol["Name"])
        freed += size
    return removed, freed


def prune_networks(root) -> list[str]:
    from node.network import networks
    from node.network.state import NetworkError, Store
    store, removed = Store(root), []
    for net in store.networks():
        if net.name == networks.DEFAULT_NETWORK:
            continue
        try:
            networks.remove(store, net.name)
        except NetworkError:
            continue  # in use
        removed.append(net.name)
    return removed


def prune_images(root, everything: bool) -> tuple[list[str], int]:
    from node.cli.imageinfo import _in_use
    from node.cli.imagetools import _store_bytes
    from node.images.store import ImageStore
    store = ImageStore(root)
    in_use = _in_use(root)
    before, lines = _store_bytes(store), []
    for image in store.list():
        if image.id in in_use or (image.repo_tags and not everything):
            continue
        lines += [line[:1].lower() + line[1:] for line in store.remove(image.id, force=True, in_use=in_use)]
    return lines, max(0, before - _store_bytes(store))


def _print_section(title: str, items: list[str]) -> None:
    if items:
        print(title)
        print("\n".join(items))
        print()


# -- commands -------------------------------------------------------------------------------

def cmd_container_prune(args) -> int:
    if not _ask(args, "all stopped containers"):
        return 0
    removed, freed = prune_containers(args.root)
    _print_section("Deleted Containers:", removed)
    print(f"Total reclaimed space: {_human(freed)}")
    return 0


def cmd_volume_prune(args) -> int:
    what = "all local volumes not used by at least one container" if args.all else \
        "all anonymous local volumes not used by at least one container"
    if not _ask(args, what):
        return 0
    removed, freed = prune_volumes(args.root, args.all)
    _print_section("Deleted Volumes:", removed)
    print(f"Total reclaimed space: {_human(freed)}")
    return 0


def cmd_network_prune(args) -> int:
    if not _ask(args, "all custom networks not used by at least one container"):
        return 0
    _print_section("Deleted Networks:", prune_networks(args.root))
    return 0


def cmd_system_prune(args) -> int:
    lines = ["  - all stopped containers", "  - all networks not used by at least one container"]
    if args.volumes:
        lines.append("  - all anonymous volumes not used by at least one container")
    lines.append("  - all images without at least one container associated to them" if args.all
                 else "  - all dangling images")
    lines.append("  - unused build cache")
    if not args.force:
        from node.cli.imagetools import confirm
        if not confirm("WARNING! This will remove:\n" + "\n".join(lines) + "\n"):
            return 0
    containers, freed = prune_containers(args.root)
    _print_section("Deleted Containers:", containers)
    _print_section("Deleted Networks:", prune_networks(args.root))
    if args.volumes:
        volumes, size = prune_volumes(args.root, False)
        _print_section("Deleted Volumes:", volumes)
        freed += size
    images, size = prune_images(args.root, args.all)
    _print_section("Deleted Images:", images)
    freed += size
    from node.build.cache import BuildCache
    from node.images.store import ImageStore
    freed += BuildCache(args.root).prune(ImageStore(args.root))
    print(f"Total reclaimed space: {_human(freed)}")
    return 0


def df_rows(root) -> list[dict]:
    from node.build.cache import BuildCache
    from node.cli.imageinfo import _in_use
    from node.engine.inspect import inspect_container
    from node.engine.records import list_containers
    from node.engine.volumes import list_volumes, users_of
    from node.images.store import ImageStore
    store = ImageStore(root)
    images, used = store.list(), _in_use(root)
    chains: dict[str, int] = {}
    needed: set[str] = set()
    for image in images:
        for chain in image.chain_ids:
            chains.setdefault(chain.hex, store.content.snapshot_size(chain))
            if image.id in used:
                needed.add(chain.hex)
    image_size = sum(chains.values())
    image_free = sum(size for key, size in chains.items() if key not in needed)
    containers = list_containers(root)
    sizes = {c.id: _tree_size(c.dir / "upper") for c in containers}
    running = {c.id for c in containers
               if (inspect_container(c).get("State") or {}).get("Status") in ("running", "paused", "restarting")}
    volumes = list_volumes(root)
    vol_sizes = {v["Name"]: _tree_size(v["Mountpoint"]) for v in volumes}
    vol_used = {v["Name"] for v in volumes if users_of(root, v["Name"])}
    cache_count, cache_size = BuildCache(root).usage()

    def row(kind, total, active, size, reclaimable, percent=True):
        text = _human(reclaimable)
        if percent:
            text += f" ({int(round(100 * reclaimable / size)) if size else 0}%)"
        fields = {"Type": kind, "TotalCount": str(total), "Active": str(active), "Size": _human(size),
                  "Reclaimable": text}
        return dict(fields, _json=fields)
    return [
        row("Images", len(images), len({i.id for i in images} & used), image_size, image_free),
        row("Containers", len(containers), len(running), sum(sizes.values()),
            sum(s for cid, s in sizes.items() if cid not in running)),
        row("Local Volumes", len(volumes), len(vol_used), sum(vol_sizes.values()),
            sum(s for n, s in vol_sizes.items() if n not in vol_used)),
        row("Build Cache", cache_count, 0, cache_size, cache_size, percent=False),
    ]


def cmd_df(args) -> int:
    from node.cli import gotemplate
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
    try:
        lines = gotemplate.format_rows(args.format, df_rows(args.root), headers,
                                       "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}")
    except gotemplate.TemplateError as e:
        raise CliError(str(e), 125) from None
    for line in lines:
        print(line.rstrip())
    return 0
