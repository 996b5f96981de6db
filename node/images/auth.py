"""Registry credentials and auth challenges, as the Docker client handles them.

Credentials live in a docker-compatible ``config.json``: ``{"auths": {"HOST": {"auth":
base64("user:password")}}}``, mode 0600. Its directory is ``$DOCKYARD_CONFIG``, else
``$DOCKER_CONFIG``, else ``~/.docker`` — so credentials from ``docker login`` work, and keys
dockyard does not know (credsStore, proxies...) are kept when it rewrites the file. It does not
depend on ``--root``: credentials belong to the user, not to a node's state.

Challenges: a 401 carries ``WWW-Authenticate: Basic realm=...`` (answer with the credentials)
or ``Bearer realm=...,service=...,scope=...`` (fetch a token from the realm, with the
credentials as Basic auth if there are any, for ``repository:NAME:pull`` or ``pull,push``).
"""
from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageError
from .fsutil import atomic_write

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def config_path() -> Path:
    base = os.environ.get("DOCKYARD_CONFIG") or os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def _load() -> dict:
    path = config_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ImageError(f"cannot read credentials: {path} is not valid JSON ({e})") from None
    return doc if isinstance(doc, dict) else {}


def _keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        keys.insert(0, DOCKER_HUB_KEY)
    return keys


def _auths_key(host: str) -> str:
    return DOCKER_HUB_KEY if host == "docker.io" else host


def lookup(host: str) -> Credentials | None:
    auths = _load().get("auths") or {}
    for key in _keys(host):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ImageError(f"cannot read credentials for {host}: bad 'auth' in {config_path()}") from None
            return Credentials(user, password)
        if entry.get("username") and entry.get("password"):
            return Credentials(entry["username"], entry["password"])
    return None


def store(host: str, creds: Credentials) -> Path:
    doc = _load()
    auths = doc.setdefault("auths", {})
    for key in _keys(host):
        auths.pop(key, None)
    auths[_auths_key(host)] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps(doc, indent="\t").encode() + b"\n", mode=0o600)
    return path


def erase(host: str) -> bool:
    doc = _load()
    auths = doc.get("auths") or {}
    found = False
    for key in _keys(host):
        found |= auths.pop(key, None) is not None
    if found:
        atomic_write(config_path(), json.dumps(doc, indent="\t").encode() + b"\n", mode=0o600)
    return found


_PARAM_RE = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
              for m in _PARAM_RE.finditer(rest)}
    return scheme.lower(), params
