"""``lazyaccept host``: many guests booting and running on one host, on one clock."""

from __future__ import annotations

import json

import click

from ..base.choices import HostFeature, HostPath
from ..base.errors import ConfigError
from ..base.fileio import STDOUT
from ..base.units import format_size, parse_size
from ..guest.policies import Policy
from ..presentation.console import make_console, wrote
from ..scenario.host_guests import MAX_GUESTS, GuestSpec
from ..scenario.runtime import RunConfig
from ..scenario.workloads import Workload
from ..sim.host import HostGuest, simulate_host
from ..sim.host_features import HostFeatures
from ..sim.profile import CostProfile
from .options import (
    EXIT_GUEST_FAILED,
    FiniteFloat,
    check_plot_file,
    check_stdout_once,
    enum_choice,
    guest_profile,
    guest_request,
)
from .run import run_config


def host_guests(specs: tuple[str, ...], stagger: float, profile: CostProfile) -> list[HostGuest]:
    """The guests the ``--guest`` options give, named g1, g2, ... in order; guest i (from 0)
    starts at its ``start=`` plus i times ``stagger``."""
    parsed = [GuestSpec.parse(s) for s in specs]
    if sum(p.count for p in parsed) > MAX_GUESTS:
        raise ConfigError(f"--guest: {sum(p.count for p in parsed)} guests; a host takes at most {MAX_GUESTS}")
    guests: list[HostGuest] = []
    for spec in parsed:
        config = _config(spec, profile)
        for _ in range(spec.count):
            i = len(guests)
            guests.append(HostGuest(f"g{i + 1}", config, spec.start + i * stagger))
    return guests


def _config(spec: GuestSpec, profile: CostProfile) -> RunConfig:
    try:
        policy = Policy.parse(spec.policy)
        workloads = tuple(Workload.parse(w) for w in spec.workloads)
        request = guest_request(spec.memory, platform=profile.tee.value, vcpus=spec.vcpus, kernel=spec.kernel)
        return run_config(request, policy, profile, spec.workloads, "never", None, 10.0, workloads)
    except ConfigError as exc:
        raise ConfigError(f"--guest {spec.text!r}: {exc}") from None


@click.command("host")
@click.option("--guest", "guests", multiple=True, required=True, metavar="[Nx]SIZE[,KEY=VALUE...]",
              help="Guests (repeatable): 8x64G,vcpus=8,policy=lazy,kernel=6.6,workload=touch:32G,start=5 "
                   "(N identical guests; keys vcpus, policy, kernel, workload (repeatable), start in seconds).")
@click.option("--stagger", type=FiniteFloat(0, 1e6), default=0.0, show_default=True, metavar="SECONDS",
              help="Guest i (counting from 0 over all --guest options) starts i times this later.")
@click.option("--host-cpus", type=click.IntRange(1, 65536), default=None, metavar="N",
              help="Physical CPUs the host runs all the guests' vCPUs on (default: one per vCPU).")
@click.option("--host-memory", default=None, metavar="SIZE",
              help="The host's RAM for guests: running out of it is a modelled failure (exit status 3).")
@click.option("--host-path", type=enum_choice(HostPath), default=HostPath.SHARED.value, show_default=True,
              help="The host's serialised path (faults, AUG, page removals): one for all guests, or one per guest "
                   "(KVM's mmu_lock is a lock of one VM).")
@click.option("--host-feature", "host_features", multiple=True, type=enum_choice(HostFeature),
              help="A host feature pending upstream, as a what-if (repeatable): tdx-dpamt (Dynamic PAMT), tdx-2m "
                   "(2 MiB private mappings), snp-prefault (QEMU pre-faults page-state changes), gmem-1g (guest_memfd "
                   "1 GiB pages).")
@click.option("--profile", default=None, metavar="NAME|PATH", help="Host cost profile (default: tdx's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--plot", "plot_file", default=None, metavar="FILE",
              help="Draw each guest's timeline and the host memory committed against its RAM (.png, .svg or .pdf "
                   "by the suffix; - for PNG on stdout).")
def host_cmd(guests: tuple[str, ...], stagger: float, host_cpus: int | None, host_memory: str | None,
             host_path: str, host_features: tuple[str, ...], profile: str | None, as_json: bool,
             plot_file: str | None) -> None:
    """Boot many guests on one host, on one clock: each guest's boot and workloads together and alone,
    and the host memory they commit against its RAM.

    Exit status 3 when the host's RAM runs out (after the report), 2 for bad input."""
    check_plot_file(plot_file)
    check_stdout_once(("--json", as_json), ("--plot -", plot_file == STDOUT))
    ram = parse_size(host_memory) if host_memory is not None else None
    prof = guest_profile(profile, {})
    features = HostFeatures.parse(host_features, prof.tee)
    result = simulate_host(host_guests(guests, stagger, prof), prof, host_cpus=host_cpus, host_memory=ram,
                           path=HostPath(host_path.lower()), features=features)
    if plot_file is not None:
        from ..presentation.host_plot import plot_host

        plot_host(plot_file, result)
    if as_json:
        from ..presentation.host_report import host_document

        click.echo(json.dumps(host_document(result, prof), indent=2))
    else:
        from ..presentation.host_report import print_host

        console = make_console(stderr=plot_file == STDOUT)
        print_host(console, result, prof)
        if plot_file is not None and plot_file != STDOUT:
            console.print(wrote(plot_file), markup=False, highlight=False)
    oom = result.out_of_memory
    if oom is not None:
        kept = f" (less {format_size(result.reserved_bytes)} of static PAMT)" if result.reserved_bytes else ""
        click.echo(f"lazyaccept: guest failed: the host's {format_size(ram or 0)} of RAM{kept} runs out at "
                   f"{oom.t:.2f} s: {oom.guest}'s first touch commits past it", err=True)
        click.get_current_context().exit(EXIT_GUEST_FAILED)
