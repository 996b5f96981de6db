"""`cp`, `diff` and `export`: files between the host and a container, as docker does them.

cp follows docker's rules for the destination: an existing directory receives the source under
its own name (``SRC/.`` copies the contents instead); a path that does not exist becomes the
copy (its parent must exist; a trailing ``/`` demands a directory); an existing file is
overwritten by a file and refuses a directory. ``-`` streams a tar on stdin/stdout. Owners become
root in the container and the caller on the host, unless ``-a`` keeps those of the source.
Symlinks are copied as symlinks; ``-L`` follows one given as the source.
"""
from __future__ import annotations

import os
import posixpath
import sys
import tarfile
import threading

from node.cli.common import CliError


def register(sub) -> None:
    from node.cli.containers import _engine_errors
    p = sub.add_parser("cp", help="copy files between a container and the host")
    p.add_argument("-a", "--archive", action="store_true", help="keep the source's uid/gid")
    p.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink given as SRC")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("src", metavar="SRC", help="CONTAINER:PATH, a host path, or - (a tar on stdin)")
    p.add_argument("dest", metavar="DEST", help="CONTAINER:PATH, a host path, or - (a tar on stdout)")
    p.set_defaults(func=_engine_errors(cmd_cp))
    p = sub.add_parser("diff", help="show files changed in a container's filesystem")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=_engine_errors(cmd_diff))
    p = sub.add_parser("export", help="write a container's filesystem as a tar")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=_engine_errors(cmd_export))


def _split(arg: str) -> tuple[str | None, str]:
    """("web", "/etc") for "web:/etc"; (None, path) for a host path (docker: a path that starts
    with / or . is local even with a colon in it)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    name, sep, path = arg.partition(":")
    if not sep or "/" in name:
        return None, arg
    return name, path or "/"


def _size(n: int) -> str:
    from node.cli.images import _human_size
    return _human_size(n)


def _pump(produce, consume):
    """Run ``produce(writer)`` in a thread and ``consume(reader)`` here, through a pipe."""
    r, w = os.pipe()
    errors: list[BaseException] = []

    def run() -> None:
        with os.fdopen(w, "wb") as out:
            try:
                produce(out)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    with os.fdopen(r, "rb") as src:
        try:
            result = consume(src)
        finally:
            src.read()  # let the producer finish its write, whatever happened here
            t.join()
    if errors:
        raise errors[0]
    return result


def _placement(src_name: str, src_is_dir: bool, contents_only: bool, dest: str,
               dest_kind: str | None) -> tuple[str, str]:
    """(directory to extract into, name of the top entry) per docker's rules; ``dest_kind`` is
    "dir", "file" or None (missing)."""
    if dest_kind == "dir":
        return dest, "." if contents_only and src_is_dir else src_name
    if dest_kind == "file":
        if src_is_dir:
            raise CliError(f"cannot copy a directory to a file: {dest}", 1)
        return posixpath.dirname(dest.rstrip("/")) or "/", posixpath.basename(dest)
    if dest.endswith("/") and not src_is_dir:
        raise CliError(f"no such directory: {dest}", 1)
    parent, name = posixpath.split(dest.rstrip("/"))
    return parent or ("/" if dest.startswith("/") else "."), name


def _host_kind(path: str) -> str | None:
    if os.path.isdir(path):
        return "dir"
    return "file" if os.path.lexists(path) else None


def cmd_cp(args) -> int:
    from node.engine import copy
    from node.engine.records import find
    (s_name, s_path), (d_name, d_path) = _split(args.src), _split(args.dest)
    if s_name and d_name:
        raise CliError("copying between containers is not supported", 1)
    if not s_name and not d_name:
        raise CliError("must specify at least one container source", 1)
    if s_name:
        container = find(args.root, s_name)
        if d_path == "-":
            copy.archive_from(container, s_path, sys.stdout.buffer, follow=args.follow_link)
            return 0
        with copy.root_fd(container) as fd:
            info = copy.path_stat(fd, s_path, follow=args.follow_link)
        contents_only = s_path.endswith("/.") or s_path == "."
        target_dir, top = _placement(info["name"], info["isDir"], contents_only, d_path, _host_kind(d_path))
        if not os.path.isdir(target_dir):
            raise CliError(f"no such directory: {target_dir}", 1)
        dest_fd = os.open(target_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        from node import tarstream
        try:
            written = _pump(lambda out: copy.archive_from(container, s_path, out, args.follow_link, top),
                            lambda src: tarstream.extract(src, dest_fd, args.archive, (os.getuid(), os.getgid())))
        except tarstream.ArchiveError as e:
            raise CliError(str(e), 1) from None
        finally:
            os.close(dest_fd)
        if not args.quiet:
            print(f"Successfully copied {_size(written)} to {args.dest}", file=sys.stderr)
        return 0
    container = find(args.root, d_name)
    if s_path == "-":
        copy.archive_into(container, d_path, sys.stdin.buffer, keep_owner=args.archive)
        return 0
    src = os.path.realpath(s_path) if args.follow_link else os.path.abspath(s_path)
    if not os.path.lexists(src):
        raise CliError(f"no such file or directory: {s_path}", 1)
    with copy.root_fd(container) as fd:
        try:
            kind = "dir" if copy.path_stat(fd, d_path, follow=True)["isDir"] else "file"
        except Exception:  # noqa: BLE001 - EngineError: not there
            kind = None
    src_is_dir = os.path.isdir(src) and not os.path.islink(src)
    contents_only = s_path.endswith("/.") or s_path == "."
    target_dir, top = _placement(os.path.basename(src), src_is_dir, contents_only, d_path, kind)
    parent_fd = os.open(os.path.dirname(src) or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    from node import tarstream

    def produce(out) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tarstream.write_tree(tar, parent_fd, os.path.basename(src), top)
    try:
        written = _pump(produce, lambda r: copy.archive_into(container, target_dir, r, keep_owner=args.archive))
    finally:
        os.close(parent_fd)
    if not args.quiet:
        print(f"Successfully copied {_size(written)} to {args.dest}", file=sys.stderr)
    return 0


def cmd_diff(args) -> int:
    from node.engine.changes import container_changes
    from node.engine.records import find
    for kind, path in container_changes(find(args.root, args.container)):
        print(f"{kind} {path}")
    return 0


def cmd_export(args) -> int:
    from node.engine import copy
    from node.engine.records import find
    container = find(args.root, args.container)
    if args.output:
        with open(args.output, "wb") as out:
            copy.archive_from(container, "/", out, arcname=".")
        return 0
    if sys.stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    copy.archive_from(container, "/", sys.stdout.buffer, arcname=".")
    return 0
