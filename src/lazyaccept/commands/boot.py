"""``lazyaccept boot``: model and simulate one boot, report what was accepted, by whom, when."""

from __future__ import annotations

import json

import click

from ..base.choices import AcceptPolicy
from ..base.fileio import atomic_write
from ..base.units import parse_size
from ..presentation.boot_report import boot_summary, print_boot
from ..presentation.console import make_console
from ..scenario.artefacts import check_dump_folder, write_dump
from ..sim.profile import load_profile
from ..sim.run import resolve, run
from .options import check_output_file, enum_choice, guest_options, guest_request, profile_name


@click.command("boot")
@click.option("--memory", required=True, metavar="SIZE", help="Guest memory, e.g. 4G, 4095M, 16T.")
@click.option("--policy", type=enum_choice(AcceptPolicy), default=AcceptPolicy.LAZY.value, show_default=True,
              help="accept_memory= kernel parameter.")
@guest_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--dump", "dump_dir", default=None, metavar="DIR",
              help="Write the EFI memory map, unaccepted table, TD HOB, e820, meminfo, vmstat and dmesg.")
@click.option("--plot", "plot_file", default=None, metavar="FILE.png",
              help="Draw the timeline and memory over time.")
@click.option("--html", "html_file", default=None, metavar="FILE.html",
              help="Write a one-page report (self-contained HTML) of this boot.")
def boot_cmd(memory: str, profile: str | None, as_json: bool, dump_dir: str | None, plot_file: str | None,
             html_file: str | None, **guest: object) -> None:
    """Simulate one boot of a confidential guest and report its acceptance."""
    check_output_file(plot_file)
    check_output_file(html_file)
    if dump_dir is not None:
        check_dump_folder(dump_dir)
    prof = load_profile(profile_name(profile, guest.get("platform")))  # type: ignore[arg-type]
    if not guest.get("platform"):
        guest["platform"] = prof.tee.value  # a profile alone says which TEE
    request = guest_request(parse_size(memory), **guest)  # type: ignore[arg-type]
    result = run(resolve(request, prof), prof)
    if dump_dir is not None:
        write_dump(result.record, dump_dir, {p.name: p.start for p in result.timeline.phases})
    if plot_file is not None:
        from ..presentation.plots import plot_boot

        plot_boot(result, plot_file)
    if html_file is not None:
        from ..presentation.result_pages import boot_page

        atomic_write(html_file, boot_page(result, prof))
    if as_json:
        click.echo(json.dumps(boot_summary(result, prof.name), indent=2))
        return
    print_boot(result, make_console())
    if dump_dir is not None:
        click.echo(f"Artefacts written to {dump_dir}/")
    if plot_file is not None:
        click.echo(f"Plot written to {plot_file}")
    if html_file is not None:
        click.echo(f"Report written to {html_file}")
