"""`dockyard engine` driven by the real docker CLI (Debian's docker.io) over its unix socket:
run/ps/logs/exec -it/cp/stop/rm/images/pull, the same records as the `dockyard` CLI, docker's
status codes and messages for bad input, and a socket closed to other users."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import urllib.request

import pytest

from tests.e2e.engine_api_support import engine, unique  # noqa: F401 - the fixture
from tests.helpers import free_port

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _get(url: str, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _pty_session(argv: list[str], env: dict, script: list[bytes], timeout: float = 20) -> tuple[int, bytes]:
    """Run ``argv`` on a new pty, typing each line of ``script`` once the previous output settles."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    pending = list(script)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.3)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        elif pending:
            os.write(master, pending.pop(0))
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), out


def test_version_negotiation_and_info(engine):
    status, headers, _ = engine.request("HEAD", "/_ping")
    assert status == 200 and headers["api-version"] >= "1.44" and headers["builder-version"] == "1"
    status, _, body = engine.request("GET", "/v1.24/version")
    assert status == 200 and json.loads(body)["MinAPIVersion"] == "1.24"
    status, _, body = engine.request("GET", "/v1.12/version")
    assert status == 400 and "too old" in json.loads(body)["message"]
    r = engine.docker("version", "--format", "{{.Server.APIVersion}}", check=True)
    assert r.stdout.strip() == "1.44"
    assert "Dockyard" in engine.docker("info", "--format", "{{.OperatingSystem}}", check=True).stdout


def test_run_serves_a_page_then_ps_logs_exec_cp_stop_rm(engine, tmp_path):
    name, port = unique("web"), free_port()
    r = engine.docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", engine.image,
                      "sh", "-c", "echo started; exec httpd -f -p 80 -h /data", check=True)
    cid = r.stdout.strip()
    assert _get(f"http://127.0.0.1:{port}/keep.txt") == b"keep\n"
    ps = engine.docker("ps", "--format", "{{.Names}} {{.Status}} {{.Ports}}", check=True).stdout
    assert f"{name} Up" in ps and f"127.0.0.1:{port}->80/tcp" in ps
    assert engine.docker("logs", name, check=True).stdout == "started\n"

    # exec -it through a pty: a shell, its arithmetic, its exit status
    code, out = _pty_session(["docker", "exec", "-it", name, "sh"], engine.env,
                             [b"echo $((6*7))\n", b"exit 5\n"])
    assert code == 5 and b"42" in out, out
    r = engine.docker("exec", name, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")

    # cp both ways
    (tmp_path / "in.txt").write_text("copied in\n")
    engine.docker("cp", str(tmp_path / "in.txt"), f"{name}:/tmp/", check=True)
    assert engine.docker("exec", name, "cat", "/tmp/in.txt", check=True).stdout == "copied in\n"
    engine.docker("cp", f"{name}:/data", str(tmp_path / "out"), check=True)
    assert sorted(os.listdir(tmp_path / "out")) == ["added-late.txt", "keep.txt"]
    diff = engine.docker("diff", name, check=True).stdout.splitlines()
    assert "A /tmp/in.txt" in diff
    engine.docker("export", "-o", str(tmp_path / "fs.tar"), name, check=True)
    assert "tmp/in.txt" in subprocess.run(["tar", "tf", str(tmp_path / "fs.tar")], capture_output=True,
                                            text=True, check=True).stdout.split()

    # the node's own CLI sees the same container
    assert cid[:12] in engine.dockyard("ps", "-q").stdout
    engine.docker("stop", "-t", "1", name, check=True)
    assert engine.docker("inspect", "-f", "{{.State.Status}}", name, check=True).stdout.strip() == "exited"
    engine.docker("rm", name, check=True)
    assert name not in engine.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout
    assert cid[:12] not in engine.dockyard("ps", "-aq").stdout


def test_run_attached_gives_output_streams_and_exit_code(engine):
    r = engine.docker("run", "--rm", "--network", "none", engine.image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert engine.docker("ps", "-aq", check=True).stdout.strip() == ""  # --rm removed it


def test_logs_follow_until_exit(engine):
    name = unique("talker")
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image,
                  "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done", check=True)
    r = engine.docker("logs", "-f", name, timeout=20, check=True)
    assert r.stdout.split() == ["line1", "line2", "line3"]
    assert engine.docker("wait", name, check=True).stdout.strip() == "0"
    engine.docker("rm", name, check=True)


def test_cli_and_engine_share_records(engine):
    name = unique("shared")
    engine.dockyard("run", "-d", "--name", name, "--network", "none", engine.image, "sleep", "60", check=True)
    assert name in engine.docker("ps", "--format", "{{.Names}}", check=True).stdout
    engine.docker("rm", "-f", name, check=True)
    assert name not in engine.dockyard("ps", "-a").stdout
    name = unique("shared")
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image, "sleep", "60", check=True)
    assert name in engine.dockyard("ps").stdout
    engine.dockyard("rm", "-f", name, check=True)
    assert name not in engine.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout


def test_images_pull_push_save_load(engine, shared_dockyard_registry, busybox_image_dir, tmp_path):
    from tests import images
    assert engine.image in engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    ref = f"{shared_dockyard_registry.host}/{unique('eapi')}/busybox:v1"
    images.push_image(busybox_image_dir, ref)
    r = engine.docker("pull", ref, timeout=120, check=True)
    assert "Status: Downloaded newer image" in r.stdout or "Image is up to date" in r.stdout, r.stdout
    assert engine.docker("run", "--rm", "--network", "none", ref, "cat", "/data/keep.txt", check=True).stdout == "keep\n"
    # push under another name, drop it locally, pull it back
    pushed = f"{shared_dockyard_registry.host}/{unique('eapi')}/pushed:v2"
    engine.docker("tag", ref, pushed, check=True)
    assert "v2: digest: sha256:" in engine.docker("push", pushed, timeout=120, check=True).stdout
    engine.docker("rmi", pushed, check=True)
    engine.docker("pull", pushed, timeout=120, check=True)
    assert engine.docker("image", "inspect", "-f", "{{.Os}}", pushed, check=True).stdout.strip() == "linux"
    # save and load
    archive = tmp_path / "saved.tar"
    engine.docker("save", "-o", str(archive), pushed, check=True)
    engine.docker("rmi", pushed, check=True)
    assert f"Loaded image: {pushed}" in engine.docker("load", "-i", str(archive), check=True).stdout
    engine.docker("rmi", pushed, check=True)
    engine.docker("rmi", ref, check=True)
    assert ref not in engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    r = engine.docker("pull", f"{shared_dockyard_registry.host}/{unique('absent')}/nothing:v1", timeout=60)
    assert r.returncode != 0 and "Error response from daemon" in r.stderr


def test_bad_input_gets_dockers_codes_and_the_engine_keeps_serving(engine):
    status, _, body = engine.request("POST", "/v1.44/containers/create", b'{"Image": "x", ')
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, _, body = engine.request("POST", "/v1.44/networks/create", b"[not json")
    assert status == 400
    name = unique("strict")
    status, _, body = engine.request("POST", f"/v1.44/containers/create?name={name}",
                                     {"Image": engine.image, "Cmd": ["true"], "NoSuchField": {"x": 1},
                                      "HostConfig": {"NetworkMode": "none", "Bogus": True}})
    assert status == 201, body  # unknown fields are ignored, as the daemon ignores them
    status, _, body = engine.request("POST", f"/v1.44/containers/create?name={name}", {"Image": engine.image})
    assert status == 409 and "already in use" in json.loads(body)["message"]
    status, _, body = engine.request("POST", "/v1.44/containers/create", {"Image": "no-such-image:1"})
    assert (status, json.loads(body)["message"]) == (404, "No such image: no-such-image:1")
    for path in ("/v1.44/containers/nothere/json", "/v1.44/images/nothere:1/json",
                 "/v1.44/networks/nothere", "/v1.44/volumes/nothere", "/v1.44/exec/nothere/json"):
        status, headers, body = engine.request("GET", path)
        assert status == 404 and headers["content-type"] == "application/json" and json.loads(body)["message"]
    r = engine.docker("run", "--name", name, engine.image, "true")
    assert r.returncode == 125 and "Conflict. The container name" in r.stderr
    r = engine.docker("rm", "nothere-" + name)
    assert "No such container" in r.stderr
    engine.docker("rm", name, check=True)
    # a build context that climbs out of itself is refused, and nothing lands outside
    import io
    import tarfile
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tar:
        info = tarfile.TarInfo("../escaped-" + name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    status, _, raw = engine.request("POST", "/v1.44/build?t=x", body.getvalue(), {"Content-Type": "application/x-tar"})
    assert status == 400 and "build context" in json.loads(raw)["message"]
    assert not any(p.name.startswith("escaped-") for p in engine.root.rglob("escaped-*"))
    assert engine.request("GET", "/_ping")[0] == 200


def test_a_caller_without_access_gets_nothing(engine):
    mode = os.stat(engine.socket).st_mode & 0o777
    assert mode in (0o660, 0o600)
    probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
             "try:\n s.connect(sys.argv[1]); print('connected')\nexcept PermissionError: print('denied')\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", probe,
                        str(engine.socket)], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "denied", r.stderr


def test_build_through_the_classic_api_then_run(engine, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hi from the context\n")
    (ctx / "Dockerfile").write_text(f'FROM {engine.image}\nCOPY hello.txt /hello.txt\n'
                                    'RUN echo built > /built.txt\nCMD ["cat", "/hello.txt", "/built.txt"]\n')
    (ctx / "Dockerfile.bad").write_text(f"FROM {engine.image}\nRUN exit 3\n")
    tag = unique("built") + ":v1"
    r = engine.docker("build", "--network", "none", "-t", tag, str(ctx), timeout=120, check=True)
    assert f"Successfully tagged {tag}" in r.stdout
    r = engine.docker("run", "--rm", "--network", "none", tag, check=True)
    assert r.stdout == "hi from the context\nbuilt\n"
    r = engine.docker("build", "--network", "none", "-f", str(ctx / "Dockerfile.bad"), str(ctx), timeout=120)
    assert r.returncode != 0 and "exit code: 3" in r.stderr
    engine.docker("rmi", tag, check=True)


def test_stats_top_events_df(engine):
    name = unique("busy")
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image, "sleep", "30", check=True)
    row = engine.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name, timeout=30, check=True)
    assert row.stdout.split() == [name, "1"]
    assert "sleep 30" in engine.docker("top", name, check=True).stdout
    engine.docker("rm", "-f", name, check=True)
    until = str(int(time.time()) + 1)
    events = engine.docker("events", "--since", "0", "--until", until, "--filter", f"container={name}",
                           "--format", "{{.Action}}", timeout=30, check=True).stdout.split()
    assert events[:2] == ["create", "start"] and events[-1] == "destroy"
    assert "Images" in engine.docker("system", "df", check=True).stdout


def test_run_interactive_stdin_and_tty(engine):
    r = engine.docker("run", "-i", "--rm", "--network", "none", engine.image,
                      "sh", "-c", "read x; echo got:$x; echo e >&2; exit 2", input="piped-in\n")
    assert (r.returncode, r.stdout, r.stderr) == (2, "got:piped-in\n", "e\n")
    code, out = _pty_session(["docker", "run", "-it", "--rm", "--network", "none", engine.image, "sh"],
                             engine.env, [b"echo $((6*7))\n", b"exit 4\n"])
    assert code == 4 and b"42" in out, out
    assert engine.docker("ps", "-aq", check=True).stdout.strip() == ""

