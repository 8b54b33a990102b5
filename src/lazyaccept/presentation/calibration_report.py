"""A calibration as a person reads it (tables) and as a program reads it (JSON)."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..sim.calibrate import CalibrationResult


def calibration_document(res: CalibrationResult) -> dict[str, object]:
    return {
        "profile": res.profile.name,
        "platform": res.profile.tee.value,
        "success": res.success,
        "rms_rel_error": res.rms_rel_error,
        "params": [
            {"key": p.key, "unit": p.unit, "before": p.before, "after": p.after, "bounds": [p.lo, p.hi],
             "at_bound": p.at_bound,
             "rel_uncertainty": p.rel_uncertainty if math.isfinite(p.rel_uncertainty) else None}
            for p in res.params
        ],
        "warnings": res.warnings,
        "points": [
            {
                "id": r.point.id,
                "metric": r.point.metric,
                "quantity": r.point.quantity,
                "fitted": r.point.spec.fittable,
                "memory_bytes": r.point.request.memory,
                "target": r.point.target,
                "prediction": r.prediction,
                "rel_error": r.rel_error,
            }
            for r in res.points
        ],
    }


_QUANTITY = {
    "ratio_eager_over_lazy": "eager/lazy",
    "eager_s": "eager boot s",
    "lazy_s": "lazy boot s",
    "accept_s": "accept s",
}


def print_calibration(console: Console, res: CalibrationResult, written: Path | None) -> None:
    prof = res.profile
    params = Table(title=f"{prof.name} ({prof.tee.value.upper()}): fitted parameters", title_justify="left")
    for col in ("parameter", "unit", "before", "fitted", "± (1 sigma)", "bounds"):
        params.add_column(col, justify="left" if col in ("parameter", "unit") else "right")
    for p in res.params:
        unc = f"{p.rel_uncertainty:.0%}" if math.isfinite(p.rel_uncertainty) else "undetermined"
        bound = f"[{p.lo:g}, {p.hi:g}]" + (" (on a bound)" if p.at_bound else "")
        params.add_row(p.key, p.unit, f"{p.before:.4g}", f"{p.after:.6g}", unc, bound)
    console.print(params)
    pts = Table(title=f"{prof.name}: calibration points", title_justify="left")
    for col in ("point", "quantity", "memory", "target", "prediction", "rel. error"):
        pts.add_column(col, justify="left" if col in ("point", "quantity") else "right")
    for r in res.points:
        pts.add_row(
            r.point.id,
            _QUANTITY.get(r.point.quantity, r.point.quantity),
            f"{r.point.request.memory / 2**30:g} GiB",
            f"{r.point.target:.4g}",
            f"{r.prediction:.4g}",
            f"{r.rel_error:+.1%}",
        )
    console.print(pts)
    status = "converged" if res.success else f"did not converge: {res.message}"
    line = f"rms relative error {res.rms_rel_error:.2%} ({status})"
    if written is not None:
        line += f"; wrote {written}"
    console.print(line)
    for w in res.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
