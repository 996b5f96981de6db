"""`volume create|ls|rm|inspect`, registered by node.cli.containers (volumes belong to containers)."""
from __future__ import annotations

import json
import sys


def register(sub, wrap) -> None:
    group = sub.add_parser("volume", help="manage volumes")
    vsub = group.add_subparsers(dest="volume_command", metavar="COMMAND")
    p = vsub.add_parser("create", help="create a volume")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=wrap(cmd_volume_create))
    p = vsub.add_parser("ls", help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=wrap(cmd_volume_ls))
    p = vsub.add_parser("rm", help="remove volumes")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=wrap(cmd_volume_rm))
    from node.cli.prune import add_volume_prune
    add_volume_prune(vsub, wrap)
    p = vsub.add_parser("inspect", help="show volumes as JSON")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=wrap(cmd_volume_inspect))


def cmd_volume_create(args) -> int:
    from node.engine.volumes import create_volume
    print(create_volume(args.root, args.name)["Name"])
    return 0


def cmd_volume_ls(args) -> int:
    from node.engine.volumes import list_volumes
    vols = list_volumes(args.root)
    if args.quiet:
        for v in vols:
            print(v["Name"])
        return 0
    print("DRIVER    VOLUME NAME")
    for v in vols:
        print(f"{v['Driver']:<9} {v['Name']}")
    return 0


def cmd_volume_rm(args) -> int:
    from node.engine import EngineError
    from node.engine.volumes import remove_volume
    code = 0
    for name in args.names:
        try:
            remove_volume(args.root, name, args.force)
            print(name)
        except EngineError as e:
            print(f"Error: {e}", file=sys.stderr)
            code = 1
    return code


def cmd_volume_inspect(args) -> int:
    from node.engine.volumes import inspect_volume
    print(json.dumps([inspect_volume(args.root, n) for n in args.names], indent=4))
    return 0
