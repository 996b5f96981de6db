"""Attach, detach and resize through the Engine API, driven by docker's own client on a real
pty: `docker run -it` then Ctrl-P Ctrl-Q leaves the container running, `docker attach` types
into it again (stdin to a running container), a terminal resize reaches the container's pty
(POST /containers/{id}/resize), and a non-TTY attach feeds stdin and ends with the exit."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.e2e.engine_api_support import engine, unique  # noqa: F401
from tests.e2e.pty_support import Terminal

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture
def term(engine):
    opened = []

    def open_terminal(*args, **kw):
        t = Terminal(["docker", *args], engine.env, **kw)
        opened.append(t)
        return t
    yield open_terminal
    for t in opened:
        t.close()


def _state(engine, name: str) -> dict:
    return json.loads(engine.docker("inspect", name, check=True).stdout)[0]["State"]


def test_docker_run_it_detach_resize_attach(engine, term):
    name = unique("att")
    t = term("run", "-it", "--name", name, "--network", "none", engine.image, "sh", rows=33, cols=101)
    t.read_until(b"# ")
    t.type(b"stty size\n")
    t.read_until(b"33 101")
    t.resize(44, 120)
    for _ in range(50):  # SIGWINCH -> docker -> POST /containers/{id}/resize -> the monitor
        t.type(b"stty size\n")
        if b"44 120" in t.read_until(b"# "):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the resize never reached the container")
    t.type(b"\x10\x11")
    assert t.wait() == 0
    assert _state(engine, name)["Status"] == "running"
    a = term("attach", name, rows=25, cols=90)
    a.wait_raw()
    a.type(b"echo again=$((6*7)); stty size\n")
    a.read_until(b"again=42")
    a.read_until(b"25 90")  # docker attach sends its terminal's size
    a.type(b"exit 6\n")
    assert a.wait() == 6
    state = _state(engine, name)
    assert (state["Status"], state["ExitCode"]) == ("exited", 6)
    engine.docker("rm", name, check=True)


def test_docker_attach_without_a_tty_feeds_stdin(engine):
    name = unique("cat")
    engine.docker("run", "-d", "-i", "--name", name, "--network", "none", engine.image, "sh", "-c",
                  "while read l; do echo got:$l; done", check=True)
    proc = subprocess.Popen(["docker", "attach", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=engine.env)
    try:
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"got:hello\n"
        proc.stdin.close()  # run -d -i: no stdin once, the program keeps its stdin
        time.sleep(0.3)
        assert _state(engine, name)["Status"] == "running"
        # resize of a running container without a TTY is accepted and changes nothing
        status, _, _ = engine.request("POST", f"/containers/{name}/resize?h=10&w=10")
        assert status == 200
        engine.docker("kill", name, check=True)
        assert proc.wait(timeout=20) == 137  # docker attach ends with the container's status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status, _, body = engine.request("POST", f"/containers/{name}/resize?h=10&w=10")
    assert status == 409 and b"is not running" in body
    status, _, body = engine.request("POST", "/containers/nope-nothing/resize?h=10&w=10")
    assert status == 404 and b"message" in body
    engine.docker("rm", "-f", name, check=True)


def _until_size(t, size: bytes) -> None:
    for _ in range(50):  # a resize travels: SIGWINCH, the client, the engine, the pty
        t.type(b"stty size\n")
        if size in t.read_until(b"# "):
            return
        time.sleep(0.1)
    raise AssertionError(f"the pty never became {size!r}")


def test_docker_exec_it_follows_the_terminal_size(engine, term):
    name = unique("ex")
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image, "sleep", "60", check=True)
    t = term("exec", "-it", name, "sh", rows=27, cols=99)
    t.read_until(b"# ")
    _until_size(t, b"27 99")  # POST /exec/{id}/resize right after the start
    t.resize(50, 150)
    _until_size(t, b"50 150")
    t.type(b"exit 2\n")
    assert t.wait() == 2
    engine.docker("rm", "-f", name, check=True)


def test_docker_start_ai_then_detach_with_custom_keys(engine, term):
    name = unique("sai")
    engine.docker("create", "-it", "--name", name, "--network", "none", engine.image, "sh", check=True)
    t = term("start", "-ai", "--detach-keys", "ctrl-x,y", name)
    t.read_until(b"# ")
    t.type(b"echo in=$((5+5))\n")
    t.read_until(b"in=10")
    t.type(b"\x18y")  # detachKeys=ctrl-x,y on the attach request
    assert t.wait() == 0
    assert _state(engine, name)["Status"] == "running"
    a = term("attach", name)
    a.wait_raw()
    a.type(b"exit 3\n")
    code = a.wait()
    # CI once saw 255 here (not reproduced in 50+ runs): say where it came from if it recurs
    assert code == 3, _exit_evidence(engine, name, code, a)
    engine.docker("rm", name, check=True)


def _exit_evidence(engine, name: str, code: int, t) -> str:
    state = _state(engine, name)
    cid = json.loads(engine.docker("inspect", name, check=True).stdout)[0]["Id"]
    monitor_log = engine.root / "containers" / cid / "monitor.log"
    return (f"docker exited {code}; state {state}; terminal {t.seen[-400:]!r}; monitor.log "
            f"{monitor_log.read_text()[-2000:] if monitor_log.exists() else '(none)'}; engine.log "
            f"{engine.log.read_text()[-2000:] if engine.log.exists() else '(none)'}")


def test_docker_exec_it_detach_leaves_the_process_running(engine, term):
    name = unique("exd")
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image, "sleep", "60", check=True)
    t = term("exec", "-it", "--detach-keys", "ctrl-e,e", name, "sh", "-c", "echo marker-$((20+3)); exec sleep 55")
    t.read_until(b"marker-23")
    t.type(b"\x05e")
    t.wait()  # docker exec reports the detach as an error of its own (status 1)
    assert b"read escape sequence" in t.seen
    ps = engine.docker("exec", name, "ps", "-o", "args", check=True).stdout
    assert "sleep 55" in ps  # the exec'd process runs on without its client
    engine.docker("rm", "-f", name, check=True)


def _hijacked_start(engine, exec_id: str):
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(str(engine.socket))
    body = b'{"Detach": false, "Tty": true}'
    sock.sendall(b"POST /exec/%s/start HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                 b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: %d\r\n\r\n%s" % (exec_id.encode(), len(body), body))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def test_engine_detaches_an_exec_on_its_detach_keys(engine):
    """Server side, as the daemon: the detach keys end the connection, not the process."""
    name = unique("exk")
    engine.docker("run", "-d", "--name", name, "--network", "none", engine.image, "sleep", "60", check=True)
    status, _, body = engine.request("POST", f"/containers/{name}/exec", {
        "Cmd": ["sh", "-c", "echo up; exec sleep 57"], "AttachStdin": True, "AttachStdout": True,
        "Tty": True, "DetachKeys": "ctrl-e,e"})
    assert status == 201
    exec_id = json.loads(body)["Id"]
    sock = _hijacked_start(engine, exec_id)
    seen = b""
    while b"up" not in seen:
        seen += sock.recv(4096)
    sock.sendall(b"\x05e")
    while True:  # the engine closes the stream
        data = sock.recv(4096)
        if not data:
            break
    sock.close()
    assert "sleep 57" in engine.docker("exec", name, "ps", "-o", "args", check=True).stdout
    status, _, body = engine.request("GET", f"/exec/{exec_id}/json")
    assert json.loads(body)["Running"] is True
    engine.docker("rm", "-f", name, check=True)
