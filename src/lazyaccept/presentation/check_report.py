"""The check catalogue's results: a table per scenario and a JSON document."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..scenario.check.catalogue import CheckReport, ScenarioResult


def scenario_document(r: ScenarioResult) -> dict[str, Any]:
    """One scenario as JSON: the five keys of the catalogue, then where it comes from, which
    detector it is about, how many interleavings it explored, and the failing schedule it found."""
    return {
        "name": r.name,
        "kind": r.kind.value,
        "expected": r.expected,
        "observed": r.observed,
        "ok": r.ok,
        "source": r.source,
        "detector": r.detector,
        "explored": r.explored,
        "schedule": list(r.schedule),
    }


def check_document(report: CheckReport) -> dict[str, Any]:
    """``{"scenarios": [...], "summary": {...}}``."""
    return {"scenarios": [scenario_document(r) for r in report.results], "summary": report.summary()}


def summary_line(report: CheckReport) -> str:
    s = report.summary()
    verdict = f"all {s['scenarios']} scenarios match" if s["all_matched"] else (
        f"{s['scenarios'] - s['matched']} of {s['scenarios']} scenarios do NOT match"
    )
    return (
        f"mutants caught {s['mutants_caught']}/{s['mutants']}, hostile hosts as expected "
        f"{s['hostile_as_expected']}/{s['hostile']}, interleavings explored {s['interleavings_explored']}, "
        f"violations on the correct kernel {s['correct_kernel_violations']}, silent data losses "
        f"{s['silent_data_losses']}: {verdict}"
    )


def print_check(report: CheckReport, console: Console) -> None:
    table = Table(title="lazyaccept check", title_justify="left", show_lines=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("expected", overflow="fold", ratio=2)
    table.add_column("observed", overflow="fold", ratio=3)
    table.add_column("match", no_wrap=True)
    for r in report.results:
        table.add_row(r.name, r.kind.value, r.expected, r.observed, "yes" if r.ok else "NO")
    console.print(table)
    for r in report.results:
        if r.schedule:
            console.print(f"Shortest failing schedule of {r.name}:")
            for i, step in enumerate(r.schedule, 1):
                console.print(f"  {i}. {step}", markup=False, highlight=False)
    console.print(summary_line(report), markup=False, highlight=False)
