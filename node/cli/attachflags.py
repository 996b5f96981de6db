"""The `attach` command and the attach flags of run/exec/start, registered without importing
node/cli/attach.py: that module pulls in socket, select and signal (~4 ms), which only an
interactive run, `attach` or `start -a` uses, and every `dockyard run` builds these flags."""
from __future__ import annotations

from node.cli.common import engine_errors


def _cmd_attach(args) -> int:
    from node.cli.attach import cmd_attach
    return cmd_attach(args)


def register(sub, add) -> None:
    """`attach`, and the attach flags of run/start (their parsers are node/cli/containers.py's)."""
    p = add("attach", _cmd_attach, "attach to a running container's input and output")
    p.add_argument("--detach-keys", metavar="KEYS", help="the key sequence that detaches (default ctrl-p,ctrl-q)")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    p.add_argument("--sig-proxy", nargs="?", const="true", default="true", metavar="BOOL",
                   help="pass received signals to the process (default true; no TTY only)")
    p.add_argument("container")
    run = sub.choices.get("run")
    if run is not None:
        run.add_argument("--detach-keys", metavar="KEYS", help="the key sequence that detaches (default ctrl-p,ctrl-q)")
        run.add_argument("--sig-proxy", nargs="?", const="true", default="true", metavar="BOOL",
                         help="pass received signals to the process (default true; no TTY only)")
    exec_ = sub.choices.get("exec")
    if exec_ is not None:
        exec_.add_argument("--detach-keys", metavar="KEYS", help="the key sequence that detaches (-it)")
    start = sub.choices.get("start")
    if start is not None:
        start.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr, forward signals")
        start.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
        start.add_argument("--detach-keys", metavar="KEYS", help="the key sequence that detaches")
        plain = start.get_default("func")

        def start_maybe_attached(args):
            from node.cli.attach import cmd_start
            return cmd_start(args, plain)
        start.set_defaults(func=engine_errors(start_maybe_attached))
