"""Detach keys, as docker reads them: a comma-separated list, each a single character (`x`, `,`
cannot be one) or `ctrl-<c>` with <c> one of a-z, @, [, \\, ], ^, _ (ctrl-a is 0x01, ctrl-@
0x00...). The default is ctrl-p,ctrl-q, or config.json's "detachKeys" (the docker config
directory the credentials come from, node/images/auth.py). An empty --detach-keys keeps the
default, as docker's.

DetachScanner watches a stdin stream: bytes that could start the sequence are held back; the
whole sequence detaches (and is swallowed); anything else releases what was held."""
from __future__ import annotations

import json

from node.engine import EngineError

DEFAULT = "ctrl-p,ctrl-q"
_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(spec: str) -> bytes:
    out = bytearray()
    for key in spec.split(","):
        name = key.strip().lower()
        if len(key) == 1:
            out.append(ord(key))
        elif name.startswith("ctrl-") and len(name) == 6:
            c = name[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in _CTRL:
                out.append(_CTRL[c])
            else:
                raise EngineError(f"Invalid detach keys ({spec}) provided", 125)
        else:
            raise EngineError(f"Invalid detach keys ({spec}) provided", 125)
    return bytes(out)


def configured() -> str:
    """config.json's detachKeys, else docker's default."""
    from node.images.auth import config_path
    try:
        with open(config_path()) as f:
            value = json.load(f).get("detachKeys")
    except (OSError, ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) and value else DEFAULT


def resolve(flag: str | None) -> bytes:
    return parse(flag if flag else configured())


class DetachScanner:
    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = 0  # how many bytes of the sequence the stream ends with

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to pass on, whether the sequence was typed); after a detach the rest is dropped."""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            if b == self.keys[self.held]:
                self.held += 1
                if self.held == len(self.keys):
                    self.held = 0
                    return bytes(out), True
                continue
            if self.held:
                out += self.keys[:self.held]
                self.held = 0
                if b == self.keys[0]:
                    self.held = 1
                    continue
            out.append(b)
        return bytes(out), False
