"""Alternating rounds: each metric is measured for Dockyard and the reference in the same run,
one after the other, with the order flipped every round so neither always goes first on a
noisy machine. A side that fails is dropped from the remaining rounds and its error kept.
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable, Sequence

from bench.rows import Row, median, row, unavailable


class Results:
    def __init__(self) -> None:
        self.values: dict[str, list] = {}
        self.errors: dict[str, str] = {}

    def med(self, side: str, key: Callable = lambda v: v) -> float | None:
        return median(key(v) for v in self.values.get(side, []))


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def alternate(sides: Sequence[str], rounds: int, measure: Callable[[str, int], object]) -> Results:
    results = Results()
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for side in order:
            if side in results.errors:
                continue
            try:
                results.values.setdefault(side, []).append(measure(side, r))
            except Exception as e:  # noqa: BLE001 - a failing subject becomes an n/a row
                results.errors[side] = f"{e.__class__.__name__}: {e}"[:300]
                log(f"{side} failed: {results.errors[side]}")
                traceback.print_exc(file=sys.stderr)
    return results


def pair_row(area: str, metric: str, unit: str, better: str, res: Results, dockyard: str, reference: str,
             ref_name: str, key: Callable = lambda v: v, limit=None, limit_name: str = "", note: str = "") -> Row:
    """A report row from the two sides' medians; failures are named in the note."""
    d, ref = res.med(dockyard, key), res.med(reference, key)
    notes = [note] if note else []
    for side in (dockyard, reference):
        if side in res.errors:
            notes.append(f"{side}: n/a (not available: {res.errors[side]})")
    samples = {"dockyard": [key(v) for v in res.values.get(dockyard, [])],
               "reference": [key(v) for v in res.values.get(reference, [])]}
    if d is None and ref is None and not notes:
        return unavailable(area, metric, unit, better, "not measured", ref_name=ref_name)
    return row(area, metric, unit, better, d, ref, ref_name=ref_name, limit=limit, limit_name=limit_name,
               note="; ".join(notes), samples=samples)
