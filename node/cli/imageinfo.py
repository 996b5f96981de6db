"""What the image commands (images.py, imagetools.py, listing.py) share: the error wrapper,
docker's wording of sizes and ages, and the images containers use. Its own module so those
three import it rather than each other."""
from __future__ import annotations

import errno

from node.cli.common import CliError


def _errors(func):
    def handler(args):
        from node.images.errors import ImageError
        try:
            return func(args)
        except ImageError as e:
            raise CliError(str(e), 1) from None
        except BrokenPipeError:
            raise  # the reader of our output went away: main() ends quietly
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise CliError("no space left on device", 1) from None
            raise CliError(f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}", 1) from None
    return handler


def _datetime():
    """datetime.datetime and datetime.timezone: the C module's classes, the very objects the
    datetime module exports, without running datetime.py (~1.5 ms of `images`), whose pure-Python
    definitions the C module replaces anyway."""
    try:
        from _datetime import datetime, timezone
    except ImportError:
        from datetime import datetime, timezone
    return datetime, timezone


def micro_fraction(text: str) -> str:
    r"""``re.sub(r"(\.\d{6})\d+", r"\1", text)`` (fractions of a second cut to the microseconds
    fromisoformat takes) without importing re (~4 ms with enum): each "." followed by more than
    six decimal digits keeps six. ``\d`` is any Unicode decimal digit, as str.isdecimal says."""
    if "." not in text:
        return text
    out, i, n = [], 0, len(text)
    while True:
        dot = text.find(".", i)
        if dot < 0:
            break
        end = dot + 1
        while end < n and text[end].isdecimal():
            end += 1
        if end - dot - 1 > 6:
            out.append(text[i:dot + 7])
            i = end
        else:
            out.append(text[i:dot + 1])
            i = dot + 1
    out.append(text[i:])
    return "".join(out)


def _since(created: str | None) -> str:
    if not created:
        return "N/A"
    datetime, timezone = _datetime()
    try:
        when = datetime.fromisoformat(micro_fraction(created))
    except ValueError:
        return "N/A"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    from node.engine.status import human_duration  # the wording `ps` uses, as docker does
    return f"{human_duration((datetime.now(timezone.utc) - when).total_seconds())} ago"


def _human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{n}B"
        n /= 1000
    return f"{n}B"


def _in_use(root) -> set[str]:
    """Images the node's containers use; CliError when that cannot be told (rmi then refuses)."""
    from pathlib import Path

    from node.engine import EngineError
    from node.engine.usage import images_in_use
    try:
        return images_in_use(Path(root))
    except EngineError as e:
        raise CliError(f"refusing to remove images: {e}", 1) from None
