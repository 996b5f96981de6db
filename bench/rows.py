"""The one shape every benchmark returns: a row of the report.

A row is a plain dict (so other modules, e.g. bench/catalog.py, can build one without importing
this file):

    area       "registry" | "node" | "limits" | "catalog" | ...
    metric     what was measured, with its workload ("push 1 GiB blob, monolithic")
    unit       "MB/s", "req/s", "ms", "MiB", ...
    better     "higher" or "lower": which way is good for this unit
    dockyard   median value for Dockyard, or None when not measured
    reference  median value for the reference, or None
    ref_name   which reference ("distribution 2.8.2", "docker 20.10", "runc 1.1.5", ...)
    limit      the physical limit for this metric (same unit) or None
    limit_name what the limit is ("sha256 (hashlib)", ...)
    note       free text; for rows not measured: "n/a (not available: REASON)"
    samples    {"dockyard": [...], "reference": [...]} raw values per round (optional)

The ratio is always Dockyard / reference; `better` says whether above 1 is good or bad.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Iterable

Row = dict[str, Any]


def row(area: str, metric: str, unit: str, better: str, dockyard=None, reference=None, *,
        ref_name: str = "", limit=None, limit_name: str = "", note: str = "", samples=None) -> Row:
    assert better in ("higher", "lower")
    return {"area": area, "metric": metric, "unit": unit, "better": better, "dockyard": dockyard,
            "reference": reference, "ref_name": ref_name, "limit": limit, "limit_name": limit_name,
            "note": note, "samples": samples or {}}


def unavailable(area: str, metric: str, unit: str, better: str, reason: str, **kw) -> Row:
    """A row whose subject could not be measured: it is reported, never fatal."""
    return row(area, metric, unit, better, note=f"n/a (not available: {reason})", **kw)


def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def ratio(r: Row) -> float | None:
    d, ref = r.get("dockyard"), r.get("reference")
    if not isinstance(d, (int, float)) or not isinstance(ref, (int, float)) or ref == 0:
        return None
    return d / ref


def dockyard_is_better(r: Row) -> bool | None:
    q = ratio(r)
    if q is None:
        return None
    return q >= 1 if r.get("better", "higher") == "higher" else q <= 1


def normalise(r: Row) -> Row:
    """Fill defaults so a row from another module never breaks the report."""
    base = row(str(r.get("area", "?")), str(r.get("metric", "?")), str(r.get("unit", "")),
               r.get("better") if r.get("better") in ("higher", "lower") else "higher")
    base.update({k: v for k, v in r.items() if k in base})
    return base
