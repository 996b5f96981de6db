"""`dockyard build` and `dockyard builder prune`: docker's flags and meanings, over node.build.

Progress goes to stderr (BuildKit's plain or compact style); with -q only the image ID is
printed, on stdout. A failed build prints the failing step's last output lines, then one
``Error: Dockerfile:LINE: ...`` line, and exits 1; no tag moves.
"""
from __future__ import annotations

import os
import sys

from node.cli.common import CliError


def _key_value(text: str, what: str, env_fallback: bool = False) -> tuple[str, str | None]:
    key, sep, value = text.partition("=")
    if not key:
        raise CliError(f"invalid {what}: {text!r} (expected KEY=VALUE)")
    if not sep:
        if env_fallback:  # docker: --build-arg NAME takes the value from the environment
            return key, os.environ.get(key)
        raise CliError(f"invalid {what}: {text!r} (expected KEY=VALUE)")
    return key, value


def register(sub) -> None:
    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], help="name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", help="name of the Dockerfile (default: CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="set a build-time variable")
    p.add_argument("--target", help="the build stage to build")
    p.add_argument("--no-cache", action="store_true", help="do not use the cache")
    p.add_argument("--pull", action="store_true", help="always pull the FROM images")
    p.add_argument("--network", default="bridge", choices=("none", "host", "bridge", "default"),
                   help="network mode of RUN steps (default bridge)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="set image labels")
    p.add_argument("--iidfile", help="write the image ID to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("--progress", default="auto", choices=("auto", "plain", "quiet", "tty"),
                   help="progress output (auto, plain, quiet)")
    p.add_argument("--platform", help="os/arch of the image (this machine's only)")
    p.add_argument("context", metavar="CONTEXT_DIR")
    p.set_defaults(func=cmd_build)

    group = sub.add_parser("builder", help="manage the build cache")
    gsub = group.add_subparsers(dest="builder_command", metavar="COMMAND")
    prune = gsub.add_parser("prune", help="remove the build cache")
    prune.add_argument("-a", "--all", action="store_true", help="remove all cache (the default here)")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    prune.set_defaults(func=cmd_prune)
    du = gsub.add_parser("du", help="show the build cache's disk usage")
    du.set_defaults(func=cmd_du)
    group.set_defaults(func=lambda args: (group.print_help(sys.stderr), 2)[1])


def _epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise CliError(f"invalid SOURCE_DATE_EPOCH {value!r}: expected seconds since 1970") from None


def _check_platform(text: str | None) -> None:
    if not text:
        return
    from node.build.executor import host_platform as default_platform
    from oci.manifest import Platform
    try:
        want = Platform.parse(text)
    except ValueError as e:
        raise CliError(str(e)) from None
    here = default_platform()
    if (want.os, want.architecture) != (here.os, here.architecture):
        raise CliError(f"--platform {text}: this node builds for {here} only (no emulation)")


def cmd_build(args) -> int:
    from node.build.dockerfile import DockerfileError
    from node.build.executor import BuildError, BuildOptions, Builder
    from node.build.progress import for_mode
    from node.images.errors import ImageError
    from oci.reference import InvalidReference, Reference

    _check_platform(args.platform)
    tags = []
    for tag in args.tag:
        try:
            ref = Reference.parse(tag)
        except InvalidReference as e:
            raise CliError(f"invalid tag {tag!r}: {e}") from None
        if ref.digest is not None:
            raise CliError(f"invalid tag {tag!r}: a tag cannot carry a digest")
        tags.append(ref.familiar())
    build_args = {}
    for item in args.build_arg:
        key, value = _key_value(item, "--build-arg", env_fallback=True)
        if value is not None:
            build_args[key] = value
    labels = dict(_key_value(item, "--label") for item in args.label)
    opts = BuildOptions(context=args.context, dockerfile=args.file, tags=tags, build_args=build_args,
                        target=args.target, no_cache=args.no_cache, pull=args.pull,
                        network="bridge" if args.network == "default" else args.network, labels=labels,
                        platform=args.platform, epoch=_epoch())
    progress = for_mode("tty" if args.progress == "tty" else args.progress, args.quiet)
    builder = Builder(args.root, opts, progress)
    try:
        image = builder.build()
    except DockerfileError as e:
        raise CliError(str(e), 1) from None
    except BuildError as e:
        if e.tail:
            print("------", file=sys.stderr)
            for line in e.tail:
                print(f" > {line}", file=sys.stderr)
            print("------", file=sys.stderr)
        raise CliError(str(e), 1) from None
    except ImageError as e:
        raise CliError(str(e), 1) from None
    finally:
        progress.close()
    unused = builder.unused_args()
    if unused and not args.quiet:
        print(f"[Warning] One or more build-args {unused} were not consumed", file=sys.stderr)
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(image.id)
    if args.quiet:
        print(image.id)
    return 0


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}GB"


def cmd_prune(args) -> int:
    import shutil
    from pathlib import Path

    from node.build.cache import BuildCache
    from node.images.store import ImageStore

    if not args.force and sys.stdin.isatty():
        answer = input("WARNING! This will remove all build cache. Are you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    store = ImageStore(args.root)
    freed = BuildCache(args.root).prune(store)
    mounts = Path(args.root) / "build" / "cache-mounts"
    if mounts.is_dir():
        for dirpath, _dirs, files in os.walk(mounts):
            for name in files:
                try:
                    freed += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        shutil.rmtree(mounts, ignore_errors=True)
    print(f"Total:\t{_size(freed)}")
    return 0


def cmd_du(args) -> int:
    from node.build.cache import BuildCache
    count, size = BuildCache(args.root).usage()
    print(f"Reclaimable:\t{_size(size)}\nTotal:\t{_size(size)}\nRecords:\t{count}")
    return 0
