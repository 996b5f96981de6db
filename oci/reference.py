"""Repository names, tags and image references, with docker-style normalisation.

Grammar from the OCI distribution spec (names, tags) and docker's reference package (domain
detection, `docker.io` and `library/` defaults). Registries validate names with
``validate_name``; the node parses what a user typed with ``Reference.parse``.
"""
from __future__ import annotations

import re

from .digest import Digest, InvalidDigest
from .record import record

_set = object.__setattr__  # a frozen record's fields, in the hand-written __init__

NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{NAME_COMPONENT}(?:/{NAME_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?$|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$"
)
MAX_NAME_LENGTH = 255

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"


class InvalidReference(ValueError):
    """The text is not a valid repository name, tag or reference."""


def validate_name(name: str) -> str:
    if not name or len(name) > MAX_NAME_LENGTH or not NAME_RE.match(name):
        raise InvalidReference(f"invalid repository name {name!r}")
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.match(tag or ""):
        raise InvalidReference(f"invalid tag {tag!r}")
    return tag


def is_tag(text: str) -> bool:
    return bool(TAG_RE.match(text or ""))


@record(frozen=True)
class Reference:
    """`domain/repository[:tag][@digest]`, normalised as docker does."""

    domain: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __init__(self, domain, repository, tag=None, digest=None):
        _set(self, "domain", domain)
        _set(self, "repository", repository)
        _set(self, "tag", tag)
        _set(self, "digest", digest)

    @classmethod
    def parse(cls, text: str, default_tag: bool = True) -> "Reference":
        if not text or len(text) > 4096:
            raise InvalidReference(f"invalid reference format: {text!r}")
        rest, digest = text, None
        if "@" in rest:
            rest, _, dtext = rest.partition("@")
            try:
                digest = Digest.parse(dtext)
            except InvalidDigest as e:
                raise InvalidReference(f"invalid reference format: {e}") from None
        tag = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not TAG_RE.match(tag):
                raise InvalidReference(f"invalid reference format: bad tag {tag!r}")
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
            domain, path = first, remainder
            if not DOMAIN_RE.match(domain):
                raise InvalidReference(f"invalid reference format: bad registry host {domain!r}")
        else:
            domain, path = DEFAULT_DOMAIN, rest
        if domain == LEGACY_DOMAIN:
            domain = DEFAULT_DOMAIN
        if domain == DEFAULT_DOMAIN and "/" not in path:
            path = OFFICIAL_PREFIX + path
        if path != path.lower():
            raise InvalidReference(f"invalid reference format: repository name {path!r} must be lowercase")
        try:
            validate_name(path)
        except InvalidReference:
            raise InvalidReference(f"invalid reference format: {text!r}") from None
        if tag is None and digest is None and default_tag:
            tag = DEFAULT_TAG
        return cls(domain, path, tag, digest)

    @property
    def name(self) -> str:
        """`domain/repository` — what docker calls the name."""
        return f"{self.domain}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes in `/v2/<name>/manifests/<reference>`: the digest if pinned, else the tag."""
        return str(self.digest) if self.digest else (self.tag or DEFAULT_TAG)

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.domain, self.repository, validate_tag(tag), None)

    def with_digest(self, digest: Digest) -> "Reference":
        return Reference(self.domain, self.repository, self.tag, digest)

    def familiar(self) -> str:
        """The short form docker prints (`busybox:latest`, `127.0.0.1:5000/x:1`)."""
        repo = self.repository
        if self.domain == DEFAULT_DOMAIN:
            repo = repo.removeprefix(OFFICIAL_PREFIX)
        else:
            repo = f"{self.domain}/{repo}"
        if self.tag:
            repo += f":{self.tag}"
        if self.digest:
            repo += f"@{self.digest}"
        return repo

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s
