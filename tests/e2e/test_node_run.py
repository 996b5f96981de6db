"""`dockyard run` observed from inside the container, under the built-in runtime, runc and crun."""
from __future__ import annotations

import os
import re
import select
import subprocess
import time

import pytest

from node.engine import DEFAULT_NETWORK
from tests.e2e.node_run_support import CGROUP_PARENT, busybox_layer, dy, leaks, runtime  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.e2e]

ISOLATION_SCRIPT = r"""
echo "pid=$$"
echo "hostname=$(hostname)"
echo "id=$(id)"
echo "procs=$(ls /proc | grep -c '^[0-9]')"
mount | grep ' on / ' | sed 's/^/root=/'
grep CapEff /proc/self/status | sed 's/\t/ /'
grep CapBnd /proc/self/status | sed 's/\t/ /'
grep NoNewPrivs /proc/self/status | sed 's/\t/ /'
grep 'Seccomp:' /proc/self/status | sed 's/\t/ /'
(unshare -U true) 2>/dev/null && echo userns=allowed || echo userns=refused
grep pids /proc/self/cgroup | sed 's/^/cgroup=/'
(echo c > /proc/sysrq-trigger) 2>/dev/null && echo sysrq=writable || echo sysrq=refused
(touch /sys/dockyard-test) 2>/dev/null && echo sys=writable || echo sys=readonly
echo "timer_list=$(wc -c < /proc/timer_list)"
mount | grep -c ' on /proc/timer_list ' | sed 's/^/timer_list_masked=/'
mount | grep ' on /proc/sys ' | cut -d'(' -f2 | cut -d, -f1 | sed 's/^/proc_sys=/' 
ls /dev | tr '\n' ' ' | sed 's/^/dev=/'; echo
mount | grep -E ' on /(proc|dev|dev/pts|dev/shm|dev/mqueue|sys) ' | sed 's/^/m=/'
echo "netdevs=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ',')"
echo "etc_hostname=$(cat /etc/hostname)"
grep -c localhost /etc/hosts | sed 's/^/hosts_localhost=/'
"""


def _fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.setdefault(key, value) if key != "m" else out.setdefault("m", []).append(value)
    return out


def test_run_rm_echo(dy, runtime):
    r = dy("run", "--rm", "--runtime", runtime, "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    assert dy("ps", "-aq").stdout == ""
    assert leaks(dy.root) == []


def test_isolation_seen_from_inside(dy, runtime):
    r = dy("run", "--name", "iso", "--hostname", "box1", "--runtime", runtime, "busybox", "sh", "-c", ISOLATION_SCRIPT)
    assert r.returncode == 0, r.stderr
    f = _fields(r.stdout)
    cid = dy.inspect("iso")["Id"]
    assert f["pid"] == "1"                                 # the command is the init of a new PID namespace
    assert f["hostname"] == "box1" and f["etc_hostname"] == "box1"
    assert f["id"].startswith("uid=0(root) gid=0(root)")
    assert int(f["procs"]) <= 4                             # sh and its pipeline only, no host process
    assert "overlay on / type overlay" in f["root"] and str(dy.root) in f["root"]
    assert "CapEff: 00000000a80425fb" in r.stdout          # Docker's default capability set
    assert "CapBnd: 00000000a80425fb" in r.stdout
    assert "NoNewPrivs: 1" in r.stdout
    assert "Seccomp: 2" in r.stdout and f["userns"] == "refused"   # the default seccomp filter
    assert f["cgroup"].endswith(f"/{CGROUP_PARENT}/{cid}")
    assert f["sysrq"] == "refused" and f["sys"] == "readonly"
    assert f["timer_list"] == "0" and f["timer_list_masked"] == "1"   # masked with /dev/null
    assert f["proc_sys"] == "ro"
    for node in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx"):
        assert node in f["dev"].split(), node
    mounts = " | ".join(f["m"])
    assert re.search(r"proc on /proc type proc \([^)]*nosuid,nodev,noexec", mounts), mounts
    assert re.search(r"on /sys type sysfs \(ro,", mounts), mounts
    assert "devpts on /dev/pts type devpts" in mounts and "ptmxmode=666" in mounts
    # the default network: loopback only for "none", loopback + eth0 for a bridge
    assert f["netdevs"] == ("lo," if DEFAULT_NETWORK == "none" else "lo,eth0,")
    assert f["hosts_localhost"] != "0"


def test_precedence_user_env_workdir_entrypoint(dy, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\nOVERRIDE=file\n")
    r = dy("run", "--rm", "-u", "app", "-e", "OVERRIDE=flag", "--env-file", str(env_file), "-w", "/work/dir",
           "busybox", "sh", "-c", 'id; pwd; echo "$FROM_IMAGE $FROM_FILE $OVERRIDE $HOME $HOSTNAME"; grep CapEff /proc/self/status')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)" or \
        lines[0].startswith("uid=1000(app) gid=1000(app) groups=")
    assert "50(staff)" in lines[0]
    assert lines[1] == "/work/dir"
    assert lines[2].split()[:4] == ["yes", "1", "flag", "/home/app"]
    assert lines[3].split()[1] == "0000000000000000"         # non-root: no effective capabilities
    r = dy("run", "--rm", "-u", "1234:50", "busybox", "id")
    assert r.stdout.strip().startswith("uid=1234 gid=50(staff)"), r.stdout + r.stderr
    r = dy("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert r.stdout == "from entrypoint\n"
    r = dy("run", "--rm", "-u", "nosuchuser", "busybox", "true")
    assert r.returncode == 125 and "nosuchuser" in r.stderr


@pytest.mark.parametrize("command,code,message", [
    (["sh", "-c", "exit 3"], 3, None),
    (["no-such-program"], 127, "executable file"),
    (["/etc/not-executable"], 126, "permission denied"),
])
def test_exit_codes(dy, runtime, command, code, message):
    r = dy("run", "--rm", "--runtime", runtime, "busybox", *command)
    assert r.returncode == code, (r.stdout, r.stderr)
    if message:
        assert message in r.stderr.lower()
    assert dy("ps", "-aq").stdout == ""
    assert leaks(dy.root) == []


def test_agent_errors_exit_125(dy):
    assert dy("run", "--rm", "--memory", "lots", "busybox", "true").returncode == 125
    assert dy("run", "--rm", "--restart", "sometimes", "busybox", "true").returncode == 125
    dy("create", "--name", "taken", "busybox", check=True)
    r = dy("run", "--name", "taken", "busybox", "true")
    assert r.returncode == 125 and "already in use" in r.stderr


def test_failed_start_cleans_up_and_says_why(dy, runtime):
    r = dy("run", "--name", "broken", "--runtime", runtime, "busybox", "no-such-program")
    assert r.returncode == 127 and "no-such-program" in r.stderr
    state = dy.inspect("broken")["State"]
    assert state["Running"] is False and state["ExitCode"] == 127 and "no-such-program" in state["Error"]
    assert leaks(dy.root, dy.inspect("broken")["Id"]) == []


def test_read_only_tmpfs_and_volumes(dy, tmp_path):
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "greeting").write_text("hello from host\n")
    script = ("touch /rootfile 2>/dev/null && echo root=rw || echo root=ro; "
              "touch /scratch/x && echo tmpfs=rw; mount | grep ' /scratch ' | cut -d' ' -f5; "
              "cat /host/greeting; touch /host/new 2>/dev/null && echo host=rw || echo host=ro; "
              "echo persisted > /named/file; cat /seeded/from-image.txt")
    r = dy("run", "--rm", "--read-only", "--tmpfs", "/scratch", "-v", f"{host}:/host:ro", "-v", "data:/named",
           "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["root=ro", "tmpfs=rw", "tmpfs", "hello from host", "host=ro", "seed"]
    # the named volume outlives the container; the anonymous one (image VOLUME) went with --rm
    assert dy("run", "--rm", "-v", "data:/named", "busybox", "cat", "/named/file").stdout == "persisted\n"
    assert dy("volume", "ls", "-q").stdout.split() == ["data"]
    assert dy("volume", "rm", "data").returncode == 0
    # writes never reach the image
    dy("run", "--rm", "busybox", "sh", "-c", "echo x > /bin/written", check=True)
    assert not (dy.layer / "bin" / "written").exists()


def _read_until(fd: int, token: bytes, timeout: float = 15) -> bytes:
    buf, end = b"", time.monotonic() + timeout
    while time.monotonic() < end and token not in buf:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            buf += data
    return buf


def test_interactive_shell_through_a_pty(dy, runtime):
    master, slave = os.openpty()
    proc = subprocess.Popen(dy.argv("run", "--rm", "-it", "--runtime", runtime, "busybox", "sh"),
                            stdin=slave, stdout=slave, stderr=slave, env=dy.env, start_new_session=True)
    os.close(slave)
    try:
        assert b"# " in _read_until(master, b"# ")
        os.write(master, b"echo sum=$((40+2)); tty; exit 5\n")
        out = _read_until(master, b"/dev/")
        assert b"sum=42" in out
        assert re.search(rb"/dev/(pts/\d+|console)", out)
        assert proc.wait(timeout=20) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_stdin_with_i(dy):
    r = dy("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z", input="piped text\n")
    assert r.stdout == "PIPED TEXT\n"


def test_seccomp_unconfined(dy, runtime):
    r = dy("run", "--rm", "--runtime", runtime, "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
           "grep 'Seccomp:' /proc/self/status; unshare -U true && echo userns=allowed")
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t0" in r.stdout and "userns=allowed" in r.stdout


def test_exec_with_a_pty(dy, runtime):
    dy.out("run", "-d", "--name", "box", "--runtime", runtime, "busybox", "sleep", "60")
    master, slave = os.openpty()
    proc = subprocess.Popen(dy.argv("exec", "-it", "box", "sh"), stdin=slave, stdout=slave, stderr=slave,
                            env=dy.env, start_new_session=True)
    os.close(slave)
    try:
        assert b"# " in _read_until(master, b"# ")
        os.write(master, b"echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); tty; exit 3\n")
        out = _read_until(master, b"/dev/")
        assert b"pid1=sleep 60" in out
        assert proc.wait(timeout=20) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_inherited_fds_do_not_reach_the_container(dy, runtime):
    r_fd, w_fd = os.pipe()
    os.set_inheritable(w_fd, True)
    try:
        out = subprocess.run(dy.argv("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "ls /proc/1/fd; true"),
                             pass_fds=(w_fd,), capture_output=True, text=True, env=dy.env, timeout=60)
    finally:
        os.close(r_fd)
        os.close(w_fd)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1", "2"]


def test_umask_is_0022_whatever_the_callers(dy, runtime):
    # docker and runc start the process with umask 0022, not with the CLI caller's
    old = os.umask(0o077)
    try:
        r = dy("run", "--rm", "--network", "none", "--runtime", runtime, "busybox", "sh", "-c", "umask")
    finally:
        os.umask(old)
    assert (r.returncode, r.stdout.strip()) == (0, "0022"), r.stderr


def test_detached_start_failure_says_why(dy, runtime):
    """A detached start goes through the slim monitor (node/engine/shim.py), which reads the
    runtime's own error (runc/crun: their JSON log, node/runtime/ocilog.py)."""
    r = dy("run", "-d", "--name", "broken-d", "--runtime", runtime, "busybox", "no-such-program")
    assert r.returncode == 127 and "no-such-program" in r.stderr, (r.stdout, r.stderr)
    state = dy.inspect("broken-d")["State"]
    assert state["Running"] is False and state["ExitCode"] == 127 and "no-such-program" in state["Error"]


def test_inspect_format_is_a_go_template(dy):
    dy("run", "-d", "--name", "fmt", "--label", "tier=web", "busybox", "sleep", "30", check=True)
    try:
        out = dy.out("inspect", "--format",
                     '{{.Name}} {{.State.Status}} {{.State.Running}} {{json .Config.Cmd}} {{index .Config.Labels "tier"}}',
                     "fmt")
        assert out == '/fmt running true ["sleep","30"] web\n'
        r = dy("inspect", "--format", "{{.NoSuchField}}", "fmt")
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "NoSuchField" in r.stderr
    finally:
        dy("rm", "-f", "fmt")
