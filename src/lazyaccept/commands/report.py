"""``lazyaccept report``: one self-contained HTML page from sweep results."""

from __future__ import annotations

import os

import click

from ..base.errors import ConfigError
from ..base.fileio import STDOUT, check_writable, write_output
from ..presentation.console import wrote
from ..presentation.sweep_report import sweep_report
from ..sim.fleet.results import read_results


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@click.command("report")
@click.argument("results_files", nargs=-1, required=True, metavar="RESULTS.jsonl...")
@click.option("--out", "out", required=True, metavar="REPORT.html", help="The page to write (- for stdout).")
def report_cmd(results_files: tuple[str, ...], out: str) -> None:
    """Write one HTML page (inline SVG plots, no network) from the results of one or more sweeps."""
    check_writable(out, stdout=True)
    for f in results_files:
        if out != STDOUT and _same_file(f, out):
            # Writing the page would replace the results it is made from.
            raise ConfigError(f"--out {out}: is the results file {f}, an input; write the page to another file")
    results = read_results(results_files)
    if not results.runs:
        raise ConfigError(f"{', '.join(results_files)}: no runs to report")
    write_output(out, sweep_report(results, list(results_files)))
    if out != STDOUT:
        click.echo(wrote(out, f"{len(results.runs)} runs"))
