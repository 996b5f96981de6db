"""Writes bench/results/REPORT.md (machine, table, notes) and a PNG of the ratios next to it."""
from __future__ import annotations

import json
import math
from pathlib import Path

from bench.rows import Row, dockyard_is_better, ratio
from bench import targets

AREA_TITLES = {
    "limits": "Physical limits (same run)",
    "registry": "Registry: Dockyard vs CNCF distribution 2.8.2",
    "node": "Node: Dockyard vs Docker engine, runc, crun",
    "catalog": "Catalog",
}


def fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio_cell(r: Row) -> str:
    q = ratio(r)
    if q is None:
        return "–"
    verdict = dockyard_is_better(r)
    return f"{q:.2f} {'✓' if verdict else '✗'}"


def _limit_cell(r: Row) -> str:
    if r.get("limit") is None:
        return ""
    name = r.get("limit_name") or ""
    return f"{fmt(r['limit'])}" + (f" ({name})" if name else "")


def table(rows: list[Row]) -> list[str]:
    lines = []
    areas = list(dict.fromkeys(r["area"] for r in rows))
    for area in areas:
        lines += ["", f"### {AREA_TITLES.get(area, area)}", "",
                  "| metric | Dockyard | reference | ratio | target | limit |", "|---|---:|---:|---:|---|---|"]
        for r in (r for r in rows if r["area"] == area):
            better = "higher" if r["better"] == "higher" else "lower"
            metric = f"{r['metric']} ({r['unit']}, {better} is better)"
            ref = fmt(r.get("reference"))
            if r.get("ref_name") and r.get("reference") is not None:
                ref += f" ({r['ref_name']})"
            if area == "limits":
                metric, ref = f"{r['metric']} ({r['unit']})", ""
            lines.append(f"| {metric} | {fmt(r.get('dockyard')) if area != 'limits' else ''} | {ref} | "
                         f"{_ratio_cell(r)} | {targets.cell(r)} | {_limit_cell(r)} |")
    return lines


def notes(rows: list[Row]) -> list[str]:
    lines = []
    for r in rows:
        if r.get("note"):
            lines.append(f"- **{r['metric']}**: {r['note']}")
    return lines


def _short(text: str, width: int = 62) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plot(rows: list[Row], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    # a log axis cannot show 0 (e.g. "no daemon at all"): such rows stay in the table only
    pairs = [(r, ratio(r)) for r in rows if ratio(r) is not None and ratio(r) > 0]
    height = max(2.5, 0.38 * len(pairs) + 1.2)
    fig, ax = plt.subplots(figsize=(13, height))
    if pairs:
        labels = [f"{_short(r['metric'])} [{r['unit']}, {'↑' if r['better'] == 'higher' else '↓'}]" for r, _ in pairs]
        values = [q for _, q in pairs]
        colors = ["#2e8b57" if dockyard_is_better(r) else "#c0392b" for r, _ in pairs]
        y = list(range(len(pairs)))[::-1]
        ax.barh(y, [q - 1 for q in values], left=1, color=colors)  # bars grow from 1 either way
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        ax.axvline(1.0, color="black", linewidth=0.8)
        # log scale, so 0.5 (twice as slow) and 2 (twice as fast) are equally far from 1
        ax.set_xscale("log", base=2)
        low, high = min(values + [1.0]), max(values + [1.0])
        ticks = [2.0 ** k for k in range(math.floor(math.log2(low)), math.ceil(math.log2(high)) + 1)]
        ax.set_xlim(ticks[0] / 1.2, ticks[-1] * 1.5)
        if len(ticks) > 7:  # keep the labels apart: every other power of two, always with 1
            ticks = [t for t in ticks if round(math.log2(t)) % 2 == 0]
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _p: f"{v:g}" if v >= 1 else f"1/{1 / v:g}"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        for yi, q in zip(y, values):
            ax.text(q, yi, f" {q:.2f}", va="center", fontsize=7)
    ax.set_xlabel("Dockyard / reference (green: Dockyard better for that metric, red: worse)")
    ax.set_title("Dockyard vs reference implementations")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(rows: list[Row], machine: list[tuple[str, str]], out_dir: Path, mode: str, duration_s: float,
          extra_notes: list[str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "ratios.png"
    try:
        have_png = plot(rows, png)
    except Exception as e:  # noqa: BLE001 - the table matters more than the picture
        extra_notes = extra_notes + [f"plot failed: {e.__class__.__name__}: {e}"]
        have_png = False
    lines = ["# Dockyard benchmark report", "",
             f"Mode: **{mode}**, whole run took {duration_s:.0f} s. Generated by `python -m bench"
             f"{' --quick' if mode == 'quick' else ''}`.", "",
             "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine]
    lines += ["", "## Results", "",
              "Each value is the median of alternating rounds (Dockyard, reference, reference, Dockyard, ...). "
              "ratio = Dockyard / reference; ✓ when that is the better side of 1 for the metric "
              "(higher-is-better or lower-is-better as stated), ✗ otherwise. The limit column is what "
              "the machine allows for that metric, measured in the same run. The target column is the "
              "issue's target for the row (bench/targets.py): a ratio unless marked (value)."]
    lines += table(rows)
    if have_png:
        lines += ["", f"![ratios]({png.name})"]
    lines += ["", "## Notes", ""] + notes(rows) + [f"- {n}" for n in extra_notes]
    if (out_dir / "PROFILE.md").exists():
        lines += ["", "Profiles of the worst ratios (what limits them): [PROFILE.md](PROFILE.md)."]
    report = out_dir / "REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    (out_dir / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    return report
