"""A terminal for e2e tests: a command on a fresh pty, typed into and read from the master side
(what a user's terminal emulator does), with resizes delivered as SIGWINCH."""
from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time


class Terminal:
    """A command on the slave side of a fresh pty; we type and read on the master."""

    def __init__(self, argv: list[str], env: dict, rows: int = 24, cols: int = 80) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
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

    def wait_raw(self, timeout: float = 20) -> None:
        """Until the program has put the terminal in raw mode (an attach client is connected
        by then): what is typed before would go through the line discipline's echo."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not termios.tcgetattr(self.master)[3] & termios.ICANON:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.wait(timeout=1) if self.proc.poll() is not None else None
        raise AssertionError(f"the terminal never went raw (exit {self.proc.poll()}): {self.seen!r}")

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.killpg(self.proc.pid, signal.SIGWINCH)  # as the kernel tells the foreground group

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
