"""``lazyaccept compare``: eager vs lazy acceptance across memory sizes."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import Progress

from ..base.errors import ConfigError
from ..base.fileio import atomic_write
from ..base.units import parse_size
from ..presentation.compare_report import compare_document, print_compare
from ..presentation.console import make_console
from ..sim.profile import load_profile
from ..sim.run import check_profile_fits
from ..sim.sweep import compare_policies
from .options import check_output_file, guest_request, profile_name


@click.command("compare")
@click.option("--memory", "memory", multiple=True, required=True, help="Guest memory size (repeatable), e.g. 4G.")
@click.option("--platform", type=click.Choice(["tdx", "snp"], case_sensitive=False), default=None,
              help="TEE platform (default: the profile's, else tdx).")
@click.option("--vcpus", type=int, default=None, help="vCPUs (default: the profile's).")
@click.option("--host-mapping", type=click.Choice(["4k", "2m"], case_sensitive=False), default=None,
              help="Host private mapping size.")
@click.option("--kernel", default=None, help="Kernel release whose rules apply (default: the profile's).")
@click.option("--firmware-accept", default=None, help='What firmware accepts: "below-4g", "all" or a size.')
@click.option("--profile", "profile", default=None, metavar="NAME|PATH", help="Host cost profile.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", "plot_path", default=None, metavar="FILE.png", help="Plot boot time against memory.")
@click.option("--html", "html_path", default=None, metavar="FILE.html",
              help="Write a one-page report (self-contained HTML) of the comparison.")
def compare_cmd(memory: tuple[str, ...], profile: str | None, as_json: bool, plot_path: str | None,
                html_path: str | None, **guest: object) -> None:
    """Boot time with eager and with lazy acceptance, for each memory size."""
    sizes = sorted(dict.fromkeys(parse_size(m) for m in memory))
    prof = load_profile(profile_name(profile, guest.get("platform")))  # type: ignore[arg-type]
    if not guest.get("platform"):
        guest["platform"] = prof.tee.value  # a profile alone says which TEE
    request = guest_request(sizes[0], **guest)  # type: ignore[arg-type]
    check_profile_fits(request, prof)
    if plot_path is not None and not plot_path.lower().endswith(".png"):
        raise ConfigError(f"--plot {plot_path}: the plot is written as PNG; name it FILE.png")
    check_output_file(plot_path)
    check_output_file(html_path)
    # Progress goes to stderr, and only to a terminal: pipes and --json output stay clean.
    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal or len(sizes) < 3) as progress:
        task = progress.add_task("booting eager and lazy", total=len(sizes))
        config, rows = compare_policies(request, sizes, prof, on_size_done=lambda _size: progress.advance(task))
    if plot_path is not None:
        from ..presentation.plots import plot_compare

        plot_compare(plot_path, config, rows, prof)
    if html_path is not None:
        from ..presentation.result_pages import compare_page

        atomic_write(html_path, compare_page(config, rows, prof))
    if as_json:
        click.echo(json.dumps(compare_document(config, rows, prof), indent=2))
        return
    console = make_console()
    print_compare(console, config, rows, prof)
    if plot_path is not None:
        console.print(f"wrote {plot_path}")
    if html_path is not None:
        console.print(f"wrote {html_path}")
