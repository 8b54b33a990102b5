"""One boot as a person reads it (a table) and as a program reads it (one JSON document)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..base.record import AcceptEvent, AcceptStats
from ..base.units import format_size
from ..scenario.artefacts import meminfo_fields, vmstat_fields
from ..scenario.config import VMConfig
from ..sim.outcome import Failure
from ..sim.run import BootResult

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


def boot_summary(result: BootResult, result_profile: str) -> dict[str, Any]:
    """The JSON document of one boot, simulated with the profile named ``result_profile``."""
    rec, tl = result.record, result.timeline
    groups = acceptance_by_group(result)
    total = AcceptStats()
    for s in groups.values():
        total += s
    table = rec.kernel.table
    return {
        "ok": True,
        "config": rec.config.as_dict() | {"profile": result_profile},
        "boot_s": tl.total_s,
        "boot_s_range": None if result.boot_range is None else result.boot_range.as_list(),
        # A boot runs no stage after the shell (run --stage does): it is ready at its shell.
        "ready_s": tl.total_s,
        "ready_s_range": None if result.boot_range is None else result.boot_range.as_list(),
        "stages": [],
        "accept_s": tl.accept_s,
        "accept_wall_s": tl.accept_wall_s,
        "phases": [
            {"name": p.name, "actor": p.actor, "start_s": p.start, "end_s": p.end, "accept_s": p.accept_s,
             # What the README promises per phase: the wait on the host's serialised path and the
             # idle vCPUs' timer exits (a count: the fluid model's ticks, rounded).
             "host_path_wait_s": p.path_wait_s, "idle_exits": round(p.idle_exits)}
            for p in tl.phases
        ],
        "vcpu_busy_s": {str(k): v for k, v in sorted(tl.vcpu_busy_s.items())},
        "accepted_bytes": {k: v.bytes_accepted for k, v in groups.items()},
        "acceptance": {k: v.as_dict() for k, v in groups.items()},
        "accept_calls": {"4k": total.calls_4k, "2m": total.calls_2m, "1g": total.calls_1g},
        "exits": total.exits,
        "size_mismatch": total.size_mismatch,
        "swiotlb_bytes": swiotlb_bytes(result),
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


def failure_document(config: VMConfig, result_profile: str, failure: Failure) -> dict[str, Any]:
    """The JSON document of a boot in which the modelled guest failed."""
    return {
        "ok": False,
        "config": config.as_dict() | {"profile": result_profile},
        "failure": failure.as_dict(),
    }


def swiotlb_bytes(result: BootResult) -> int:
    """The SWIOTLB buffer memblock gave (and the kernel converted to shared)."""
    lo, hi = result.record.kernel.reservations.get("swiotlb", (0, 0))
    return hi - lo


def print_boot(result: BootResult, console: Console) -> None:
    rec, tl = result.record, result.timeline
    cfg = rec.config
    nodes = f" on {cfg.numa_nodes} NUMA nodes" if cfg.numa_nodes > 1 else ""
    console.print(
        f"[bold]{cfg.tee.value.upper()} guest, {format_size(cfg.memory)}, {cfg.vcpus} vCPU(s){nodes}, "
        f"accept_memory={cfg.policy}[/bold]  kernel {cfg.kernel_release} ({cfg.kernel.name} rules), host maps "
        f"private memory at {cfg.host_mapping.value.upper()}, firmware accepts {cfg.firmware_accept}"
    )
    slabs = cfg.footprint.swiotlb_slabs
    if slabs:
        got = swiotlb_bytes(result)
        asked = cfg.footprint.swiotlb_size(rec.kernel.ram.total(), cfg.possible_cpus)
        why = "" if got == asked else (f"; {format_size(asked)} did not fit below 4 GiB, and swiotlb_init_remap() "
                                       "halved it until it did")
        console.print(f"SWIOTLB (swiotlb={slabs}): {format_size(got)} below 4 GiB, converted to shared{why}")
    t = Table(title="Timeline (simulated)")
    for col in ("phase", "start s", "end s", "duration s", "accepting vCPU-s"):
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
    rng = ""
    if result.boot_range is not None:
        lo, hi = result.boot_range.low, result.boot_range.high
        rng = f" (one sigma {lo:.2f}-{hi:.2f} s, from the profile's fitted uncertainties)"
    console.print(f"[bold]Boot to shell: {tl.total_s:.2f} s[/bold]{rng}; accepting: {tl.accept_s:.2f} vCPU-s")
