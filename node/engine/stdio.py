"""The container's standard streams for one run of its init, as the monitor carries them: pipes
(or the pty the runtime made) to the json-file log, to the clients of the attach socket
(node/engine/attach.py: `attach`, `run -i`, the engine API) and to the agent's own terminal
when the agent itself is the monitor. One select loop, no threads: `threading` alone costs
`run` milliseconds of start-up."""
from __future__ import annotations

import os

from node.engine.attach import AttachHub

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (re, and 1 ms)
if TYPE_CHECKING:  # the detached monitor's resident half (shim.py) imports this module: keep it lean
    from node.engine.logs import LogWriter
    from node.engine.records import Container


class Stdio:
    """Made before create (the container's ends go to the runtime), closed after the exit."""

    def __init__(self, container: Container, attach: bool, first_clients=()) -> None:
        self.container = container
        self.first_clients = list(first_clients)  # sockets attached before the start (`run -i`)
        self.hub: AttachHub | None = None
        self.exit_code: int | None = None  # set by the monitor once the init is reaped
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
        if self.hub is not None:
            return  # called again on a failed start
        master = console_master if self.tty else None
        if master is not None:
            self.readers = {master: "stdout"}
        stdin = master if self.tty and self.interactive else self.stdin_writer
        self.hub = AttachHub(self.container.dir, self.tty, stdin, bool(self.container.config.attach_stdin),
                             pty_master=master, first_clients=self.first_clients)
        self.first_clients = []
        self.hub.listen()
        if master is not None and self.attach:
            self._bridge_terminal(master)

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
        half (node/engine/shim.py), after ``created``: the fds it names (and the attach hub's)
        are made inheritable, the rest stays close-on-exec. No terminal of ours is bridged in a
        detached monitor, so there is none to hand over."""
        for fd in list(self.readers) + ([self.stdin_writer] if self.stdin_writer is not None else []):
            os.set_inheritable(fd, True)
        readers = ",".join(f"{fd}:{stream}" for fd, stream in self.readers.items())
        stdin = "" if self.stdin_writer is None else self.stdin_writer
        hub = self.hub.handover() if self.hub is not None else ""
        return f"{readers};{stdin};{int(bool(self.tty))};{hub}"

    @classmethod
    def resume(cls, word: str, directory: str) -> "Stdio":
        """The object ``handover`` described, in the exec'd program (``directory``: the
        container's record directory, where the attach socket lives)."""
        readers, stdin_writer, tty, hub = word.split(";", 3)
        self = cls.__new__(cls)
        self.container, self.first_clients, self.exit_code = None, [], None
        self.tty, self.interactive, self.attach = tty == "1", False, False
        self.to_close, self.container_fds, self.saved_tty, self.forward_stdin_to = [], None, None, None
        self.readers = {int(fd): stream for fd, _, stream in (r.partition(":") for r in readers.split(",") if r)}
        self.stdin_writer = int(stdin_writer) if stdin_writer else None
        for fd in list(self.readers) + ([self.stdin_writer] if self.stdin_writer is not None else []):
            os.set_inheritable(fd, False)
        self.hub = AttachHub.resume(directory, hub) if hub else None
        return self

    def carry(self, log: LogWriter) -> None:
        """Copy output to the log (and our own stdout/stderr when attached) until every stream
        is closed, which happens at the latest when the init dies: its PID namespace goes with it."""
        import select
        echo = {"stdout": 1, "stderr": 2} if self.attach else {}
        readers = dict(self.readers)
        stdin_open = self.forward_stdin_to is not None
        hub = self.hub
        while readers:
            watch = list(readers) + ([0] if stdin_open else []) + hub.read_fds()
            ready, writable, _ = select.select(watch, hub.write_fds(), [])
            for fd in writable:
                hub.writable(fd)
            for fd in ready:
                if fd not in readers and fd != 0:
                    hub.readable(fd)  # the hub's (or a client it dropped earlier in this round)
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the pty's last slave is closed
                    data = b""
                if fd == 0 and fd not in readers:
                    if not data:
                        stdin_open = False
                    else:
                        hub.feed_stdin(data)
                    continue
                if not data:
                    del readers[fd]
                    continue
                stream = readers[fd]
                log.write(stream, data)
                hub.output(stream, data)
                if stream in echo:
                    try:
                        write_all(echo[stream], data)
                    except OSError:
                        echo.pop(stream)

    def finish(self) -> None:
        if self.hub is not None:
            self.hub.close(self.exit_code)
            if self.hub.stdin_owned and not self.tty:
                self.stdin_writer = None  # the hub closed it (stdin once)
        else:
            for fd in self.first_clients:
                os.close(fd)
            self.first_clients = []
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
