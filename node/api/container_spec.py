"""Docker's container JSON, both ways: a ``POST /containers/create`` body into the engine's run
options, and the engine's record into what ``inspect`` and ``json`` (ps) answer.

The engine's options speak the CLI's language (``-p 8080:80``, ``-v vol:/data:ro``, one
--entrypoint word), so the body is translated into those strings; what the options cannot say
(labels, an entrypoint of several words, extra exposed ports) is merged into the record after
create and read back here.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from node.api.errors import bad_request

AUTO_REMOVE = "ApiAutoRemove"  # the record's key: node/api removes the container, see containers.py
EXTRA_NETWORKS = "ApiExtraNetworks"  # [{Name, Aliases, IP}]: joined right after each API start


def _strings(value, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise bad_request(f"invalid {field}: a string or a list of strings was expected")


def _mode(mode: str) -> str:
    return "ro" if "ro" in mode.split(",") else "rw"


def _volume_specs(host: dict) -> tuple[list[str], list[str]]:
    """Binds and Mounts as ``-v`` specs, Tmpfs and tmpfs Mounts as ``--tmpfs`` specs."""
    volumes, tmpfs = [], []
    for bind in _strings(host.get("Binds"), "HostConfig.Binds"):
        parts = bind.split(":")
        if len(parts) >= 3:
            volumes.append(f"{parts[0]}:{parts[1]}:{_mode(parts[2])}")
        else:
            volumes.append(bind)
    for m in host.get("Mounts") or []:
        if not isinstance(m, dict):
            raise bad_request("invalid HostConfig.Mounts: objects were expected")
        kind, target = (m.get("Type") or "volume"), m.get("Target") or ""
        if not target:
            raise bad_request("invalid mount config: Target is required")
        ro = ":ro" if m.get("ReadOnly") else ""
        if kind == "tmpfs":
            size = (m.get("TmpfsOptions") or {}).get("SizeBytes")
            tmpfs.append(f"{target}:size={size}" if size else target)
        elif kind in ("bind", "volume"):
            source = m.get("Source") or ""
            if kind == "bind" and not source.startswith("/"):
                raise bad_request(f"invalid mount config for type \"bind\": invalid source {source!r}")
            volumes.append(f"{source}:{target}{ro}" if source else target)
        else:
            raise bad_request(f"mount type {kind!r} is not supported")
    for target, opts in (host.get("Tmpfs") or {}).items():
        tmpfs.append(f"{target}:{opts}" if opts else target)
    return volumes, tmpfs


def _publish(host: dict) -> list[str]:
    out = []
    for key, bindings in (host.get("PortBindings") or {}).items():
        port, _, proto = str(key).partition("/")
        for b in bindings or [{}]:
            ip, hp = (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""
            spec = f"{ip}:{hp}:{port}" if ip else (f"{hp}:{port}" if hp else port)
            out.append(f"{spec}/{proto or 'tcp'}")
    return out


def _restart(policy: dict | None) -> str:
    name = (policy or {}).get("Name") or "no"
    count = (policy or {}).get("MaximumRetryCount") or 0
    return f"{name}:{count}" if name == "on-failure" and count else name


def _network(host: dict, body: dict) -> tuple[str, list[str], str | None]:
    mode = host.get("NetworkMode") or "default"
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    if mode == "default":  # the docker CLI's word for the bridge, also as an endpoint key
        named = [k for k in endpoints if k != "default"]
        mode = named[0] if named else "bridge"
    if mode.startswith("container:"):
        raise bad_request("network mode container:<name> is not supported by Dockyard")
    endpoint = endpoints.get(mode) or endpoints.get("default") or {}
    aliases = _strings(endpoint.get("Aliases"), "Aliases")
    ip = ((endpoint.get("IPAMConfig") or {}).get("IPv4Address")) or None
    return mode, aliases, ip


def extra_networks(body: dict, primary: str) -> list[dict]:
    """Endpoints beyond the first (API 1.44 allows several at create): joined after start."""
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    return [{"Name": name, "Aliases": _strings((ep or {}).get("Aliases"), "Aliases"),
             "IP": (((ep or {}).get("IPAMConfig") or {}).get("IPv4Address")) or None}
            for name, ep in endpoints.items() if name not in (primary, "default")]


def _run_flag_options(host: dict, body: dict) -> dict:
    """The HostConfig/Config fields of `run`'s flags, as the CLI's values (node/cli/runflags.py),
    so a docker CLI or compose talking to the engine gets what `dockyard run` gets."""
    out: dict = {
        "add_hosts": _strings(host.get("ExtraHosts"), "ExtraHosts"), "dns": _strings(host.get("Dns"), "Dns"),
        "dns_search": _strings(host.get("DnsSearch"), "DnsSearch"),
        "dns_options": _strings(host.get("DnsOptions"), "DnsOptions"),
        "cap_add": _strings(host.get("CapAdd"), "CapAdd"), "cap_drop": _strings(host.get("CapDrop"), "CapDrop"),
        "privileged": bool(host.get("Privileged")), "group_add": _strings(host.get("GroupAdd"), "GroupAdd"),
        "shm_size": str(host["ShmSize"]) if host.get("ShmSize") else None,
        "sysctls": [f"{k}={v}" for k, v in (host.get("Sysctls") or {}).items()],
    }
    for u in host.get("Ulimits") or []:
        if not isinstance(u, dict):
            raise bad_request("invalid HostConfig.Ulimits: objects were expected")
        out.setdefault("ulimits", []).append(f"{u.get('Name')}={u.get('Soft')}:{u.get('Hard')}")
    for d in host.get("Devices") or []:
        if not isinstance(d, dict):
            raise bad_request("invalid HostConfig.Devices: objects were expected")
        out.setdefault("devices", []).append(":".join(
            [d.get("PathOnHost") or "", d.get("PathInContainer") or d.get("PathOnHost") or "",
             d.get("CgroupPermissions") or "rwm"]))
    if body.get("StopTimeout") is not None:
        out["stop_timeout"] = int(body["StopTimeout"])
    check = body.get("Healthcheck")
    if isinstance(check, dict):
        out["healthcheck"] = check
    return out


def run_options(body: dict, name: str | None, image_config: dict) -> tuple[dict, dict]:
    """(RunOptions fields, record fields to merge after create) for a create body."""
    host = body.get("HostConfig")
    host = {} if host is None else host
    if not isinstance(host, dict):
        raise bad_request("invalid HostConfig: an object was expected")
    cmd = _strings(body.get("Cmd"), "Cmd")
    entrypoint = body.get("Entrypoint")
    extra_config: dict = {}
    options: dict = {}
    if entrypoint is not None:
        words = [w for w in _strings(entrypoint, "Entrypoint")]
        if words and words != [""]:
            options["entrypoint"], command = words[0], words[1:] + cmd
            extra_config.update(Entrypoint=words, Cmd=cmd or None)
        else:  # an empty entrypoint resets the image's; Cmd still defaults to the image's
            options["entrypoint"] = ""
            command = cmd or list(image_config.get("Cmd") or [])
    else:
        command = cmd
    volumes, tmpfs = _volume_specs(host)
    covered = {spec.split(":")[1] if ":" in spec else spec for spec in volumes}
    covered |= {spec.split(":")[0] for spec in tmpfs}
    for target in body.get("Volumes") or {}:
        if target not in covered:
            volumes.append(target)
    mode, aliases, ip = _network(host, body)
    memory = host.get("Memory") or 0
    nano = host.get("NanoCpus") or 0
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
    cpus = str(nano / 1e9) if nano else (str(quota / period) if quota > 0 and period > 0 else None)
    pids = host.get("PidsLimit")
    runtime = host.get("Runtime") or "builtin"
    options.update(
        command=command, name=name, tty=bool(body.get("Tty")), interactive=bool(body.get("OpenStdin")),
        env=_strings(body.get("Env"), "Env"), workdir=body.get("WorkingDir") or None,
        user=body.get("User") or None, hostname=body.get("Hostname") or None, volumes=volumes,
        tmpfs=tmpfs, read_only=bool(host.get("ReadonlyRootfs")),
        memory=str(memory) if memory else None, cpus=cpus,
        pids_limit=pids if isinstance(pids, int) and pids > 0 else None,
        restart=_restart(host.get("RestartPolicy")), init=bool(host.get("Init")), network=mode,
        publish=_publish(host), publish_all=bool(host.get("PublishAllPorts")),
        network_aliases=aliases, ip=ip, runtime=runtime,
        security_opt=_strings(host.get("SecurityOpt"), "SecurityOpt"),
        userns=host.get("UsernsMode") or None, **_run_flag_options(host, body))
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise bad_request("invalid Labels: an object was expected")
    extra_config["Labels"] = {**(image_config.get("Labels") or {}), **labels}
    if body.get("ExposedPorts"):
        extra_config["ExposedPorts"] = {**(image_config.get("ExposedPorts") or {}), **body["ExposedPorts"]}
    if body.get("StopSignal"):
        extra_config["StopSignal"] = body["StopSignal"]
    extra_config.update(AttachStdin=bool(body.get("AttachStdin")),
                        AttachStdout=bool(body.get("AttachStdout", True)),
                        AttachStderr=bool(body.get("AttachStderr", True)))
    extra = {"Config": extra_config, AUTO_REMOVE: bool(host.get("AutoRemove")),
             EXTRA_NETWORKS: extra_networks(body, mode)}
    return options, extra


# -- the record as docker shows it ------------------------------------------------------------

def epoch(iso: str | None) -> int:
    """Unix seconds of an RFC 3339 time the engine wrote (0 for docker's zero time)."""
    if not iso or iso.startswith("0001"):
        return 0
    text = re.sub(r"(\.\d{1,6})\d*", r"\1", iso.strip()).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return 0
    return int((when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp())


def port_bindings(specs: list | dict) -> dict:
    """The record's ``-p`` strings as docker's PortBindings object."""
    if isinstance(specs, dict):
        return specs
    out: dict = {}
    for spec in specs or []:
        text, _, proto = spec.partition("/")
        parts = text.split(":")
        ip, hp, cp = ([""] * (3 - len(parts)) + parts)[-3:]
        out.setdefault(f"{cp}/{proto or 'tcp'}", []).append({"HostIp": ip, "HostPort": hp})
    return out


def network_settings(meta: dict, doc: dict, running: bool) -> dict:
    """Docker's NetworkSettings; a container not running shows the network it will join, with
    its aliases (compose reads them before start to decide whether to connect)."""
    settings = dict(doc.get("NetworkSettings") or {})
    short = meta["Id"][:12]
    mode = meta["HostConfig"].get("NetworkMode") or "bridge"
    networks = settings.get("Networks") if running else None
    if not networks and mode not in ("none", "host"):
        networks = {mode: {"Aliases": None, "NetworkID": "", "EndpointID": "", "Gateway": "",
                           "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "", "Links": None}}
    networks = dict(networks or {})
    if not running:
        for net in meta.get(EXTRA_NETWORKS) or []:
            networks.setdefault(net["Name"], {"Aliases": net.get("Aliases") or None, "NetworkID": "",
                                              "EndpointID": "", "Gateway": "", "IPAddress": "",
                                              "IPPrefixLen": 0, "MacAddress": "", "Links": None})
    aliases = list(meta["Config"].get("NetworkAliases") or [])
    for name, net in networks.items():
        net = dict(net)
        if name != "bridge":
            net["Aliases"] = list(dict.fromkeys([*(net.get("Aliases") or aliases), short]))
        net.setdefault("EndpointID", meta["Id"][:32] if running else "")
        networks[name] = net
    settings["Networks"] = networks
    settings.setdefault("Ports", {})
    if not running:
        settings["Ports"] = {}
    for key in ("IPAddress", "Gateway", "MacAddress", "SandboxKey"):
        settings.setdefault(key, "")
    settings.setdefault("IPPrefixLen", 0)
    settings.setdefault("Bridge", "")
    return settings


def inspect_doc(meta: dict, doc: dict) -> dict:
    """The engine's inspect document, made whole as docker's clients read it."""
    doc = dict(doc)
    running = doc["State"].get("Running", False)
    host = dict(doc.get("HostConfig") or {})
    host["PortBindings"] = port_bindings(host.get("PortBindings") or [])
    host["AutoRemove"] = bool(meta.get(AUTO_REMOVE) or host.get("AutoRemove"))
    host.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    host.setdefault("Links", None)
    config = dict(doc.get("Config") or {})
    config["Image"] = meta.get("ImageRef") or config.get("Image")
    for key, default in (("Labels", {}), ("Domainname", ""), ("StdinOnce", False), ("OnBuild", None),
                         ("AttachStdout", True), ("AttachStderr", True), ("ExposedPorts", {})):
        if config.get(key) is None:
            config[key] = default
    doc.update(HostConfig=host, Config=config, NetworkSettings=network_settings(meta, doc, running))
    doc.setdefault("ExecIDs", None)
    doc["State"] = {**doc["State"], "Dead": doc["State"].get("Status") == "dead"}
    return doc


def ps_entry(meta: dict, doc: dict, status_text: str) -> dict:
    ports = []
    for key, binds in (doc["NetworkSettings"].get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        for b in binds or []:
            ports.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port),
                          "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    mounts = [{"Type": m.get("Type"), "Name": m.get("Name", ""), "Source": m.get("Source", ""),
               "Destination": m.get("Destination"), "Driver": m.get("Driver", ""),
               "Mode": m.get("Mode", ""), "RW": m.get("RW", True), "Propagation": m.get("Propagation", "")}
              for m in doc.get("Mounts") or []]
    return {
        "Id": meta["Id"], "Names": ["/" + meta["Name"]], "Image": doc["Config"]["Image"],
        "ImageID": meta["Image"], "Command": " ".join([meta["Path"], *meta["Args"]]),
        "Created": epoch(meta["Created"]), "Ports": ports, "Labels": doc["Config"].get("Labels") or {},
        "State": doc["State"]["Status"], "Status": status_text,
        "HostConfig": {"NetworkMode": doc["HostConfig"].get("NetworkMode")},
        "NetworkSettings": {"Networks": doc["NetworkSettings"]["Networks"]}, "Mounts": mounts,
    }


def now_epoch() -> int:
    return int(datetime.now(timezone.utc).timestamp())
