"""``calibrate --from-logs``: the profile fitted to a user's own boots, as tables and as JSON."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..sim.calibrate_logs import LogFitResult
from .console import safe


def _unc(rel: float) -> float | None:
    return rel if math.isfinite(rel) else None


def log_fit_document(res: LogFitResult, skipped: list[str]) -> dict[str, object]:
    return {
        "profile": res.profile.name,
        "platform": res.profile.tee.value,
        "success": res.success,
        "rms_rel_error": res.rms_rel_error,
        "params": [{"key": p.key, "unit": p.unit, "before": p.before, "after": p.after, "bounds": [p.lo, p.hi],
                    "at_bound": p.at_bound, "rel_uncertainty": _unc(p.rel_uncertainty),
                    "determined": p.key not in res.undetermined} for p in res.params],
        "undetermined": res.undetermined,
        "warnings": res.warnings,
        "boots": [{"log": b.path, "host_trace": b.trace_path, "memory_bytes": b.request.memory,
                   "vcpus": b.request.vcpus, "policy": b.request.policy.value, "clock_lost_s": b.clock_lost_s}
                  for b in res.boots],
        "skipped": skipped,
        "points": [{"log": p.boot.path, "milestone": p.milestone, "target_s": p.target, "prediction_s": p.prediction,
                    "rel_error": p.rel_error} for p in res.points],
    }


def print_log_fit(console: Console, res: LogFitResult, skipped: list[str], written: Path | None) -> None:
    prof = res.profile
    t = Table(title=f"{prof.name} ({prof.tee.value.upper()}) fitted to {len(res.boots)} boot(s)", title_justify="left")
    for col in ("parameter", "unit", "before", "fitted", "± (1 sigma)", "bounds"):
        t.add_column(col, justify="left" if col in ("parameter", "unit") else "right")
    for p in res.params:
        unc = "undetermined" if p.key in res.undetermined else f"{p.rel_uncertainty:.1%}"
        t.add_row(p.key, p.unit, f"{p.before:.4g}", f"{p.after:.6g}", unc, f"[{p.lo:g}, {p.hi:g}]")
    console.print(t)
    b = Table(title="boots", title_justify="left")
    for col in ("log", "memory", "vCPUs", "accept_memory", "milestones", "rms error", "clock lost"):
        b.add_column(col, justify="left" if col == "log" else "right")
    for boot in res.boots:
        pts = [p for p in res.points if p.boot is boot]
        rms = math.sqrt(sum(p.rel_error**2 for p in pts) / len(pts)) if pts else 0.0
        b.add_row(safe(boot.label), f"{boot.request.memory / 2**30:g} GiB", str(boot.request.vcpus or "-"),
                  boot.request.policy.value, str(len(pts)), f"{rms:.2%}",
                  "-" if boot.trace_path is None else f"{boot.clock_lost_s:.2f} s")
    console.print(b)
    line = f"rms relative error {res.rms_rel_error:.3%} over {len(res.points)} milestones"
    if written is not None:
        line += f"; wrote {written}"
    console.print(line, markup=False, highlight=False)
    for w in res.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    for s in skipped:
        console.print(f"not used: {escape(s)}", style="dim")
