"""`run` flags that shape the container's files and its OCI bundle (issue #19 item 4): --add-host,
--dns, --dns-search in /etc/hosts and /etc/resolv.conf; --cap-add/--cap-drop/--privileged in the
process's capability sets, seccomp and masked paths. Each runs the real container."""
from __future__ import annotations

import time

import pytest

from node.engine.bundle import MASKED_PATHS, READONLY_PATHS
from tests.e2e.node_run_support import busybox_layer, dy, runtime  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.e2e]

CAP_NET_ADMIN, CAP_CHOWN, CAP_SYS_ADMIN = 12, 0, 21


def _cap_eff(dy, *flags: str) -> int:
    out = dy.out("run", "--rm", "--network", "none", *flags, "busybox", "grep", "CapEff", "/proc/self/status")
    return int(out.split()[1], 16)


def test_add_host_dns_and_search_reach_the_container_files(dy, runtime):
    out = dy.out("run", "--name", "files", "--runtime", runtime, "--network", "none",
                 "--add-host", "db.internal:10.1.2.3", "--add-host", "v6host:fd00::7",
                 "--dns", "192.0.2.53", "--dns", "192.0.2.54", "--dns-search", "example.test",
                 "busybox", "sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf")
    hosts, resolv = out.split("---\n")
    assert "10.1.2.3\tdb.internal" in hosts.splitlines() and "fd00::7\tv6host" in hosts.splitlines()
    assert "127.0.0.1\tlocalhost" in hosts                        # the usual lines stay
    lines = resolv.splitlines()
    assert [ln for ln in lines if ln.startswith("nameserver")] == ["nameserver 192.0.2.53", "nameserver 192.0.2.54"]
    assert [ln for ln in lines if ln.startswith("search")] == ["search example.test"]
    hc = dy.inspect("files")["HostConfig"]
    assert hc["ExtraHosts"] == ["db.internal:10.1.2.3", "v6host:fd00::7"]
    assert hc["Dns"] == ["192.0.2.53", "192.0.2.54"] and hc["DnsSearch"] == ["example.test"]
    # the files are rewritten at every start: the lines are there once, not twice
    dy.out("start", "files")
    dy.out("wait", "files")
    assert dy.out("logs", "files").count("10.1.2.3\tdb.internal") == 2   # once per run


def test_bad_add_host_and_dns_are_one_line_errors(dy):
    for flags, words in ((["--add-host", "nohost"], "bad format for add-host"),
                         (["--add-host", "a:999.1.1.1"], "invalid IP address in add-host"),
                         (["--dns", "not-an-ip"], "is not an ip address")):
        r = dy("run", "--rm", "--network", "none", *flags, "busybox", "true")
        assert r.returncode == 125 and words in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert dy.out("ps", "-aq").strip() == ""


def test_cap_add_and_drop_change_the_running_process(dy, runtime):
    default = _cap_eff(dy, "--runtime", runtime)
    assert default & (1 << CAP_CHOWN) and not default & (1 << CAP_NET_ADMIN)
    added = _cap_eff(dy, "--runtime", runtime, "--cap-add", "NET_ADMIN", "--cap-drop", "cap_chown")
    assert added & (1 << CAP_NET_ADMIN) and not added & (1 << CAP_CHOWN)
    only = _cap_eff(dy, "--runtime", runtime, "--cap-drop", "ALL", "--cap-add", "CAP_KILL")
    assert only == 1 << 5
    # the capability really works: an address on lo needs CAP_NET_ADMIN
    r = dy("run", "--rm", "--network", "none", "--runtime", runtime, "busybox", "ip", "addr", "add", "10.9.9.9/32", "dev", "lo")
    assert r.returncode != 0
    dy.out("run", "--rm", "--network", "none", "--runtime", runtime, "--cap-add", "NET_ADMIN",
           "busybox", "ip", "addr", "add", "10.9.9.9/32", "dev", "lo")
    cid = dy.out("create", "--network", "none", "--cap-add", "net_admin", "--cap-drop", "MKNOD", "busybox", "true").strip()
    hc = dy.inspect(cid)["HostConfig"]
    assert hc["CapAdd"] == ["CAP_NET_ADMIN"] and hc["CapDrop"] == ["CAP_MKNOD"] and hc["Privileged"] is False
    r = dy("run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true")
    assert r.returncode == 125 and "unknown capability" in r.stderr and r.stderr.count("\n") == 1


def test_privileged_has_every_capability_no_seccomp_no_masks(dy, runtime):
    script = "grep -E 'CapEff|Seccomp:' /proc/self/status; cat /proc/self/mountinfo"
    out = dy.out("run", "--name", "priv", "--runtime", runtime, "--network", "none", "--privileged",
                 "busybox", "sh", "-c", script)
    fields = dict(line.split(":", 1) for line in out.splitlines() if line.startswith(("CapEff", "Seccomp")))
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    held = int([ln for ln in open("/proc/self/status") if ln.startswith("CapEff")][0].split()[1], 16)
    assert int(fields["CapEff"].strip(), 16) == held & ((1 << (last + 1)) - 1)  # all this root node holds
    assert fields["Seccomp"].strip() == "0"
    mounted = {line.split()[4]: line.split()[5] for line in out.splitlines() if line[:1].isdigit()}
    masked = set(MASKED_PATHS) | set(READONLY_PATHS)
    assert not masked & set(mounted)                     # nothing masked or read-only
    assert mounted["/sys"].startswith("rw")
    assert dy.inspect("priv")["HostConfig"]["Privileged"] is True
    plain = dy.out("run", "--rm", "--runtime", runtime, "--network", "none", "busybox", "sh", "-c", script)
    assert "Seccomp:\t2" in plain
    plain_mounts = {line.split()[4]: line.split()[5] for line in plain.splitlines() if line[:1].isdigit()}
    assert "/proc/sys" in plain_mounts and plain_mounts["/sys"].startswith("ro")


def test_stop_signal_reaches_the_process(dy, runtime):
    dy.out("run", "-d", "--name", "usr1", "--runtime", runtime, "--network", "none", "--stop-signal", "usr1",
           "busybox", "sh", "-c", "trap 'echo got-usr1; exit 3' USR1; echo ready; while :; do sleep 0.1; done")
    _wait_for_log(dy, "usr1", "ready")
    assert dy.inspect("usr1")["Config"]["StopSignal"] == "SIGUSR1"
    started = time.monotonic()
    dy.out("stop", "usr1")
    assert time.monotonic() - started < 8                        # the trap ended it, not SIGKILL at 10 s
    assert dy.inspect("usr1")["State"]["ExitCode"] == 3 and "got-usr1" in dy.out("logs", "usr1")
    r = dy("run", "--rm", "--stop-signal", "SIGNOPE", "busybox", "true")
    assert r.returncode == 125 and "Invalid signal: SIGNOPE" in r.stderr and r.stderr.count("\n") == 1


def test_stop_timeout_is_used_by_stop_and_restart(dy, runtime):
    # sleep as PID 1 has no SIGTERM handler: the kernel drops the signal, only SIGKILL ends it
    dy.out("run", "-d", "--name", "stubborn", "--runtime", runtime, "--network", "none", "--stop-timeout", "1",
           "busybox", "sleep", "300")
    assert dy.inspect("stubborn")["Config"]["StopTimeout"] == 1
    started = time.monotonic()
    dy.out("stop", "stubborn")
    took = time.monotonic() - started
    assert 0.9 <= took < 6 and dy.inspect("stubborn")["State"]["ExitCode"] == 137
    dy.out("start", "stubborn")
    started = time.monotonic()
    dy.out("restart", "stubborn")
    assert 0.9 <= time.monotonic() - started < 6 and dy.inspect("stubborn")["State"]["Running"]
    dy.out("rm", "-f", "stubborn")
    dy.out("run", "-d", "--name", "patient", "--runtime", runtime, "--network", "none", "--stop-timeout", "6",
           "busybox", "sleep", "300")
    started = time.monotonic()
    dy.out("stop", "-t", "0", "patient")                           # stop -t still wins
    assert time.monotonic() - started < 4
    plain = dy.out("create", "--network", "none", "busybox", "true").strip()
    assert "StopTimeout" not in dy.inspect(plain)["Config"]        # docker omits it when unset


def _wait_for_log(dy, name: str, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in dy.out("logs", name):
        assert time.monotonic() < deadline, f"{name} never printed {text!r}"
        time.sleep(0.05)


def test_ulimit_shm_size_group_add_and_sysctl_in_the_container(dy, runtime):
    script = ("ulimit -n; ulimit -Hn; ulimit -c; id -G; df -k /dev/shm | tail -1; "
              "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni")
    out = dy.out("run", "--name", "knobs", "--runtime", runtime, "--network", "none",
                 "--ulimit", "nofile=512:1024", "--ulimit", "core=-1", "--shm-size", "8m",
                 "--group-add", "staff", "--group-add", "4242",
                 "--sysctl", "net.ipv4.ip_unprivileged_port_start=100", "--sysctl", "kernel.shmmni=1234",
                 "busybox", "sh", "-c", script).splitlines()
    assert out[0:3] == ["512", "1024", "unlimited"]
    assert set(out[3].split()) >= {"0", "50", "4242"}
    assert out[4].split()[1] == str(8 * 1024)                   # /dev/shm is 8 MiB
    assert out[5:7] == ["100", "1234"]
    hc = dy.inspect("knobs")["HostConfig"]
    assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 1024, "Soft": 512}, {"Name": "core", "Hard": -1, "Soft": -1}]
    assert hc["ShmSize"] == 8 * 1024 * 1024 and hc["GroupAdd"] == ["staff", "4242"]
    assert hc["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "100", "kernel.shmmni": "1234"}
    # the host's own values are untouched
    assert open("/proc/sys/kernel/shmmni").read().strip() != "1234"


def test_bad_ulimit_sysctl_and_group_are_refused_in_one_line(dy):
    for flags, words in ((["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
                         (["--ulimit", "nofile=20:10"], "soft limit must be less than or equal to hard limit"),
                         (["--sysctl", "vm.swappiness=10"], "sysctl 'vm.swappiness=10' is not allowed"),
                         (["--sysctl", "kernel.hostname=x"], "is not allowed"),
                         (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "not allowed in host network"),
                         (["--shm-size", "lots"], "invalid size"),
                         (["--group-add", "nosuchgroup"], "Unable to find group nosuchgroup")):
        r = dy("run", "--rm", "--network", "none", *flags, "busybox", "true") if "--network" not in flags \
            else dy("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 125 and words in r.stderr and r.stderr.count("\n") == 1, (flags, r.stderr)
    assert dy.out("run", "--rm", "--network", "none", "busybox", "sh", "-c", "df -k /dev/shm | tail -1").split()[1] \
        == str(64 * 1024)


def test_add_host_lines_survive_a_peer_joining_the_network(dy):
    """The network layer rewrites a container's hosts file when peers come and go; the
    --add-host lines are kept (docker's daemon keeps them too)."""
    from node.network import api
    try:
        dy.out("network", "create", "peers")
        dy.out("run", "-d", "--name", "a", "--network", "peers", "--add-host", "db.internal:10.1.2.3",
               "busybox", "sleep", "60")
        dy.out("run", "-d", "--name", "b", "--network", "peers", "busybox", "sleep", "60")
        hosts = dy.out("exec", "a", "cat", "/etc/hosts").splitlines()
        assert "10.1.2.3\tdb.internal" in hosts, hosts
        assert any(line.endswith("\tb") for line in hosts), hosts     # the peer's line arrived
    finally:
        dy("rm", "-f", "a", "b")
        dy("network", "rm", "peers")
        api.purge(dy.root)
