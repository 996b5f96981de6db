"""`dockyard engine`: serve the Docker Engine API on a unix socket, in the foreground (node/api)."""
from __future__ import annotations

from node.cli.common import CliError


def register(sub) -> None:
    p = sub.add_parser("engine", help="serve the Docker Engine API on a unix socket (foreground)")
    p.add_argument("-H", "--host", default=None, metavar="unix:///PATH",
                   help="where to listen (default unix:///run/dockyard/docker.sock)")
    p.add_argument("--group", default="dockyard", help="group that may use the socket (default dockyard)")
    p.set_defaults(func=cmd_engine)


def cmd_engine(args) -> int:
    from node.api.server import DEFAULT_SOCKET, serve
    try:
        return serve(args.root, args.host or DEFAULT_SOCKET, args.group)
    except (OSError, ValueError) as e:
        raise CliError(str(e), 1) from None
