"""The engine API's rename, commit, update, import (``/images/create?fromSrc=-``) and events,
driven by the real docker CLI: what `dockyard` does on the same root, with docker's statuses."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.engine_api_support import engine, unique  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _cgroup_value(pid: int, controller: str, name: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return (Path("/sys/fs/cgroup") / controllers / path.lstrip("/") / name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_rename_commit_update_through_the_docker_cli(engine):
    name, new = unique("api-lc"), unique("api-lc-new")
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image, "sh", "-c",
                  "echo from-api > /made; sleep 300", check=True)
    assert engine.docker("rename", name, new, check=True).stdout == ""
    assert engine.dockyard("inspect", "--format", "{{.Name}}", new, check=True).stdout.strip() == f"/{new}"
    gone = engine.docker("rename", name, "x")
    assert gone.returncode == 1 and "No such container" in gone.stderr

    assert engine.docker("update", "--memory", "48m", "--pids-limit", "40", "--cpu-shares", "256", new,
                         check=True).stdout.strip() == new
    pid = int(engine.docker("inspect", "--format", "{{.State.Pid}}", new, check=True).stdout)
    if Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        assert _cgroup_value(pid, "memory", "memory.limit_in_bytes") == str(48 << 20)
        assert _cgroup_value(pid, "pids", "pids.max") == "40"
        assert _cgroup_value(pid, "cpu", "cpu.shares") == "256"
    hc = json.loads(engine.dockyard("inspect", new, check=True).stdout)[0]["HostConfig"]
    assert (hc["Memory"], hc["PidsLimit"], hc["CpuShares"]) == (48 << 20, 40, 256)

    for _ in range(100):
        if engine.docker("exec", new, "test", "-e", "/made").returncode == 0:
            break
        time.sleep(0.05)
    tag = f"{unique('api-committed')}:1"
    image_id = engine.docker("commit", "-c", 'CMD ["cat", "/made"]', "-m", "via api", new, tag,
                             check=True).stdout.strip()
    assert image_id.startswith("sha256:")
    assert engine.docker("run", "--rm", "--network", "none", tag, check=True).stdout == "from-api\n"
    assert engine.dockyard("run", "--rm", "--network", "none", tag, check=True).stdout == "from-api\n"
    bad = engine.docker("commit", "-c", "FROM x", new)
    assert bad.returncode == 1 and "not a valid change command" in bad.stderr
    engine.docker("rm", "-f", new, check=True)


def test_import_from_stdin_through_the_docker_cli(engine, tmp_path):
    name = unique("api-export")
    engine.docker("create", "--name", name, engine.image, check=True)
    tarball = tmp_path / "fs.tar"
    engine.docker("export", "-o", str(tarball), name, check=True)
    engine.docker("rm", name, check=True)
    tag = f"{unique('api-imported')}:1"
    with open(tarball, "rb") as f:
        r = subprocess.run(["docker", "import", "-c", 'CMD ["echo", "imported"]', "-", tag], stdin=f,
                           capture_output=True, text=True, env=engine.env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("sha256:")
    assert engine.docker("run", "--rm", "--network", "none", tag, check=True).stdout == "imported\n"
    bad = subprocess.run(["docker", "import", "-", tag], input=b"not a tarball", capture_output=True,
                         env=engine.env, timeout=60)
    assert bad.returncode == 1 and len(bad.stderr.decode().strip().splitlines()) == 1


def test_events_see_what_the_cli_and_the_api_did(engine):
    name = unique("api-ev")
    since = f"{time.time() - 1:.3f}"
    engine.dockyard("run", "--rm", "--name", name, "--network", "none", engine.image, "true", check=True)
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image, "sleep", "30", check=True)
    engine.docker("rm", "-f", name, check=True)
    time.sleep(1.1)  # the CLI sends --until in whole seconds
    out = engine.docker("events", "--since", since, "--until", f"{time.time():.3f}", "--filter",
                        f"container={name}", "--format", "{{.Action}}", check=True).stdout.split()
    # the first life through the CLI (attached: attach), the second through the API
    assert out == ["create", "attach", "start", "die", "destroy", "create", "start", "kill", "die", "destroy"], out
