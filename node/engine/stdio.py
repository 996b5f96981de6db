"""The container's standard streams for one run of its init, as the monitor carries them: pipes
(or the pty the runtime made) to the json-file log, and to the agent's own terminal when
attached. One select loop, no threads: `threading` alone costs `run` milliseconds of start-up."""
from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (re, and 1 ms)
if TYPE_CHECKING:  # the detached monitor's resident half (shim.py) imports this module: keep it lean
    from node.engine.logs import LogWriter
    from node.engine.records import Container


class Stdio:
    """Made before create (the container's ends go to the runtime), closed after the exit."""

    def __init__(self, container: Container, attach: bool) -> None:
        self.tty = container.config.tty
        self.interactive = container.config.open_stdin
        self.attach = attach
        self.to_close: list[int] = []
        self.readers: dict[int, str] = {}
        self.stdin_writer: int | None = None
        self.forward_stdin_to: int | None = None
        self.container_fds = None
        self.saved_tty = None
        if self.tty:
            return  # the runtime makes the pty; its master comes back from create
        if attach and self.interactive:
            stdin = 0
        elif self.interactive:
            stdin, self.stdin_writer = os.pipe()  # held open: the program sees no EOF while detached
            self.to_close.append(stdin)
        else:
            stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self.to_close.append(stdin)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.to_close += [out_w, err_w]
        self.readers = {out_r: "stdout", err_r: "stderr"}
        self.container_fds = (stdin, out_w, err_w)

    def created(self, console_master: int | None) -> None:
        for fd in self.to_close:
            os.close(fd)
        self.to_close = []
        if self.tty and console_master is not None:
            self.readers = {console_master: "stdout"}
            if self.attach:
                self._bridge_terminal(console_master)

    def _bridge_terminal(self, master: int) -> None:
        import termios
        import tty
        if os.isatty(0):
            self._copy_winsize(master)
            import signal  # here: the detached monitor (shim.py) never bridges a terminal
            signal.signal(signal.SIGWINCH, lambda *_: self._copy_winsize(master))
            self.saved_tty = termios.tcgetattr(0)
            tty.setraw(0)
        if self.interactive:
            self.forward_stdin_to = master

    @staticmethod
    def _copy_winsize(master: int) -> None:
        import fcntl
        import termios
        try:
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        except OSError:
            pass

    def handover(self) -> str:
        """This object's state as one argv word, for the exec of the detached monitor's resident
        half (node/engine/shim.py): the fds it names are made inheritable, the rest stays
        close-on-exec. Only for a detached run after ``created`` (no terminal of ours to bridge)."""
        fds = list(self.readers) + ([self.stdin_writer] if self.stdin_writer is not None else [])
        for fd in fds:
            os.set_inheritable(fd, True)
        readers = ",".join(f"{fd}:{stream}" for fd, stream in self.readers.items())
        return f"{readers};{'' if self.stdin_writer is None else self.stdin_writer}"

    @classmethod
    def resume(cls, word: str) -> "Stdio":
        """The object ``handover`` described, in the exec'd program."""
        readers, _, stdin_writer = word.partition(";")
        self = cls.__new__(cls)
        self.tty = self.interactive = self.attach = False
        self.to_close, self.container_fds, self.saved_tty, self.forward_stdin_to = [], None, None, None
        self.readers = {int(fd): stream for fd, _, stream in (r.partition(":") for r in readers.split(",") if r)}
        self.stdin_writer = int(stdin_writer) if stdin_writer else None
        return self

    def carry(self, log: LogWriter) -> None:
        """Copy output to the log (and our own stdout/stderr when attached) until every stream
        is closed, which happens at the latest when the init dies: its PID namespace goes with it."""
        import select
        echo = {"stdout": 1, "stderr": 2} if self.attach else {}
        readers = dict(self.readers)
        stdin_open = self.forward_stdin_to is not None
        while readers:
            watch = list(readers) + ([0] if stdin_open else [])
            ready, _, _ = select.select(watch, [], [])
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the pty's last slave is closed
                    data = b""
                if fd == 0 and fd not in readers:
                    if not data:
                        stdin_open = False
                    else:
                        write_all(self.forward_stdin_to, data)
                    continue
                if not data:
                    del readers[fd]
                    continue
                stream = readers[fd]
                log.write(stream, data)
                if stream in echo:
                    try:
                        write_all(echo[stream], data)
                    except OSError:
                        echo.pop(stream)

    def finish(self) -> None:
        if self.saved_tty is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)
            self.saved_tty = None
        if self.stdin_writer is not None:
            os.close(self.stdin_writer)
            self.stdin_writer = None
        for fd in self.readers:
            try:
                os.close(fd)
            except OSError:
                pass
        self.readers = {}


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
