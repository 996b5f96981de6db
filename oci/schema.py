"""The JSON types of every field image-spec defines, checked before anything reads a value.

A manifest or config is user input: a `digest` of `5` or a `variant` of `{}` must come back as
a readable error naming the field (``layers[0].digest: expected a string, got a number``), never
as a TypeError deep in a parser or a template. ``check(doc, SCHEMA, "")`` walks the schema:

- a schema is a dict ``field -> spec``; fields not in it are left alone (extensions are allowed);
- a spec is ``str``, ``int``, ``bool``, ``STRINGS`` (list of strings), ``STRING_MAP`` (object of
  strings), ``OBJECT`` (any object), ``ListOf(spec)``, ``MapOf(spec)``, or a nested schema dict;
- ``REQUIRED`` fields must be present; ``None`` (JSON null) counts as absent elsewhere, since
  Docker writes ``"Cmd": null``.
"""
from __future__ import annotations


class SchemaError(ValueError):
    """A field has the wrong JSON type; ``field`` is its path (``layers[2].digest``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class ListOf:
    __slots__ = ("item",)

    def __init__(self, item) -> None:
        self.item = item


class MapOf:
    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


OBJECT = object()  # any JSON object, contents unchecked
STRINGS = ListOf(str)
STRING_MAP = MapOf(str)
REQUIRED = "__required__"

_NAMES = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check(value, spec, path: str = "") -> None:
    """Raise SchemaError at the first field whose JSON type does not match ``spec``."""
    if spec is str or spec is bool:
        if not isinstance(value, spec):
            raise SchemaError(path, f"expected {_NAMES[spec]}, got {_kind(value)}")
    elif spec is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(path, f"expected an integer, got {_kind(value)}")
    elif isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise SchemaError(path, f"expected a list, got {_kind(value)}")
        for i, item in enumerate(value):
            check(item, spec.item, f"{path}[{i}]")
    elif spec is OBJECT or isinstance(spec, (MapOf, dict)):
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected an object, got {_kind(value)}")
        if isinstance(spec, MapOf):
            for k, v in value.items():
                if v is None and spec.value is OBJECT:  # {"80/tcp": null} decodes fine in Go too
                    continue
                check(v, spec.value, _join(path, str(k)[:100]))
        elif isinstance(spec, dict):
            for key in spec.get(REQUIRED, ()):
                if value.get(key) is None:
                    raise SchemaError(_join(path, key), "is required")
            for key, sub in spec.items():
                if key != REQUIRED and value.get(key) is not None:
                    check(value[key], sub, _join(path, key))
    else:  # pragma: no cover - a mistake in a schema below
        raise TypeError(f"bad schema spec {spec!r}")


PLATFORM = {REQUIRED: ("architecture", "os"), "architecture": str, "os": str, "os.version": str,
            "os.features": STRINGS, "variant": str, "features": STRINGS}
DESCRIPTOR = {REQUIRED: ("mediaType", "digest", "size"), "mediaType": str, "digest": str, "size": int,
              "urls": STRINGS, "annotations": STRING_MAP, "data": str, "artifactType": str, "platform": PLATFORM}
_COMMON = {"schemaVersion": int, "mediaType": str, "artifactType": str, "annotations": STRING_MAP,
           "subject": DESCRIPTOR}
IMAGE_MANIFEST = {**_COMMON, REQUIRED: ("config",), "config": DESCRIPTOR, "layers": ListOf(DESCRIPTOR)}
IMAGE_INDEX = {**_COMMON, REQUIRED: ("manifests",), "manifests": ListOf(DESCRIPTOR)}

# image-spec config.md (and Docker's image JSON, a superset): only the fields the spec types.
_RUN_CONFIG = {"User": str, "ExposedPorts": MapOf(OBJECT), "Env": STRINGS, "Entrypoint": STRINGS, "Cmd": STRINGS,
               "Volumes": MapOf(OBJECT), "WorkingDir": str, "Labels": STRING_MAP, "StopSignal": str,
               "ArgsEscaped": bool, "Shell": STRINGS, "OnBuild": STRINGS}
IMAGE_CONFIG = {"created": str, "author": str, "architecture": str, "os": str, "os.version": str,
                "os.features": STRINGS, "variant": str, "config": _RUN_CONFIG,
                "rootfs": {"type": str, "diff_ids": STRINGS},
                "history": ListOf({"created": str, "author": str, "created_by": str, "comment": str,
                                   "empty_layer": bool})}
