"""``lazyaccept size``: the smallest guest for a workload's memory, what the guest sees of it,
what the host commits, and the overhead an orchestrator must add."""

from __future__ import annotations

from dataclasses import replace

import click

from ..base.choices import Tee
from ..base.units import parse_size
from ..presentation.console import json_text, make_console
from ..presentation.size_report import print_size, size_document
from ..sim.orchestrators import load_orchestrator
from ..sim.sizing import Tried, available_after_boot, size_guest
from .options import enum_choice, guest_profile, guest_request


@click.command("size")
@click.option("--limit", required=True, metavar="SIZE",
              help="Memory the workload needs (a pod's memory limit), e.g. 4G.")
@click.option("--tee", "--platform", "platform", type=enum_choice(Tee), default=None,
              help="TEE platform (default: the profile's, else tdx).")
@click.option("--vcpus", type=int, default=None, metavar="N", help="vCPUs (default: the profile's).")
@click.option("--kernel", default=None, metavar="RELEASE",
              help="Kernel release whose rules apply (default: the profile's).")
@click.option("--profile", default=None, metavar="NAME|PATH", help="Host cost profile (default: the platform's).")
@click.option("--orchestrator", default=None, metavar="NAME",
              help="Set the answer beside the memory overhead this stack ships (e.g. kata-qemu-tdx).")
@click.option("--step", default="2M", show_default=True, metavar="SIZE", help="Granularity of the sizes tried.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def size_cmd(limit: str, platform: str | None, vcpus: int | None, kernel: str | None, profile: str | None,
             orchestrator: str | None, step: str, as_json: bool) -> None:
    """Find the smallest guest that boots and leaves a workload its memory; show where the rest goes
    (MemTotal, MemAvailable), the host memory committed and the overhead an orchestrator needs."""
    need = parse_size(limit)
    granule = parse_size(step)
    shipped = load_orchestrator(orchestrator).overhead if orchestrator is not None else None
    guest: dict[str, object] = {"platform": platform}
    prof = guest_profile(profile, guest)
    request = guest_request(need, platform=guest["platform"], vcpus=vcpus, kernel=kernel)  # type: ignore[arg-type]
    sizing = size_guest(request, prof, need, granule)
    smaller = None
    below = sizing.vm_bytes - granule
    if sizing.tried and below >= min(t.memory for t in sizing.tried):
        budget, failure = available_after_boot(replace(request, memory=below), prof)
        smaller = Tried(below, None if budget is None else budget.mem_available, failure)
    if as_json:
        click.echo(json_text(size_document(sizing, prof.name, smaller, shipped, orchestrator)))
        return
    print_size(make_console(), sizing, prof.name, smaller, shipped, orchestrator)
