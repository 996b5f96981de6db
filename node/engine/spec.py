"""What a container is, typed: its config (what runs), its host config (how the node runs it)
and the record around them, as `create` made it. node/engine/records.py alone turns these into
and out of Docker's JSON (container.json, `inspect`); the rest of the engine reads attributes.

Plain classes with a FIELDS table (attribute, Docker's key, default) rather than dataclasses:
`dataclasses` and `typing` cost `run` milliseconds of start-up (tests/node/test_cli_dispatch.py).
Keys a record holds that this version does not know are kept in `extra` and written back.

The state (what it is doing: state.json) stays Docker's dict of State fields, read-modify-written
under the record's lock by the agent and the monitor (records.Container.update_state)."""
from __future__ import annotations


class _Typed:
    FIELDS: tuple = ()   # (attribute, Docker's JSON key, default; a type is called for a fresh one)

    def __init__(self, **values) -> None:
        for name, _key, default in self.FIELDS:
            if name in values:
                setattr(self, name, values.pop(name))
            else:
                setattr(self, name, default() if isinstance(default, type) else default)
        self.extra = values.pop("extra", None) or {}
        if values:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(values)}")

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class Config(_Typed):
    """Docker's Config: the image's defaults with the `run` options applied."""
    FIELDS = (
        ("hostname", "Hostname", ""), ("user", "User", ""), ("env", "Env", list),
        ("cmd", "Cmd", list), ("entrypoint", "Entrypoint", None), ("image", "Image", ""),
        ("working_dir", "WorkingDir", "/"), ("tty", "Tty", False), ("open_stdin", "OpenStdin", False),
        ("attach_stdin", "AttachStdin", False), ("volumes", "Volumes", None),
        ("exposed_ports", "ExposedPorts", dict), ("stop_signal", "StopSignal", "SIGTERM"),
        ("labels", "Labels", dict), ("network_aliases", "NetworkAliases", list),
        ("ip_address", "IPAddress", None), ("stop_timeout", "StopTimeout", None),
        ("healthcheck", "Healthcheck", None),
    )


class RestartPolicy(_Typed):
    FIELDS = (("name", "Name", "no"), ("maximum_retry_count", "MaximumRetryCount", 0))


class HostConfig(_Typed):
    """Docker's HostConfig: resources, restart policy, network, runtime, security."""
    FIELDS = (
        ("binds", "Binds", list), ("tmpfs", "Tmpfs", dict), ("memory", "Memory", 0),
        ("memory_swap", "MemorySwap", 0), ("nano_cpus", "NanoCpus", 0), ("cpu_quota", "CpuQuota", 0),
        ("cpu_period", "CpuPeriod", 0), ("pids_limit", "PidsLimit", 0),
        ("restart_policy", "RestartPolicy", RestartPolicy), ("auto_remove", "AutoRemove", False),
        ("readonly_rootfs", "ReadonlyRootfs", False), ("network_mode", "NetworkMode", "none"),
        ("port_bindings", "PortBindings", list), ("publish_all_ports", "PublishAllPorts", False),
        ("runtime", "Runtime", "builtin"), ("init", "Init", False), ("security_opt", "SecurityOpt", list),
        ("userns_mode", "UsernsMode", ""), ("extra_hosts", "ExtraHosts", list), ("dns", "Dns", list),
        ("dns_search", "DnsSearch", list), ("cap_add", "CapAdd", list), ("cap_drop", "CapDrop", list),
        ("privileged", "Privileged", False), ("ulimits", "Ulimits", list), ("shm_size", "ShmSize", 67108864),
        ("group_add", "GroupAdd", list), ("sysctls", "Sysctls", dict), ("mounts", "Mounts", list),
        ("devices", "Devices", list), ("dns_options", "DnsOptions", list),
        ("cpu_shares", "CpuShares", 0),
    )


class ContainerSpec(_Typed):
    """container.json, written once by `create`. image is the image ID ("sha256:..."), image_ref
    what the user typed; mounts are Docker's MountPoint objects; layer_dirs the image's
    snapshots, bottom first; id_mappings the OCI id maps of --userns=private."""
    FIELDS = (
        ("id", "Id", ""), ("name", "Name", ""), ("created", "Created", ""), ("image", "Image", ""),
        ("image_ref", "ImageRef", ""), ("path", "Path", ""), ("args", "Args", list),
        ("config", "Config", Config), ("host_config", "HostConfig", HostConfig),
        ("mounts", "Mounts", list), ("anonymous_volumes", "AnonymousVolumes", list),
        ("layer_dirs", "LayerDirs", list), ("driver", "Driver", "overlay"),
        ("id_mappings", "IdMappings", None),
    )
