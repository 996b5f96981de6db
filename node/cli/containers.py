"""Container commands: run, create, start, stop, kill, restart, pause, unpause, rm, ps, logs, exec,
inspect, wait, container prune, volume create|ls|rm|inspect.

Volume commands live in node.cli.volumes, registered from here. `inspect` is registered here
only: it looks for a container first, then for an image through node.images (imported lazily),
so the images group registers `image inspect` and nothing clashes.
Engine modules are imported inside handlers: `run --rm IMG true` must not pay for the others.
"""
from __future__ import annotations

import sys

from node.cli.common import CliError, engine_errors


_engine_errors = engine_errors  # the name the command groups used before


def _requested_command(argv: list[str]) -> str | None:
    """The command this process was started for, if it is plainly one of ours: run/create have
    ~30 options each, and building parsers nobody uses costs `run` milliseconds."""
    it = iter(argv)
    for token in it:
        if token == "--root":
            next(it, None)
        elif not token.startswith("-"):
            return token if token in ("run", "create") else None
    return None


def register(sub) -> None:
    def add(name, func, help_text, **kw):
        p = sub.add_parser(name, help=help_text, add_help=kw.pop("add_help", True), **kw)
        p.set_defaults(func=_engine_errors(func))
        return p

    wanted = _requested_command(sys.argv[1:])
    for name, func, text in (("run", cmd_run, "create and run a container"),
                             ("create", cmd_create, "create a container without starting it")):
        p = add(name, func, text, add_help=False)
        p.add_argument("--help", action="help")
        if wanted in (None, name):
            from node.cli.runflags import add_run_options
            add_run_options(p)
    _ps_args(add("ps", cmd_ps, "list containers"))
    for name, func, text in (("start", cmd_start, "start stopped containers"),
                             ("pause", cmd_pause, "freeze containers"),
                             ("unpause", cmd_unpause, "thaw containers"),
                             ("wait", cmd_wait, "wait for containers to stop, print exit codes")):
        p = add(name, func, text)
        p.add_argument("containers", nargs="+")
    for name, func, text in (("stop", cmd_stop, "stop containers (SIGTERM, then SIGKILL)"),
                             ("restart", cmd_restart, "restart containers")):
        p = add(name, func, text)
        p.add_argument("-t", "--time", "--timeout", type=float, default=None, dest="timeout")
        p.add_argument("containers", nargs="+")
    p = add("kill", cmd_kill, "send a signal to containers")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")
    p = add("rm", cmd_rm, "remove containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("containers", nargs="+")
    p = add("logs", cmd_logs, "show a container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("container")
    p = add("exec", cmd_exec, "run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("container")
    import argparse  # here: `ps` runs without argparse (node/cli/quickargs.py)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = add("inspect", cmd_inspect, "show containers (or images) as JSON")
    p.add_argument("-f", "--format", help="a Go template, as docker's: {{.State.Status}}, {{json .Config}}, {{index .Config.Labels \"k\"}}")
    p.add_argument("targets", nargs="+")

    group = sub.add_parser("container", help="manage containers")
    gsub = group.add_subparsers(dest="container_command", metavar="COMMAND")
    from node.cli.prune import add_container_prune
    add_container_prune(gsub, _engine_errors)
    _ps_args(gsub.add_parser("ls", help="list containers"))

    from node.cli import volumes
    volumes.register(sub, _engine_errors)
    from node.cli import attachflags
    attachflags.register(sub, add)


def _ps_args(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: only running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate IDs, commands and mounts")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="NAME=VALUE",
                   help="id, name, label, status, ancestor, exited, network, volume")
    p.add_argument("--format", default="", metavar="FORMAT", help="table, json, or a Go template")
    p.add_argument("-n", "--last", type=int, default=-1, metavar="N", help="show the N last created containers")
    p.add_argument("-l", "--latest", action="store_true", help="show the latest created container")
    p.set_defaults(func=ps_handler)


def _image(args):
    from node.images.store import ImageNotFound, ImageStore
    try:
        return ImageStore(args.root).get(args.image)
    except ImageNotFound:
        pass
    from node.images.pull import pull_image
    print(f"Unable to find image '{args.image}' locally", file=sys.stderr)
    try:
        return pull_image(args.root, args.image, platform=getattr(args, "platform", None), quiet=False)
    except Exception as e:  # noqa: BLE001 - the pull's own errors, in one line
        raise CliError(str(e), 125) from None


def _options(args):
    from node.cli.runflags import run_options
    return run_options(args)


def cmd_create(args) -> int:
    from node.engine.create import create_container
    container = create_container(args.root, _options(args), _image(args))
    print(container.id)
    return 0


def _need_terminal(args) -> None:
    """docker's check: -it needs a terminal on stdin (a pipe cannot be put in raw mode)."""
    if args.interactive and args.tty and not getattr(args, "detach", False) and not sys.stdin.isatty():
        raise CliError("the input device is not a TTY", 1)


def cmd_run(args) -> int:
    _need_terminal(args)
    from node.engine.start import warm_up
    warm_up()
    from node.engine.create import create_container
    opts = _options(args)
    container = create_container(args.root, opts, _image(args))
    if opts.detach:
        from node.engine.start import spawn_monitor
        try:
            spawn_monitor(args.root, container)
        except Exception:
            if opts.remove:
                _quiet_remove(args.root, container)
            raise
        print(container.id)
        return 0
    if opts.interactive or getattr(args, "sig_proxy", "true") != "true":
        # under a detached monitor, so that the detach keys (or Ctrl-C without --sig-proxy) can leave it running
        from node.cli.attach import run_interactive
        return run_interactive(args, container)
    from node.engine.start import run_attached
    return run_attached(args.root, container)


def _quiet_remove(root, container) -> None:
    from node.engine.remove import remove_container
    try:
        remove_container(root, container, force=True, volumes=True)
    except Exception:  # noqa: BLE001
        pass


def _each(args, names, action) -> int:
    from node.engine import EngineError
    from node.engine.records import find
    code = 0
    for ref in names:
        try:
            action(find(args.root, ref))
            print(ref)
        except EngineError as e:
            print(f"Error: {e}", file=sys.stderr)
            code = 1
    return code


def cmd_start(args) -> int:
    from node.engine.start import start_container
    return _each(args, args.containers, lambda c: start_container(args.root, c))


def cmd_stop(args) -> int:
    from node.engine.stop import stop_container
    return _each(args, args.containers, lambda c: stop_container(c, args.timeout))


def cmd_restart(args) -> int:
    from node.engine.restart import restart_container
    return _each(args, args.containers, lambda c: restart_container(args.root, c, args.timeout))


def cmd_kill(args) -> int:
    from node.engine.kill import kill_container, parse_signal
    sig = parse_signal(args.signal)
    return _each(args, args.containers, lambda c: kill_container(c, sig))


def cmd_pause(args) -> int:
    from node.engine.pause import pause_container
    return _each(args, args.containers, pause_container)


def cmd_unpause(args) -> int:
    from node.engine.pause import unpause_container
    return _each(args, args.containers, unpause_container)


def cmd_rm(args) -> int:
    from node.engine.remove import remove_container
    return _each(args, args.containers, lambda c: remove_container(args.root, c, args.force, args.volumes))


def cmd_wait(args) -> int:
    from node.engine import EngineError
    from node.engine.records import find
    from node.engine.wait import wait_container
    code = 0
    for ref in args.containers:
        try:
            print(wait_container(find(args.root, ref)), flush=True)
        except EngineError as e:
            print(f"Error: {e}", file=sys.stderr)
            code = 1
    return code


def cmd_ps(args) -> int:
    from node.cli import gotemplate, listing
    from node.engine.inspect import list_documents
    filters = listing.parse_filters(args.filter, listing.PS_FILTERS)
    docs = list_documents(args.root)
    last = 1 if args.latest else args.last
    if last >= 0:
        docs = docs[:last]
    elif not args.all and not ({"status", "exited"} & filters.keys()):
        docs = [d for d in docs if (d.get("State") or {}).get("Status") in ("running", "paused", "restarting")]
    sizes: dict[str, int] | None = None

    def image_size(image_id: str) -> int | None:
        nonlocal sizes
        if sizes is None:  # read the image records once, and only if a row asks (--format .Size)
            from node.images.records import sizes_by_id
            sizes = sizes_by_id(args.root)
        return sizes.get(image_id)
    rows = [listing.ps_row(d, args.no_trunc, image_size) for d in docs]
    if filters:
        keep = listing.ps_filter(filters, lambda ref: _image_ids(args.root, ref))  # checks the values once
        rows = [r for r in rows if keep(r)]
    if args.quiet:
        for r in rows:
            print(r["ID"])
        return 0
    try:
        lines = gotemplate.format_rows(args.format, rows, listing.PS_HEADERS, listing.PS_TABLE)
    except gotemplate.TemplateError as e:
        raise CliError(str(e), 125) from None
    for line in lines:
        print(line.rstrip() if args.format in ("", "table") else line)
    return 0


ps_handler = engine_errors(cmd_ps)  # one object: set_defaults and node/cli/quickargs.py share it


def _image_ids(root, ref: str) -> set[str]:
    """The image IDs an `ancestor=` filter names (unknown: none)."""
    from node.images.store import ImageStore
    try:
        return {ImageStore(root).get(ref).id}
    except Exception:  # noqa: BLE001 - docker lists nothing for an unknown ancestor
        return set()


def cmd_logs(args) -> int:
    from node.engine import logs
    from node.engine.records import find
    from node.engine.status import is_running
    container = find(args.root, args.container)
    tail = None if args.tail == "all" else int(args.tail)
    entries, offset = logs.read_entries(container.log_path, tail)

    def emit(entry):
        text = entry.get("log", "")
        if args.timestamps:
            text = f"{entry.get('time', '')} {text}"
        stream = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
        stream.write(text)
        stream.flush()
    for entry in entries:
        emit(entry)
    if args.follow:
        for entry in logs.follow(container.log_path, offset, lambda: is_running(container)):
            emit(entry)
    return 0


def cmd_exec(args) -> int:
    _need_terminal(args)
    from node.engine.exec_ import exec_in_container
    from node.engine.records import find
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    from node.engine import detachkeys
    from node.engine.exec_ import Detached
    keys = detachkeys.resolve(getattr(args, "detach_keys", None)) if args.interactive and args.tty else None
    try:
        return exec_in_container(find(args.root, args.container), command, args.interactive, args.tty,
                                 args.env, args.workdir, args.user, detach_keys=keys)
    except Detached:
        print("read escape sequence", file=sys.stderr)  # docker exec's words, and its status
        return 1


def cmd_inspect(args) -> int:
    from node.engine import EngineError
    from node.engine.inspect import inspect_container
    from node.engine.records import find
    results, code = [], 0
    for ref in args.targets:
        try:
            results.append(inspect_container(find(args.root, ref)))
            continue
        except EngineError:
            pass
        image = _inspect_image(args.root, ref)
        if image is None:
            print(f"Error: No such object: {ref}", file=sys.stderr)
            code = 1
        else:
            results.append(image)
    if args.format:
        from node.cli.gotemplate import TemplateError, render
        for doc in results:
            try:
                print(render(args.format, doc))
            except TemplateError as e:
                print(f"Error: {e}", file=sys.stderr)
                return 1
    else:
        import json
        print(json.dumps(results, indent=4))
    return code


def _inspect_image(root, ref):
    from node.images.store import ImageStore
    try:
        store = ImageStore(root)
        image = store.get(ref)
    except Exception:  # noqa: BLE001 - not found, in whatever form the store says it
        return None
    for name in ("inspect", "inspect_image"):
        fn = getattr(store, name, None) or getattr(image, name, None)
        if callable(fn):
            try:
                return fn(ref) if fn.__self__ is store else fn()
            except Exception:  # noqa: BLE001
                break
    return {"Id": image.id, "RepoTags": list(getattr(image, "repo_tags", []) or []),
            "Config": image.config.config}


