"""Blob bytes: the driver interface, the filesystem driver and upload sessions."""
from __future__ import annotations

from typing import Any

from .driver import StorageDriver


def open_driver(data_dir: str, settings: dict[str, Any] | None = None) -> StorageDriver:
    """The driver the config asks for (``storage: {driver: filesystem}``, the default)."""
    settings = settings or {}
    kind = settings.get("driver", "filesystem")
    if kind == "filesystem":
        from .filesystem import FilesystemDriver

        from ..config import parse_bool

        fsync = parse_bool(settings.get("fsync", True), "storage.fsync")
        return FilesystemDriver(settings.get("root") or data_dir, fsync=fsync)
    if kind == "s3":
        from .s3 import S3Driver
        from .s3_settings import parse_s3_settings

        return S3Driver(parse_s3_settings(settings))
    raise ValueError(f"storage.driver: unknown driver {kind!r} (known: filesystem, s3)")
