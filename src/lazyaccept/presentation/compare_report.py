"""A comparison of eager and lazy acceptance across memory sizes: a table and a JSON document."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..base.units import format_size
from ..scenario.config import VMConfig
from ..sim.profile import CostProfile
from ..sim.sweep import CompareRow, FailedRow
from ..sim.uncertainty import format_range
from .console import safe
from .plots import vcpus_label


def compare_document(config: VMConfig, rows: list[CompareRow | FailedRow], profile: CostProfile) -> dict[str, Any]:
    """The JSON document of one profile's comparison: its resolved configuration and its rows."""
    return {
        "platform": config.tee.value,
        "profile": profile.name,
        "vcpus": config.vcpus,
        "host_mapping": config.host_mapping.value,
        "kernel": config.kernel_release,
        "kernel_rules": config.kernel.name,
        "firmware_accept": str(config.firmware_accept),
        "kconfig": list(config.kconfig.items()),
        "patches": [p.value for p in config.patches],
        "rows": [r.as_dict() for r in rows],
        "failed": sum(isinstance(r, FailedRow) for r in rows),
    }


def print_compare(console: Console, config: VMConfig, rows: list[CompareRow | FailedRow], profile: CostProfile) -> None:
    # The heading is a line of its own: as a table title it would wrap at the table's width.
    console.print(
        f"profile {safe(profile.name)} ({config.tee.value.upper()}): eager vs lazy acceptance "
        f"({vcpus_label(config.vcpus)}, host mapping {config.host_mapping.value}, kernel {safe(config.kernel_release)}"
        f"{''.join('+' + p.value for p in config.patches)}, firmware accepts {config.firmware_accept})",
        soft_wrap=True,
    )
    table = Table()
    for col in ("memory", "eager boot", "lazy boot", "speed-up", "eager accepting (wall)", "lazy accepting (wall)"):
        table.add_column(col, justify="right")
    for r in rows:
        if isinstance(r, FailedRow):
            cell = f"[red]failed: {safe(r.failure.rule)} ({r.policy.value})[/red]"
            table.add_row(format_size(r.memory_bytes), cell, "", "", "", "")
            continue
        table.add_row(
            format_size(r.memory_bytes),
            format_range(r.eager_s, r.eager_range),
            format_range(r.lazy_s, r.lazy_range),
            f"{r.speedup:.2f}x",
            f"{r.eager_accept_wall_s:.2f} s",
            f"{r.lazy_accept_wall_s:.2f} s",
        )
    console.print(table)
    if any(isinstance(r, CompareRow) and r.lazy_range is not None for r in rows):
        console.print(f"boot times (one-sigma range from {profile.name}'s fitted uncertainties)", style="dim",
                      highlight=False)
    for r in rows:
        if isinstance(r, FailedRow):
            console.print(f"[red]{format_size(r.memory_bytes)} failed:[/red] {safe(r.one_line())}")
