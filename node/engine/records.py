"""Container records: what a container is (container.json, written once at create) and what it is
doing (state.json, rewritten under a lock by the agent and the monitor).

    ROOT/containers/
      .lock                       held while a name is claimed (create, rename-free design)
      <id>/                       64 hex digits
        container.json            Id, Name, Created, Image, ImageRef, Config, HostConfig, LayerDirs,
                                  Volumes (anonymous volume names), Path, Args
        state.json                Status, Running, Paused, Restarting, OOMKilled, Pid, PidStart,
                                  ExitCode, Error, StartedAt, FinishedAt, MonitorPid, MonitorStart,
                                  RestartCount, StoppedByUser, Network (the attachment, if any)
        lock                      flock for read-modify-write of state.json
        upper/ work/              the container's writable overlay layer
        bundle/config.json        the OCI runtime bundle (rewritten at every start)
        bundle/rootfs/            overlay mount point while the container runs
        hostname hosts resolv.conf   bind-mounted into the container
        <id>-json.log             stdout/stderr in Docker's json-file format
"""
from __future__ import annotations

import fcntl
import os
import time

from node.engine import EngineError
from node.engine.spec import Config, ContainerSpec, HostConfig, _Typed

ADJECTIVES = ["brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
              "merry", "nifty", "proud", "quiet", "sharp", "tender", "vivid", "witty", "zen"]
NOUNS = ["anchor", "barge", "cargo", "davit", "ferry", "galley", "harbor", "jetty", "keel",
         "lantern", "mast", "pier", "quay", "rudder", "sail", "tug", "wharf", "yacht"]


def now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def containers_dir(root: str | Path) -> Path:
    from pathlib import Path  # here, not at the top: `ps` lists without pathlib (~3 ms of imports)
    return Path(root) / "containers"


# --- Docker's JSON <-> the typed record (node/engine/spec.py) ---------------------------------

def to_json(obj) -> dict:
    """A spec object as Docker writes it; keys it was read with that we do not know, too."""
    doc = dict(obj.extra)
    for name, key, _default in obj.FIELDS:
        value = getattr(obj, name)
        if isinstance(value, _Typed):
            value = to_json(value)
        elif name in ("id_mappings", "stop_timeout", "healthcheck") and value is None:
            continue  # written only for --userns=private / --stop-timeout (docker omits it too)
        doc[key] = value
    return doc


def from_json(cls, doc: dict):
    extra = dict(doc)
    values = {}
    for name, key, default in cls.FIELDS:
        if key in extra:
            value = extra.pop(key)
            if isinstance(default, type) and issubclass(default, _Typed):
                value = from_json(default, value or {})
            values[name] = value
    return cls(extra=extra, **values)


class Container:
    def __init__(self, root: str | Path, cid: str) -> None:
        from pathlib import Path
        self.root = Path(root)
        self.id = cid
        self.dir = containers_dir(root) / cid
        self._spec: ContainerSpec | None = None

    # paths
    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.dir / "bundle" / "rootfs"

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    @property
    def spec(self) -> ContainerSpec:
        """The typed record (container.json), read once."""
        if self._spec is None:
            import json
            with open(self.dir / "container.json") as f:
                self._spec = from_json(ContainerSpec, json.load(f))
        return self._spec

    @property
    def config(self) -> Config:
        return self.spec.config

    @property
    def host_config(self) -> HostConfig:
        return self.spec.host_config

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def meta(self) -> dict:
        """container.json as Docker's JSON, for callers outside the engine (read only)."""
        return to_json(self.spec)

    def save_meta(self, doc: dict) -> None:
        """Save a record given as Docker's JSON (what `meta` returns, changed)."""
        self.save_spec(from_json(ContainerSpec, doc))

    def save_spec(self, spec: ContainerSpec) -> None:
        from node.atomic import write_json
        self._spec = spec
        write_json(self.dir / "container.json", to_json(spec))

    def state(self) -> dict:
        import json
        try:
            with open(self.dir / "state.json") as f:
                return json.load(f)
        except FileNotFoundError:
            return new_state()

    def locked(self) -> _Flock:
        """A with-block holding the record's lock (flock on ``lock``)."""
        return _Flock(self.dir / "lock")

    def update_state(self, unless=None, **changes) -> dict:
        """Apply `changes` to state.json under the record's lock; if `unless(current state)` is
        true there, the record is left as it is and returned."""
        with self.locked():
            state = self.state()
            if unless is not None and unless(state):
                return state
            state.update(changes)
            from node.atomic import write_json
            write_json(self.dir / "state.json", state)
            return state


def read_bytes(path: str) -> bytes:
    """The file's bytes by os.open/os.read: open(path, "rb").read() costs ~9 system calls (two
    fstats, an isatty ioctl, lseeks), this 4 for a small file; `ps` reads two per container."""
    from node.reportpipe import read_all  # os only

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return read_all(fd, 1 << 16)
    finally:
        os.close(fd)


def loads_json(data: bytes):
    """json.loads(data) for a record this module wrote (UTF-8, an object or array first), without
    importing json: its decoder and encoder import `re` (and with it enum), ~4 ms of every `ps`.
    The parser is json's own C scanner (node/runtime/specfile.py); any other document (a BOM,
    UTF-16, leading space, something malformed) goes to json.loads for its result or its error."""
    if len(data) >= 2 and data[0] in b"{[" and data[1]:  # json.detect_encoding: utf-8
        from node.runtime.specfile import loads
        return loads(data.decode("utf-8", "surrogatepass"))
    import json
    return json.loads(data)


def new_state() -> dict:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "PidStart": 0, "ExitCode": 0, "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z",
            "MonitorPid": 0, "MonitorStart": 0, "RestartCount": 0, "StoppedByUser": False,
            "Network": None}


def all_ids(root: str | Path) -> list[str]:
    d = os.path.join(os.fspath(root), "containers")  # os.path: pathlib costs ~30 us per entry
    try:
        return [e for e in os.listdir(d) if len(e) == 64 and os.path.exists(os.path.join(d, e, "container.json"))]
    except FileNotFoundError:
        return []


def list_containers(root: str | Path) -> list[Container]:
    found = []
    for cid in all_ids(root):
        c = Container(root, cid)
        try:
            c.spec
        except (OSError, ValueError, TypeError):
            continue
        found.append(c)
    found.sort(key=lambda c: c.spec.created, reverse=True)
    return found


def find(root: str | Path, ref: str) -> Container:
    """By full id, exact name, or unique id prefix — docker's order."""
    ref = ref.lstrip("/")
    ids = all_ids(root)
    if ref in ids:
        return Container(root, ref)
    for cid in ids:
        c = Container(root, cid)
        try:
            if c.name == ref:
                return c
        except (OSError, ValueError, TypeError):
            continue
    matches = [cid for cid in ids if ref and cid.startswith(ref.lower())]
    if len(matches) == 1:
        return Container(root, matches[0])
    if len(matches) > 1:
        raise EngineError(f"multiple containers match {ref!r}", 1)
    raise EngineError(f"No such container: {ref}", 1)


def names_lock(root: str | Path) -> _Flock:
    """A with-block holding ROOT/containers/.lock (the directory made first)."""
    d = containers_dir(root)
    return _Flock(d / ".lock", make_dir=d)


class _Flock:
    """``with``: open ``path`` (O_CREAT), flock it exclusively; closed (so unlocked) on the way out.
    What a contextlib.contextmanager generator did here, without importing contextlib (with
    collections and functools, ~2 ms of every `ps`, which imports this module to list)."""

    __slots__ = ("path", "make_dir", "fd")

    def __init__(self, path, make_dir=None) -> None:
        self.path, self.make_dir, self.fd = path, make_dir, -1

    def __enter__(self) -> None:
        if self.make_dir is not None:
            self.make_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc) -> bool:
        os.close(self.fd)
        return False


def _names(root: str | Path) -> dict[str, str]:
    """Every container's name -> its id, from the "Name" of each container.json as read: the
    typed record (list_containers) cost ~1 ms per container, on every `run` without --name. A
    record whose name can be read counts even if the typed record would reject it."""
    names = {}
    d = os.path.join(os.fspath(root), "containers")
    for cid in all_ids(root):
        try:
            with open(os.path.join(d, cid, "container.json"), "rb") as f:
                name = loads_json(f.read()).get("Name")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(name, str):
            names.setdefault(name, cid)
    return names


def name_taken(root: str | Path, name: str) -> str | None:
    return _names(root).get(name)


def random_name(root: str | Path) -> str:
    seed = int.from_bytes(os.urandom(4), "big")
    taken = _names(root)  # the caller holds names_lock: the set cannot change meanwhile
    for attempt in range(100):
        name = f"{ADJECTIVES[seed % len(ADJECTIVES)]}_{NOUNS[(seed // 97) % len(NOUNS)]}"
        if attempt:
            name += str(attempt)
        if name not in taken:
            return name
        seed = int.from_bytes(os.urandom(4), "big")
    return "c_" + os.urandom(6).hex()


def new_id() -> str:
    return os.urandom(32).hex()


def since(iso: str) -> float:
    """Seconds since an ISO timestamp this module wrote (``now_iso``: UTC, microseconds, Z).
    Parsed by hand: datetime costs ~2 ms to import on `run`'s path (the die event's duration),
    strptime more (_strptime, locale, calendar). Only now_iso's exact shape is accepted."""
    if len(iso) != 27 or iso[-1] != "Z" or iso[10] != "T" or iso[19] != ".":
        return 0.0
    try:
        y, mo, d = int(iso[0:4]), int(iso[5:7]), int(iso[8:10])
        h, mi, sec, us = int(iso[11:13]), int(iso[14:16]), int(iso[17:19]), int(iso[20:26])
    except ValueError:
        return 0.0
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and sec < 61):
        return 0.0
    t = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec + us / 1e6
    return max(0.0, time.time() - t)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days from 1970-01-01 to the proleptic Gregorian date y-m-d (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def remove_tree(path) -> None:
    """shutil.rmtree without importing shutil (and its compression modules) on the run path."""
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(top, name))
        for name in dirs:
            full = os.path.join(top, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)
