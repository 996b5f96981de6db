"""Image commands: pull, push, tag, images, rmi, login, logout, save, load, and the `image` group
(image ls|rm|pull|push|tag|inspect|save|load). Top-level `inspect` belongs to the container
commands, which fall back to ``ImageStore.inspect`` for images.

Library modules are imported inside handlers, so `dockyard run` does not pay for aiohttp here.
"""
from __future__ import annotations

import os
import sys

from node.cli.common import CliError
from node.cli.imageinfo import _errors, _human_size, _in_use, _since  # noqa: F401 - shared helpers


def register(sub) -> None:
    group = sub.add_parser("image", help="manage images")
    isub = group.add_subparsers(dest="image_command", metavar="COMMAND")
    for parsers, names in ((sub, {}), (isub, {"images": "ls", "rmi": "rm"})):
        _pull(parsers.add_parser("pull", help="pull an image from a registry"))
        _push(parsers.add_parser("push", help="push an image to a registry"))
        _tag(parsers.add_parser("tag", help="create a tag that refers to an image"))
        _images(parsers.add_parser(names.get("images", "images"), help="list images"))
        _rmi(parsers.add_parser(names.get("rmi", "rmi"), help="remove images"))
        _save(parsers.add_parser("save", help="save images to an archive (OCI layout + docker-archive)"))
        _load(parsers.add_parser("load", help="load images from an archive"))
    from node.cli.imagetools import register_image_group
    register_image_group(isub)
    p = isub.add_parser("inspect", help="show images as JSON")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=_errors(cmd_inspect))
    p = sub.add_parser("login", help="log in to a registry")
    _tls(p)
    p.add_argument("server")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=_errors(cmd_login))
    p = sub.add_parser("logout", help="log out from a registry")
    p.add_argument("server")
    p.set_defaults(func=_errors(cmd_logout))


def _tls(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ca-file", help="CA bundle to trust for HTTPS registries (else $DOCKYARD_CA_FILE)")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="talk plain HTTP to this registry (also $DOCKYARD_INSECURE_REGISTRIES)")


def _apply_tls(args) -> None:
    # The client reads these from the environment; flags only extend it for this process.
    if getattr(args, "ca_file", None):
        os.environ["DOCKYARD_CA_FILE"] = args.ca_file
    if getattr(args, "insecure_registry", None):
        listed = [h for h in os.environ.get("DOCKYARD_INSECURE_REGISTRIES", "").split(",") if h]
        os.environ["DOCKYARD_INSECURE_REGISTRIES"] = ",".join(listed + args.insecure_registry)


def _pull(p: argparse.ArgumentParser) -> None:
    _tls(p)
    p.add_argument("ref")
    p.add_argument("--platform")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_errors(cmd_pull))


def _push(p: argparse.ArgumentParser) -> None:
    _tls(p)
    p.add_argument("ref", metavar="NAME[:TAG]", help="the image to push")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("--compression", choices=("gzip", "zstd"), default="gzip",
                   help="how to compress layers stored uncompressed (default: gzip)")
    p.set_defaults(func=_errors(cmd_push))


def _tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(func=_errors(cmd_tag))


def _images(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true", help="show all images (there are no hidden intermediates)")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate IDs")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="NAME=VALUE",
                   help="dangling=true|false, reference=GLOB, label=K[=V], before=IMAGE, since=IMAGE")
    p.add_argument("--format", default="", metavar="FORMAT", help="table, json, or a Go template")
    p.set_defaults(func=images_handler)


def _rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("refs", nargs="+")
    p.set_defaults(func=_errors(cmd_rmi))


def _save(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="file to write (default: stdout, if it is not a terminal)")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=_errors(cmd_save))


def _load(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", help="archive to read (default: stdin)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_errors(cmd_load))


# -- handlers ------------------------------------------------------------------------------

def cmd_pull(args) -> int:
    from node.images.pull import pull_image
    _apply_tls(args)
    pull_image(args.root, args.ref, platform=args.platform, quiet=args.quiet, out=sys.stdout)
    # The process ends next, through the interpreter's exit (the pull's thread pools leave
    # exit hooks: node/cli/exitnow.py declines), whose last full collection traversed the
    # ~35k objects of aiohttp and asyncio: 30-45 ms, up to 130 ms under load, after the pull
    # was done. Frozen, they are left to the kernel; nothing of the pull is left open to finalize.
    import gc
    gc.freeze()
    return 0


def cmd_push(args) -> int:
    from node.images.push import push_image
    _apply_tls(args)
    push_image(args.root, args.ref, quiet=args.quiet, compression=args.compression)
    return 0


def cmd_tag(args) -> int:
    from node.images.store import ImageStore
    from oci.reference import InvalidReference
    try:
        ImageStore(args.root).tag(args.source, args.target)
    except InvalidReference as e:
        raise CliError(str(e), 1) from None
    return 0


def _rows(images, args):
    """docker's rows: one per tag; an untagged image shows one row per repository it was pulled
    from by digest (TAG <none>), else a single <none> <none> row."""
    from node.cli import listing
    for image in images:
        digests = {}
        for d in image.repo_digests:
            digests.setdefault(familiar_name(d), d.rsplit("@", 1)[1])
        entries = []
        for tag in image.repo_tags:
            repo, _, t = tag.rpartition(":")
            entries.append((repo, t, digests.get(repo, "<none>")))
        if not entries:
            entries = [(repo, "<none>", d) for repo, d in digests.items()] or [("<none>", "<none>", "<none>")]
        for repo, tag, digest in entries:
            if args.repository and not _repository_matches(args.repository, repo, tag):
                continue
            yield listing.image_row(image, repo, tag, digest, args.no_trunc)


_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_HEX = frozenset("0123456789abcdef")


def familiar_name(repo_digest: str) -> str:
    """``Reference.parse(d).familiar().rsplit("@", 1)[0]`` for a record's repo digest
    (``host:port/name@sha256:...``): the familiar name (and tag, if any) left of the digest.

    oci.reference costs `images` ~5 ms to import (re, enum, oci.record's generated classes), so
    the shape store.py writes is checked here by hand: a registry host with a "." or ":" (not
    docker.io's), a lowercase path that oci.reference's NAME_RE accepts, no tag, a sha256 digest.
    Then parsing would succeed and give the text left of "@" unchanged. Anything else (docker.io
    names, tags, odd text) goes to Reference.parse, for its result or its InvalidReference."""
    rest, at, digest = repo_digest.partition("@")
    host, slash, path = rest.partition("/")
    if (at and slash and len(repo_digest) <= 4096 and digest[:7] == "sha256:" and len(digest) == 71
            and _HEX.issuperset(digest[7:]) and ("." in host or ":" in host)
            and host not in ("docker.io", "index.docker.io") and _registry_host(host)
            and len(path) <= 255 and all(_name_component(c) for c in path.split("/"))):
        return rest
    from oci.reference import Reference
    return Reference.parse(repo_digest).familiar().rsplit("@", 1)[0]


def _registry_host(host: str) -> bool:
    """oci.reference's DOMAIN_RE for ``name(.name)*(:port)?`` (the bracketed IPv6 form: no)."""
    name, colon, port = host.partition(":")
    if colon and not (port and port.isascii() and port.isdigit()):
        return False
    return all(label and _HOST_CHARS.issuperset(label) and label[0] != "-" and label[-1] != "-"
               for label in name.split("."))


def _name_component(text: str) -> bool:
    """NAME_COMPONENT: ``[a-z0-9]+`` runs joined by ".", "_", "__" or a run of "-"."""
    if not text or text[0] not in _LOWER_ALNUM or text[-1] not in _LOWER_ALNUM:
        return False
    i, n = 0, len(text)
    while i < n:
        if text[i] in _LOWER_ALNUM:
            i += 1
            continue
        j = i
        while j < n and text[j] not in _LOWER_ALNUM:
            j += 1
        sep = text[i:j]
        if sep not in (".", "_", "__") and sep.strip("-"):
            return False
        i = j
    return True


def _repository_matches(wanted: str, repo: str, tag: str) -> bool:
    name, sep, want_tag = wanted.rpartition(":") if ":" in wanted.rsplit("/", 1)[-1] else (wanted, "", "")
    return repo == name and (not sep or tag == want_tag)


def cmd_images(args) -> int:
    from node.cli import gotemplate, listing
    from node.images.records import list_summaries
    filters = listing.parse_filters(args.filter, listing.IMAGES_FILTERS)
    rows = list(_rows(list_summaries(args.root), args))  # the records file only (node/images/records.py)
    if filters:
        from node.images.store import ImageStore
        store = ImageStore(args.root)
        keep = listing.images_filter(filters, lambda ref: _find_image(store, ref))
        rows = [r for r in rows if keep(r)]
    if args.quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        print("\n".join(seen)) if seen else None
        return 0
    table = listing.IMAGES_TABLE_DIGESTS if args.digests else listing.IMAGES_TABLE
    try:
        lines = gotemplate.format_rows(args.format, rows, listing.IMAGES_HEADERS, table)
    except gotemplate.TemplateError as e:
        raise CliError(str(e), 125) from None
    for line in lines:
        print(line.rstrip() if args.format in ("", "table") else line)
    return 0


images_handler = _errors(cmd_images)  # one object: set_defaults and node/cli/quickargs.py share it


def _find_image(store, ref: str):
    from node.images.errors import ImageError
    try:
        return store.get(ref)
    except ImageError:
        raise CliError(f"no such image: {ref}", 1) from None


def cmd_rmi(args) -> int:
    from node.images.errors import ImageError
    from node.images.store import ImageStore
    store, code = ImageStore(args.root), 0
    in_use = _in_use(args.root)
    for ref in args.refs:
        try:
            for line in store.remove(ref, force=args.force, in_use=in_use):
                print(line)
        except ImageError as e:
            print(f"Error: {e}", file=sys.stderr)
            code = 1
    return code


def cmd_inspect(args) -> int:
    from node.images.errors import ImageNotFound
    from node.images.store import ImageStore
    store, out, code = ImageStore(args.root), [], 0
    for ref in args.images:
        try:
            out.append(store.inspect(ref))
        except ImageNotFound as e:
            print(f"Error: {e}", file=sys.stderr)
            code = 1
    import json
    print(json.dumps(out, indent=4))
    return code


def cmd_login(args) -> int:
    import asyncio
    import getpass

    from node.images import auth
    from node.images.client import RegistryClient
    username = args.username
    if args.password_stdin:
        if args.password:
            raise CliError("--password and --password-stdin are mutually exclusive", 1)
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = args.password
    if not username:
        if not sys.stdin.isatty():
            raise CliError("cannot prompt for a username: stdin is not a terminal (use -u)", 1)
        username = input("Username: ").strip()
    if not password:
        if not sys.stdin.isatty():
            raise CliError("cannot prompt for a password: stdin is not a terminal (use --password-stdin)", 1)
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise CliError("username and password are required", 1)
    host = _server(args.server)
    creds = auth.Credentials(username, password)
    _apply_tls(args)

    async def verify() -> None:
        # /v2/ answers 401; the client then sends the credentials (Basic) or asks the token
        # server with them (Bearer): either refuses bad ones, and nothing is saved.
        async with RegistryClient(host, credentials=creds) as client:
            await client.ping()
    asyncio.run(verify())
    path = auth.store(host, creds)
    if args.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    print(f"Credentials saved in {path}")
    print("Login Succeeded")
    return 0


def _server(text: str) -> str:
    host = text.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host:
        raise CliError(f"invalid registry {text!r}", 1)
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def cmd_logout(args) -> int:
    from node.images import auth
    host = _server(args.server)
    if auth.erase(host):
        print(f"Removing login credentials for {host}")
    else:
        print(f"Not logged in to {host}")
    return 0


def cmd_save(args) -> int:
    from pathlib import Path

    from node.images.archive import save
    if args.output:
        save(args.root, args.images, Path(args.output))
        return 0
    if sys.stdout.isatty():
        raise CliError("cowardly refusing to write an archive to a terminal: use -o FILE or redirect", 1)
    with _scratch(args.root) as tmp:
        save(args.root, args.images, tmp)
        with open(tmp, "rb") as f:
            import shutil
            shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
    return 0


def cmd_load(args) -> int:
    from pathlib import Path

    from node.images.archive import load
    if args.input:
        lines = load(args.root, Path(args.input))
    else:
        if sys.stdin.isatty():
            raise CliError("no archive: use -i FILE or pipe one on stdin", 1)
        with _scratch(args.root) as tmp:  # the archive is read by name: spool stdin first
            with open(tmp, "wb") as f:
                import shutil
                shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
            lines = load(args.root, tmp)
    if not args.quiet:
        print("\n".join(lines))
    return 0


def _scratch(root):
    """A temp file under the store's ingest dir (same disk as the blobs), removed afterwards."""
    import contextlib
    import tempfile
    from pathlib import Path

    @contextlib.contextmanager
    def scratch():
        d = Path(root) / "images" / "content" / "ingest"
        d.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=d, prefix="archive-")
        os.close(fd)
        try:
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
    return scratch()
