"""`version`, `info` and `completion`: what the node is, and shell completion for bash and zsh.

Dockyard has no daemon: `version` and `info` describe this command line and the node state under
``--root`` (what docker's Server section describes). `completion bash|zsh` prints a script built
from the command line's own parser, so every command and flag is in it; container and image names
are completed by asking `dockyard ps`/`images` at completion time.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess

from node import __version__, hostinfo
from node.cli.common import CliError


def register(sub) -> None:
    p = sub.add_parser("version", help="show the version of dockyard and its runtimes")
    p.add_argument("-f", "--format", default="", help="a Go template, or json")
    p.set_defaults(func=cmd_version)
    p = sub.add_parser("info", help="show system-wide information")
    p.add_argument("-f", "--format", default="", help="a Go template, or json")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(func=cmd_completion)


def _runtime_version(binary: str) -> str:
    if shutil.which(binary) is None:
        return ""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    first = out.splitlines()[0] if out else ""
    return first.split()[-1] if first else ""


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _render(spec: str, doc: dict) -> str:
    from node.cli import gotemplate
    if spec == "json":
        spec = "{{json .}}"
    try:
        return gotemplate.render(spec, doc)
    except gotemplate.TemplateError as e:
        raise CliError(str(e), 125) from None


def version_doc(root: str) -> dict:
    runtimes = {"builtin": __version__}
    for name in ("runc", "crun"):
        if v := _runtime_version(name):
            runtimes[name] = v
    return {
        "Client": {"Version": __version__, "PythonVersion": platform.python_version(),
                   "Os": "linux", "Arch": _arch()},
        "Server": {"Root": str(root), "KernelVersion": platform.release(), "Runtimes": runtimes,
                   "DefaultRuntime": "builtin"},
    }


def cmd_version(args) -> int:
    doc = version_doc(args.root)
    if args.format:
        print(_render(args.format, doc))
        return 0
    c, s = doc["Client"], doc["Server"]
    print("Client: Dockyard")
    print(f" Version:           {c['Version']}")
    print(f" Python version:    {c['PythonVersion']}")
    print(f" OS/Arch:           {c['Os']}/{c['Arch']}")
    print()
    print("Server: Dockyard node (no daemon: state under --root)")
    print(f" Root:              {s['Root']}")
    print(f" Kernel version:    {s['KernelVersion']}")
    for name, v in s["Runtimes"].items():
        print(f" {name + ':':<18} {v}")
    return 0


def info_doc(root: str) -> dict:
    from node.engine.inspect import inspect_container
    from node.engine.records import list_containers
    from node.images.store import ImageStore
    from node.runtime.cgroups import is_v2
    states = [(inspect_container(c).get("State") or {}).get("Status") for c in list_containers(root)]
    running, paused = states.count("running"), states.count("paused")
    runtimes = ["builtin"] + [r for r in ("runc", "crun") if shutil.which(r)]
    return {
        "Containers": len(states), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": len(ImageStore(root).list()), "Driver": "overlay", "DockerRootDir": str(root),
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if is_v2() else "1",
        "Runtimes": runtimes, "DefaultRuntime": "builtin", "KernelVersion": platform.release(),
        "OperatingSystem": hostinfo.os_name(), "OSType": "linux", "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 1, "MemTotal": hostinfo.mem_total(), "Name": platform.node(),
        "ServerVersion": __version__,
    }


def cmd_info(args) -> int:
    doc = info_doc(args.root)
    if args.format:
        print(_render(args.format, doc))
        return 0
    lines = [
        "Client: Dockyard", f" Version:    {__version__}", "",
        "Server:",
        f" Containers: {doc['Containers']}", f"  Running: {doc['ContainersRunning']}",
        f"  Paused: {doc['ContainersPaused']}", f"  Stopped: {doc['ContainersStopped']}",
        f" Images: {doc['Images']}", f" Server Version: {doc['ServerVersion']}",
        f" Storage Driver: {doc['Driver']}", f" Cgroup Driver: {doc['CgroupDriver']}",
        f" Cgroup Version: {doc['CgroupVersion']}", f" Runtimes: {' '.join(doc['Runtimes'])}",
        f" Default Runtime: {doc['DefaultRuntime']}", f" Kernel Version: {doc['KernelVersion']}",
        f" Operating System: {doc['OperatingSystem']}", f" OSType: {doc['OSType']}",
        f" Architecture: {doc['Architecture']}", f" CPUs: {doc['NCPU']}",
        f" Total Memory: {doc['MemTotal'] / (1 << 30):.2f}GiB",
        f" Name: {doc['Name']}", f" Docker Root Dir: {doc['DockerRootDir']}",
    ]
    print("\n".join(lines))
    return 0


# -- completion ---------------------------------------------------------------------------

def _commands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """{"run": ["--name", ...], "image ls": [...]} from the real parser."""
    out: dict[str, list[str]] = {}

    def walk(p: argparse.ArgumentParser, prefix: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    key = f"{prefix} {name}".strip()
                    out[key] = sorted({o for a in child._actions for o in a.option_strings})
                    walk(child, key)
    walk(parser, "")
    return out


_NEEDS_CONTAINER = ("start", "stop", "restart", "kill", "rm", "logs", "exec", "inspect", "wait", "pause",
                    "unpause", "port", "attach", "top", "stats", "cp", "rename", "commit", "diff", "export", "update")
_NEEDS_IMAGE = ("run", "create", "rmi", "push", "tag", "save", "history")


def cmd_completion(args) -> int:
    from node.__main__ import build_parser
    commands = _commands(build_parser())
    top = sorted(c for c in commands if " " not in c)
    if args.shell == "bash":
        print(_bash(commands, top))
    else:
        print("#compdef dockyard\nautoload -U bashcompinit && bashcompinit\n" + _bash(commands, top))
    return 0


def _bash(commands: dict[str, list[str]], top: list[str]) -> str:
    cases = "\n".join(f'        "{name}") opts="{" ".join(flags)}" ;;' for name, flags in sorted(commands.items()))
    groups = sorted({c.split()[0] for c in commands if " " in c})
    subs = "\n".join(f'        {g}) subs="{" ".join(sorted(c.split()[1] for c in commands if c.startswith(g + " ")))}" ;;'
                     for g in groups)
    return f'''# bash completion for dockyard: eval "$(dockyard completion bash)"
_dockyard() {{
    local cur words cmd sub opts subs i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    cmd=""; sub=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            --root) ((i++)) ;;
            -*) ;;
            *) if [ -z "$cmd" ]; then cmd="${{COMP_WORDS[i]}}"; elif [ -z "$sub" ]; then sub="${{COMP_WORDS[i]}}"; fi ;;
        esac
    done
    if [ -z "$cmd" ]; then
        COMPREPLY=($(compgen -W "{" ".join(top)} --root --debug --help --version" -- "$cur")); return
    fi
    subs=""
    case "$cmd" in
{subs}
    esac
    if [ -n "$subs" ] && [ -z "$sub" ] && [[ "$cur" != -* ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur")); return
    fi
    local key="$cmd"; [ -n "$subs" ] && [ -n "$sub" ] && key="$cmd $sub"
    opts=""
    case "$key" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); return; fi
    case "$cmd" in
        {"|".join(_NEEDS_CONTAINER)})
            COMPREPLY=($(compgen -W "$(dockyard ps -a --format '{{{{.Names}}}}' 2>/dev/null)" -- "$cur")) ;;
        {"|".join(_NEEDS_IMAGE)})
            COMPREPLY=($(compgen -W "$(dockyard images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' 2>/dev/null | grep -v '<none>')" -- "$cur")) ;;
    esac
}}
complete -F _dockyard dockyard'''
