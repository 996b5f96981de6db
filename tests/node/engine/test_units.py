"""The engine's pure parts, without root: option parsing, Docker's precedence rules, user lookup
in an image's passwd/group, the json-file log format, records lookup and the OCI spec it writes."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from node.engine import EngineError
from node.engine.bundle import build_spec
from node.engine.create import command_line, create_container, merge_env
from node.engine.logs import LogWriter, read_entries
from node.engine.netsetup import NetworkSetup
from node.engine.options import RunOptions, parse_cpus, parse_restart, parse_size, parse_volume
from node.engine.records import find
from node.engine.users import resolve


def test_sizes_cpus_restart_volumes():
    assert parse_size("16m") == 16 << 20 and parse_size("1g") == 1 << 30 and parse_size("512") == 512
    assert parse_cpus("0.5") == (50000, 100000) and parse_cpus("2") == (200000, 100000)
    assert parse_restart("on-failure:3") == ("on-failure", 3) and parse_restart("always") == ("always", 0)
    assert parse_volume("/src:/dst:ro") == ("/src", "/dst", True)
    assert parse_volume("data:/dst") == ("data", "/dst", False)
    assert parse_volume("/anon") == ("", "/anon", False)
    for bad in (lambda: parse_size("lots"), lambda: parse_cpus("0"), lambda: parse_restart("always:2"),
                lambda: parse_restart("sometimes"), lambda: parse_volume("rel:path"),
                lambda: parse_volume("bad name!:/x")):
        with pytest.raises(EngineError) as e:
            bad()
        assert e.value.exit_code == 125


def test_env_precedence(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# c\nA=file\nB=file\n\n")
    merged = merge_env(["A=image", "B=image", "C=image"], [str(env_file)], ["B=flag"])
    assert merged[:3] == ["A=file", "B=flag", "C=image"]
    assert any(e.startswith("PATH=") for e in merged)        # a default PATH like Docker's


def test_entrypoint_and_cmd_precedence():
    image = {"Entrypoint": ["/entry"], "Cmd": ["default"]}
    assert command_line(RunOptions(image="i"), image) == (["/entry"], ["default"])
    assert command_line(RunOptions(image="i", command=["x"]), image) == (["/entry"], ["x"])
    assert command_line(RunOptions(image="i", entrypoint="sh"), image) == (["sh"], [])   # Cmd dropped
    assert command_line(RunOptions(image="i", entrypoint="", command=["ls"]), image) == ([], ["ls"])


def test_user_resolution_from_image_files(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app,other\n")
    assert resolve(str(tmp_path), "app") == {"uid": 1000, "gid": 1000, "additionalGids": [50], "home": "/home/app"}
    assert resolve(str(tmp_path), "app:staff")["gid"] == 50
    assert resolve(str(tmp_path), "4321")["uid"] == 4321
    assert resolve(str(tmp_path), None)["uid"] == 0
    with pytest.raises(EngineError):
        resolve(str(tmp_path), "ghost")
    with pytest.raises(EngineError):
        resolve(str(tmp_path), "app:ghosts")


def test_json_file_log_lines(tmp_path):
    path = tmp_path / "c-json.log"
    log = LogWriter(path)
    log.write("stdout", b"hel")
    log.write("stdout", b"lo\nsecond")
    log.write("stderr", b"err\n")
    log.close()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["log"], e["stream"]) for e in entries] == [("hello\n", "stdout"), ("err\n", "stderr"), ("second", "stdout")]
    assert all(e["time"].endswith("Z") and "T" in e["time"] for e in entries)
    assert [e["log"] for e in read_entries(path, tail=1)[0]] == ["second"]


@pytest.fixture
def image(tmp_path):
    layer = tmp_path / "layer"
    layer.mkdir()
    config = {"Cmd": ["sh"], "Env": ["PATH=/bin"], "Volumes": {"/data": {}}}
    return SimpleNamespace(id="sha256:" + "c" * 64, config=SimpleNamespace(config=config), layer_dirs=lambda: [layer])


def test_records_and_spec(tmp_path, image):
    root = tmp_path / "root"
    opts = RunOptions(image="img", command=["echo", "hi"], name="first", memory="32m", cpus="1.5", pids_limit=20,
                      user="0", read_only=True, tmpfs=["/run:size=1m"])
    c = create_container(root, opts, image)
    assert find(root, "first").id == c.id and find(root, c.id[:6]).id == c.id
    with pytest.raises(EngineError):
        create_container(root, RunOptions(image="img", name="first"), image)
    with pytest.raises(EngineError):
        find(root, "nobody")
    mounts = {m["Destination"]: m for m in c.meta["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] in c.meta["AnonymousVolumes"]
    spec = build_spec(c, {"uid": 0, "gid": 0, "home": "/root"}, NetworkSetup("none"), ["PATH=/bin"])
    assert spec["ociVersion"].startswith("1.0") and spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["process"]["args"] == ["echo", "hi"] and spec["process"]["noNewPrivileges"] is True
    assert {ns["type"] for ns in spec["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "network"}
    res = spec["linux"]["resources"]
    assert res["memory"]["limit"] == 32 << 20 and res["cpu"] == {"quota": 150000, "period": 100000}
    assert res["pids"] == {"limit": 20} and res["devices"][0] == {"allow": False, "access": "rwm"}
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests[:6] == ["/proc", "/dev", "/dev/pts", "/sys", "/dev/mqueue", "/dev/shm"]
    assert {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/data"} <= set(dests)
    assert "/proc/sysrq-trigger" in spec["linux"]["readonlyPaths"] and "/proc/kcore" in spec["linux"]["maskedPaths"]
    host = build_spec(c, {"uid": 1000, "gid": 1000}, NetworkSetup("host"), [])
    assert "network" not in {ns["type"] for ns in host["linux"]["namespaces"]}
    assert host["process"]["capabilities"]["effective"] == [] and host["process"]["capabilities"]["bounding"]
    joined = build_spec(c, {"uid": 0, "gid": 0}, NetworkSetup("bridge", "/run/netns/x"), [])
    assert {"type": "network", "path": "/run/netns/x"} in joined["linux"]["namespaces"]


def test_conflicting_flags(tmp_path, image):
    with pytest.raises(EngineError) as e:
        create_container(tmp_path, RunOptions(image="i", remove=True, restart="always"), image)
    assert e.value.exit_code == 125
    assert not os.listdir(tmp_path / "containers") if (tmp_path / "containers").exists() else True


def test_human_duration_uses_dockers_wording():
    from node.engine.status import human_duration
    cases = {0.4: "Less than a second", 1.2: "1 second", 42: "42 seconds", 61: "About a minute",
             600: "10 minutes", 3700: "About an hour", 5 * 3600: "5 hours", 3 * 86400: "3 days",
             20 * 86400: "2 weeks", 90 * 86400: "3 months", 800 * 86400: "2 years"}
    assert {s: human_duration(s) for s in cases} == cases
