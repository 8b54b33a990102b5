"""A run (boot, then workloads) as a table, and policies compared at boot and at run time."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..base.units import format_size
from ..sim.profile import CostProfile
from ..sim.runtime import RunResult
from ..sim.uncertainty import Range


def _s(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "-"
    if x and abs(x) < 0.01:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.{digits}f} s"


def print_run(console: Console, result: RunResult, profile: CostProfile) -> None:
    cfg = result.record.config
    vm = cfg.vm
    console.print(
        f"[bold]{vm.tee.value.upper()} guest, {format_size(vm.memory)}, {vm.vcpus} vCPU(s), policy "
        f"{escape(str(cfg.policy))}[/bold]  kernel {vm.kernel_release}, profile {profile.name}"
        + (f", {cfg.host_cpus} host CPUs" if cfg.host_cpus else "")
    )
    if result.workloads:
        # A heading line of its own: a table title wraps at the table's width.
        console.print("Workloads (simulated; baseline = the same workloads on an eagerly accepted guest)",
                      soft_wrap=True)
        t = Table()
        for col in ("workload", "start", "end", "duration", "baseline", "slowdown"):
            t.add_column(col, justify="left" if col == "workload" else "right")
        for w in result.workloads:
            t.add_row(escape(w.name), _s(w.start_s), _s(w.end_s), _ranged(w.duration_s, w.duration_range),
                      _s(w.baseline_s), "-" if w.slowdown is None else f"{w.slowdown:.2f}x")
        console.print(t)
    if result.stages:
        console.print("Stages from the shell to ready (each when the one before it is done)", soft_wrap=True)
        t = Table()
        for col in ("stage", "start", "end", "duration"):
            t.add_column(col, justify="left" if col == "stage" else "right")
        for stage in result.stages:
            t.add_row(escape(stage.name), _s(stage.start_s), _ranged(stage.end_s, stage.end_range),
                      _s(stage.duration_s))
        console.print(t)
    if result.boot_range is not None:
        console.print(f"times in brackets: one-sigma range from {profile.name}'s fitted uncertainties", style="dim")
    st = result.stall_summary()
    ready = f"; ready {_ranged(result.ready_s, result.ready_range)}" if result.stages else ""
    console.print(
        f"Boot to shell {_ranged(result.boot_s, result.boot_range)}{ready}; first-touch stalls: {st['count']:,} "
        f"(p50 {_s(st['p50_s'])}, p99 {_s(st['p99_s'])}, p99.9 {_s(st['p999_s'])}, max {_s(st['max_s'])})"
    )
    lockup = "[bold red]soft lockup[/bold red]" if result.soft_lockup else "no soft lockup"
    if not result.soft_lockup and result.irqs_off_max_s > 2 * cfg.watchdog_thresh:  # v6.9+: touched at the end
        lockup += f": the watchdog sees {_s(result.watchdog_stretch_max_s)} untouched"
    console.print(
        f"Longest accept_memory() with IRQs off: {_s(result.irqs_off_max_s)} ({lockup} at "
        f"watchdog_thresh={cfg.watchdog_thresh:g} s); fully accepted: "
        f"{_s(result.fully_accepted_s) if result.fully_accepted_s is not None else 'never'}; "
        f"host committed {format_size(result.record.boot.platform.host_committed)}"
    )
    by = ", ".join(f"{escape(k)} {v:.2f} s" for k, v in sorted(result.accept_by.items(), key=lambda kv: -kv[1]))
    console.print(f"CPU time accepting, by whom: {by}", style="dim")


def _ranged(value: float, rng: Range | None) -> str:
    """A time with its one-sigma range from the profile's fitted uncertainties: ``65.86 s (60.1-71.9)``."""
    if rng is None:
        return _s(value)
    return f"{_s(value)} ({rng.low:.3g}-{rng.high:.3g})"


def print_policies(console: Console, results: list[RunResult], profile: CostProfile) -> None:
    """Per policy: boot time, workload slowdown, stalls, IRQs off, time to fully accepted, host memory."""
    vm = results[0].record.config.vm
    t = Table(title=f"{vm.tee.value.upper()} {format_size(vm.memory)}, {vm.vcpus} vCPU(s), profile {profile.name}: "
                    "acceptance policies at boot and at run time", title_justify="left")
    # A policy's name is never folded: it is what a user copies into --policy.  Long headers take two
    # lines so the table fits 132 columns (a pipe's width) with the longest policy names.
    t.add_column("policy", no_wrap=True, min_width=max(len(str(r.record.config.policy)) for r in results))
    staged = any(r.stages for r in results)
    for col in ("boot", *(("ready",) if staged else ()), "workload", "slowdown", "stalls", "p99 stall", "max stall",
                "IRQs off\nmax", "fully\naccepted", "host\ncommitted"):
        # A time and its range stay on one line: the other columns give way.
        t.add_column(col, justify="right", overflow="fold", no_wrap=col in ("boot", "ready"))
    for r in results:
        st = r.stall_summary()
        slow = [w.slowdown for w in r.workloads if w.slowdown is not None]
        dur = max((w.end_s for w in r.workloads), default=r.boot_s) - min((w.start_s for w in r.workloads),
                                                                            default=r.boot_s)
        one = r.workloads[0].duration_range if len(r.workloads) == 1 else None
        ready = (_ranged(r.ready_s, r.ready_range),) if staged else ()
        work = _ranged(dur, one) if r.workloads else "-"
        t.add_row(escape(str(r.record.config.policy)), _ranged(r.boot_s, r.boot_range), *ready, work,
                  f"{max(slow):.2f}x" if slow else "-", f"{st['count']:,}", _s(st["p99_s"]), _s(st["max_s"]),
                  _s(r.irqs_off_max_s), _s(r.fully_accepted_s) if r.fully_accepted_s is not None else "never",
                  format_size(r.record.boot.platform.host_committed))
    console.print(t)
    if any(r.boot_range is not None for r in results):
        console.print(f"times in brackets: one-sigma range from {profile.name}'s fitted uncertainties", style="dim")
