"""The flags of `run` and `create`, and their values as engine.options.RunOptions.

Apart from node/cli/containers.py (the commands) because they are half of what `run` parses and
grow with every docker flag we take on; the parser is built only for the command asked for."""
from __future__ import annotations

# argparse.REMAINDER, spelt out: node/cli/quickrun.py records these options without argparse
REMAINDER = "..."

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, print the id")
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("--rm", action="store_true", dest="remove", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                   help="set an environment variable (KEY alone takes it from this shell)")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE", help="read KEY=VALUE lines")
    p.add_argument("-l", "--label", action="append", default=[], dest="labels", metavar="KEY[=VALUE]",
                   help="set metadata on the container")
    p.add_argument("--label-file", action="append", default=[], dest="label_files", metavar="FILE",
                   help="read labels from a file of KEY=VALUE lines")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    p.add_argument("--entrypoint", metavar="CMD", help="override the image's ENTRYPOINT")
    p.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user name or uid (and group) to run as")
    p.add_argument("-h", "--hostname", metavar="NAME", help="the container's host name")
    p.add_argument("-v", "--volume", action="append", default=[], dest="volumes", metavar="SRC:DEST[:ro]",
                   help="bind a host path or a named volume")
    p.add_argument("--mount", action="append", default=[], dest="mounts",
                   metavar="type=bind|volume|tmpfs,target=PATH[,...]",
                   help="attach a filesystem mount (source, target, readonly, bind-propagation, "
                        "volume-opt, tmpfs-size, tmpfs-mode)")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="mount a tmpfs")
    p.add_argument("--device", action="append", default=[], dest="devices", metavar="HOST[:CONTAINER[:PERMS]]",
                   help="add a host device to the container (PERMS: some of rwm)")
    p.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 64m, 1g)")
    p.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 0.5)")
    p.add_argument("--pids-limit", type=int, metavar="N", help="most processes at once (-1: unlimited)")
    p.add_argument("--restart", default="no", metavar="POLICY",
                   help="no, on-failure[:N], always or unless-stopped")
    p.add_argument("--init", action="store_true",
                   help="run an init (tini) as PID 1 that forwards signals and reaps zombies")
    p.add_argument("--network", "--net", metavar="NET", help="bridge (default), none, host or a network's name")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CONTAINER[/PROTO]",
                   help="publish a container port on the host")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port on a free port")
    p.add_argument("--network-alias", action="append", default=[], metavar="NAME",
                   help="another name for the container on its user network")
    p.add_argument("--ip", metavar="ADDRESS", help="the container's IPv4 address on its network")
    p.add_argument("--runtime", default="builtin", choices=["builtin", "runc", "crun"],
                   help="the OCI runtime (default: builtin)")
    p.add_argument("--security-opt", action="append", default=[], help="seccomp=unconfined")
    p.add_argument("--userns", default=None, help="host (default) or private: container root is an unprivileged host uid")
    p.add_argument("--add-host", action="append", default=[], dest="add_hosts", metavar="NAME:IP",
                   help="add a line to the container's /etc/hosts (IP host-gateway: the bridge's gateway)")
    p.add_argument("--dns", action="append", default=[], metavar="IP", help="a nameserver for /etc/resolv.conf")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN",
                   help="a search domain for /etc/resolv.conf ('.': none)")
    p.add_argument("--dns-option", "--dns-opt", action="append", default=[], dest="dns_options", metavar="OPTION",
                   help="an options entry for /etc/resolv.conf (e.g. ndots:2)")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="grant a capability (or ALL)")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP", help="take a capability away (or ALL)")
    p.add_argument("--privileged", action="store_true",
                   help="every capability, no seccomp, no masked or read-only paths, all devices")
    p.add_argument("--stop-signal", metavar="SIGNAL", help="the signal `stop` sends first (default SIGTERM)")
    p.add_argument("--stop-timeout", type=int, metavar="SECONDS",
                   help="seconds `stop` waits before SIGKILL (default 10; -1: for ever)")
    p.add_argument("--ulimit", action="append", default=[], dest="ulimits", metavar="NAME=SOFT[:HARD]",
                   help="a resource limit (e.g. nofile=1024:2048; -1: unlimited)")
    p.add_argument("--shm-size", metavar="BYTES", help="size of /dev/shm (default 64m)")
    p.add_argument("--group-add", action="append", default=[], metavar="GROUP",
                   help="another group for the process (a name from the image's /etc/group, or a gid)")
    p.add_argument("--sysctl", action="append", default=[], dest="sysctls", metavar="KEY=VALUE",
                   help="a namespaced kernel parameter (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)")
    p.add_argument("--health-cmd", metavar="CMD", help="command (run by /bin/sh -c) that tells the container is healthy")
    p.add_argument("--health-interval", metavar="DURATION", help="time between checks (e.g. 30s, 1m30s; default 30s)")
    p.add_argument("--health-timeout", metavar="DURATION", help="longest a check may run (default 30s)")
    p.add_argument("--health-retries", type=int, metavar="N", help="failures in a row that make it unhealthy (default 3)")
    p.add_argument("--health-start-period", metavar="DURATION",
                   help="time to start before failures count (default 0s)")
    p.add_argument("--health-start-interval", metavar="DURATION", help="time between checks in the start period")
    p.add_argument("--no-healthcheck", action="store_true", help="disable the image's HEALTHCHECK")
    p.add_argument("--platform", metavar="OS/ARCH", help="platform to pull if the image is missing")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND [ARG...]")


def run_options(args):
    from node.engine.options import RunOptions
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    return RunOptions(
        image=args.image, command=command, name=args.name, detach=args.detach, remove=args.remove,
        interactive=args.interactive, tty=args.tty, env=args.env, env_files=args.env_file,
        workdir=args.workdir, entrypoint=args.entrypoint, user=args.user, hostname=args.hostname,
        volumes=args.volumes, read_only=args.read_only, tmpfs=args.tmpfs, memory=args.memory,
        cpus=args.cpus, pids_limit=args.pids_limit, restart=args.restart, init=args.init,
        network=args.network, publish=args.publish, publish_all=args.publish_all,
        network_aliases=args.network_alias, ip=args.ip, runtime=args.runtime, security_opt=args.security_opt,
        userns=args.userns, labels=args.labels, label_files=args.label_files, add_hosts=args.add_hosts,
        dns=args.dns, dns_search=args.dns_search, cap_add=args.cap_add, cap_drop=args.cap_drop,
        privileged=args.privileged, stop_signal=args.stop_signal, stop_timeout=args.stop_timeout,
        ulimits=args.ulimits, shm_size=args.shm_size, group_add=args.group_add, sysctls=args.sysctls,
        mounts=args.mounts, devices=args.devices, dns_options=args.dns_options,
        health_cmd=args.health_cmd, health_interval=args.health_interval, health_timeout=args.health_timeout,
        health_retries=args.health_retries, health_start_period=args.health_start_period,
        health_start_interval=args.health_start_interval, no_healthcheck=args.no_healthcheck)
