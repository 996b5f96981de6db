"""`attach`, `start -a [-i]`, and the interactive `run -i`/`-it`: the CLI as a client of the
container's attach socket (node/engine/attach.py).

`run -i` forks a detached monitor with one end of a socketpair as its first client and bridges
the terminal to the other end, so Ctrl-P Ctrl-Q (or --detach-keys, or config.json's
detachKeys) can leave the container running: the client closes its end, prints docker's `read
escape sequence` and exits 0. `attach` connects to the running container's socket; `start -a`
pre-connects like `run`. With a TTY the terminal is raw and SIGWINCH becomes a resize; without
one, --sig-proxy (the default) passes SIGINT, SIGTERM... to the container's init.

The command and the flags are registered by node/cli/attachflags.py, which imports this module
only when one of them runs.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time

from node.cli.common import CliError
from node.engine import attach as proto
from node.engine import detachkeys

PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
DETACHED = object()
INTERRUPTED = object()


def _bool(text: str) -> bool:
    value = str(text).lower()
    if value in ("1", "t", "true", "yes"):
        return True
    if value in ("0", "f", "false", "no"):
        return False
    raise CliError(f'invalid boolean value "{text}"', 125)


def cmd_attach(args) -> int:
    from node.engine.records import find
    from node.engine.status import current_state
    container = find(args.root, args.container)
    keys = detachkeys.resolve(args.detach_keys)
    status = current_state(container).get("Status")
    if status == "paused":
        raise CliError("You cannot attach to a paused container, unpause it first", 1)
    if status not in ("running", "restarting"):
        raise CliError("You cannot attach to a stopped container, start it first", 1)
    config = container.config
    stdin = bool(config.open_stdin) and not args.no_stdin
    if stdin and config.tty and not sys.stdin.isatty():
        raise CliError("the input device is not a TTY", 1)
    try:
        sock = proto.connect(container.dir, {"stdin": stdin, "stdout": True, "stderr": True})
    except ConnectionError:
        raise CliError("You cannot attach to a stopped container, start it first", 1) from None
    return _finish(container, Session(container, sock, stdin, keys, _bool(args.sig_proxy)).run())


def cmd_start(args, plain) -> int:
    if not args.attach and not args.interactive:
        return plain(args)
    if len(args.containers) > 1:
        raise CliError("you cannot start and attach multiple containers at once", 1)
    from node.engine.records import find
    from node.engine.start import is_running
    container = find(args.root, args.containers[0])
    keys = detachkeys.resolve(args.detach_keys)
    stdin = bool(args.interactive and container.config.open_stdin)
    if stdin and container.config.tty and not sys.stdin.isatty():
        raise CliError("the input device is not a TTY", 1)
    if is_running(container):  # docker attaches to it
        sock = proto.connect(container.dir, {"stdin": stdin, "stdout": True, "stderr": True})
    else:
        container.update_state(StoppedByUser=False)
        sock = _spawn_attached(args.root, container)
    return _finish(container, Session(container, sock, stdin, keys, True).run())


def run_interactive(args, container) -> int:
    """`run -i` / `-it` (or `--sig-proxy=false`), the container created: start it under a
    detached monitor, attached."""
    keys = detachkeys.resolve(getattr(args, "detach_keys", None))
    sig_proxy = _bool(getattr(args, "sig_proxy", "true"))
    sock = _spawn_attached(args.root, container)
    return _finish(container, Session(container, sock, bool(args.interactive), keys, sig_proxy).run())


def _spawn_attached(root, container) -> socket.socket:
    from node.engine.start import spawn_monitor
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        spawn_monitor(root, container, attach_fd=theirs.detach())
    except BaseException:
        ours.close()
        raise
    return ours


def _finish(container, outcome) -> int:
    """The exit code, once the monitor has recorded the exit (and removed a --rm container),
    as docker's wait would answer it; 0 after a detach."""
    if outcome is DETACHED:
        print("read escape sequence", file=sys.stderr)
        return 0
    if outcome is INTERRUPTED:
        return 130
    auto_remove = container.host_config.auto_remove
    deadline = time.monotonic() + 30
    state = {}
    while time.monotonic() < deadline and container.dir.exists():
        state = container.state()
        if not state.get("Running") and not auto_remove:
            break
        time.sleep(0.01)
    if outcome is None:  # the monitor went away without a word: what the record says
        return int(state.get("ExitCode", 125) if state else 125)
    return outcome


class Session:
    """Our stdin, stdout and stderr bridged to an attach socket until the container's exit (its
    code is returned), the socket's end (None), or the detach keys (DETACHED)."""

    def __init__(self, container, sock: socket.socket, stdin: bool, keys: bytes, sig_proxy: bool) -> None:
        self.container = container
        self.sock = sock
        self.stdin = stdin
        self.tty = bool(container.config.tty)
        # docker's detach keys are a terminal's: without a TTY, Ctrl-C (--sig-proxy=false) leaves
        self.scanner = detachkeys.DetachScanner(keys) if stdin and self.tty else None
        self.sig_proxy = sig_proxy and not self.tty
        self.pending = bytearray()  # frames for the monitor not yet sent
        self.signals: list[int] = []
        self.resized = self.tty

    def run(self):
        import termios
        saved = None
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handlers = {}
        if self.tty:
            handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_winch)
        if self.sig_proxy:
            for sig in PROXIED_SIGNALS:
                handlers[sig] = signal.signal(sig, self._on_signal)
        if self.tty and self.stdin and os.isatty(0):
            import tty
            saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # keep what was typed ahead
        try:
            return self._loop(wake_r)
        except KeyboardInterrupt:  # no TTY, --sig-proxy=false: Ctrl-C leaves, the container runs on
            return INTERRUPTED
        finally:
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            self.sock.close()

    def _on_winch(self, *_):
        self.resized = True

    def _on_signal(self, sig, _frame):
        self.signals.append(sig)

    def _loop(self, wake_r: int):
        self.sock.setblocking(False)
        frames = proto.FrameReader()
        stdin_open = self.stdin
        code = None
        out = {proto.STDOUT: 1, proto.STDERR: 2}
        while True:
            self._events()
            watch = [self.sock, wake_r] + ([0] if stdin_open and not self.pending else [])
            ready, writable, _ = select.select(watch, [self.sock] if self.pending else [], [])
            if writable:
                try:
                    del self.pending[:self.sock.send(self.pending)]
                except BlockingIOError:
                    pass
                except OSError:
                    self.pending.clear()
            if wake_r in ready:
                try:
                    os.read(wake_r, 64)
                except BlockingIOError:
                    pass
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    stdin_open = False
                    self.pending += proto.encode(proto.CLOSE_STDIN)
                else:
                    data, detached = self.scanner.feed(data) if self.scanner else (data, False)
                    if data:
                        self.pending += proto.encode(proto.STDIN, data)
                    if detached:
                        self._flush_pending()
                        return DETACHED
            if self.sock in ready:
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    return code
                for kind, payload in frames.feed(data):
                    if kind in out:
                        _write_all(out[kind], payload)
                    elif kind == proto.EXIT:
                        code = int(payload or b"0")

    def _events(self) -> None:
        if self.resized:
            self.resized = False
            size = _winsize()
            if size:
                self.pending += proto.encode(proto.RESIZE, json.dumps(size).encode())
        while self.signals:
            sig = self.signals.pop(0)
            from node.engine.kill import signal_init
            try:
                signal_init(self.container, sig)
            except Exception:  # noqa: BLE001 - the container may be gone already
                pass

    def _flush_pending(self) -> None:
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(2)
            self.sock.sendall(self.pending)
        except OSError:
            pass
        self.pending.clear()


def _winsize():
    import fcntl
    import struct
    import termios
    for fd in (0, 1, 2):
        try:
            rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
            return [rows, cols]
        except OSError:
            continue
    return None


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            select.select([], [fd], [])
        except BrokenPipeError:
            return
