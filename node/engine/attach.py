"""The attach socket: how clients reach a running container's stdio through its monitor.

The monitor holds the container's streams (the pty master, or the pipes) and the json-file
log; to attach later (`dockyard attach`, the engine API's attach and resize, `start -a`) a
client connects to ROOT/containers/<id>/attach.sock, a unix socket (mode 0600, in the state
directory, which nothing inside the container can reach) that the monitor serves for one life
of the init: bound before the state says running, removed at the exit. Several clients may be
attached at once: output goes to the log and to every client that asked for that stream, and
stdin from any of them goes to the container.

`run -i`/`-it` (and the API's `docker run -i`) do not wait for the socket: the agent makes a
socketpair before it forks the detached monitor, which takes one end as a client attached from
the first byte (nothing the program writes at start is missed). Detaching is closing that end:
the container keeps running under its monitor.

Wire format: frames in docker's stream-header shape, [kind, 0, 0, 0, length as uint32 big
endian] then `length` bytes.
  client -> monitor   HELLO (first, JSON {"stdin", "stdout", "stderr"}: what it attaches; the
                      pre-connected `run` client skips it and gets all three), STDIN (bytes for
                      the container), CLOSE_STDIN (the client's stdin ended: the container's
                      stdin is closed if the container was created with stdin once, as docker's
                      StdinOnce), RESIZE (JSON [rows, cols]: TIOCSWINSZ on the pty).
  monitor -> client   STDOUT, STDERR (with a TTY everything is STDOUT), EXIT (the exit code as
                      ASCII, sent when the init has been reaped), then EOF.
The monitor never blocks on a client: each has an output buffer, and one that falls MAX_BUFFER
behind is dropped (the log still has everything).
"""
from __future__ import annotations

import errno
import os
import struct

# The monitor's side uses the C socket type (_socket): socket.py brings enum and selectors,
# 0.9 MiB of every running container's monitor (node/engine/shim.py). Clients (`connect`) get
# a full socket.socket.
import _socket

STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN, RESIZE, HELLO = 0, 1, 2, 3, 4, 5, 6
STREAM_KIND = {"stdout": STDOUT, "stderr": STDERR}
HEADER = struct.Struct(">BxxxL")
SOCKET_NAME = "attach.sock"
MAX_BUFFER = 8 << 20
MAX_FRAME = 1 << 20


def encode(kind: int, data: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(data)) + data


class FrameReader:
    """Splits a byte stream into (kind, payload) frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise ValueError("attach frame too large")
            if len(self._buf) < HEADER.size + size:
                break
            frames.append((kind, bytes(self._buf[HEADER.size:HEADER.size + size])))
            del self._buf[:HEADER.size + size]
        return frames


def _short_path(directory) -> tuple[int, str]:
    """A unix socket path is at most 107 bytes and a root's container directory can be longer:
    go through /proc/self/fd/N of the directory, opened O_PATH (the caller closes N)."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{SOCKET_NAME}"


def connect(directory, hello: dict | None) -> socket.socket:
    """A client's connection to a running container's monitor (ConnectionError if none listens)."""
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        dfd, path = _short_path(directory)
    except FileNotFoundError:
        sock.close()
        raise ConnectionRefusedError("no such container directory") from None
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise ConnectionRefusedError(str(e)) from None
    finally:
        os.close(dfd)
    if hello is not None:
        import json  # here, not at the top: the monitor (node/engine/shim.py) stays without json
        sock.sendall(encode(HELLO, json.dumps(hello).encode()))
    if hello is None or any(hello.values()):  # a resize attaches to nothing: no event
        _attach_event(directory)
    return sock


def _attach_event(directory) -> None:
    from pathlib import Path
    from node.engine import events
    from node.engine.records import Container
    d = Path(directory)
    events.container_event(Container(d.parent.parent, d.name), "attach")


def resize(directory, rows: int, cols: int) -> None:
    sock = connect(directory, {"stdin": False, "stdout": False, "stderr": False})
    try:
        import json
        sock.sendall(encode(RESIZE, json.dumps([int(rows), int(cols)]).encode()))
    finally:
        sock.close()


def set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class _Client:
    def __init__(self, sock: _socket.socket, greeted: bool, stdin: bool) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.frames = FrameReader()
        self.greeted = greeted
        self.wants = {STDOUT, STDERR} if greeted else set()
        self.stdin = stdin
        self.out = bytearray()


class AttachHub:
    """The monitor's side: the listening socket and its clients, driven by Stdio's select loop
    (read_fds / write_fds / readable / writable), never blocking it."""

    def __init__(self, directory, tty: bool, stdin_fd: int | None, stdin_once: bool,
                 pty_master: int | None = None, first_clients=()) -> None:
        self.directory = directory
        self.tty = tty
        self.stdin_fd = stdin_fd  # the pty master or the stdin pipe's write end (None: no stdin)
        self.pty_master = pty_master  # what a resize applies to
        self.stdin_once = stdin_once
        self.stdin_pending = bytearray()
        self.close_stdin_after = False
        self.listener: _socket.socket | None = None
        self.clients: dict[int, _Client] = {}
        for fd in first_clients:
            client = _Client(_socket.socket(fileno=fd), greeted=True, stdin=stdin_fd is not None)
            self.clients[client.sock.fileno()] = client
        if stdin_fd is not None:
            os.set_blocking(stdin_fd, False)
        if pty_master is not None:
            os.set_blocking(pty_master, False)

    def listen(self) -> None:
        dfd, path = _short_path(self.directory)
        try:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            old = os.umask(0o077)
            try:
                sock.bind(path)
            finally:
                os.umask(old)
            sock.listen(16)
            sock.setblocking(False)
            self.listener = sock
        finally:
            os.close(dfd)

    # -- the select loop's view -----------------------------------------------------------

    def read_fds(self) -> list[int]:
        fds = [self.listener.fileno()] if self.listener is not None else []
        if len(self.stdin_pending) < MAX_BUFFER:  # back-pressure: a program not reading stdin
            fds += list(self.clients)
        return fds

    def write_fds(self) -> list[int]:
        fds = [fd for fd, c in self.clients.items() if c.out]
        if self.stdin_pending and self.stdin_fd is not None:
            fds.append(self.stdin_fd)
        return fds

    def readable(self, fd: int) -> bool:
        """Handle fd if it is ours; False if it is not (the caller's own streams)."""
        if self.listener is not None and fd == self.listener.fileno():
            self._accept()
            return True
        client = self.clients.get(fd)
        if client is None:
            return False
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return True
        try:
            frames = client.frames.feed(data)
        except ValueError:
            self._drop(fd)
            return True
        for kind, payload in frames:
            self._on_frame(client, kind, payload)
        return True

    def writable(self, fd: int) -> bool:
        if fd == self.stdin_fd and self.stdin_pending and fd not in self.clients:
            self._flush_stdin()
            return True
        client = self.clients.get(fd)
        if client is None:
            return False
        try:
            sent = client.sock.send(client.out)
            del client.out[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(fd)
        return True

    def output(self, stream: str, data: bytes) -> None:
        kind = STDOUT if self.tty else STREAM_KIND.get(stream, STDOUT)
        frame = None
        for fd, client in list(self.clients.items()):
            if kind not in client.wants:
                continue
            frame = frame or encode(kind, data)
            if len(client.out) + len(frame) > MAX_BUFFER:
                self._drop(fd)  # too slow a reader must not stall the container
                continue
            if not client.out:  # try at once: most writes go through without another select
                try:
                    sent = client.sock.send(frame)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self._drop(fd)
                    continue
                client.out += frame[sent:]
            else:
                client.out += frame

    def feed_stdin(self, data: bytes) -> None:
        if self.stdin_fd is None:
            return
        self.stdin_pending += data
        self._flush_stdin()

    # -- inside --------------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            fd, _ = self.listener._accept()  # accept4(SOCK_CLOEXEC), as socket.accept does
            sock = _socket.socket(fileno=fd)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        client = _Client(sock, greeted=False, stdin=False)
        self.clients[sock.fileno()] = client

    def _on_frame(self, client: _Client, kind: int, payload: bytes) -> None:
        import json  # a client's first frame, not every monitor's start-up
        if kind == HELLO and not client.greeted:
            try:
                hello = json.loads(payload)
            except ValueError:
                hello = {}
            client.greeted = True
            client.wants = {k for name, k in STREAM_KIND.items() if hello.get(name)}
            client.stdin = bool(hello.get("stdin")) and self.stdin_fd is not None
        elif kind == STDIN and client.stdin:
            self.feed_stdin(payload)
        elif kind == CLOSE_STDIN and client.stdin:
            client.stdin = False
            if self.stdin_once and not self.tty:
                self.close_stdin_after = True
                self._flush_stdin()
        elif kind == RESIZE and self.pty_master is not None:
            try:
                rows, cols = json.loads(payload)
                set_winsize(self.pty_master, int(rows), int(cols))
            except (ValueError, TypeError, OSError, struct.error):
                pass

    def _flush_stdin(self) -> None:
        while self.stdin_pending:
            try:
                n = os.write(self.stdin_fd, self.stdin_pending[:65536])
            except BlockingIOError:
                return
            except OSError as e:  # the program closed its stdin
                if e.errno not in (errno.EPIPE, errno.EIO, errno.EBADF):
                    raise
                self.stdin_pending.clear()
                break
            del self.stdin_pending[:n]
        if self.close_stdin_after and not self.tty and self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def _drop(self, fd: int) -> None:
        client = self.clients.pop(fd, None)
        if client is not None:
            client.sock.close()

    def stop_listening(self) -> None:
        if self.listener is None:
            return
        self.listener.close()
        self.listener = None
        try:
            dfd, path = _short_path(self.directory)
        except OSError:
            return
        try:
            os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def close(self, exit_code: int | None) -> None:
        """The init is gone: what each client still has to read, its exit code, then EOF."""
        self.stop_listening()
        for fd, client in list(self.clients.items()):
            try:
                client.sock.setblocking(True)
                client.sock.settimeout(2)
                data = bytes(client.out) + (encode(EXIT, str(exit_code).encode()) if exit_code is not None else b"")
                client.sock.sendall(data)
            except OSError:
                pass
            self._drop(fd)

    def handover(self) -> str:
        """The hub as one argv word, for a monitor that execs a program of its own after the
        create (no output has flowed yet): the fds it names are made inheritable."""
        fds = [fd for fd in (self.listener.fileno() if self.listener else None, self.stdin_fd, self.pty_master)
               if fd is not None] + list(self.clients)
        for fd in fds:
            os.set_inheritable(fd, True)
        clients = ".".join(f"{fd}:{int(c.greeted)}:{''.join(str(k) for k in sorted(c.wants))}:{int(c.stdin)}"
                           for fd, c in self.clients.items())
        listener = self.listener.fileno() if self.listener else ""
        return ",".join(str(v) for v in (listener, "" if self.stdin_fd is None else self.stdin_fd,
                                         "" if self.pty_master is None else self.pty_master,
                                         int(self.tty), int(self.stdin_once), clients))

    @classmethod
    def resume(cls, directory, word: str) -> "AttachHub":
        """The hub ``handover`` described, in the exec'd program."""
        listener, stdin_fd, pty_master, tty, once, clients = word.split(",")
        hub = cls(directory, tty == "1", int(stdin_fd) if stdin_fd else None, once == "1",
                  pty_master=int(pty_master) if pty_master else None)
        if listener:
            hub.listener = _socket.socket(fileno=int(listener))
            os.set_inheritable(hub.listener.fileno(), False)
        for item in filter(None, clients.split(".")):
            fd, greeted, wants, stdin = item.split(":")
            client = _Client(_socket.socket(fileno=int(fd)), greeted == "1", stdin == "1")
            client.wants = {int(k) for k in wants}
            hub.clients[client.sock.fileno()] = client
        for fd in [*hub.clients, hub.stdin_fd, hub.pty_master]:
            if fd is not None:
                os.set_inheritable(fd, False)
        return hub

    @property
    def stdin_owned(self) -> bool:
        """Whether the hub closed the container's stdin (Stdio must not close it again)."""
        return self.stdin_fd is None
