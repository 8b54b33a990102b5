"""Many guests on one host: per guest its boot (and workload end) together and alone, and the
host memory they commit against the host's RAM; as a table and as one JSON document."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..base.choices import HostPath
from ..base.units import format_size
from ..sim.host import GuestOnHost, HostResult
from ..sim.profile import CostProfile


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def _more(together: float | None, alone: float | None) -> str:
    if together is None or alone is None or alone <= 0:
        return "-"
    return f"{round((together / alone - 1) * 100, 1) + 0.0:+.1f}%"  # + 0.0: no "-0.0%" for a rounding's sign


def _guest_line(g: GuestOnHost) -> str:
    cfg = g.result.record.config
    vm = cfg.vm
    return f"{format_size(vm.memory)} {vm.vcpus}v {cfg.policy} {vm.kernel_release}"


def print_host(console: Console, result: HostResult, profile: CostProfile) -> None:
    host = result.host
    cpus = f"{host.cpus} CPUs" if host.cpus else "a CPU per vCPU"
    ram = format_size(result.host_memory) if result.host_memory else "RAM not given"
    path = "one serialised path for all guests" if result.path is HostPath.SHARED else "a serialised path per guest"
    what_ifs = sorted(f.value for f in result.features.features)
    console.print(f"[bold]{len(result.guests)} guest(s) on one host[/bold]: {cpus}, {ram}, "
                  f"memory bandwidth {host.memory_bandwidth / 1e9:g} GB/s, {path}, profile {profile.name}"
                  + (f"; what-ifs: {', '.join(what_ifs)}" if what_ifs else ""))
    console.print("Times from each guest's start; alone = the same guest by itself on this host", soft_wrap=True)
    t = Table()
    for col in ("guest", "start", "boot", "alone", "contention", "workload end", "alone ", "contention ",
                "committed", "what"):
        t.add_column(col.strip(), justify="left" if col in ("guest", "what") else "right")
    for g in result.guests:
        t.add_row(escape(g.guest.name), _s(g.guest.start), _s(g.boot_s), _s(g.boot_alone_s),
                  _more(g.boot_s, g.boot_alone_s), _s(g.end_s), _s(g.end_alone_s), _more(g.end_s, g.end_alone_s),
                  format_size(g.committed[-1][1]), escape(_guest_line(g)))
    console.print(t)
    peak = result.peak_committed
    peak_t = next((t for t, b in result.committed if b == peak), 0.0)
    of = f" of {format_size(result.host_memory)}" if result.host_memory else ""
    console.print(f"Host memory committed by the guests: peak {format_size(peak)}{of} "
                  f"at {peak_t:.2f} s (host time)")
    if result.reserved_bytes:
        kept = format_size(result.reserved_bytes)
        console.print(f"Kept by the TDX module whatever the guests do (static PAMT): {kept} of the host's RAM")
    oom = result.out_of_memory
    if oom is not None:
        console.print(f"[bold red]The host's RAM runs out at {oom.t:.2f} s[/bold red]: {escape(oom.guest)}'s "
                      f"first touch commits past it ({format_size(oom.committed)} committed)")


def host_document(result: HostResult, profile: CostProfile) -> dict[str, Any]:
    """The JSON document of a host run."""
    oom = result.out_of_memory
    return {
        "host": {"profile": profile.name, "cpus": result.host.cpus, "memory_bytes": result.host_memory,
                 "path": result.path.value, "features": sorted(f.value for f in result.features.features),
                 "reserved_bytes": result.reserved_bytes,
                 "memory_bandwidth_bps": result.host.memory_bandwidth},
        "guests": [
            {"name": g.guest.name, "start_s": g.guest.start, "config": g.result.record.config.as_dict(),
             "boot_s": g.boot_s, "boot_alone_s": g.boot_alone_s, "end_s": g.end_s, "end_alone_s": g.end_alone_s,
             "workloads": [{"name": w.name, "start_s": w.start_s - g.guest.start, "end_s": w.end_s - g.guest.start,
                            "duration_s": w.duration_s} for w in g.result.workloads],
             "committed_bytes": g.committed[-1][1]}
            for g in result.guests
        ],
        "committed_over_time": result.committed,
        "peak_committed_bytes": result.peak_committed,
        "out_of_memory": None if oom is None else {"t_s": oom.t, "guest": oom.guest, "committed_bytes": oom.committed},
    }
