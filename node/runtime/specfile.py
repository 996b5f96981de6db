"""Reading a bundle's config.json without importing the `json` package.

`import json` costs a one-shot runtime command ~5-12 ms (bench/results/PROFILE.md section 11):
json.decoder and json.encoder import `re`, which imports `enum` and compiles patterns that only
the pure-Python fallback parser uses. The parser itself is the C scanner in `_json`, the one
`json.loads` runs too; built here from its six settings, it gives the same objects for every
valid document. Anything it does not accept (or a Python without `_json`) goes through
`json.loads`, so malformed files fail with json's usual JSONDecodeError and message.
"""
from __future__ import annotations

_WHITESPACE = " \t\n\r"  # JSON's insignificant whitespace (RFC 8259 section 2)


class _Settings:
    """What `_json.make_scanner` reads from a JSONDecoder: json.loads' defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str):
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def _make_scanner():
    try:
        import _json
        return _json.make_scanner(_Settings)
    except (ImportError, AttributeError):
        return None


_scan = _make_scanner()


def loads(text: str):
    """json.loads(text), for the documents the C scanner accepts whole."""
    if _scan is not None:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration:
            value, end = None, -1
        except ValueError:  # the scanner's own JSONDecodeError: let json.loads say it
            value, end = None, -1
        if end >= 0 and not text[end:].strip(_WHITESPACE):
            return value
    import json
    return json.loads(text)


def load(path: str):
    """The JSON document in file `path` (UTF-8, as the OCI runtime spec requires)."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data.decode("utf-8"))
