"""node/api without root or containers: create bodies into run options, records into docker's
shapes, frames, and the app's negotiation and errors over aiohttp's test client (the launcher
is never called by these endpoints)."""
from __future__ import annotations

import json
import struct

import pytest

from node.api import container_spec
from node.api.errors import ApiError
from node.api.streams import frame


def test_create_body_into_run_options():
    body = {"Image": "busybox", "Cmd": ["httpd", "-f"], "Env": ["A=1"], "Labels": {"x": "y"},
            "Volumes": {"/data": {}, "/anon": {}}, "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"Binds": ["vol:/data:rw,z"], "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                                                      "HostPort": "8080"}],
                                                                         "53/udp": [{"HostPort": ""}]},
                           "Memory": 64 << 20, "NanoCpus": 500_000_000, "RestartPolicy": {"Name": "on-failure",
                                                                                          "MaximumRetryCount": 3},
                           "Tmpfs": {"/run": "size=1m"}, "AutoRemove": True, "NetworkMode": "proj_default"},
            "NetworkingConfig": {"EndpointsConfig": {"proj_default": {"Aliases": ["web"]}}},
            "Unknown": "ignored"}
    options, extra = container_spec.run_options(body, "web1", {"Labels": {"img": "1"}, "Cmd": ["sh"]})
    assert options["command"] == ["httpd", "-f"] and options["name"] == "web1"
    assert options["volumes"] == ["vol:/data:rw", "/anon"]          # /data is covered by the bind
    assert sorted(options["publish"]) == ["127.0.0.1:8080:80/tcp", "53/udp"]
    assert (options["memory"], options["cpus"], options["restart"]) == (str(64 << 20), "0.5", "on-failure:3")
    assert options["tmpfs"] == ["/run:size=1m"] and options["network"] == "proj_default"
    assert options["network_aliases"] == ["web"]
    assert extra["Config"]["Labels"] == {"img": "1", "x": "y"} and extra[container_spec.AUTO_REMOVE] is True


@pytest.mark.parametrize("entrypoint, cmd, want_entry, want_cmd", [
    (["sh", "-c"], ["echo hi"], "sh", ["-c", "echo hi"]),
    ([], None, "", ["sh"]),          # an empty entrypoint resets the image's; Cmd stays the image's
    (None, ["true"], None, ["true"]),
])
def test_entrypoint_forms(entrypoint, cmd, want_entry, want_cmd):
    options, _ = container_spec.run_options({"Image": "x", "Entrypoint": entrypoint, "Cmd": cmd}, None,
                                            {"Cmd": ["sh"]})
    assert options.get("entrypoint") == want_entry and options["command"] == want_cmd


def test_docker_cli_default_network_and_bad_shapes():
    options, _ = container_spec.run_options(
        {"Image": "x", "HostConfig": {"NetworkMode": "default"},
         "NetworkingConfig": {"EndpointsConfig": {"default": {}}}}, None, {})
    assert options["network"] == "bridge"
    for body in ({"Image": "x", "Cmd": 5}, {"Image": "x", "HostConfig": []},
                 {"Image": "x", "HostConfig": {"NetworkMode": "container:abc"}}):
        with pytest.raises(ApiError) as e:
            container_spec.run_options(body, None, {})
        assert e.value.status == 400


def test_port_bindings_and_times():
    assert container_spec.port_bindings(["127.0.0.1:8080:80/tcp", "9000:90", "53/udp"]) == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "90/tcp": [{"HostIp": "", "HostPort": "9000"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}]}
    assert container_spec.epoch("2026-12-01T22:42:03.123456789Z") == 1796164923
    assert container_spec.epoch("0001-01-01T00:00:00Z") == 0


def test_frames():
    assert frame(1, b"hi\n") == b"\x01\x00\x00\x00" + struct.pack(">L", 3) + b"hi\n"
    assert frame(2, b"")[:1] == b"\x02"


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    from node.api.server import create_app
    return await aiohttp_client(create_app(tmp_path / "root", launcher=None))


async def test_ping_versions_and_errors(client):
    r = await client.head("/_ping")
    assert r.status == 200 and r.headers["Api-Version"] == "1.44" and r.headers["Builder-Version"] == "1"
    r = await client.get("/v1.41/version")
    assert (await r.json())["MinAPIVersion"] == "1.24"
    r = await client.get("/v1.12/version")
    assert r.status == 400 and "too old" in (await r.json())["message"]
    r = await client.post("/v1.44/containers/create", data=b"{not json")
    assert r.status == 400 and r.headers["Content-Type"] == "application/json"
    r = await client.get("/v1.44/containers/nothere/json")
    assert (r.status, (await r.json())["message"]) == (404, "No such container: nothere")
    r = await client.get("/v1.44/no/such/endpoint")
    assert r.status == 404 and json.loads(await r.text())["message"] == "page not found"
    r = await client.get("/containers/json", params={"filters": "[1"})
    assert r.status == 400
    r = await client.get("/containers/json", params={"all": "1"})
    assert r.status == 200 and await r.json() == []
