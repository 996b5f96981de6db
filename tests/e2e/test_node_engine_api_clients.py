"""`dockyard engine` driven by the other clients people use: the Python docker SDK and Debian's
docker-compose 1.29 (two services on user networks reaching each other by name, one of them
on two networks, a named volume, a published port; `up -d`, `ps`, `down -v` leave nothing behind)."""
from __future__ import annotations

import importlib.util
import time
import urllib.request

import pytest

from tests.e2e.engine_api_support import engine, unique  # noqa: F401 - the fixture
from tests.helpers import free_port, need, need_tool

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _get(url: str, timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_python_docker_sdk(engine):
    need(importlib.util.find_spec("docker") is not None, "needs the docker SDK (pip install -e '.[test]')")
    import docker
    client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="auto")
    assert client.ping() and client.version()["ApiVersion"] >= "1.44"
    assert client.containers.run(engine.image, ["echo", "sdk"], remove=True, network_mode="none") == b"sdk\n"
    name, port = unique("sdkweb"), free_port()
    web = client.containers.run(engine.image, ["httpd", "-f", "-p", "80", "-h", "/data"], detach=True, name=name,
                                ports={"80/tcp": ("127.0.0.1", port)}, labels={"suite": "sdk"})
    try:
        assert _get(f"http://127.0.0.1:{port}/keep.txt") == b"keep\n"
        web.reload()
        assert web.status == "running" and web.labels["suite"] == "sdk"
        assert [c.name for c in client.containers.list(filters={"label": "suite=sdk"})] == [name]
        result = web.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"], demux=True)
        assert (result.exit_code, result.output) == (4, (b"out\n", b"err\n"))
        assert engine.image in [t for i in client.images.list() for t in i.tags]
    finally:
        web.stop(timeout=1)
        assert web.wait()["StatusCode"] == 137
        web.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(name)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("no-such-image:404")
    volume = client.volumes.create(unique("sdkvol"), labels={"suite": "sdk"})
    assert [v.name for v in client.volumes.list(filters={"label": "suite=sdk"})] == [volume.name]
    volume.remove()
    net = client.networks.create(unique("sdknet"), labels={"suite": "sdk"})
    assert [n.name for n in client.networks.list(filters={"label": "suite=sdk"})] == [net.name]
    net.remove()


COMPOSE = """\
version: "3.7"
services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["127.0.0.1:{port}:80"]
    volumes: ["pages:/www"]
    networks: [front, back]
  client:
    image: {image}
    command: ["sh", "-c", "echo from-client > /www/index.html; while true; do wget -q -O - http://web/index.html > /tmp/got 2>&1; sleep 0.3; done"]
    volumes: ["pages:/www"]
    networks: [back]
    depends_on: [web]
volumes:
  pages: {{}}
networks:
  front: {{}}
  back: {{}}
"""


def test_compose_up_ps_down(engine, tmp_path):
    need_tool("docker-compose")
    import subprocess
    project, port = unique("eapi").replace("-", ""), free_port()
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(image=engine.image, port=port))

    def compose(*args, timeout=120):
        return subprocess.run(["docker-compose", "-p", project, *args], cwd=tmp_path, env=engine.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    r = compose("up", "-d")
    try:
        assert r.returncode == 0, r.stderr
        # the client wrote the page into the shared volume; the web server serves it on the port
        assert _get(f"http://127.0.0.1:{port}/index.html") == b"from-client\n"
        # and the client reaches the web service by its name on the project's network
        deadline = time.monotonic() + 15
        got = ""
        while time.monotonic() < deadline and got != "from-client\n":
            got = engine.docker("exec", f"{project}_client_1", "cat", "/tmp/got").stdout
            time.sleep(0.3)
        assert got == "from-client\n"
        nets = engine.docker("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
                             f"{project}_web_1", check=True).stdout.split()
        assert sorted(nets) == [f"{project}_back", f"{project}_front"]  # the second one joined after start
        ps = compose("ps")
        assert ps.returncode == 0 and ps.stdout.count(" Up ") == 2, ps.stdout
    finally:
        r = compose("down", "-v", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert project not in engine.docker("ps", "-a", "--format", "{{.Names}}").stdout
    assert project not in engine.docker("network", "ls", "--format", "{{.Name}}").stdout
    assert project not in engine.docker("volume", "ls", "--format", "{{.Name}}").stdout
    assert project not in engine.dockyard("ps", "-a").stdout
    assert project not in engine.dockyard("network", "ls").stdout
    assert project not in engine.dockyard("volume", "ls").stdout


def test_socket_activation_serves_the_same_store(engine):
    """systemd's way (deploy/dockyard-engine.socket): the engine takes over a listening socket
    passed as fd 3 with LISTEN_PID/LISTEN_FDS, here handed over by bash, on the same --root."""
    import socket
    import subprocess
    from tests.e2e.engine_api_support import DOCKYARD
    from tests.procs import start_process, stop_process
    path = engine.base / "activated.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(16)
    fd = listener.fileno()
    script = f'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@" 3<&{fd} {fd}<&-'
    proc = start_process(["bash", "-c", script, "bash", str(DOCKYARD), "--root", str(engine.root), "engine"],
                         engine.base / "activated.log", env=engine.env, pass_fds=(fd,))
    listener.close()
    try:
        env = dict(engine.env, DOCKER_HOST=f"unix://{path}")
        r = subprocess.run(["docker", "run", "--rm", "--network", "none", engine.image, "echo", "activated"],
                           capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stdout) == (0, "activated\n"), r.stderr
    finally:
        stop_process(proc)
