"""``lazyaccept boot``: model and simulate one boot, report what was accepted, by whom, when."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..console import make_console
from ..fileio import check_writable
from ..guest.footprint import BootFootprint
from ..guest.report import check_dump_folder, meminfo_fields, vmstat_fields, write_dump
from ..record import AcceptEvent, AcceptStats
from ..sim.scenario import BootResult, VMConfig, run
from ..units import format_size, parse_size

#: Actor names in the record, grouped as a user thinks of them.
ACTOR_GROUPS = {"firmware": "firmware", "efistub": "efi stub"}


def actor_group(actor: str) -> str:
    return ACTOR_GROUPS.get(actor, "kernel")


def acceptance_by_group(result: BootResult) -> dict[str, AcceptStats]:
    out: dict[str, AcceptStats] = {"firmware": AcceptStats(), "efi stub": AcceptStats(), "kernel": AcceptStats()}
    for ph in result.record.phases:
        for ev in ph.events:
            if isinstance(ev, AcceptEvent):
                out[actor_group(ev.actor)] += ev.stats
    return out


def boot_summary(result: BootResult) -> dict[str, Any]:
    """The JSON document of one boot."""
    rec, tl = result.record, result.timeline
    cfg = rec.config
    groups = acceptance_by_group(result)
    total = AcceptStats()
    for s in groups.values():
        total += s
    table = rec.kernel.table
    return {
        "config": {
            "memory_bytes": cfg.memory,
            "platform": cfg.platform,
            "vcpus": cfg.vcpus,
            "policy": cfg.policy,
            "host_mapping": cfg.host_mapping,
            "firmware_accept": cfg.firmware_accept,
            "kernel": cfg.kernel,
        },
        "boot_s": tl.total_s,
        "accept_s": tl.accept_s,
        "accept_wall_s": tl.accept_wall_s,
        "phases": [
            {"name": p.name, "actor": p.actor, "start_s": p.start, "end_s": p.end, "accept_s": p.accept_s}
            for p in tl.phases
        ],
        "vcpu_busy_s": {str(k): v for k, v in sorted(tl.vcpu_busy_s.items())},
        "accepted_bytes": {k: v.bytes_accepted for k, v in groups.items()},
        "acceptance": {k: v.as_dict() for k, v in groups.items()},
        "accept_calls": {"4k": total.calls_4k, "2m": total.calls_2m, "1g": total.calls_1g},
        "exits": total.exits,
        "size_mismatch": total.size_mismatch,
        "host_committed_bytes": rec.platform.host_committed,
        "unaccepted_after_boot_bytes": rec.unaccepted_after_boot,
        "bitmap": None if table is None else {
            "phys_base": table.phys_base,
            "unit_size": table.unit_size,
            "size_bytes": table.size,
            "unaccepted_bytes": table.unaccepted_bytes(),
        },
        "meminfo_kb": meminfo_fields(rec),
        "vmstat": vmstat_fields(rec),
        "committed_over_time": tl.committed_bytes,
        "accepted_over_time": tl.accepted_bytes,
    }


def print_boot(result: BootResult, console: Console) -> None:
    rec, tl = result.record, result.timeline
    cfg = rec.config
    console.print(
        f"[bold]{cfg.platform.upper()} guest, {format_size(cfg.memory)}, {cfg.vcpus} vCPU(s), "
        f"accept_memory={cfg.policy}[/bold]  kernel {cfg.kernel}, host maps private memory at "
        f"{cfg.host_mapping.upper() if cfg.host_mapping else '?'}, firmware accepts {cfg.firmware_accept}"
    )
    t = Table(title="Timeline (simulated)")
    for col in ("phase", "start s", "end s", "duration s", "accepting s"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    for p in tl.phases:
        t.add_row(p.name, f"{p.start:.3f}", f"{p.end:.3f}", f"{p.end - p.start:.3f}", f"{p.accept_s:.3f}")
    console.print(t)
    a = Table(title="Acceptance")
    for col in ("by", "accepted", "4K calls", "2M calls", "1G calls", "exits", "size mismatch", "host backed"):
        a.add_column(col, justify="left" if col == "by" else "right")
    for name, s in acceptance_by_group(result).items():
        a.add_row(
            name, format_size(s.bytes_accepted), f"{s.calls_4k:,}", f"{s.calls_2m:,}", f"{s.calls_1g:,}",
            f"{s.exits:,}", f"{s.size_mismatch:,}", format_size(s.host_backed_bytes),
        )
    console.print(a)
    mi = meminfo_fields(rec)
    vm = vmstat_fields(rec)
    console.print(
        f"After boot: MemTotal {mi['MemTotal']} kB, MemFree {mi['MemFree']} kB, "
        f"[bold]Unaccepted {mi['Unaccepted']} kB[/bold] (nr_unaccepted {vm['nr_unaccepted']}), "
        f"host committed {format_size(rec.platform.host_committed)}"
    )
    console.print(f"[bold]Boot to shell: {tl.total_s:.2f} s[/bold] (accepting: {tl.accept_s:.2f} s of vCPU time)")


def check_output_folder(path: str | None) -> None:
    """Refuse, before any work, an output file that cannot be written."""
    if path is not None:
        check_writable(path)


def config_options(f: Any) -> Any:
    """The options that describe a guest, shared by boot-like commands."""
    opts = [
        click.option("--platform", type=click.Choice(["tdx", "snp"]), default="tdx", show_default=True),
        click.option("--vcpus", type=int, default=None, help="vCPUs (default: the profile's)."),
        click.option("--host-mapping", type=click.Choice(["4k", "2m"]), default=None,
                     help="Page size the host maps private memory at (default: the profile's)."),
        click.option("--firmware-accept", default=None, metavar="below-4g|all|SIZE",
                     help="What firmware accepts before the OS (default: the profile's)."),
        click.option("--kernel", default=None, metavar="VERSION",
                     help="Kernel rules: 6.5, 6.6, 6.7, 6.11, 6.12 or mainline (default: the profile's)."),
        click.option("--firmware", "firmware_path", default=None, metavar="PATH",
                     help="OVMF/TDVF image to take TDVF sections from (default: Debian's OVMF_CODE.fd)."),
        click.option("--profile", default=None, metavar="NAME|PATH", help="Cost profile (default: the platform's)."),
        click.option("--shell-footprint", default=None, metavar="SIZE",
                     help="Memory touched to reach a shell (default 256M)."),
        click.option("--os-opt-in/--no-os-opt-in", default=True, show_default=True,
                     help="SNP: the OS calls AllowUnacceptedMemory; without it OVMF accepts everything at "
                          "ExitBootServices."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def make_config(memory: str, policy: str, platform: str, vcpus: int | None, host_mapping: str | None,
                firmware_accept: str | None, kernel: str | None, firmware_path: str | None,
                shell_footprint: str | None, os_opt_in: bool = True) -> VMConfig:
    fp = BootFootprint()
    if shell_footprint is not None:
        fp = BootFootprint(shell_footprint=parse_size(shell_footprint))
    return VMConfig(
        memory=parse_size(memory), platform=platform, vcpus=vcpus, policy=policy, host_mapping=host_mapping,
        firmware_accept=firmware_accept, kernel=kernel, firmware_path=firmware_path, footprint=fp,
        snp_os_opt_in=os_opt_in,
    )


@click.command("boot")
@click.option("--memory", required=True, metavar="SIZE", help="Guest memory, e.g. 4G, 4095M, 16T.")
@click.option("--policy", type=click.Choice(["lazy", "eager"]), default="lazy", show_default=True,
              help="accept_memory= kernel parameter.")
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--dump", "dump_dir", default=None, metavar="DIR",
              help="Write the EFI memory map, unaccepted table, TD HOB, e820, meminfo, vmstat and dmesg.")
@click.option("--plot", "plot_file", default=None, metavar="FILE.png",
              help="Draw the timeline and memory over time.")
def boot_cmd(memory: str, policy: str, platform: str, vcpus: int | None, host_mapping: str | None,
             firmware_accept: str | None, kernel: str | None, firmware_path: str | None, profile: str | None,
             shell_footprint: str | None, os_opt_in: bool, as_json: bool, dump_dir: str | None,
             plot_file: str | None) -> None:
    """Simulate one boot of a confidential guest and report its acceptance."""
    from ..sim.costs import load_profile

    check_output_folder(plot_file)
    if dump_dir is not None:
        check_dump_folder(dump_dir)
    config = make_config(memory, policy, platform, vcpus, host_mapping, firmware_accept, kernel, firmware_path,
                         shell_footprint, os_opt_in)
    prof = load_profile(profile or platform)
    result = run(config, prof)
    starts = {p.name: p.start for p in result.timeline.phases}
    if dump_dir is not None:
        write_dump(result.record, dump_dir, starts)
    if plot_file is not None:
        from ..plots import plot_boot

        plot_boot(result, plot_file)
    if as_json:
        click.echo(json.dumps(boot_summary(result), indent=2))
    else:
        print_boot(result, make_console())
        if dump_dir is not None:
            click.echo(f"Artefacts written to {dump_dir}/")
        if plot_file is not None:
            click.echo(f"Plot written to {plot_file}")
