"""What the image commands (images.py, imagetools.py, listing.py) share: the error wrapper,
docker's wording of sizes and ages, and the images containers use. Its own module so those
three import it rather than each other."""
from __future__ import annotations

import errno
import re
from datetime import datetime, timezone

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


def _since(created: str | None) -> str:
    if not created:
        return "N/A"
    try:
        when = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", created))
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
