"""``dockyard-registry quota set|ls`` and ``dockyard-registry retention [--dry-run]``."""
from __future__ import annotations

import argparse
import asyncio

from ..commands.common import add_config_options, config_from_args, setup_logging
from ..config import ConfigError, parse_size
from ..index import Index


async def _with_index(config, fn):
    index = Index(config.database_url)
    try:
        if config.auto_migrate:
            await index.migrate()
        return await fn(index)
    finally:
        await index.close()


def quota_set(args: argparse.Namespace) -> int:
    from oci.reference import InvalidReference, validate_name

    from .quotas import set_quota

    try:
        validate_name(args.namespace)
    except InvalidReference:
        raise ConfigError(f"quota set: {args.namespace!r} is not a namespace (a repository name's first part)") from None
    if "/" in args.namespace:
        raise ConfigError(f"quota set: a namespace is one path component, not {args.namespace!r}")
    limit = parse_size(args.size, "SIZE")
    config = config_from_args(args)
    setup_logging(config)
    asyncio.run(_with_index(config, lambda index: set_quota(index, args.namespace, limit)))
    print(f"{args.namespace}: " + (f"quota {limit} bytes" if limit else "quota removed"))
    return 0


def quota_ls(args: argparse.Namespace) -> int:
    from .quotas import list_quotas

    config = config_from_args(args)
    setup_logging(config)
    for namespace, used, limit in asyncio.run(_with_index(config, list_quotas)):
        print(f"{namespace} {used} {limit}")
    return 0


def retention(args: argparse.Namespace) -> int:
    from .retention import apply_retention
    from .settings import parse_retention

    config = config_from_args(args)
    setup_logging(config)
    settings = parse_retention(config)
    if not settings.rules:
        print("retention: no rules configured (retention.rules)")
        return 0
    report = asyncio.run(_with_index(config, lambda index: apply_retention(index, settings, dry_run=args.dry_run)))
    verb = "would delete" if args.dry_run else "deleted"
    for repository, tag, digest in report.tags:
        print(f"{verb} {repository}:{tag} ({digest})")
    print(f"{verb} {len(report.tags)} tag(s); {len(report.untagged)} manifest(s) left untagged "
          f"{'would go' if args.dry_run else 'go to the GC queue'}; {report.freed_bytes} bytes freed")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quota", help="storage quotas per namespace (in the index)")
    qsub = p.add_subparsers(dest="quota_command", metavar="COMMAND", required=True)
    s = qsub.add_parser("set", help="set a namespace's quota (SIZE like 10GiB; 0 removes it)")
    s.add_argument("namespace")
    s.add_argument("size")
    add_config_options(s)
    s.set_defaults(func=quota_set)
    s = qsub.add_parser("ls", help="list quotas: namespace, used bytes, limit bytes")
    add_config_options(s)
    s.set_defaults(func=quota_ls)
    p = sub.add_parser("retention", help="apply the retention rules once, now")
    add_config_options(p)
    p.add_argument("--dry-run", action="store_true", help="only print what would go")
    p.set_defaults(func=retention)
