"""Deadlines as a person reads them (a table) and as a program reads them (JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..sim.deadlines import Verdict, first_failing
from ..sim.uncertainty import format_range


def deadlines_document(verdicts: list[Verdict]) -> dict[str, Any]:
    """``deadlines``: each deadline held against its stage; ``first_failing``: the missed one the
    orchestrator acts on first (None when all are met)."""
    first = first_failing(verdicts)
    return {"deadlines": [v.as_dict() for v in verdicts],
            "first_failing": None if first is None else first.as_dict()}


def print_deadlines(console: Console, verdicts: list[Verdict]) -> None:
    t = Table(title="Deadlines (met when the upper end of the one-sigma range is within the timeout)",
              title_justify="left")
    for col in ("stage", "timeout", "predicted", "margin", "met", "deadline"):
        t.add_column(col, justify="left" if col in ("stage", "deadline") else "right")
    for v in verdicts:
        m = v.milestone
        t.add_row(v.deadline.stage.value, f"{v.deadline.timeout_s:g} s", format_range(m.at_s, m.range),
                  f"{v.margin_s:+.2f} s", "yes" if v.met else "[bold]no[/bold]", escape(v.deadline.label))
    console.print(t)
    if first_failing(verdicts) is None:  # a miss is the command's one line on stderr
        console.print("All deadlines met.")
    for v in verdicts:
        if v.deadline.assumed:
            console.print(f"assumed ({escape(v.deadline.label)}): {escape(v.deadline.assumed)}", highlight=False)
