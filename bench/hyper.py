"""Start-to-exit timings with Debian's `hyperfine` (no shell: -N), alternating commands per round."""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path


def available() -> bool:
    return shutil.which("hyperfine") is not None


def median_ms(commands: dict[str, list[str]], runs: int, warmup: int = 1, env: dict | None = None,
              timeout: float = 900) -> dict[str, float]:
    """One hyperfine invocation over all commands (in the given order); median ms per name.
    Raises if any command fails (hyperfine exits non-zero)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        export = Path(f.name)
    argv = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
            "--export-json", str(export)]
    names = list(commands)
    for name in names:
        argv += ["-n", name, shlex.join(commands[name])]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"hyperfine failed: {(res.stderr or res.stdout).strip()[-400:]}")
        data = json.loads(export.read_text())
    finally:
        export.unlink(missing_ok=True)
    return {r["command"]: r["median"] * 1000 for r in data["results"]}
