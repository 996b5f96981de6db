"""Maintenance: ``gc`` (full mark and sweep for repairs, registry/gc.py) and ``fsck`` (registry/fsck.py)."""
from __future__ import annotations

import argparse
import asyncio

from ..config import parse_duration
from ..fsck import check
from ..gc import collect
from ..index import Index
from ..lifecycle.settings import parse_gc
from ..storage import open_driver
from .common import add_config_options, config_from_args, setup_logging


def gc(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup_logging(config)
    grace = parse_duration(args.grace, "--grace") if args.grace is not None else parse_gc(config).review_delay

    async def run():
        driver = open_driver(config.data_dir, config.storage)
        await driver.open()
        index = Index(config.database_url)
        try:
            if config.auto_migrate:
                await index.migrate()
            return await collect(index, driver, grace, dry_run=args.dry_run)
        finally:
            await index.close()
            await driver.close()

    report = asyncio.run(run())
    if report.skipped:
        print("skipped: another dockyard-registry is collecting garbage on this index right now")
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(report.swept)} blob(s), {report.freed_bytes} bytes; "
          f"{report.live} referenced, {report.kept_young} unreferenced but younger than {grace:g}s, "
          f"{report.kept_referenced} named while gc ran")
    for digest in report.swept:
        print(f"  {digest}")
    return 0


def fsck(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup_logging(config)

    async def run():
        driver = open_driver(config.data_dir, config.storage)
        await driver.open()
        index = Index(config.database_url)
        try:
            return await check(index, driver)
        finally:
            await index.close()
            await driver.close()

    report = asyncio.run(run())
    for repository, digest, kind in report.missing:
        print(f"MISSING {kind} {repository}@{digest}")
    for repository, digest, kind in report.pending_sweep:
        print(f"PENDING {kind} {repository}@{digest}: an interrupted sweep removed the bytes; "
              "the next lifecycle worker (serve) removes the name")
    for digest, want, have in report.wrong_size:
        print(f"SIZE {digest}: index says {want}, storage has {have}")
    for digest, size in report.orphans:
        print(f"ORPHAN {digest}: {size} bytes stored that the index does not know (dockyard-registry gc removes them)")
    problems = report.problems
    print(f"checked {report.checked} name(s): {problems} problem(s)")
    return 1 if problems else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gc", help="remove stored blobs no manifest names (a full sweep, for repairs; serve's worker does it continuously)")
    add_config_options(p)
    p.add_argument("--grace", metavar="DURATION", help="keep blobs younger than this (default: gc.review_delay, 24h); 0 is safe while pushes run")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.set_defaults(func=gc)
    p = sub.add_parser("fsck", help="check that every name leads to stored bytes and no bytes are orphaned (read-only; exit 1 on problems)")
    add_config_options(p)
    p.set_defaults(func=fsck)
