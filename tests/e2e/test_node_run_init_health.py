"""`run --init` (tini as PID 1: zombies reaped, signals forwarded, the exit code passed through),
health checks (--health-*, the image's HEALTHCHECK, --no-healthcheck; State.Health in `inspect`,
"(healthy)" in `ps`), --dns-option and --add-host NAME:host-gateway. Real containers."""
from __future__ import annotations

import json
import time

import pytest

from tests.e2e import node_run_support
from tests.e2e.node_run_support import busybox_layer, dy, runtime  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.e2e]

ZOMBIES = "cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l"
SLEEPS = ("cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 == \"(sleep)\"' | wc -l; "
          "cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l")


def _until(check, seconds: float = 15, what: str = "the condition"):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_init_is_pid_1_reaps_zombies_and_passes_the_exit_code(dy, runtime):
    out = dy.out("run", "--rm", "--runtime", runtime, "--network", "none", "--init", "busybox", "sh", "-c",
                 "tr '\\0' ' ' < /proc/1/cmdline")
    assert out.split()[:3] == ["/sbin/docker-init", "--", "sh"]
    assert dy("run", "--rm", "--runtime", runtime, "--network", "none", "--init", "busybox",
              "sh", "-c", "exit 42").returncode == 42
    # an orphan's parent is PID 1: tini reaps it; a plain `sleep` as PID 1 leaves a zombie
    orphan = "(sleep 0.2 &); exec sleep 60"
    for name, flags in (("with-init", ["--init"]), ("without", [])):
        dy.out("run", "-d", "--name", name, "--runtime", runtime, "--network", "none", *flags,
               "busybox", "sh", "-c", orphan)
    # without an init the orphan, once done, stays a zombie...
    _until(lambda: dy.out("exec", "without", "sh", "-c", ZOMBIES).strip() == "1", what="the zombie")
    # ...with one it is reaped: only `sleep 60` is left of the sleeps, and no zombie
    _until(lambda: dy.out("exec", "with-init", "sh", "-c", SLEEPS).split() == ["1", "0"], what="the reaping")
    time.sleep(0.3)
    assert dy.out("exec", "without", "sh", "-c", ZOMBIES).strip() == "1"
    dy.out("rm", "-f", "with-init", "without")
    assert dy.inspect(dy.out("create", "--network", "none", "--init", "busybox", "true").strip()) \
        ["HostConfig"]["Init"] is True


def test_init_forwards_sigterm_to_the_command(dy, runtime):
    # `sleep` as PID 1 ignores SIGTERM (no handler); as tini's child it dies of it at once
    dy.out("run", "-d", "--name", "t", "--runtime", runtime, "--network", "none", "--init", "--stop-timeout", "20",
           "busybox", "sleep", "300")
    started = time.monotonic()
    dy.out("stop", "t")
    assert time.monotonic() - started < 10
    assert dy.inspect("t")["State"]["ExitCode"] == 143                # 128 + SIGTERM, passed through by tini


def _health(dy, name: str) -> dict:
    return dy.inspect(name)["State"].get("Health") or {}


def _health_is(dy, name: str, status: str):
    health = _health(dy, name)
    return health if health.get("Status") == status else None


def test_health_cmd_starting_healthy_unhealthy_in_inspect_and_ps(dy):
    dy.out("run", "-d", "--name", "h", "--network", "none", "--health-cmd", "cat /tmp/ok",
           "--health-interval", "300ms", "--health-retries", "2", "--health-timeout", "5s",
           "busybox", "sleep", "600")
    assert _health(dy, "h")["Status"] in ("starting", "unhealthy")
    health = _until(lambda: _health_is(dy, "h", "unhealthy"), what="unhealthy")  # two failures in a row
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    assert "No such file" in health["Log"][-1]["Output"]
    assert "(unhealthy)" in dy.out("ps", "--format", "{{.Status}}")
    dy.out("exec", "h", "sh", "-c", "echo fine > /tmp/ok")
    health = _until(lambda: _health_is(dy, "h", "healthy"), what="healthy")
    assert health["FailingStreak"] == 0 and health["Log"][-1] == {**health["Log"][-1], "ExitCode": 0,
                                                                   "Output": "fine\n"}
    assert len(health["Log"]) <= 5 and {"Start", "End"} <= set(health["Log"][-1])
    status = dy.out("ps", "--format", "{{.Status}}").strip()
    assert status.startswith("Up ") and status.endswith(" (healthy)")
    assert dy.out("ps", "-q", "--filter", "health=healthy").split() == [dy.inspect("h")["Id"][:12]]
    assert dy.out("ps", "-q", "--filter", "health=unhealthy").split() == []
    # no probes while paused (docker stops them), and they go on after the unpause
    dy.out("pause", "h")
    time.sleep(0.5)
    before = _health(dy, "h")["Log"][-1]["Start"]
    time.sleep(1)
    assert _health(dy, "h")["Log"][-1]["Start"] == before and _health(dy, "h")["Status"] == "healthy"
    dy.out("unpause", "h")
    _until(lambda: _health(dy, "h")["Log"][-1]["Start"] != before, what="a probe after the unpause")
    check = dy.inspect("h")["Config"]["Healthcheck"]
    assert check == {"Test": ["CMD-SHELL", "cat /tmp/ok"], "Interval": 300_000_000, "Timeout": 5_000_000_000,
                     "Retries": 2}


def test_health_start_period_and_timeout(dy):
    # in the start period the start interval paces the probes (30 s would give none in 2 s)
    dy.out("run", "-d", "--name", "slow", "--network", "none", "--health-cmd", "sleep 5",
           "--health-interval", "30s", "--health-start-interval", "200ms", "--health-timeout", "300ms",
           "--health-retries", "1", "--health-start-period", "60s", "busybox", "sleep", "600")
    _until(lambda: _health(dy, "slow").get("Log"), what="a probe")
    health = _health(dy, "slow")
    # failures in the start period do not count: still starting, and each probe was cut at 300 ms
    assert health["Status"] == "starting" and health["FailingStreak"] == 0
    assert health["Log"] and health["Log"][-1]["ExitCode"] == -1
    assert health["Log"][-1]["Output"] == "Health check exceeded timeout (0.3s)"
    assert "(health: starting)" in dy.out("ps", "--format", "{{.Status}}")
    # a probe cut at its timeout is killed in the container too (at most the running one is left)
    procs = dy.out("exec", "slow", "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo")
    assert procs.count("sleep 5") <= 1, procs
    # and nothing of it holds the container's exit up (its init waits for its namespace's zombies)
    started = time.monotonic()
    dy.out("rm", "-f", "slow")
    assert time.monotonic() - started < 8


class _ImageWithHealthcheck(node_run_support.Dockyard):
    """The test image, with a HEALTHCHECK in its config (as `dockyard build` writes it)."""
    CHECK = {"Test": ["CMD", "test", "-e", "/etc/passwd"], "Interval": 200_000_000, "Retries": 4}

    def argv(self, *args: str) -> list[str]:
        config = dict(node_run_support.IMAGE_CONFIG, Healthcheck=self.CHECK)
        return [node_run_support.PYTHON, node_run_support.__file__, str(self.layer), json.dumps(config), "--",
                "--root", str(self.root), *args]


def test_image_healthcheck_flags_override_and_no_healthcheck(dy):
    img = _ImageWithHealthcheck(dy.root, dy.layer)
    img.out("run", "-d", "--name", "img", "--network", "none", "busybox", "sleep", "600")
    assert img.inspect("img")["Config"]["Healthcheck"] == _ImageWithHealthcheck.CHECK
    _until(lambda: _health(img, "img").get("Status") == "healthy", what="the image's check")
    img.out("run", "-d", "--name", "over", "--network", "none", "--health-cmd", "exit 3", "--health-retries", "1",
            "busybox", "sleep", "600")
    assert img.inspect("over")["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "exit 3"], "Interval": 200_000_000, "Retries": 1}   # the image's interval stays
    _until(lambda: _health(img, "over").get("Status") == "unhealthy", what="the flag's check")
    img.out("run", "-d", "--name", "none", "--network", "none", "--no-healthcheck", "busybox", "sleep", "600")
    assert img.inspect("none")["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    time.sleep(0.6)
    assert "Health" not in img.inspect("none")["State"]
    row = [ln for ln in img.out("ps", "--format", "{{.Names}} {{.Status}}").splitlines() if ln.startswith("none ")]
    assert row and "(" not in row[0]
    assert img.out("ps", "--filter", "health=none", "--format", "{{.Names}}").split() == ["none"]


def test_bad_health_flags_read_as_dockers(dy):
    for flags, words in ((["--health-interval=-1s"], "--health-interval cannot be negative"),
                         (["--health-interval", "bogus"], 'invalid argument "bogus" for "--health-interval" flag: '
                                                          'time: invalid duration "bogus"'),
                         (["--health-retries", "-1"], "--health-retries cannot be negative"),
                         (["--no-healthcheck", "--health-cmd", "true"],
                          "--no-healthcheck conflicts with --health-* options")):
        r = dy("run", "--rm", "--network", "none", *flags, "busybox", "true")
        assert r.returncode == 125 and words in r.stderr and r.stderr.count("\n") == 1, (flags, r.stderr)
    r = dy("ps", "--filter", "health=bogus")
    assert r.returncode == 125 and "Unrecognised filter value for health: bogus" in r.stderr


def test_dns_option_and_host_gateway(dy):
    from node.network import api
    try:
        out = dy.out("run", "--rm", "--network", "none", "--dns-option", "ndots:2", "--dns-option", "edns0",
                     "--add-host", "gw:host-gateway", "busybox", "sh", "-c", "cat /etc/resolv.conf /etc/hosts")
        assert [ln for ln in out.splitlines() if ln.startswith("options")] == ["options ndots:2 edns0"]
        gateway = json.loads(dy.out("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Gateway"]
        assert f"{gateway}\tgw" in out.splitlines()            # the default bridge's gateway, as docker0's
        cid = dy.out("create", "--network", "none", "--add-host", "gw:host-gateway", "--dns-option", "ndots:2",
                     "busybox", "true").strip()
        hc = dy.inspect(cid)["HostConfig"]
        assert hc["ExtraHosts"] == ["gw:host-gateway"] and hc["DnsOptions"] == ["ndots:2"]
    finally:
        api.purge(dy.root)
