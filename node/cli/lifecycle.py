"""`rename`, `commit`, `import`, `update` and `events`: the container commands that change a
container's name, make images of it (or of a tarball), change its limits, and tell what
happened. Output as docker's: `commit` and `import` print the new image ID, `update` each
container as given, `events` docker's line per event (or --format), streaming until Ctrl-C.
"""
from __future__ import annotations

import sys
import time

from node.cli.common import CliError, engine_errors


def register(sub) -> None:
    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=engine_errors(func))
        return p

    p = add("rename", cmd_rename, "rename a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")

    p = add("commit", cmd_commit, "create a new image from a container's changes")
    p.add_argument("-a", "--author", default="", help='author (e.g. "Jane <jane@example.com>")')
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, "
                        "USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK)")
    p.add_argument("-m", "--message", default="", help="commit message")
    p.add_argument("-p", "--pause", default="true", nargs="?", const="true", metavar="BOOL",
                   help="pause the container during commit (default true; --pause=false)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="[REPOSITORY[:TAG]]")

    p = add("import", cmd_import, "create an image from a root filesystem tarball")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help="apply a Dockerfile instruction to the image")
    p.add_argument("-m", "--message", default="", help="commit message for the imported image")
    p.add_argument("--platform", metavar="OS/ARCH", help="the platform of the image (default: this host's)")
    p.add_argument("file", metavar="file|-", help="a tarball (plain, gzip or zstd), or - for stdin")
    p.add_argument("repository", nargs="?", metavar="[REPOSITORY[:TAG]]")

    p = add("update", cmd_update, "change a container's limits and restart policy")
    p.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 64m, 1g)")
    p.add_argument("--memory-swap", metavar="BYTES", help="memory plus swap limit (-1: unlimited swap)")
    p.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 0.5)")
    p.add_argument("-c", "--cpu-shares", type=int, metavar="N", help="CPU shares (relative weight)")
    p.add_argument("--cpu-period", type=int, metavar="US", help="CFS period in microseconds")
    p.add_argument("--cpu-quota", type=int, metavar="US", help="CFS quota in microseconds (-1: none)")
    p.add_argument("--pids-limit", type=int, metavar="N", help="most processes at once (-1: unlimited)")
    p.add_argument("--restart", metavar="POLICY", help="no, on-failure[:N], always or unless-stopped")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    p = add("events", cmd_events, "show what happens on this node, as it happens")
    p.add_argument("--since", metavar="TIME", help="events since a time (unix, RFC 3339 or a duration: 10m)")
    p.add_argument("--until", metavar="TIME", help="stop at this time")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="container, event, image, label, type, network, volume, scope")
    p.add_argument("--format", default="", metavar="FORMAT", help="json, or a Go template")


def cmd_rename(args) -> int:
    from node.engine.records import find
    from node.engine.rename import rename_container
    rename_container(args.root, find(args.root, args.container), args.new_name)
    return 0


def _bool(text: str, flag: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise CliError(f'invalid argument "{text}" for "{flag}" flag: strconv.ParseBool: parsing "{text}": '
                   "invalid syntax", 125)


def cmd_commit(args) -> int:
    from node.engine.commit import commit_container
    from node.engine.records import find
    image = commit_container(args.root, find(args.root, args.container), args.repository, args.change,
                             args.message, args.author, _bool(args.pause, "-p, --pause"))
    print(image.id)
    return 0


def cmd_import(args) -> int:
    from node.images.errors import ImageError
    from node.images.rootfs_import import import_rootfs
    if "://" in args.file:
        raise CliError("importing from a URL is not supported: download it, then import the file or -", 1)
    try:
        if args.file == "-":
            if sys.stdin.isatty():
                raise CliError("the input device is a terminal: pipe a tarball into `import -`", 1)
            image = import_rootfs(args.root, sys.stdin.buffer, args.repository, args.change, args.message,
                                  "-", args.platform)
        else:
            try:
                src = open(args.file, "rb")
            except OSError as e:
                raise CliError(f"open {args.file}: {e.strerror.lower()}", 1) from None
            with src:
                image = import_rootfs(args.root, src, args.repository, args.change, args.message,
                                      args.file, args.platform)
    except ImageError as e:
        raise CliError(str(e), 1) from None
    print(image.id)
    return 0


def cmd_update(args) -> int:
    from node.engine import EngineError
    from node.engine.records import find
    from node.engine.update import Limits, update_container
    limits = Limits(memory=args.memory, memory_swap=args.memory_swap, cpus=args.cpus, cpu_shares=args.cpu_shares,
                    cpu_quota=args.cpu_quota, cpu_period=args.cpu_period, pids_limit=args.pids_limit,
                    restart=args.restart)
    if limits.empty():
        raise CliError("you must provide one or more flags when using this command", 1)
    code = 0
    for ref in args.containers:
        try:
            update_container(find(args.root, ref), limits)
            print(ref)
        except EngineError as e:
            if e.exit_code == 125:
                raise
            print(f"Error: {e}", file=sys.stderr)
            code = 1
    return code


# -- events ---------------------------------------------------------------------------------------

def parse_time(text: str | None, now_ns: int | None = None) -> int | None:
    """docker's --since/--until: unix seconds[.nanos], a Go duration before now (10m, 1h30m),
    or an RFC 3339 date/time (local time when no zone is given). Nanoseconds."""
    if text is None or text == "":
        return None
    now_ns = time.time_ns() if now_ns is None else now_ns
    seconds, dot, frac = text.partition(".")
    if seconds.isdigit() and (not dot or frac.isdigit()):
        return int(seconds) * 1_000_000_000 + (int((frac + "000000000")[:9]) if frac else 0)
    from node.build.metadata import parse_duration
    try:
        return now_ns - parse_duration(text)
    except ValueError:
        pass
    from datetime import datetime
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f'failed to parse value as time or duration: "{text}"', 125) from None
    if when.tzinfo is None:
        when = when.astimezone()  # docker reads a zoneless time as local
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def event_time(ns: int) -> str:
    """Go's RFC3339NanoFixed in local time: 2026-12-02T05:14:19.123456789Z (or +01:00)."""
    local = time.localtime(ns // 1_000_000_000)
    offset = local.tm_gmtoff
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{ns % 1_000_000_000:09d}" + zone


def event_line(doc: dict) -> str:
    actor = doc.get("Actor") or {}
    line = f"{event_time(doc['timeNano'])} {doc.get('Type', '')} {doc.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


def _row(doc: dict) -> dict:
    """The template's view: the Go struct's field names (events.Message), docker's JSON for json."""
    return {"Status": doc.get("status", ""), "ID": doc.get("id", ""), "From": doc.get("from", ""),
            "Type": doc.get("Type", ""), "Action": doc.get("Action", ""), "Actor": doc.get("Actor") or {},
            "Scope": doc.get("scope", ""), "Time": doc.get("time", 0), "TimeNano": doc.get("timeNano", 0),
            "_json": doc}


def cmd_events(args) -> int:
    from node.cli import gotemplate
    from node.cli.listing import parse_filters
    from node.engine import events
    now = time.time_ns()
    since, until = parse_time(args.since, now), parse_time(args.until, now)
    wanted = parse_filters(args.filter, events.FILTER_KEYS)
    template = "{{json .}}" if args.format == "json" else args.format

    def show(doc: dict) -> None:
        if not events.matches(doc, wanted):
            return
        if template:
            try:
                text = gotemplate.render(template, _row(doc))
            except gotemplate.TemplateError as e:
                raise CliError(str(e), 125) from None
        else:
            text = event_line(doc)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    follower = events.Follower(args.root)  # first: nothing written during the replay is missed
    replayed = set()
    try:
        if since is not None:
            for doc in events.history(args.root):
                if doc["timeNano"] >= since and (until is None or doc["timeNano"] <= until):
                    show(doc)
                    replayed.add(_key(doc))
        while until is None or time.time_ns() < until:
            for doc in follower.poll():
                if until is not None and doc["timeNano"] > until:
                    return 0
                if _key(doc) not in replayed:
                    show(doc)
            time.sleep(0.1)
    finally:
        follower.close()
    return 0


def _key(doc: dict) -> tuple:
    return doc["timeNano"], doc.get("Type"), doc.get("Action"), (doc.get("Actor") or {}).get("ID")
