"""``lazyaccept check``: run the catalogue of historic-bug mutants, hostile hosts and explored
interleavings; exit status 0 when every scenario matches, 1 when one does not, 2 for bad input."""

from __future__ import annotations

import json

import click

from ..presentation.check_report import check_document, print_check
from ..presentation.console import make_console
from ..scenario.check.catalogue import DEFAULT_SCHEDULES, CheckOptions, run_check


@click.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Run only this scenario (repeatable); e.g. global-accept-lock, snp-refuse.")
@click.option("--schedules", type=click.IntRange(min=1), default=DEFAULT_SCHEDULES, show_default=True, metavar="N",
              help="Random schedules per sampled interleaving case (4 and 8 vCPUs).")
@click.option("--seed", type=int, default=0, show_default=True, metavar="S",
              help="Seed of the sampled cases and schedules.")
@click.pass_context
def check_cmd(ctx: click.Context, as_json: bool, only: tuple[str, ...], schedules: int, seed: int) -> None:
    """Show that the checks catch what broke real kernels: historic bugs as mutants, hostile hosts,
    explored interleavings.  Exit status 0 when every scenario matches, 1 when one does not."""
    report = run_check(only, CheckOptions(schedules=schedules, seed=seed))
    if as_json:
        click.echo(json.dumps(check_document(report), indent=2))
    else:
        print_check(report, make_console())
    if not report.ok:
        ctx.exit(1)
