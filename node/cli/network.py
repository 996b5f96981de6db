"""`dockyard network ...` and `dockyard port`: thin wrappers over node.network."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.cli.common import CliError


def _lazy(handler):
    """Import node.network when a network command runs, not at every
    `dockyard` start-up: `dockyard run --rm IMG true` must stay fast."""
    def run(args):
        global api, networks, ports, NetworkError, Store
        from node.network import api, networks, ports  # noqa: F401
        from node.network.state import NetworkError, Store  # noqa: F401
        return handler(args)
    return run

# --network values that are not bridge networks (the engine handles them without attach()).
PSEUDO_NETWORKS = (("host", "host"), ("none", "null"))


def register(sub: argparse._SubParsersAction) -> None:
    net = sub.add_parser("network", help="manage networks")
    nsub = net.add_subparsers(dest="network_command", metavar="COMMAND")
    net.set_defaults(func=lambda args: _usage(net))

    p = nsub.add_parser("create", help="create a bridge network")
    p.add_argument("--subnet", help="IPv4 subnet in CIDR form (default: a free private range)")
    p.add_argument("--gateway", help="gateway address inside the subnet (default: its first)")
    p.add_argument("-d", "--driver", default="bridge", help="only 'bridge' is supported")
    p.add_argument("name")
    p.set_defaults(func=cmd_create)

    p = nsub.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.set_defaults(func=cmd_ls)

    p = nsub.add_parser("inspect", help="show networks as JSON")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = nsub.add_parser("rm", aliases=["remove"], help="remove networks")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_rm)

    from node.cli.prune import add_network_prune
    add_network_prune(nsub, lambda f: f)

    p = nsub.add_parser("connect", help="connect a running container to a network")
    p.add_argument("--alias", action="append", default=[], help="network-scoped alias")
    p.add_argument("--ip", help="IPv4 address on that network")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_connect)

    p = nsub.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true", help="accepted for docker compatibility")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(func=cmd_disconnect)

    if "port" not in sub.choices:  # the container commands may provide their own
        p = sub.add_parser("port", help="list a container's published ports")
        p.add_argument("container")
        p.add_argument("private_port", nargs="?", help="PORT[/PROTO]")
        p.set_defaults(func=cmd_port)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _store(args) -> Store:
    return Store(Path(args.root))


@_lazy
def cmd_create(args) -> int:
    if args.driver != "bridge":
        raise CliError(f"network driver {args.driver!r} is not supported (only bridge)", 1)
    try:
        net = networks.create(_store(args), args.name, args.subnet, args.gateway)
    except NetworkError as e:
        raise CliError(str(e), 1) from None
    print(net.id)
    return 0


@_lazy
def cmd_ls(args) -> int:
    api.reclaim(Path(args.root))
    rows = [(n.id[:12], n.name, "bridge", n.subnet) for n in _store(args).networks()]
    if not any(row[1] == "bridge" for row in rows):  # made on first use, gone when unused
        rows.insert(0, ("", "bridge", "bridge", ""))
    rows += [("", name, driver, "") for name, driver in PSEUDO_NETWORKS]
    if args.quiet:
        for row in rows:
            print(row[1])
        return 0
    print(f"{'NETWORK ID':<14}{'NAME':<20}{'DRIVER':<10}SUBNET")
    for net_id, name, driver, subnet in rows:
        print(f"{net_id:<14}{name:<20}{driver:<10}{subnet}")
    return 0


@_lazy
def cmd_inspect(args) -> int:
    store, out, missing = _store(args), [], []
    for name in args.names:
        try:
            out.append(networks.inspect(store, networks.find(store, name, create_default=False)))
        except NetworkError:
            missing.append(name)
    print(json.dumps(out, indent=4))
    if missing:
        raise CliError(f"no such network: {', '.join(missing)}", 1)
    return 0


@_lazy
def cmd_rm(args) -> int:
    api.reclaim(Path(args.root))
    failed = []
    for name in args.names:
        try:
            networks.remove(_store(args), name)
            print(name)
        except NetworkError as e:
            failed.append(str(e))
    if failed:
        raise CliError("; ".join(failed), 1)
    return 0


@_lazy
def cmd_connect(args) -> int:
    try:
        api.connect(Path(args.root), args.container, args.network, args.alias, args.ip)
    except NetworkError as e:
        raise CliError(str(e), 1) from None
    return 0


@_lazy
def cmd_disconnect(args) -> int:
    try:
        api.disconnect(Path(args.root), args.container, args.network)
    except NetworkError as e:
        raise CliError(str(e), 1) from None
    return 0


@_lazy
def cmd_port(args) -> int:
    c = api.lookup(Path(args.root), args.container)
    if c is None:
        raise CliError(f"no published ports: container {args.container} is not running on a "
                       "bridge network", 1)
    # docker's `port` reads NetworkSettings.Ports: the kernel's DNAT bindings plus the [::]
    # ones of the userland proxy (node/network/userproxy.py), which the network state lacks.
    published = _published(args.root, c.container_id)
    if args.private_port:
        port, _, proto = args.private_port.partition("/")
        hosts = published.get(f"{port}/{proto or 'tcp'}") or []
        if not hosts:
            raise CliError(f"no public port '{args.private_port}' published for {args.container}", 1)
        for host in hosts:
            print(host)
        return 0
    for key, hosts in published.items():
        for host in hosts:
            print(f"{key} -> {host}")
    return 0


def _published(root: str, container_id: str) -> dict[str, list[str]]:
    """{"80/tcp": ["0.0.0.0:8080", "[::]:8080"]} from the container's inspect document."""
    from node.engine.inspect import inspect_container
    from node.engine.records import find
    ports = (inspect_container(find(root, container_id)).get("NetworkSettings") or {}).get("Ports") or {}
    out: dict[str, list[str]] = {}
    for key, bindings in ports.items():
        for b in bindings or []:
            ip = b.get("HostIp") or "0.0.0.0"
            out.setdefault(key, []).append(f"{f'[{ip}]' if ':' in ip else ip}:{b.get('HostPort')}")
    return out
