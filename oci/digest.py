"""Content digests (``algorithm:hex``) as the OCI image spec defines them.

Only sha256 and sha512 are registered algorithms; anything else is refused when parsed, so a
hostile digest never reaches a file path or a SQL query unchecked.
"""
from __future__ import annotations

import re
from .record import record

_set = object.__setattr__  # a frozen record's fields, in the hand-written __init__s

ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


class InvalidDigest(ValueError):
    """The text is not a digest this project accepts."""


@record(frozen=True, order=True)
class Digest:
    algorithm: str
    hex: str

    def __init__(self, algorithm, hex):  # noqa: A002 - the field's name
        _set(self, "algorithm", algorithm)
        _set(self, "hex", hex)

    @classmethod
    def parse(cls, text: str) -> "Digest":
        if not isinstance(text, str):  # parsed JSON can hold anything where a digest belongs
            raise InvalidDigest(f"invalid digest {text!r}: not a string")
        m = _DIGEST_RE.match(text)
        if not m:
            raise InvalidDigest(f"invalid digest {text!r}")
        alg, hexpart = m.group(1), m.group(2)
        if alg not in ALGORITHMS:
            raise InvalidDigest(f"unsupported digest algorithm {alg!r}")
        if len(hexpart) != ALGORITHMS[alg] or not re.fullmatch(r"[0-9a-f]+", hexpart):
            raise InvalidDigest(f"invalid {alg} digest {text!r}")
        return cls(alg, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> "Digest":
        import hashlib  # here: parsing digests (`dockyard images`) should not load OpenSSL (~3 ms)
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The 12-character form docker prints as an image ID."""
        return self.hex[:12]

    def hasher(self) -> "Hasher":
        return Hasher(self.algorithm)

    def matches(self, data: bytes) -> bool:
        import hashlib
        return hashlib.new(self.algorithm, data).hexdigest() == self.hex


def is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidDigest:
        return False
    return True


class Hasher:
    """Streaming hash that also counts the bytes it saw."""

    __slots__ = ("algorithm", "_h", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
        import hashlib
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self._h.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())

    def copy(self) -> "Hasher":
        other = Hasher.__new__(Hasher)
        other.algorithm, other._h, other.size = self.algorithm, self._h.copy(), self.size
        return other


def hash_file(path: str, algorithm: str = "sha256", chunk: int = 1 << 20) -> tuple[Digest, int]:
    """Digest and size of a file, read in chunks (never the whole file in memory)."""
    h = Hasher(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.digest(), h.size
