"""``--like LOG``: what was taken from a guest's log and what was assumed (a table, JSON key
``like``), and the modelled milestones beside the log's own time stamps."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..scenario.like import Likeness, milestone_rows
from ..sim.run import BootResult
from .console import safe

_NAMES = {
    "memory": "memory", "platform": "platform", "vcpus": "vCPUs", "kernel": "kernel", "policy": "accept_memory",
    "firmware_accept": "firmware accepts", "host_mapping": "host mapping",
}


def like_milestones(likeness: Likeness, result: BootResult) -> list[dict[str, object]]:
    """Milestone rows (scenario.like.milestone_rows) of a simulated boot against its log."""
    phases = {p.name: (p.start, p.end) for p in result.timeline.phases}
    return milestone_rows(likeness.log.milestones, phases)


def like_document(likeness: Likeness, result: BootResult | None) -> dict[str, Any]:
    """The JSON value of ``like``: log, boot, taken, overridden, assumed and (after a boot that
    completed) milestones."""
    doc: dict[str, Any] = likeness.as_dict()
    if result is not None:
        doc["milestones"] = like_milestones(likeness, result)
    return doc


def print_like(console: Console, likeness: Likeness) -> None:
    """One table: each value of the guest, and whether it came from the log, an option or an assumption."""
    log = likeness.log
    which = f", boot {log.boot_index} of {log.boots}" if log.boots > 1 else ""
    t = Table(title=f"Guest like {safe(log.path)}{which}", title_justify="left")
    t.add_column("setting")
    t.add_column("value", justify="right")
    t.add_column("from")
    t.add_column("where / why")
    for f in likeness.taken:
        t.add_row(_NAMES[f.field], safe(f.value), "log", safe(f.source))
    for f, option in likeness.overridden:
        t.add_row(_NAMES[f.field], safe(option), "option",
                  safe(f"--{f.field.replace('_', '-')} given; the log says {f.value} ({f.source})"))
    for f in likeness.given:
        t.add_row(_NAMES[f.field], safe(f.value), "option", safe(f"--{f.field.replace('_', '-')} {f.source}"))
    for f in likeness.assumed:
        t.add_row(_NAMES[f.field], safe(f.value), "[dim]assumed[/dim]", f"[dim]{safe(f.source)}[/dim]")
    console.print(t)


def print_milestones(console: Console, likeness: Likeness, result: BootResult) -> None:
    """Milestone, log time, model time; both count from the kernel's start."""
    rows = like_milestones(likeness, result)
    # A heading line of its own: a table title wraps at the table's width.
    console.print("Milestones: the log's time stamps and the model's (seconds since the kernel started)",
                  soft_wrap=True)
    t = Table()
    t.add_column("milestone")
    t.add_column("log", justify="right")
    t.add_column("model", justify="right")
    t.add_column("model - log", justify="right")
    for r in rows:
        log_s, model_s = r["log_s"], r["model_s"]
        diff = "" if log_s is None or model_s is None else _signed(model_s - log_s)  # type: ignore[operator]
        t.add_row(str(r["milestone"]), "-" if log_s is None else f"{log_s:.3f}",
                  "-" if model_s is None else f"{model_s:.3f}", diff)
    console.print(t)
    early = next((p.start for p in result.timeline.phases if p.name == "early-init"), 0.0)
    console.print(f"[dim]The model's kernel starts {early:.3f} s after power-on (firmware and EFI stub); "
                  "a log's clock starts with the kernel.[/dim]")
    if not any(r["log_s"] is not None for r in rows):
        console.print("[dim]The log time-stamps none of these milestones.[/dim]")


def like_html(likeness: Likeness, result: BootResult) -> list[tuple[str, str, str]]:
    """The ``--like`` tables as page sections ``(anchor, title, html)``: what came from where, and
    the milestones beside the log's time stamps (what the terminal shows, for ``boot --like --html``)."""
    from .html import note, table

    log = likeness.log
    which = f", boot {log.boot_index} of {log.boots}" if log.boots > 1 else ""
    rows = [[_NAMES[f.field], str(f.value), "log", str(f.source)] for f in likeness.taken]
    rows += [[_NAMES[f.field], str(option), "option", f"--{f.field.replace('_', '-')} given; the log says {f.value} "
              f"({f.source})"] for f, option in likeness.overridden]
    rows += [[_NAMES[f.field], str(f.value), "option", f"--{f.field.replace('_', '-')} {f.source}"]
             for f in likeness.given]
    rows += [[_NAMES[f.field], str(f.value), "assumed", str(f.source)] for f in likeness.assumed]
    milestones = like_milestones(likeness, result)
    mrows = []
    for r in milestones:
        log_s, model_s = r["log_s"], r["model_s"]
        diff = "" if log_s is None or model_s is None else _signed(model_s - log_s)  # type: ignore[operator]
        mrows.append([str(r["milestone"]), "-" if log_s is None else f"{log_s:.3f}",
                      "-" if model_s is None else f"{model_s:.3f}", diff])
    return [
        ("like", f"Guest like {log.path}{which}",
         table(["setting", "value", "from", "where / why"], rows, ident="like")),
        ("milestones", "Milestones: the log's time stamps and the model's",
         table(["milestone", "log (s)", "model (s)", "model - log"], mrows, ident="milestones", numeric=[1, 2, 3])
         + note("Both count from the kernel's start; the model's kernel starts after firmware and the EFI stub.")),
    ]


def _signed(x: float) -> str:
    return "0.000" if abs(x) < 0.0005 else f"{x:+.3f}"
