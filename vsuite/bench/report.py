"""Outputs of `vsuite bench-kernels`: the Rich table, the JSON document and the plot.

The table has one row per implementation and sequence length: median time (estimates shown
as "~64 s (est.)"), achieved FLOP/s and bytes/s with their share of the machine's peak,
peak working memory, the speedup over the baseline at the same N (marked estimated when
either time is an estimate) and the reference check error. Implementation names are never
broken across lines: on a narrow terminal the table drops columns instead (`layout_for`), and
--json always has every number. The JSON document is
{"machine": ..., "config": ..., "results": [...]}, written atomically (temp file, rename).
The plot is time against N on log-log axes, one line per implementation, estimates dashed.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .measure import format_ms

RECORD_KEYS = (
    "impl", "op", "mode", "batch", "heads", "seq", "dim", "dtype", "device", "ms", "flops_per_s",
    "bytes_per_s", "peak_mem_bytes", "skipped", "reason", "estimated_ms", "speedup", "pct_peak_flops",
    "pct_peak_bytes", "check_error",
)


# --------------------------------------------------------------------------- formatting
def fmt_time(ms: float | None, estimated: bool = False) -> str:
    if ms is None:
        return "—"
    return f"~{format_ms(ms)} (est.)" if estimated else format_ms(ms)


def fmt_rate(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for scale, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def fmt_pct(p: float | None) -> str:
    return "—" if p is None else f"{p:.1f}%"


def fmt_speedup(s: float | None, estimated: bool) -> str:
    if s is None:
        return "—"
    text = f"{s:.3g}×" if s < 1000 else f"{s:,.0f}×"
    return f"~{text} (est.)" if estimated else text


# --------------------------------------------------------------------------- table
# Columns by layout. Widths at which each fits with names whole (lightning-official is 18 characters):
# "full" needs ~150 columns, "compact" ~100; "narrow" keeps what decides a comparison.
LAYOUTS = {
    "full": ("impl", "N", "time", "FLOP/s", "% peak", "bytes/s", "% BW", "peak mem", "vs", "check", "note"),
    "compact": ("impl", "N", "time", "% peak", "% BW", "vs", "check", "note"),
    "narrow": ("impl", "N", "time", "vs", "check", "note"),
}


def layout_for(width: int | None) -> str:
    """The widest layout that fits `width` columns (None: no limit)."""
    if width is None or width >= 150:
        return "full"
    return "compact" if width >= 100 else "narrow"


def build_table(machine: dict, config: dict, records: list[dict], machine_line: str,
                width: int | None | str = "auto") -> Table:
    """The results table; `width` picks the layout so names never wrap ("auto": `output_width()` of stdout)."""
    base = config.get("baseline")
    layout = LAYOUTS[layout_for(output_width() if width == "auto" else width)]
    title = (f"bench-kernels · {config['mode']} · B{config['batch']} H{config['heads']} D{config['dim']} "
             f"{config['dtype']} on {config['device']}")
    peaks = []
    if machine.get("peak_flops"):
        peaks.append(f"peak {fmt_rate(machine['peak_flops'], 'FLOP/s')} ({machine['peak_flops_source']})")
    if machine.get("peak_bytes_per_s"):
        peaks.append(f"{fmt_rate(machine['peak_bytes_per_s'], 'B/s')} ({machine['peak_bytes_source']})")
    lines = [title, machine_line, "; ".join(peaks) if peaks else "peaks unknown for this device"]
    if len(layout) < len(LAYOUTS["full"]):
        lines.append("narrow terminal: some columns hidden (all numbers: --json, or a wider terminal); "
                     f"vs = speedup over {base}")
    table = Table(title=escape("\n".join(lines)), title_justify="left")
    names = [r["impl"] for r in records]
    for col in layout:
        if col == "impl":  # names are kept whole: never wrapped, never squeezed below their length
            table.add_column("impl", no_wrap=True, min_width=max(map(len, names), default=4))
        elif col == "note":
            table.add_column("note", overflow="fold", ratio=1)
        else:
            table.add_column(f"vs {base}" if col == "vs" and len(layout) == len(LAYOUTS["full"]) else col,
                             justify="right", overflow="fold")

    def add_row(**cells: str) -> None:
        table.add_row(*(cells[col.replace("% ", "pct_").replace("/", "_").replace(" ", "_")] for col in layout))

    by_impl: dict[str, list[dict]] = {}
    for r in records:
        by_impl.setdefault(r["impl"], []).append(r)
    for name, rows in by_impl.items():
        # an impl that never ran anywhere collapses to one row with its reason
        if all(r["skipped"] and r["estimated_ms"] is None for r in rows) and len({r["reason"] for r in rows}) == 1:
            add_row(impl=name, N="all", time="—", FLOP_s="—", pct_peak="—", bytes_s="—", pct_BW="—", peak_mem="—",
                    vs="—", check=_fmt_check(rows[0]), note=f"[dim]{escape(rows[0]['reason'])}[/dim]")
            continue
        for r in rows:
            est = r["ms"] is None
            note = r["reason"] or ""
            add_row(impl=name, N=str(r["seq"]), time=fmt_time(r["ms"] if not est else r["estimated_ms"], est),
                    FLOP_s=fmt_rate(r["flops_per_s"], "FLOP/s"), pct_peak=fmt_pct(r["pct_peak_flops"]),
                    bytes_s=fmt_rate(r["bytes_per_s"], "B/s"), pct_BW=fmt_pct(r["pct_peak_bytes"]),
                    peak_mem=fmt_bytes(r["peak_mem_bytes"]),
                    vs=fmt_speedup(r["speedup"], r.get("speedup_estimated", False)), check=_fmt_check(r),
                    note=f"[dim]{escape(note)}[/dim]" if note else "")
        table.add_section()
    return table


def _fmt_check(r: dict) -> str:
    e = r.get("check_error")
    if e is None:
        return "—"
    if not math.isfinite(e):
        return "[red]fail[/red]"
    text = f"{e:.1e}"
    return f"[red]{text}[/red]" if r.get("check_ok") is False else text


def output_width(to_stderr: bool = False) -> int:
    """Columns the table may use: the terminal's; on a non-terminal $COLUMNS if set, else 200 (a log file)."""
    from ..console import stderr as err_console
    from ..console import stdout as out_console

    target = err_console if to_stderr else out_console
    if target.is_terminal:
        return target.width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 200


def print_table(table: Table, to_stderr: bool = False) -> None:
    """Print to stdout (stderr when stdout carries JSON) at `output_width()` columns.

    The first column holds each row's name (an implementation): it is never wrapped, so a name
    stays one greppable word at any width; the other columns give way.
    """
    from ..console import stderr as err_console
    from ..console import stdout as out_console

    if table.columns:
        first = table.columns[0]
        first.no_wrap = True
        first.min_width = max([first.min_width or 0, *(len(str(c)) for c in first.cells)])
    target = err_console if to_stderr else out_console
    if target.is_terminal:
        target.print(table)
        return
    Console(file=sys.stderr if to_stderr else sys.stdout, width=output_width(to_stderr), soft_wrap=False).print(table)


# --------------------------------------------------------------------------- JSON
def _clean(value):
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def document(machine: dict, config: dict, records: list[dict]) -> dict:
    return _clean({"machine": machine, "config": config, "results": records})


def write_json(path: str | os.PathLike, doc: dict) -> None:
    """'-' prints to stdout; a file is written atomically (temp file in the same folder, rename)."""
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------- plot
def write_plot(path: str | os.PathLike, records: list[dict], title: str, budget_s: float | None = None) -> None:
    """Log-log time vs N, one line per impl; measured solid, estimates dashed. PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    by_impl: dict[str, list[dict]] = {}
    for r in records:
        by_impl.setdefault(r["impl"], []).append(r)
    drawn = 0
    for i, (name, rows) in enumerate(by_impl.items()):
        color = f"C{i % 10}"
        rows = sorted(rows, key=lambda r: r["seq"])
        meas = [(r["seq"], r["ms"]) for r in rows if r["ms"] is not None]
        est = [(r["seq"], r["estimated_ms"]) for r in rows if r["ms"] is None and r["estimated_ms"] is not None]
        if not meas and not est:
            continue
        drawn += 1
        if meas:
            ax.plot(*zip(*meas), "-o", color=color, label=name, markersize=4)
        if est:
            # dashed from the last measured point (if any) through the estimates
            last = [m for m in meas if m[0] < est[0][0]][-1:] if meas else []
            pts = last + est
            ax.plot(*zip(*pts), "--", color=color, label=None if meas else f"{name} (est.)")
            ax.plot(*zip(*est), "o", color=color, markerfacecolor="none", markersize=5)
    if budget_s:
        ax.axhline(budget_s * 1e3, color="grey", linestyle=":", linewidth=1, label=f"budget {budget_s:g} s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length N")
    ax.set_ylabel("time per call (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if drawn or budget_s:
        ax.legend(fontsize=8)
    ax.text(0.99, 0.01, "dashed / hollow: estimated", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=7, color="grey")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
