"""Build progress, in BuildKit's words (to stderr, like docker):

plain   ``#N [stage i/n] INSTRUCTION``, then ``#N 0.123 output line`` for each line a RUN
        prints, then ``#N DONE 0.4s``, ``#N CACHED`` or ``#N ERROR: reason``;
tty     one line a step, rewritten in place while it runs (with its latest output line), then
        ``=> [stage i/n] INSTRUCTION   0.4s`` / ``=> CACHED [...]``;
quiet   nothing; a failing step still leaves its last output lines for the error report.

Every step keeps its last ``TAIL`` output lines so a failure can show them in any mode.
"""
from __future__ import annotations

import sys
import time
from collections import deque

TAIL = 10


class Step:
    def __init__(self, progress: "Progress", number: int, name: str) -> None:
        self.progress, self.number, self.name = progress, number, name
        self.started = time.monotonic()
        self.tail: deque[str] = deque(maxlen=TAIL)
        self._partial = b""

    def output(self, data: bytes) -> None:
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace").rstrip("\r")
            self.tail.append(text)
            self.progress.line(self, text)

    def _flush(self) -> None:
        if self._partial:
            self.output(b"\n")

    def cached(self) -> None:
        self.progress.finish(self, "CACHED")

    def done(self) -> None:
        self._flush()
        self.progress.finish(self, f"DONE {time.monotonic() - self.started:.1f}s")

    def error(self, message: str) -> None:
        self._flush()
        self.progress.finish(self, f"ERROR: {message}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Progress:
    """Plain output (the base class); the other modes override what they print."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stderr
        self.count = 0
        self.started = time.monotonic()

    def step(self, name: str) -> Step:
        self.count += 1
        step = Step(self, self.count, name)
        self.begin(step)
        return step

    def begin(self, step: Step) -> None:
        self._print(f"#{step.number} {step.name}")

    def line(self, step: Step, text: str) -> None:
        self._print(f"#{step.number} {step.elapsed():.3f} {text}")

    def finish(self, step: Step, status: str) -> None:
        self._print(f"#{step.number} {status}")
        self._print("")

    def note(self, text: str) -> None:
        self._print(text)

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        pass


class QuietProgress(Progress):
    def begin(self, step: Step) -> None:
        pass

    def line(self, step: Step, text: str) -> None:
        pass

    def finish(self, step: Step, status: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class TtyProgress(Progress):
    """A compact live view: the running step's line is redrawn with its latest output."""

    def __init__(self, out=None) -> None:
        super().__init__(out)
        import shutil
        self.width = max(40, shutil.get_terminal_size((100, 20)).columns)
        self._last_draw = 0.0

    def _draw(self, text: str) -> None:
        self.out.write("\r\x1b[K" + text[: self.width - 1])
        self.out.flush()

    def begin(self, step: Step) -> None:
        self._draw(f"=> {step.name}")

    def line(self, step: Step, text: str) -> None:
        now = time.monotonic()
        if now - self._last_draw < 0.05:
            return
        self._last_draw = now
        self._draw(f"=> {step.name} {step.elapsed():.1f}s \x1b[2m{text.strip()}\x1b[0m")

    def finish(self, step: Step, status: str) -> None:
        if status == "CACHED":
            text = f"=> CACHED {step.name}"
        elif status.startswith("ERROR"):
            text = f"=> ERROR {step.name} {step.elapsed():.1f}s"
        else:
            text = f"=> {step.name}"
            pad = self.width - len(text) - 8
            text += " " * max(1, pad) + f"{step.elapsed():5.1f}s"
        self._draw(text)
        self.out.write("\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self._draw(text)
        self.out.write("\n")

    def close(self) -> None:
        self.out.write(f"\r\x1b[K[+] Building {time.monotonic() - self.started:.1f}s ({self.count} steps) FINISHED\n")
        self.out.flush()


def for_mode(mode: str, quiet: bool, out=None) -> Progress:
    out = out or sys.stderr
    if quiet or mode == "quiet":
        return QuietProgress(out)
    if mode == "plain" or (mode == "auto" and not out.isatty()):
        return Progress(out)
    return TtyProgress(out)
