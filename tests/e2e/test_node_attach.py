"""Detach and attach, driven through a real pty as a user's terminal would: `run -it` then
Ctrl-P Ctrl-Q leaves the container running, `attach` gets the shell back, the exit status is
the container's; --detach-keys and config.json's detachKeys; attach without a TTY; start -a -i."""
from __future__ import annotations

import json
import select
import signal
import subprocess
import time

import pytest

from tests.e2e.node_run_support import busybox_layer, dy, leaks  # noqa: F401
from tests.e2e.pty_support import Terminal

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture
def term(dy):
    opened = []

    def open_terminal(*args, **kw):
        t = Terminal(dy.argv(*args), dy.env, **kw)
        opened.append(t)
        return t
    yield open_terminal
    for t in opened:
        t.close()


def _status(dy, name: str) -> str:
    return dy.inspect(name)["State"]["Status"]


def test_run_it_detach_attach_and_exit_status(dy, term):
    t = term("run", "-it", "--name", "sh1", "busybox", "sh")
    t.read_until(b"# ")
    t.type(b"echo one=$((1+1))\n")
    t.read_until(b"one=2")
    t.type(b"\x10\x11")  # Ctrl-P Ctrl-Q
    assert t.wait() == 0
    assert b"read escape sequence" in t.seen
    assert _status(dy, "sh1") == "running"
    # the shell lives on, and writes to its log while nobody is attached
    a = term("attach", "sh1")
    a.wait_raw()
    a.type(b"echo two=$((2+2))\n")
    a.read_until(b"two=4")
    a.type(b"exit 7\n")
    assert a.wait() == 7
    assert _status(dy, "sh1") == "exited"
    assert dy.inspect("sh1")["State"]["ExitCode"] == 7
    logs = dy.out("logs", "sh1")
    assert "one=2" in logs and "two=4" in logs


def test_custom_detach_keys_and_a_broken_sequence_passes_through(dy, term):
    t = term("run", "-it", "--detach-keys", "ctrl-a,x", "--name", "sh2", "busybox", "sh")
    t.read_until(b"# ")
    t.type(b"\x10\x11")  # the default keys are just bytes now: the shell gets them
    t.type(b"\x01y")     # ctrl-a then not x: both reach the shell
    t.type(b"\x15echo still=here\n")  # ^U clears what those keys left on the line
    t.read_until(b"still=here")
    assert t.proc.poll() is None
    t.type(b"\x01x")
    assert t.wait() == 0
    assert _status(dy, "sh2") == "running"
    # attach takes its own keys, and the config file's default for the others
    config = dy.root.parent / "dockercfg"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"detachKeys": "ctrl-@,q"}))
    dy.env["DOCKER_CONFIG"] = str(config)
    a = term("attach", "sh2")
    a.wait_raw()
    a.type(b"echo back=1\n")
    a.read_until(b"back=1")
    a.type(b"\x00q")  # ctrl-@ q
    assert a.wait() == 0
    assert _status(dy, "sh2") == "running"
    bad = dy("attach", "--detach-keys", "ctrl-", "sh2")
    assert bad.returncode != 0 and "Invalid detach keys" in bad.stderr
    dy("rm", "-f", "sh2", check=True)


def test_resize_reaches_the_containers_pty(dy, term):
    t = term("run", "-it", "--name", "sh3", "busybox", "sh", rows=30, cols=100)
    t.read_until(b"# ")
    t.type(b"stty size\n")
    t.read_until(b"30 100")
    t.resize(41, 132)
    for _ in range(50):  # the SIGWINCH travels: client, monitor, TIOCSWINSZ
        t.type(b"stty size\n")
        if b"41 132" in t.read_until(b"# "):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the resize never reached the container")
    t.type(b"exit\n")
    assert t.wait() == 0


def _readline(stream, timeout: float = 20) -> bytes:
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else b""


def test_attach_without_a_tty(dy):
    dy.out("run", "-d", "-i", "--name", "cat1", "busybox", "sh", "-c", "while read l; do echo got:$l; done; echo bye")
    # without a TTY the detach keys are plain bytes (as docker's); Ctrl-C with --sig-proxy=false leaves
    proc = subprocess.Popen(dy.argv("attach", "--sig-proxy=false", "cat1"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dy.env)
    try:
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        assert _readline(proc.stdout) == b"got:hello\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _status(dy, "cat1") == "running"
    # two clients at once: one watching (--no-stdin), one typing; output reaches both
    watch = subprocess.Popen(dy.argv("attach", "--no-stdin", "cat1"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dy.env)
    feed = subprocess.Popen(dy.argv("attach", "cat1"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dy.env)
    try:
        seen = b""
        for i in range(40):  # until the watcher is surely attached
            feed.stdin.write(b"again%d\n" % i)
            feed.stdin.flush()
            assert _readline(feed.stdout) == b"got:again%d\n" % i
            seen = _readline(watch.stdout, 0.5)
            if seen:
                break
        assert seen.startswith(b"got:again")
        feed.stdin.close()  # started with -d: no stdin once, the program keeps its stdin
        time.sleep(0.3)
        assert _status(dy, "cat1") == "running"
        dy("kill", "cat1", check=True)
        assert watch.wait(timeout=20) == 137 and feed.wait(timeout=20) == 137
    finally:
        for p in (watch, feed):
            if p.poll() is None:
                p.kill()
                p.wait()
    stopped = dy("attach", "cat1")
    assert stopped.returncode == 1 and "cannot attach to a stopped container" in stopped.stderr


def test_run_i_stdin_once_and_sig_proxy(dy):
    r = dy("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done >&2; exit 3", input="a\nb\n")
    assert (r.returncode, r.stdout, r.stderr) == (3, "a\nb\n", "done\n")
    assert dy("ps", "-aq").stdout == ""
    proc = subprocess.Popen(dy.argv("run", "-i", "--name", "trap", "busybox", "sh", "-c",
                                    "trap 'echo term; exit 9' TERM; echo ready; while true; do sleep 0.1; done"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dy.env)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.terminate()  # SIGTERM to the client goes to the container's init
        assert proc.wait(timeout=20) == 9
        assert proc.stdout.read() == b"term\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_start_a_i(dy, term):
    dy.out("create", "-it", "--name", "sh4", "busybox", "sh")
    t = term("start", "-a", "-i", "sh4")
    t.read_until(b"# ")
    t.type(b"echo started=$((3*3)); exit 4\n")
    t.read_until(b"started=9")
    assert t.wait() == 4
    # non-interactive: the output, and the exit code, of a stopped container started again
    dy.out("create", "--name", "out1", "busybox", "sh", "-c", "echo out; echo err >&2; exit 2")
    r = dy("start", "-a", "out1")
    assert (r.returncode, r.stdout, r.stderr) == (2, "out\n", "err\n")
    r = dy("start", "-a", "out1")
    assert (r.returncode, r.stdout) == (2, "out\n")
    assert leaks(dy.root, dy.inspect("out1")["Id"]) == []


def test_exec_it_follows_the_terminal_size(dy, term):
    dy.out("run", "-d", "--name", "ex1", "busybox", "sleep", "60")
    t = term("exec", "-it", "ex1", "sh", rows=22, cols=77)
    t.read_until(b"# ")
    t.type(b"stty size\n")
    t.read_until(b"22 77")
    t.resize(60, 200)
    for _ in range(50):
        t.type(b"stty size\n")
        if b"60 200" in t.read_until(b"# "):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the resize never reached the exec's pty")
    t.type(b"exit\n")
    assert t.wait() == 0


def test_run_without_sig_proxy_leaves_on_ctrl_c_and_attach_to_a_foreground_run(dy):
    proc = subprocess.Popen(dy.argv("run", "--sig-proxy=false", "--name", "bg1", "busybox", "sh", "-c",
                                    "echo ready; while true; do sleep 0.1; done"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dy.env)
    try:
        assert _readline(proc.stdout) == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _status(dy, "bg1") == "running"
    dy("rm", "-f", "bg1", check=True)
    # a plain `run` is its own monitor, and serves the attach socket too
    fg = subprocess.Popen(dy.argv("run", "--name", "fg1", "busybox", "sh", "-c",
                                  "i=0; while [ $i -lt 300 ]; do echo tick$i; i=$((i+1)); sleep 0.05; done"),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dy.env)
    try:
        assert _readline(fg.stdout).startswith(b"tick")
        watch = subprocess.run(dy.argv("attach", "--no-stdin", "fg1"), stdin=subprocess.DEVNULL,
                               capture_output=True, env=dy.env, timeout=40)
        assert watch.returncode == 0
        assert b"tick299\n" in watch.stdout
        assert fg.wait(timeout=20) == 0
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait()


def test_exec_it_detach_keys_leave_the_process_running(dy, term):
    dy.out("run", "-d", "--name", "ex2", "busybox", "sleep", "60")
    t = term("exec", "-it", "--detach-keys", "ctrl-e,e", "ex2", "sh", "-c", "echo marker-$((30+1)); exec sleep 56")
    t.read_until(b"marker-31")
    t.type(b"\x05e")
    assert t.wait() == 1  # docker exec's status for a detach, with its words
    assert b"read escape sequence" in t.seen
    assert "sleep 56" in dy.out("exec", "ex2", "ps", "-o", "args")
    dy("rm", "-f", "ex2", check=True)


def test_run_it_rm_detached_then_attached_goes_at_its_exit(dy, term):
    t = term("run", "-it", "--rm", "--name", "rm1", "busybox", "sh")
    t.read_until(b"# ")
    t.type(b"\x10\x11")
    assert t.wait() == 0
    a = term("attach", "rm1")
    a.wait_raw()
    a.type(b"exit 0\n")
    assert a.wait() == 0
    assert dy("ps", "-aq").stdout == ""  # removed before attach returned, as docker's wait
    assert leaks(dy.root) == []
