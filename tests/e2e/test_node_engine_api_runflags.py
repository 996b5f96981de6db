"""The docker CLI through the engine API (`dockyard engine`) with the run flags `dockyard run`
has: the create body's HostConfig/Config fields reach the container as the CLI's flags do."""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.e2e.engine_api_support import engine, unique  # noqa: F401 - the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(300)]


def test_docker_run_flags_through_the_engine(engine):
    script = ("tr '\\0' ' ' < /proc/1/cmdline; echo; grep -E '^(options|nameserver)' /etc/resolv.conf; "
              "grep db.test /etc/hosts; ulimit -n; cat /proc/sys/kernel/shmmni; stat -c '%t %T' /dev/xnull; "
              "grep CapEff /proc/self/status")
    r = engine.docker("run", "--rm", "--network", "none", "--init", "--dns", "192.0.2.9", "--dns-option", "ndots:4",
                      "--add-host", "db.test:10.0.0.7", "--ulimit", "nofile=500:600", "--sysctl", "kernel.shmmni=999",
                      "--device", "/dev/null:/dev/xnull", "--cap-drop", "ALL", "--cap-add", "KILL",
                      engine.image, "sh", "-c", script, check=True)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["/sbin/docker-init", "--"]
    assert "nameserver 192.0.2.9" in lines and "options ndots:4" in lines
    assert "10.0.0.7\tdb.test" in lines and "500" in lines and "999" in lines
    null = os.stat("/dev/null").st_rdev
    assert f"{os.major(null):x} {os.minor(null):x}" in lines
    assert int(lines[-1].split()[1], 16) == 1 << 5                    # CAP_KILL only


def test_docker_health_check_through_the_engine(engine):
    name = unique("healthy")
    engine.docker("run", "-d", "--name", name, "--network", "none", "--health-cmd", "true",
                  "--health-interval", "200ms", engine.image, "sleep", "60", check=True)
    deadline = time.monotonic() + 20
    while True:
        state = json.loads(engine.docker("inspect", name, check=True).stdout)[0]["State"]
        if (state.get("Health") or {}).get("Status") == "healthy":
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert engine.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}",
                         check=True).stdout.strip().endswith("(healthy)")
    check = json.loads(engine.docker("inspect", name, check=True).stdout)[0]["Config"]["Healthcheck"]
    assert check["Test"] == ["CMD-SHELL", "true"] and check["Interval"] == 200_000_000
    engine.docker("rm", "-f", name, check=True)
