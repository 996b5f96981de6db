"""Registry credentials and auth challenges, as the Docker client handles them.

Credentials live in a docker-compatible ``config.json``: ``{"auths": {"HOST": {"auth":
base64("user:password")}}}``, mode 0600. Its directory is ``$DOCKYARD_CONFIG``, else
``$DOCKER_CONFIG``, else ``~/.docker`` — so credentials from ``docker login`` work, and keys
dockyard does not know (credsStore, proxies...) are kept when it rewrites the file. It does not
depend on ``--root``: credentials belong to the user, not to a node's state.

Reading follows the docker CLI: ``credHelpers[HOST]`` then ``credsStore`` name a program
``docker-credential-NAME`` that answers ``get`` (the server address on stdin) with
``{"Username", "Secret"}`` (a Username of ``<token>`` means the Secret is an identity token);
otherwise ``auths[HOST]`` holds ``auth`` (base64 ``user:password``) and, after ``docker login``
to a token-mode registry, an ``identitytoken``: an OAuth2 refresh token, answered by POSTing
``grant_type=refresh_token`` to the token realm (the password in ``auth`` is then empty).

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
    # An OAuth2 refresh token from `docker login` (config.json's "identitytoken"): when set,
    # tokens are asked for with grant_type=refresh_token instead of the password.
    identity_token: str = ""

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
    doc = _load()
    helper = _helper_for(doc, host)
    if helper:
        return _from_helper(helper, host)
    auths = doc.get("auths") or {}
    for key in _keys(host):
        entry = auths.get(key)
        if isinstance(entry, dict):
            creds = _from_entry(entry, host)
            if creds is not None:
                return creds
    return None


def _from_entry(entry: dict, host: str) -> Credentials | None:
    user, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ImageError(f"cannot read credentials for {host}: bad 'auth' in {config_path()}") from None
    token = entry.get("identitytoken") or ""
    if not isinstance(token, str):
        token = ""
    if not user and not token:
        return None
    if not password and not token:
        return None
    return Credentials(user, password, token)


def _from_helper(name: str, host: str) -> Credentials | None:
    """Ask ``docker-credential-NAME get``, as the docker CLI does."""
    r = _run_helper(name, "get", DOCKER_HUB_KEY if host == "docker.io" else host, host)
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0:
        # Helpers answer "credentials not found in native keychain" when they have none.
        if "not found" in (out + r.stderr.decode(errors="replace")).lower():
            return None
        raise ImageError(f"cannot read credentials for {host}: docker-credential-{name} get exited "
                         f"{r.returncode}: {(out or r.stderr.decode(errors='replace')).strip()[:200]}")
    try:
        doc = json.loads(out)
    except ValueError:
        raise ImageError(f"cannot read credentials for {host}: docker-credential-{name} answered no JSON") from None
    user, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    if not secret:
        return None
    if user == "<token>":
        return Credentials("", "", secret)
    return Credentials(user, secret)


def _helper_for(doc: dict, host: str) -> str:
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    name = helpers.get(_auths_key(host)) or helpers.get(host) or doc.get("credsStore")
    return name if isinstance(name, str) else ""


def _run_helper(name: str, verb: str, payload: str, host: str):
    import shutil
    import subprocess
    program = f"docker-credential-{name}"
    if shutil.which(program) is None:
        raise ImageError(f"cannot use credentials for {host}: {program} is not on PATH "
                         f"(named by {config_path()})")
    try:
        return subprocess.run([program, verb], input=payload.encode(), capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ImageError(f"cannot use credentials for {host}: {program} {verb} failed: {e}") from None


def _write(doc: dict) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps(doc, indent="\t").encode() + b"\n", mode=0o600)
    return path


def store(host: str, creds: Credentials) -> Path:
    doc = _load()
    auths = doc.setdefault("auths", {})
    for key in _keys(host):
        auths.pop(key, None)
    helper = _helper_for(doc, host)
    if helper:
        # As docker does: the secret goes to the helper, the file keeps an empty marker.
        payload = json.dumps({"ServerURL": _auths_key(host), "Username": creds.username,
                              "Secret": creds.password})
        r = _run_helper(helper, "store", payload, host)
        if r.returncode != 0:
            raise ImageError(f"cannot store credentials for {host}: docker-credential-{helper} store: "
                             f"{(r.stdout or r.stderr).decode(errors='replace').strip()[:200]}")
        auths[_auths_key(host)] = {}
    else:
        auths[_auths_key(host)] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    return _write(doc)


def erase(host: str) -> bool:
    doc = _load()
    auths = doc.get("auths") or {}
    found = False
    for key in _keys(host):
        found |= auths.pop(key, None) is not None
    helper = _helper_for(doc, host)
    if helper:
        found |= _run_helper(helper, "erase", _auths_key(host), host).returncode == 0
    if found:
        _write(doc)
    return found


_PARAM_RE = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
              for m in _PARAM_RE.finditer(rest)}
    return scheme.lower(), params
