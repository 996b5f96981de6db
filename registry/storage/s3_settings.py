"""The ``storage`` section when ``driver: s3``: parsed and validated into one typed object.

::

    storage:
      driver: s3
      bucket: NAME
      endpoint: http://127.0.0.1:PORT   # any S3-compatible server; empty = AWS
      region: us-east-1
      access_key: ...                   # else the usual AWS_* environment / credential chain
      secret_key: ...
      prefix: ""                        # every key in the bucket begins with it
      redirect: false                   # true: blob GETs answer 307 to a presigned URL
      sign_payload: false               # true: SHA-256 of every body in its signature (CPU)

Values may come from ``DOCKYARD_REGISTRY_STORAGE__<KEY>`` (strings): booleans are parsed here.
Every mistake is one ConfigError line; the secret never appears in one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..config import ConfigError, parse_bool, parse_duration

KEYS = ("driver", "bucket", "endpoint", "region", "access_key", "secret_key", "prefix", "redirect",
        "redirect_expiry", "retries", "timeout", "sign_payload")
# Bucket names as S3 allows them for path-style addressing (lower case, digits, dots, dashes).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z0-9-]{1,40}$")


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    prefix: str = ""
    redirect: bool = False
    redirect_expiry: float = 600.0   # lifetime of a presigned URL, seconds
    retries: int = 3                 # retries after a failed S3 call (botocore "standard" backoff)
    timeout: float = 30.0            # connect/read timeout per attempt, seconds
    sign_payload: bool = False       # SHA-256 of each request body in its signature (CPU per byte)


def _text(raw: Mapping[str, Any], key: str, default: str = "") -> str:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"storage.{key}: expected a string")
    return str(value).strip()


def parse_s3_settings(raw: Mapping[str, Any]) -> S3Settings:
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"storage: unknown setting {unknown[0]!r} for driver s3 (known: {', '.join(KEYS[1:])})")
    bucket = _text(raw, "bucket")
    if not bucket:
        raise ConfigError("storage.bucket: required when storage.driver is s3")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ConfigError(f"storage.bucket: {bucket[:80]!r} is not a valid bucket name (3-63 of a-z 0-9 . -)")
    endpoint = _text(raw, "endpoint").rstrip("/")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ConfigError(f"storage.endpoint: expected http(s)://HOST[:PORT], got {endpoint[:120]!r}")
        try:
            parts.port
        except ValueError:
            raise ConfigError(f"storage.endpoint: bad port in {endpoint[:120]!r}") from None
    region = _text(raw, "region", "us-east-1") or "us-east-1"
    if not _REGION_RE.match(region):
        raise ConfigError(f"storage.region: {region[:60]!r} is not a region name")
    access_key, secret_key = _text(raw, "access_key"), _text(raw, "secret_key")
    if bool(access_key) != bool(secret_key):
        raise ConfigError("storage.access_key and storage.secret_key: give both or neither "
                          "(neither = the AWS_* environment / credential chain)")
    prefix = _text(raw, "prefix")
    if prefix.startswith("/") or "//" in prefix or len(prefix) > 200:
        raise ConfigError(f"storage.prefix: a plain key prefix like 'scale/' (no leading '/', no '//'), got {prefix[:80]!r}")
    retries = raw.get("retries", 3)
    if isinstance(retries, bool) or not str(retries).isdigit() or not 1 <= int(retries) <= 20:
        raise ConfigError(f"storage.retries: expected a whole number from 1 to 20, got {retries!r}")
    expiry = parse_duration(raw.get("redirect_expiry", 600), "storage.redirect_expiry")
    timeout = parse_duration(raw.get("timeout", 30), "storage.timeout")
    if not 1 <= expiry <= 7 * 86400 or timeout <= 0:
        raise ConfigError("storage.redirect_expiry: 1s to 7d; storage.timeout: positive")
    return S3Settings(bucket=bucket, endpoint=endpoint, region=region, access_key=access_key,
                      secret_key=secret_key, prefix=prefix,
                      redirect=parse_bool(raw.get("redirect", False), "storage.redirect"),
                      redirect_expiry=expiry, retries=int(retries), timeout=timeout,
                      sign_payload=parse_bool(raw.get("sign_payload", False), "storage.sign_payload"))
