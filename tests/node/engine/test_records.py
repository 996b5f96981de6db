"""The typed container record (node/engine/spec.py) and its one converter to and from Docker's
JSON (node/engine/records.py)."""
from __future__ import annotations

import json

from node.engine.records import Container, from_json, to_json
from node.engine.spec import Config, ContainerSpec, HostConfig, RestartPolicy


def _spec() -> ContainerSpec:
    return ContainerSpec(
        id="c" * 64, name="jolly_quay", created="2026-01-01T00:00:00.000000Z", image="sha256:" + "a" * 64,
        image_ref="busybox", path="sh", args=["-c", "true"],
        config=Config(hostname="box", env=["A=1"], tty=True, ip_address="10.0.0.2"),
        host_config=HostConfig(memory=64 << 20, pids_limit=12, network_mode="bridge",
                               restart_policy=RestartPolicy(name="on-failure", maximum_retry_count=3)),
        mounts=[{"Type": "tmpfs", "Destination": "/t"}], layer_dirs=["/l/1"])


def test_docker_field_names():
    doc = to_json(_spec())
    assert doc["Config"]["IPAddress"] == "10.0.0.2" and doc["Config"]["WorkingDir"] == "/"
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert doc["HostConfig"]["PidsLimit"] == 12 and doc["Path"] == "sh" and doc["ImageRef"] == "busybox"
    assert "IdMappings" not in doc  # only written for --userns=private


def test_round_trip_keeps_what_this_version_does_not_know():
    doc = to_json(_spec())
    doc["Platform"] = "linux"
    doc["Config"]["Healthcheck"] = {"Test": ["NONE"]}
    doc["HostConfig"]["RestartPolicy"]["Extra"] = 1
    back = from_json(ContainerSpec, json.loads(json.dumps(doc)))
    assert back.config.hostname == "box" and back.host_config.restart_policy.maximum_retry_count == 3
    assert to_json(back) == doc


def test_old_records_get_defaults(tmp_path):
    cid = "d" * 64
    (tmp_path / "containers" / cid).mkdir(parents=True)
    (tmp_path / "containers" / cid / "container.json").write_text(json.dumps(
        {"Id": cid, "Name": "old", "Config": {"Env": ["X=1"]}, "HostConfig": {}}))
    c = Container(tmp_path, cid)
    assert c.config.env == ["X=1"] and c.config.working_dir == "/" and c.host_config.runtime == "builtin"
    assert c.host_config.restart_policy.name == "no" and c.spec.id_mappings is None


def test_meta_and_save_meta_speak_docker_json(tmp_path):
    spec = _spec()
    c = Container(tmp_path, spec.id)
    c.dir.mkdir(parents=True)
    c.save_spec(spec)
    meta = c.meta
    meta["HostConfig"]["NetworkMode"] = "none"
    c.save_meta(meta)
    again = Container(tmp_path, spec.id)
    assert again.host_config.network_mode == "none" and again.spec.args == ["-c", "true"]
