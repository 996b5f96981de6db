"""runc and crun, driven through their OCI command lines (create --pid-file [--console-socket] /
start / delete --force), with their state under ROOT/runtime/<name>; the same create/delete
shape as node.runtime.builtin, so node/engine/runtimes.py wraps both alike. The caller is a child subreaper, so the container init that
`runc create` leaves behind is re-parented to it and its exit status can be reaped.

Debian's crun 1.8 rejects a hybrid cgroup layout (v1 controllers plus a cgroup2 mount at
/sys/fs/cgroup/unified); it runs in a private mount namespace in which that mount is gone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from node.runtime import RuntimeError_
from node.runtime.ocilog import last_error


class _OciHandle:
    def __init__(self, runtime: "OciCliRuntime", container_id: str, pid: int, console_master: int | None) -> None:
        self.runtime = runtime
        self.container_id = container_id
        self.pid = pid
        self.console_master = console_master

    def start(self) -> None:
        self.runtime._call(["start", self.container_id], "start")

    def handover(self) -> list[str]:
        """How node/engine/shim.py starts this init after an exec: the `start` command line."""
        return ["argv", *self.runtime._argv(["start", self.container_id])]


def _hybrid_cgroups() -> bool:
    return os.path.ismount("/sys/fs/cgroup/unified") and os.path.isdir("/sys/fs/cgroup/memory")


class OciCliRuntime:
    def __init__(self, name: str, state_root: Path) -> None:
        import shutil
        binary = shutil.which(name)
        if binary is None:
            raise RuntimeError_(f"runtime {name} is not installed", 125)
        self.name = name
        self.binary = binary
        self.state_root = state_root
        self.log = state_root / "runtime.log"
        state_root.mkdir(parents=True, exist_ok=True)

    def _argv(self, args: list[str]) -> list[str]:
        argv = [self.binary, "--root", str(self.state_root), "--log", str(self.log), "--log-format", "json"] + args
        if self.name == "crun" and _hybrid_cgroups():
            script = 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"'
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + argv
        return argv

    def _last_error(self, since: int) -> str:
        return last_error(str(self.log), since)

    def _log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def _call(self, args: list[str], what: str, **kwargs) -> None:
        import subprocess
        mark = self._log_size()
        result = subprocess.run(self._argv(args), capture_output=True, **kwargs)
        if result.returncode != 0:
            message = self._last_error(mark) or result.stderr.decode(errors="replace").strip()
            raise RuntimeError_(f"{self.name} {what}: {message}", 125)

    def create(self, container_id: str, bundle: str, stdio) -> _OciHandle:
        import shutil
        import socket
        import subprocess
        import tempfile
        with open(os.path.join(bundle, "config.json")) as f:
            terminal = bool((json.load(f).get("process") or {}).get("terminal"))
        pid_file = os.path.join(bundle, "init.pid")
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        sock_dir = listener = None
        if terminal:
            sock_dir = tempfile.mkdtemp(prefix="dockyard-console-")  # sun_path is 108 bytes: stay short
            sock_path = os.path.join(sock_dir, "sock")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(sock_path)
            listener.listen(1)
            args += ["--console-socket", sock_path]
        args.append(container_id)
        mark = self._log_size()
        if stdio is None:
            stdio = (subprocess.DEVNULL,) * 3
        master = None
        try:
            proc = subprocess.Popen(self._argv(args), stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])
            if listener is not None:
                master = self._receive_console(listener, proc)
            code = proc.wait()
        finally:
            if listener is not None:
                listener.close()
                shutil.rmtree(sock_dir, ignore_errors=True)
        if code != 0:
            if master is not None:
                os.close(master)
            message = self._last_error(mark) or f"exit status {code}"
            self.delete(container_id, bundle)
            raise RuntimeError_(message, exit_code_for(message))
        with open(pid_file) as f:
            pid = int(f.read().strip())
        return _OciHandle(self, container_id, pid, master)

    @staticmethod
    def _receive_console(listener, proc) -> int | None:
        import array
        import socket
        import time
        listener.settimeout(0.05)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                if proc.poll() is not None:
                    return None
                continue
            with conn:
                conn.settimeout(10)
                fds = array.array("i")
                _msg, ancdata, _flags, _addr = conn.recvmsg(4096, socket.CMSG_LEN(fds.itemsize))
                for level, kind, data in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(data[:fds.itemsize])
                        return fds[0]
            return None
        return None

    def delete(self, container_id: str, bundle: str) -> None:
        import subprocess
        subprocess.run(self._argv(["delete", "--force", container_id]), capture_output=True)


def exit_code_for(message: str) -> int:
    lowered = message.lower()
    if ("not found" in lowered and ("executable" in lowered or "$path" in lowered)) or \
            ("no such file or directory" in lowered and "exec" in lowered):
        return 127
    if "permission denied" in lowered and "exec" in lowered:
        return 126
    return 125
