"""``serve``, ``migrate`` and ``check-config``."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import web

from ..app import create_app
from ..config import ConfigError
from ..index import Index
from .common import add_config_options, config_from_args, setup_logging


def serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup_logging(config)
    app = create_app(config, migrate_in_child=True)
    from ..auth import parse_auth
    from ..auth.tls import server_ssl_context

    ssl_context = server_ssl_context(parse_auth(config))  # HTTPS when auth.tls_cert/tls_key are set
    scheme = "https" if ssl_context else "http"
    print(f"dockyard-registry: serving on {scheme}://{config.listen}/v2/ (data in {config.data_dir})", file=sys.stderr)
    web.run_app(app, host=config.host, port=config.port, print=None, access_log=None, shutdown_timeout=5,
                ssl_context=ssl_context)
    return 0


def migrate(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup_logging(config)

    async def run() -> set[str]:
        from ..index.migrate import current

        idx = Index(config.database_url)
        try:
            await idx.migrate()
            return await current(idx.engine)
        finally:
            await idx.close()

    heads = asyncio.run(run())
    print(f"database is at revision {', '.join(sorted(heads)) or '(none)'}")
    return 0


def check_config(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from ..storage import open_driver

    try:
        open_driver(config.data_dir, config.storage)
        from ..auth import parse_auth
        from ..auth.tls import server_ssl_context

        server_ssl_context(parse_auth(config))  # the auth section, and the TLS files it names
        from ..web.settings import parse_catalog

        parse_catalog(config)
        from ..proxy import parse_proxy

        parse_proxy(config)
    except ValueError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(config.describe(), indent=2, sort_keys=True))
    print("config OK", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the registry API")
    add_config_options(p)
    p.set_defaults(func=serve)
    p = sub.add_parser("migrate", help="bring the index database schema up to date")
    add_config_options(p)
    p.set_defaults(func=migrate)
    p = sub.add_parser("check-config", help="load and validate the configuration, then print it")
    add_config_options(p)
    p.set_defaults(func=check_config)
