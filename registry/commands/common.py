"""Options every command shares and the config they produce."""
from __future__ import annotations

import argparse
import logging

from ..config import RegistryConfig, load_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config file")
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default 127.0.0.1:5000)")
    parser.add_argument("--data-dir", metavar="DIR", help="blob storage and default SQLite location (default ./data)")
    parser.add_argument("--database-url", metavar="URL", help="sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")


def config_from_args(args: argparse.Namespace) -> RegistryConfig:
    return load_config(
        getattr(args, "config", None),
        overrides={
            "listen": getattr(args, "listen", None),
            "data_dir": getattr(args, "data_dir", None),
            "database_url": getattr(args, "database_url", None),
            "log_level": getattr(args, "log_level", None),
        },
    )


def setup_logging(config: RegistryConfig) -> None:
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.log_level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
