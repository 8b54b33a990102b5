"""A sized sandbox as a person reads it (tables) and as a program reads it (one JSON document)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..base.units import MiB, format_size
from ..sim.orchestrators import Overhead
from ..sim.sizing import Sizing, Tried
from ..sim.uncertainty import format_range

#: Where the two overhead values an orchestrator needs are defined.
KATA_OVERHEAD_SOURCE = ("https://github.com/kata-containers/kata-containers/blob/main/docs/how-to/"
                        "how-to-size-sandbox-overhead-runtime-rs.md (vm_memory = requested_memory + overhead_memory)")
POD_FIXED_SOURCE = ("https://kubernetes.io/docs/concepts/scheduling-eviction/pod-overhead/ (RuntimeClass "
                    "overhead.podFixed: added to the containers' limits when the pod's cgroup is sized)")
HOST_SIDE = "plus the host's own processes for the pod (QEMU, the Kata shim, virtiofsd), which the model does not price"


def _mib_up(nbytes: int) -> int:
    """Whole MiB, rounded up: an overhead a little short is a pod killed."""
    return -(-nbytes // MiB)


def overheads(s: Sizing, shipped: Overhead | None, orchestrator: str | None) -> dict[str, Any]:
    """Kata's ``overhead_memory`` (guest side: the VM less the workload's limit) and the least
    ``overhead.podFixed.memory`` (the host memory committed at steady state less the limit)."""
    kata = _mib_up(s.vm_bytes - s.limit)
    pod = None if s.committed_steady is None else _mib_up(s.committed_steady - s.limit)
    return {
        "kata_overhead_memory_mib": kata,
        "kata_overhead_source": KATA_OVERHEAD_SOURCE,
        "pod_fixed_memory_min_mib": pod,
        "pod_fixed_note": HOST_SIDE,
        "pod_fixed_source": POD_FIXED_SOURCE,
        "orchestrator": None if orchestrator is None else {
            "name": orchestrator,
            "overhead_memory_mib": None if shipped is None else shipped.memory // MiB,
            "key": None if shipped is None else shipped.key,
            "source": None if shipped is None else shipped.source,
            "short_by_mib": None if shipped is None else max(0, kata - shipped.memory // MiB),
        },
    }


def _tried(t: Tried) -> dict[str, Any]:
    return {"memory_bytes": t.memory, "available_bytes": t.available, "failure": t.failure}


def size_document(s: Sizing, profile: str, smaller: Tried | None, shipped: Overhead | None,
                  orchestrator: str | None) -> dict[str, Any]:
    b = s.budget
    boot = s.boot
    return {
        "limit_bytes": s.limit,
        "step_bytes": s.step,
        "config": boot.record.config.as_dict() | {"profile": profile},
        "memory_bytes": s.vm_bytes,
        "mem_total_bytes": b.mem_total,
        "mem_available_bytes": b.mem_available,
        "to_mem_total": [{"name": i.name, "bytes": i.bytes, "source": i.source} for i in b.to_mem_total],
        "to_available": [{"name": i.name, "bytes": i.bytes, "source": i.source} for i in b.to_available],
        "host_committed_at_boot_bytes": s.committed_at_boot,
        "host_committed_steady_bytes": s.committed_steady,
        "steady_failure": s.steady_failure,
        "overhead": overheads(s, shipped, orchestrator),
        "one_step_smaller": None if smaller is None else _tried(smaller),
        "tried": [_tried(t) for t in s.tried],
        "boot_s": boot.boot_s,
        "boot_s_range": None if boot.boot_range is None else boot.boot_range.as_list(),
    }


def _mib(nbytes: int) -> str:
    return f"{nbytes / MiB:,.2f} MiB"


def print_size(console: Console, s: Sizing, profile: str, smaller: Tried | None, shipped: Overhead | None,
               orchestrator: str | None) -> None:
    cfg = s.boot.record.config
    b = s.budget
    console.print(f"[bold]{cfg.tee.value.upper()} guest for a workload of {format_size(s.limit)}: "
                  f"{s.vm_bytes // MiB:,} MiB[/bold] ({cfg.vcpus} vCPU(s), kernel {cfg.kernel_release}, "
                  f"profile {escape(profile)}, sizes in steps of {format_size(s.step)})")
    t = Table(title="What the guest sees", title_justify="left")
    for col in ("", "memory", "where"):
        t.add_column(col, justify="right" if col == "memory" else "left", overflow="fold")
    t.add_row("guest memory (the VM's size)", _mib(s.vm_bytes), "")
    for i in b.to_mem_total:
        t.add_row(f"- {i.name}", _mib(i.bytes), escape(i.source))
    t.add_row("[bold]= MemTotal[/bold]", _mib(b.mem_total), "fs/proc/meminfo.c (totalram_pages)")
    for i in b.to_available:
        t.add_row(f"- {i.name}", _mib(i.bytes), escape(i.source))
    t.add_row("[bold]= MemAvailable[/bold]", _mib(b.mem_available),
              f"at least the workload's {format_size(s.limit)}")
    console.print(t)
    if smaller is not None:
        left = (f"leaves {_mib(smaller.available)}" if smaller.available is not None
                else f"fails to boot ({escape(smaller.failure or '')})")
        console.print(f"One step smaller, {smaller.memory // MiB:,} MiB, {left}.", highlight=False)
    steady = (f"{format_size(s.committed_steady)} once the workload has touched its {format_size(s.limit)}"
              if s.committed_steady is not None
              else f"unknown: the modelled run failed ({escape(s.steady_failure or '')})")
    console.print(f"Host memory committed: {format_size(s.committed_at_boot)} at the shell, {steady}.",
                  highlight=False)
    o = overheads(s, shipped, orchestrator)
    console.print(f"[bold]Kata overhead_memory:[/bold] {o['kata_overhead_memory_mib']} MiB (the VM less the "
                  "workload's limit)", highlight=False)
    if o["pod_fixed_memory_min_mib"] is not None:
        console.print(f"[bold]RuntimeClass overhead.podFixed.memory:[/bold] at least "
                      f"{o['pod_fixed_memory_min_mib']}Mi (host memory committed less the limit), {HOST_SIDE}",
                      highlight=False)
    orch = o["orchestrator"]
    if orch is not None:
        if orch["overhead_memory_mib"] is None:
            console.print(f"{escape(orchestrator or '')} ships no memory overhead.", highlight=False)
        else:
            verdict = (f"short by {orch['short_by_mib']} MiB" if orch["short_by_mib"] else "enough")
            console.print(f"{escape(orchestrator or '')} ships {orch['overhead_memory_mib']} MiB "
                          f"({escape(orch['key'])}): {verdict}.", highlight=False)
    console.print(f"Boot to shell: {format_range(s.boot.boot_s, s.boot.boot_range)}", highlight=False)
