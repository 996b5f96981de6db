"""`update`: change a container's limits (memory, swap, CPU quota and shares, pids) and its
restart policy. The record (container.json's HostConfig) is changed first, so the next start
uses the new values; a running (or paused) container's cgroup is rewritten at once, in the order
the kernel accepts (v1 refuses a memory limit above memory+swap, and memory+swap below memory).

Docker's rules: a value not given is left as it is; a memory limit above the memory+swap limit
already set needs --memory-swap too; -1 for --memory-swap (or --pids-limit) lifts that limit; an
--rm container keeps its restart policy ("no").
"""
from __future__ import annotations

import os

from node.engine import EngineError, events
from node.engine.options import parse_cpus, parse_restart, parse_size
from node.engine.records import Container
from node.engine.spec import RestartPolicy
from node.engine.status import current_state

MIN_MEMORY = 6 * 1024 * 1024


class Limits:
    """What `update` was asked to change (None: leave it)."""

    def __init__(self, memory=None, memory_swap=None, cpus=None, cpu_shares=None, cpu_quota=None,
                 cpu_period=None, pids_limit=None, restart=None) -> None:
        self.memory, self.memory_swap, self.cpus, self.cpu_shares = memory, memory_swap, cpus, cpu_shares
        self.cpu_quota, self.cpu_period, self.pids_limit, self.restart = cpu_quota, cpu_period, pids_limit, restart

    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())


def _size(text, flag: str) -> int:
    if isinstance(text, int):
        return text
    if str(text).strip() == "-1":
        return -1
    try:
        return parse_size(str(text))
    except EngineError:
        raise EngineError(f"invalid argument {text!r} for \"{flag}\" flag: invalid size: {text!r}", 125) from None


def update_container(container: Container, limits: Limits) -> None:
    if limits.empty():
        raise EngineError("you must provide one or more flags when using this command", 1)
    with container.locked():  # two updates at once must not lose one another's values
        spec = Container(container.root, container.id).spec  # fresh: not a copy read earlier
        hc = spec.host_config
        _apply_to_record(hc, limits)
        container.save_spec(spec)
    if current_state(container).get("Status") in ("running", "paused"):
        try:
            write_cgroup(container.id, hc)
        except OSError as e:
            raise EngineError(f"Cannot update container {container.id}: {e}", 1) from None
    events.container_event(container, "update")


def _apply_to_record(hc, limits: Limits) -> None:
    if limits.memory is not None:
        memory = _size(limits.memory, "--memory")
        if 0 < memory < MIN_MEMORY:
            raise EngineError("Minimum memory limit allowed is 6MB", 1)
        if limits.memory_swap is None and hc.memory_swap > 0 and memory > hc.memory_swap:
            if hc.memory_swap != hc.memory:
                raise EngineError("Memory limit should be smaller than already set memoryswap limit, "
                                  "update the memoryswap at the same time", 1)
            hc.memory_swap = memory  # no swap was allowed: none is now either
        hc.memory = memory
    if limits.memory_swap is not None:
        swap = _size(limits.memory_swap, "--memory-swap")
        if swap > 0 and swap < hc.memory:
            raise EngineError("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage", 1)
        if swap and not hc.memory:
            raise EngineError("You should always set the Memory limit when using Memoryswap limit, "
                              "see usage", 1)
        hc.memory_swap = swap
    if limits.cpus is not None:
        if limits.cpu_quota is not None or limits.cpu_period is not None:
            raise EngineError("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set", 1)
        quota, period = parse_cpus(str(limits.cpus)) if str(limits.cpus) not in ("0", "0.0") else (0, 0)
        hc.cpu_quota, hc.cpu_period, hc.nano_cpus = quota, period, quota * 10000
    if limits.cpu_quota is not None:
        hc.cpu_quota, hc.nano_cpus = int(limits.cpu_quota), 0
    if limits.cpu_period is not None:
        hc.cpu_period, hc.nano_cpus = int(limits.cpu_period), 0
    if limits.cpu_shares is not None:
        shares = int(limits.cpu_shares)
        if shares and shares < 2:
            shares = 2  # the kernel's minimum, as docker clamps it
        hc.cpu_shares = shares
    if limits.pids_limit is not None:
        hc.pids_limit = max(int(limits.pids_limit), 0)  # 0 and -1: no limit (0 in the record)
    if limits.restart is not None:
        name, retries = parse_restart(limits.restart)
        if hc.auto_remove and name != "no":
            raise EngineError("Restart policy cannot be updated because AutoRemove is enabled for the container", 1)
        hc.restart_policy = RestartPolicy(name=name, maximum_retry_count=retries)


# -- the live cgroup ------------------------------------------------------------------------------

def write_cgroup(container_id: str, hc) -> None:
    from node.engine.runtimes import cgroups_path
    from node.runtime import cgroups
    group = cgroups.open_cgroup(cgroups_path(container_id))
    if not group.exists():
        return
    if group.version == 1:
        _write_v1(group.dirs, hc)
    else:
        _write_v2(group.dir, hc)


def _put(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


def _write_v1(dirs: dict[str, str], hc) -> None:
    mem_dir = dirs.get("memory")
    if mem_dir:
        limit = hc.memory if hc.memory > 0 else -1
        swap = -1 if hc.memory_swap < 0 or not hc.memory else (hc.memory_swap or hc.memory)
        memsw = os.path.join(mem_dir, "memory.memsw.limit_in_bytes")
        mem = os.path.join(mem_dir, "memory.limit_in_bytes")
        if not os.path.exists(memsw):
            _put(mem, limit)
        else:
            # memory <= memory+swap at every moment: raise the larger one first, lower it last
            raising = swap == -1 or swap > _read_int(memsw) or _read_int(memsw) < 0
            for path, value in ((memsw, swap), (mem, limit)) if raising else ((mem, limit), (memsw, swap)):
                _put(path, value)
    cpu_dir = dirs.get("cpu")
    if cpu_dir:
        _put(os.path.join(cpu_dir, "cpu.cfs_period_us"), hc.cpu_period or 100000)
        _put(os.path.join(cpu_dir, "cpu.cfs_quota_us"), hc.cpu_quota if hc.cpu_quota > 0 else -1)
        _put(os.path.join(cpu_dir, "cpu.shares"), hc.cpu_shares or 1024)
    pids_dir = dirs.get("pids")
    if pids_dir:
        _put(os.path.join(pids_dir, "pids.max"), hc.pids_limit if hc.pids_limit > 0 else "max")


def shares_to_weight(shares: int) -> int:
    """cgroup v2's cpu.weight for v1 cpu.shares (the OCI runtimes' conversion)."""
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


def _write_v2(d: str, hc) -> None:
    def put(name: str, value) -> None:
        path = os.path.join(d, name)
        if os.path.exists(path):
            _put(path, value)
    put("memory.max", hc.memory if hc.memory > 0 else "max")
    if hc.memory_swap < 0 or not hc.memory:
        put("memory.swap.max", "max")
    else:
        put("memory.swap.max", max(0, (hc.memory_swap or hc.memory) - hc.memory))
    put("cpu.max", f"{hc.cpu_quota if hc.cpu_quota > 0 else 'max'} {hc.cpu_period or 100000}")
    put("cpu.weight", shares_to_weight(hc.cpu_shares) if hc.cpu_shares else 100)
    put("pids.max", hc.pids_limit if hc.pids_limit > 0 else "max")
