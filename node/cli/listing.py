"""`ps` and `images` as docker prints them: rows with docker's field names, `--filter`, and
`--format` (table / json / a Go template; node/cli/gotemplate.py).

Rows are built from what `inspect` shows (docker's JSON), so every placeholder docker documents
for `ps` means the same here; ``_json`` holds exactly the keys of docker's ``{{json .}}``.
"""
from __future__ import annotations

from node.cli.common import CliError

# Annotations only (postponed): importing typing costs every `ps`/`images` ~2 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS",
              "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES"}
PS_TABLE = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                  "VirtualSize": "VIRTUAL SIZE"}
IMAGES_TABLE = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
PS_FILTERS = ("id", "name", "label", "status", "ancestor", "exited", "network", "volume", "health")
HEALTH_STATUSES = ("starting", "healthy", "unhealthy", "none")
IMAGES_FILTERS = ("dangling", "reference", "label", "before", "since")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def parse_filters(values: list[str], allowed: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, arg = value.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise CliError(f"bad format of filter (expected name=value): {value!r}", 125)
        if key not in allowed:
            raise CliError(f"invalid filter '{key}'", 125)
        out.setdefault(key, []).append(arg)
    return out


def go_time(iso: str | None) -> str:
    """docker's CreatedAt: ``2026-12-01 22:50:18 +0000 UTC``."""
    if not iso:
        return ""
    from node.cli.imageinfo import _datetime, micro_fraction
    datetime, timezone = _datetime()  # here: the default `ps` table never shows CreatedAt
    try:
        when = datetime.fromisoformat(micro_fraction(iso.replace("Z", "+00:00")))
    except ValueError:
        return iso
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _ago(iso: str | None) -> str:
    from node.engine.records import since
    from node.engine.status import human_duration
    return f"{human_duration(since(iso or ''))} ago" if iso else "N/A"


def _json_string(text: str) -> str:
    """json.dumps(text, ensure_ascii=False), which for a str is _json's encode_basestring: the
    json package itself imports `re` and enum (~4 ms of every `ps`)."""
    try:
        from _json import encode_basestring
    except ImportError:  # a Python without the C accelerator
        import json
        return json.dumps(text, ensure_ascii=False)
    return encode_basestring(text)


def _labels_text(labels: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def _short(text: str, n: int, no_trunc: bool) -> str:
    return text if no_trunc or len(text) <= n else text[:n - 1] + "…"


def ps_row(doc: dict, no_trunc: bool = False, image_size: Callable[[str], int | None] = lambda i: None
           ) -> dict[str, Any]:
    """One `docker ps` row from a container's inspect document (``image_size``: bytes of an image
    by ID, for the "virtual" part of SIZE as docker 28 shows it)."""
    from node.engine.status import describe
    state, config = doc.get("State") or {}, doc.get("Config") or {}
    settings = doc.get("NetworkSettings") or {}
    # The daemon's wording: arguments with a space in single quotes, then Go's strconv.Quote.
    args = [f"'{a}'" if " " in a else a for a in doc.get("Args") or []]
    command = " ".join([doc.get("Path") or "", *args]).strip()
    ports = ""
    if state.get("Status") == "running":
        ports = ", ".join(f"{_host(b.get('HostIp'))}:{b.get('HostPort')}->{key}"
                          for key, binds in (settings.get("Ports") or {}).items() for b in binds or [])
    mounts = [m.get("Name") or m.get("Source") or "" for m in doc.get("Mounts") or []]
    labels = config.get("Labels") or {}
    fields = {
        "Command": _json_string(_short(command, 20, no_trunc)),
        "CreatedAt": None,  # computed when asked for (_Row): it needs datetime, ~1.5 ms to import
        "ID": doc["Id"] if no_trunc else doc["Id"][:12],
        "Image": config.get("Image") or doc.get("Image", ""),
        "Labels": _labels_text(labels),
        "LocalVolumes": str(sum(1 for m in doc.get("Mounts") or [] if m.get("Type") == "volume")),
        "Mounts": ",".join(_short(m, 15, no_trunc) for m in mounts),
        "Names": (doc.get("Name") or "").lstrip("/"),
        "Networks": ",".join(sorted((settings.get("Networks") or {}).keys())) or
                    (settings.get("NetworkMode") or ""),
        "Ports": ports,
        "Platform": None,
        "RunningFor": _ago(doc.get("Created")),
        "Size": None,  # computed when asked for: it needs the image records (_Row)
        "State": state.get("Status") or "",
        "Status": describe(state),
    }
    row = _Row(fields, _json=fields, _doc=doc)
    row["Label"] = lambda key: labels.get(key, "")
    row.later("Size", lambda: _size(image_size(doc.get("Image") or "")))
    row.later("CreatedAt", lambda: go_time(doc.get("Created")))
    return row


class _Row(dict):
    """A row whose costly fields are filled in on first read (a template naming them, `json`,
    a filter): the default `ps` table never shows SIZE, so it never reads the image records."""

    def later(self, key: str, make: Callable[[], Any]) -> None:
        self.__dict__.setdefault("_later", {})[key] = make

    def _fill(self, keys) -> None:
        later = self.__dict__.get("_later") or {}
        for key in [k for k in keys if k in later]:
            value = later.pop(key)()
            dict.__setitem__(self, key, value)
            json_fields = dict.get(self, "_json")
            if isinstance(json_fields, dict) and key in json_fields:
                json_fields[key] = value

    def __getitem__(self, key):
        if self.__dict__.get("_later"):
            self._fill(list(self.__dict__["_later"]) if key == "_json" else [key])
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        if self.__dict__.get("_later"):
            self._fill(list(self.__dict__["_later"]))
        return dict.items(self)

    def values(self):
        return [v for _, v in self.items()]


def _host(ip) -> str:
    return f"[{ip}]" if ip and ":" in ip else str(ip)  # docker writes "[::]:8080->80/tcp"


def _size(virtual: int | None) -> str:
    from node.cli.imageinfo import _human_size
    return "0B" if virtual is None else f"0B (virtual {_human_size(virtual)})"


def _matches_label(labels: dict, wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def ps_filter(filters: dict[str, list[str]], image_ids: Callable[[str], set[str]]) -> Callable[[dict], bool]:
    import re  # here: only a filter needs it (name=)
    for status in filters.get("status", []):
        if status not in STATUSES:
            raise CliError(f"invalid filter 'status={status}'", 125)
    exited = []
    for code in filters.get("exited", []):
        try:
            exited.append(int(code))
        except ValueError:
            raise CliError(f"invalid filter 'exited={code}'", 125) from None
    for value in filters.get("health", []):
        if value not in HEALTH_STATUSES:
            raise CliError(f"Unrecognised filter value for health: {value}", 125)
    ancestors: set[str] = set()
    for ref in filters.get("ancestor", []):
        ancestors |= image_ids(ref)

    def keep(row: dict) -> bool:
        doc = row["_doc"]
        name, state = row["Names"], doc.get("State") or {}
        labels = (doc.get("Config") or {}).get("Labels") or {}
        checks = {
            "id": lambda v: doc["Id"].startswith(v),
            "name": lambda v: re.search(v, name) is not None,
            "label": lambda v: _matches_label(labels, v),
            "status": lambda v: state.get("Status") == v,
            "ancestor": lambda v: doc.get("Image") in ancestors,
            "exited": lambda v: state.get("Status") == "exited" and state.get("ExitCode") == int(v),
            "network": lambda v: v in ((doc.get("NetworkSettings") or {}).get("Networks") or {}) or
                                 (doc.get("HostConfig") or {}).get("NetworkMode") == v,
            "health": lambda v: ((state.get("Health") or {}).get("Status") or "none") == v,
            "volume": lambda v: any(v in (m.get("Name"), m.get("Source"), m.get("Destination"))
                                    for m in doc.get("Mounts") or []),
        }
        # Values of one filter are alternatives; different filters must all hold (docker's rule).
        return all(any(checks[key](v) for v in values) for key, values in filters.items())
    return keep


def image_row(image, repo: str, tag: str, digest: str, no_trunc: bool) -> dict[str, Any]:
    from node.cli.imageinfo import _human_size, _since
    fields = {
        "Containers": "N/A", "CreatedAt": go_time(image.created), "CreatedSince": _since(image.created),
        "Digest": digest, "ID": image.id if no_trunc else image.short_id, "Repository": repo,
        "SharedSize": "N/A", "Size": _human_size(image.size), "Tag": tag, "UniqueSize": "N/A",
        "VirtualSize": _human_size(image.size),
    }
    return dict(fields, _json=fields, _image=image)


def images_filter(filters: dict[str, list[str]], find: Callable[[str], Any]) -> Callable[[dict], bool]:
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise CliError(f"invalid filter 'dangling={value}'", 125)
    before = [find(ref) for ref in filters.get("before", [])]
    since = [find(ref) for ref in filters.get("since", [])]

    def keep(row: dict) -> bool:
        image = row["_image"]
        labels = _config_labels(image)
        checks = {
            "dangling": lambda v: (row["Tag"] == "<none>") == (v.lower() in ("true", "1")),
            "reference": lambda v: _reference_matches(v, row["Repository"], row["Tag"]),
            "label": lambda v: _matches_label(labels, v),
            "before": lambda v: all((image.created or "") < (b.created or "") for b in before),
            "since": lambda v: all((image.created or "") > (s.created or "") for s in since),
        }
        return all(any(checks[key](v) for v in values) for key, values in filters.items())
    return keep


def _config_labels(image) -> dict:
    import json
    try:
        doc = json.loads(image.config.raw)
    except (ValueError, TypeError, AttributeError):
        return {}
    labels = (doc.get("config") or {}).get("Labels") if isinstance(doc, dict) else None
    return labels if isinstance(labels, dict) else {}


def _path_match(pattern: str, text: str) -> bool:
    """Go's path.Match: like a shell glob, but ``*`` and ``?`` never cross a ``/``."""
    import re
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + re.escape(body[1:]) if body.startswith("^") else re.escape(body)) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(out), text, re.S) is not None


def _reference_matches(pattern: str, repo: str, tag: str) -> bool:
    """docker's `reference` filter: a glob over the familiar name, with or without the tag."""
    if ":" in pattern.rsplit("/", 1)[-1]:
        return _path_match(pattern, f"{repo}:{tag}")
    return _path_match(pattern, repo)
