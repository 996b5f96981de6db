"""The built-in runtime as a one-shot command, the counterpart of `runc run --bundle DIR ID`:

    python -I -S node/runtime/command.py run [--bundle DIR] ID

creates the container from the OCI bundle DIR (default: the current directory), starts it with
this process's stdin/stdout/stderr, waits for its init, deletes it (cgroup included) and exits
with the init's status (128 + N when signal N killed it, as runc does). The agent does not use
this file: `dockyard run` forks the same runtime in-process (node/engine/runtimes.py).

Why a file run by path with `-I -S` rather than `python -m`: what a command costs before the
container exists is the interpreter and its imports (bench/results/PROFILE.md sections 1 and 11).
`-S` skips site and the editable install's path finder (~16 ms), a path instead of `-m` skips
runpy and importlib.util (~10 ms of CPU), `-I` keeps PYTHON* variables and the script's directory
off sys.path (this directory's module names must not shadow the standard library's). Only the
standard library's C modules beyond os are loaded: no json (node/runtime/specfile.py), no re,
enum or signal.py, no ctypes package (node/runtime/libc.py calls libc through `_ctypes`).
"""
import os
import sys

USAGE = "usage: command.py run [--bundle DIR] ID"


def run(bundle: str, container_id: str) -> int:
    from node.runtime import cgroups, specfile
    spec = specfile.load(os.path.join(bundle, "config.json"))
    path = (spec.get("linux") or {}).get("cgroupsPath")
    cgroup = cgroups.open_cgroup(path) if path else None
    prewarm = cgroup is not None and cgroup.version == 2
    if prewarm:
        # v2 only (on v1 the init joins through `tasks`, with no slow part: cgroups.join_through).
        # The first cgroup join after a quiet spell waits for an RCU grace period (10-15 ms
        # here); a no-op join on a thread starts that wait now and it passes while we import and
        # create, so the container's own join finds it done. A mkdir waits behind it (cgroup
        # lock): the directories are made first.
        try:
            cgroup.make_dirs()
        except OSError:
            pass  # create() below tries again and reports why
        cgroups.prewarm_attach(wait_started=True)
    try:
        from node.runtime.builtin import BuiltinRuntime
        runtime = BuiltinRuntime()
        created = runtime.create(container_id, bundle, (0, 1, 2), spec=spec)
    except BaseException:
        if prewarm:  # create() removes what it made; this is for a failure before it ran
            try:
                cgroup.destroy()
            except OSError:
                pass
        raise
    finally:
        if prewarm:
            cgroups.stop_prewarm()  # the init joined its cgroup (or never will)
    try:
        created.start()
        _, status = os.waitpid(created.pid, 0)
    finally:
        runtime.delete(container_id, bundle, spec=spec)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _parse(argv: list[str]) -> tuple[str, str]:
    if not argv or argv[0] != "run":
        raise ValueError(USAGE)
    bundle, rest = ".", argv[1:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("--bundle", "-b") and rest:
            bundle = rest.pop(0)
        elif option.startswith("--bundle="):
            bundle = option.split("=", 1)[1]
        else:
            raise ValueError(f"unknown option {option}\n{USAGE}")
    if len(rest) != 1:
        raise ValueError(USAGE)
    return os.path.abspath(bundle), rest[0]


def main(argv: list[str]) -> int:
    try:
        bundle, container_id = _parse(argv)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    from node.runtime import RuntimeError_
    try:
        return run(bundle, container_id)
    except RuntimeError_ as e:
        print(f"dockyard runtime: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"dockyard runtime: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # nothing is left that the kernel does not release at exit (the container and its cgroup
    # are gone): skip the interpreter's module teardown, a few ms of a one-shot command
    os._exit(status)
