"""``lazyaccept report``: one self-contained HTML page from sweep results."""

from __future__ import annotations

import click

from ..base.errors import ConfigError
from ..base.fileio import atomic_write, check_writable
from ..presentation.sweep_report import sweep_report
from ..sim.fleet.results import read_results


@click.command("report")
@click.argument("results_files", nargs=-1, required=True, metavar="RESULTS.jsonl...")
@click.option("--out", "out", required=True, metavar="REPORT.html", help="The page to write.")
def report_cmd(results_files: tuple[str, ...], out: str) -> None:
    """Write one HTML page (inline SVG plots, no network) from the results of one or more sweeps."""
    check_writable(out)
    results = read_results(results_files)
    if not results.runs:
        raise ConfigError(f"{', '.join(results_files)}: no runs to report")
    atomic_write(out, sweep_report(results, list(results_files)))
    click.echo(f"{len(results.runs)} runs -> {out}")
