"""Detach and attach, driven through a real pty as a user's terminal would: `run -it` then
Ctrl-P Ctrl-Q leaves the container running, `attach` gets the shell back, the exit status is
the container's; --detach-keys and config.json's detachKeys; attach without a TTY; start -a -i."""
from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import termios
import time

import pytest

from tests.e2e.node_run_support import busybox_layer, dy, leaks  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.e2e]


class Terminal:
    """A dockyard command on the slave side of a fresh pty; we type and read on the master."""

    def __init__(self, dy, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(dy.argv(*args), stdin=slave, stdout=slave, stderr=slave, env=dy.env,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_until(self, token: bytes, timeout: float = 20) -> bytes:
        end = time.monotonic() + timeout
        while time.monotonic() < end and token not in self.seen:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    break
                if not data:
                    break
                self.seen += data
        assert token in self.seen, f"{token!r} not in {self.seen!r}"
        before, _, self.seen = self.seen.partition(token)
        return before + token

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.killpg(self.proc.pid, 28)  # SIGWINCH, as the kernel sends the foreground group

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout=timeout)
        try:
            while select.select([self.master], [], [], 0.1)[0]:
                data = os.read(self.master, 4096)
                if not data:
                    break
                self.seen += data
        except OSError:
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def term(dy):
    opened = []

    def open_terminal(*args, **kw):
        t = Terminal(dy, *args, **kw)
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
    time.sleep(0.3)
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
    time.sleep(0.3)
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
    time.sleep(0.3)
    t.type(b"stty size\n")
    t.read_until(b"41 132")
    t.type(b"exit\n")
    assert t.wait() == 0


def test_attach_without_a_tty(dy):
    dy.out("run", "-d", "-i", "--name", "cat1", "busybox", "sh", "-c", "while read l; do echo got:$l; done; echo bye")
    proc = subprocess.Popen(dy.argv("attach", "cat1"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dy.env)
    try:
        time.sleep(0.5)
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line == b"got:hello\n"
        # Ctrl-P Ctrl-Q on a plain stdin detaches too
        proc.stdin.write(b"\x10\x11")
        proc.stdin.flush()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _status(dy, "cat1") == "running"
    # --no-stdin: output only; the container started with -d keeps its stdin when we leave
    watch = subprocess.Popen(dy.argv("attach", "--no-stdin", "cat1"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dy.env)
    try:
        time.sleep(0.5)
        feed = subprocess.run(dy.argv("attach", "cat1"), input=b"again\n\x10\x11", capture_output=True,
                              env=dy.env, timeout=20)
        assert feed.returncode == 0
        assert _status(dy, "cat1") == "running"
        dy("kill", "cat1", check=True)
        out, _ = watch.communicate(timeout=20)
        assert b"got:again\n" in out
        assert watch.returncode == 137
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
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
