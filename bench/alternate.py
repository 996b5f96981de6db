"""Alternating rounds: each metric is measured for Dockyard and the reference in the same run,
one after the other, with the order flipped every round so neither always goes first on a
noisy machine. A side that fails is dropped from the remaining rounds and its error kept.

Every sample starts from a settled disk: what the previous sample left in the page cache is
written back (sync) before the next one is timed. Without it one side's deferred writeback
lands in the other side's timing: distribution does not fsync, so each of its 4-second push
rounds leaves ~9-18 MiB dirty (Dockyard's ~2-5 MiB), and without settling that backlog grew to
~60 MiB across rounds (PROFILE section 31). Settling is the same for both sides, outside the
timing, and what each sample left dirty is kept as evidence (Results.left_dirty_mib).
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from bench.rows import Row, median, row, unavailable


class Results:
    def __init__(self) -> None:
        self.values: dict[str, list] = {}
        self.errors: dict[str, str] = {}
        # per side: MiB of page cache each of its samples left dirty or under writeback
        self.left_dirty_mib: dict[str, list[float]] = {}

    def med(self, side: str, key: Callable = lambda v: v) -> float | None:
        return median(key(v) for v in self.values.get(side, []))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def unwritten_mib(meminfo: str | None = None) -> float | None:
    """Page cache not yet on disk (Dirty + Writeback in /proc/meminfo), in MiB."""
    try:
        text = meminfo if meminfo is not None else Path("/proc/meminfo").read_text()
    except OSError:
        return None
    kib = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("Dirty", "Writeback"):
            kib += int(value.split()[0])
    return kib / 1024


def settle() -> None:
    """Write back everything dirty, so that the next sample does not pay for the last one."""
    os.sync()


def alternate(sides: Sequence[str], rounds: int, measure: Callable[[str, int], object]) -> Results:
    results = Results()
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for side in order:
            if side in results.errors:
                continue
            settle()
            try:
                results.values.setdefault(side, []).append(measure(side, r))
            except Exception as e:  # noqa: BLE001 - a failing subject becomes an n/a row
                results.errors[side] = f"{e.__class__.__name__}: {e}"[:300]
                log(f"{side} failed: {results.errors[side]}")
                traceback.print_exc(file=sys.stderr)
                continue
            left = unwritten_mib()
            if left is not None:
                results.left_dirty_mib.setdefault(side, []).append(left)
    return results


def settle_note(res: Results, sides: Sequence[str], names: Sequence[str]) -> str:
    """One line on what the samples left unwritten, when it was enough to matter (>= 4 MiB)."""
    peaks = {name: max(res.left_dirty_mib.get(side) or [0.0]) for side, name in zip(sides, names)}
    if max(peaks.values(), default=0.0) < 4:
        return ""
    left = ", ".join(f"{name} up to {mib:.0f} MiB" for name, mib in peaks.items())
    return f"synced before each sample; left unwritten by a sample: {left}"


def pair_row(area: str, metric: str, unit: str, better: str, res: Results, dockyard: str, reference: str,
             ref_name: str, key: Callable = lambda v: v, limit=None, limit_name: str = "", note: str = "") -> Row:
    """A report row from the two sides' medians; failures are named in the note."""
    d, ref = res.med(dockyard, key), res.med(reference, key)
    notes = [n for n in (note, settle_note(res, (dockyard, reference), ("dockyard", ref_name or reference))) if n]
    for side in (dockyard, reference):
        if side in res.errors:
            notes.append(f"{side}: n/a (not available: {res.errors[side]})")
    samples = {"dockyard": [key(v) for v in res.values.get(dockyard, [])],
               "reference": [key(v) for v in res.values.get(reference, [])]}
    if d is None and ref is None and not notes:
        return unavailable(area, metric, unit, better, "not measured", ref_name=ref_name)
    return row(area, metric, unit, better, d, ref, ref_name=ref_name, limit=limit, limit_name=limit_name,
               note="; ".join(notes), samples=samples)
