"""``lazyaccept advise``: does this guest meet its deadlines, and which change makes it?

The guest as given (its options, ``--policy``) is the baseline; :mod:`lazyaccept.sim.advise`
moves each lever a user has from there and names the cheapest change that meets every deadline,
with what moved.  The deadlines are an orchestrator's (``--orchestrator``), one's own
(``--deadline STAGE=SECONDS``) and ``--boot-deadline S`` (``--deadline boot=S``); with none
given, the boot is held to Kata's 45 s.  A deadline is met when the upper end of the one-sigma
range is within it."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from ..base.errors import ConfigError
from ..base.units import format_size, parse_size
from ..guest.policies import Policy
from ..presentation.console import make_console
from ..presentation.deadline_report import deadlines_document
from ..scenario.workloads import Workload
from ..sim.advise import Advice, Lever, Outcome, advise
from ..sim.deadlines import Deadline, Stage, describe_miss, first_failing
from ..sim.runtime import RunResult
from ..sim.uncertainty import Range, format_range
from .options import FiniteFloat, deadline_options, given_deadlines, guest_options, guest_profile, guest_request
from .run import given_stages, run_config, runtime_options

#: Kata Containers' agent gives a guest 45 s to come up (kata-containers/kata-containers
#: src/runtime-rs/config/configuration-qemu-tdx-runtime-rs.toml.in, [agent.kata]
#: reconnect_timeout_ms = 45000): large guests miss it when they accept eagerly.
KATA_DEADLINE_S = 45.0

#: Largest guest advise searches on: it times dozens of candidates (an eager 1 TiB boot is
#: seconds; 64 TiB with 4,096 vCPUs ran out of memory).  `run` models one configuration at any size.
MAX_MEMORY = 1 << 40
MAX_VCPUS = 512
#: ``--fixed`` names: a lever by its option without the dashes.
LEVER_NAMES = {lever.value.lstrip("-"): lever for lever in Lever}


def _held(boot_deadline: float | None, orchestrator: str | None, deadlines: tuple[str, ...]) -> list[Deadline]:
    """Every deadline the options give; with none, the boot held to Kata's 45 s."""
    held, _ = given_deadlines(orchestrator, deadlines)
    if boot_deadline is not None:
        held.append(Deadline(Stage.BOOT, boot_deadline, f"--boot-deadline {boot_deadline:g}",
                             "given on the command line"))
    if not held:
        held.append(Deadline(Stage.BOOT, KATA_DEADLINE_S, "Kata reconnect_timeout_ms (default)",
                             "kata-containers/kata-containers src/runtime-rs/config/configuration-qemu-tdx-runtime-rs"
                             ".toml.in, [agent.kata] reconnect_timeout_ms = 45000"))
    return held


def _price(r: RunResult) -> tuple[float, float]:
    """Run-time price, smallest first: the worst workload slowdown, then the p99 stall."""
    slow = max((w.slowdown for w in r.workloads if w.slowdown is not None), default=1.0)
    p99 = r.stall_summary()["p99_s"] or 0.0
    return (slow, p99)


def _ranged(value: float, rng: Range | None) -> str:
    return format_range(value, rng, digits=1)


@click.command("advise")
@click.option("--memory", required=True, metavar="SIZE", help="Guest memory, e.g. 256G.")
@click.option("--policy", default="lazy", show_default=True, metavar="NAME[:ARGS]",
              help="The guest's acceptance policy as it is today (the search starts from it).")
@click.option("--boot-deadline", type=FiniteFloat(0.1, 86400), default=None, metavar="SECONDS",
              help="Seconds the guest may take to reach its shell, as --deadline boot=SECONDS (with no deadline "
                   "given: 45 s, Kata's agent reconnect budget).")
@click.option("--fixed", "fixed", multiple=True, metavar="LEVER",
              help="A lever that cannot change (repeatable): " + ", ".join(LEVER_NAMES) + ".")
@deadline_options
@guest_options
@runtime_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def advise_cmd(memory: str, policy: str, boot_deadline: float | None, fixed: tuple[str, ...],
               orchestrator: str | None, deadlines: tuple[str, ...], profile: str | None,
               workloads: tuple[str, ...], stages: tuple[str, ...], thp: str, host_cpus: int | None,
               watchdog_thresh: float, as_json: bool, **guest: object) -> None:
    """Does this guest meet its deadlines, and which change makes it? Moves every lever (policy,
    firmware accept, vCPUs, kconfig, patches, kernel, host mapping, THP, the timeout) from the
    configuration given and names the cheapest change that meets every deadline, and why."""
    held = _held(boot_deadline, orchestrator, deadlines)
    unknown = [f for f in fixed if f.strip().lower() not in LEVER_NAMES]
    if unknown:
        raise ConfigError(f"--fixed {unknown[0]!r}: not a lever (known: {', '.join(LEVER_NAMES)})")
    pinned = {LEVER_NAMES[f.strip().lower()] for f in fixed}
    parsed_stages = given_stages(stages, orchestrator)
    parsed_workloads = tuple(Workload.parse(w) for w in workloads)
    pol = Policy.parse(policy)
    prof = guest_profile(profile, guest)
    base = guest_request(parse_size(memory), **guest)  # type: ignore[arg-type]
    vcpus = base.vcpus or prof.defaults.vcpus
    if base.memory > MAX_MEMORY or vcpus > MAX_VCPUS:
        raise ConfigError(f"advise searches on guests of at most {format_size(MAX_MEMORY)} and "
                          f"{MAX_VCPUS} vCPUs (this one: {format_size(base.memory)}, {vcpus} vCPUs); "
                          "model one configuration at this size with run")

    def config(request, p: Policy, huge: bool):  # noqa: ANN001, ANN202
        return run_config(request, p, prof, workloads, "always" if huge else "never", host_cpus, watchdog_thresh,
                          parsed_workloads, parsed_stages)

    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("timing candidates", total=None)
        result = advise(base, pol, thp.lower() == "always", prof, config, held, parsed_workloads, parsed_stages,
                        pinned, progress=lambda: progress.advance(task))
    if as_json:
        click.echo(json.dumps(_document(result, held), indent=2))
        return
    _print(make_console(), result, held, base.memory, vcpus, prof.name, bool(parsed_workloads))


def _outcome_doc(o: Outcome) -> dict[str, object]:
    r, cfg = o.result, o.result.record.config
    st = r.stall_summary()
    return {
        "change": o.change.describe(),
        "moves": [{"lever": lever.value, "value": value, "note": note} for lever, value, note in o.change.moves],
        "firmware_accept": str(cfg.vm.firmware_accept), "policy": str(cfg.policy),
        "boot_s": r.boot_s, "boot_s_range": r.boot_range.as_list() if o.ranged and r.boot_range else None,
        "ready_s": r.ready_s, "ready_s_range": r.ready_range.as_list() if o.ranged and r.ready_range else None,
        "ranged": o.ranged, "meets_deadline": o.meets, "worst_margin_s": o.worst_margin_s,
        **deadlines_document(o.verdicts),
        "slowdown": _price(r)[0], "p99_stall_s": st["p99_s"], "fully_accepted_s": r.fully_accepted_s,
    }


def _document(a: Advice, held: list[Deadline]) -> dict[str, object]:
    boot_held = [d.timeout_s for d in held if d.stage is Stage.BOOT]
    best = a.best
    return {
        "boot_deadline_s": min(boot_held, default=None),
        "deadlines_held": [d.as_dict() for d in held],
        "baseline": _outcome_doc(a.baseline),
        "recommended": None if best is None else _outcome_doc(best) | {"why": a.moved},
        "timeouts_needed": [{"deadline": d.label, "stage": d.stage.value, "timeout_s": d.timeout_s,
                             "needed_s": needed} for d, needed in a.timeouts],
        "more_vcpus_slower": a.slower_with_more_vcpus or None,
        "run_time": "measured" if a.baseline.result.workloads else "not measured (no --workload)",
        "candidates": [_outcome_doc(o) for o in a.candidates],
    }


def _print(console, a: Advice, held: list[Deadline], memory: int, vcpus: int, profile: str,  # noqa: ANN001
           workloads: bool) -> None:
    b = a.baseline
    said = ", ".join(f"{d.stage.value} {d.timeout_s:g} s" for d in held)
    console.print(f"[bold]{format_size(memory)}, {vcpus} vCPUs, profile {profile}[/bold]: deadlines {said}")
    first = first_failing(b.verdicts)
    verdict = ("meets every deadline" if first is None else
               f"[bold red]misses[/bold red]: {escape(describe_miss(first))}")
    console.print(f"As given: ready {_ranged(b.result.ready_s, b.result.ready_range)}; {verdict}", highlight=False)
    t = Table(title="Changes, one lever at a time (and pairs when none is enough), readiest first",
              title_justify="left")
    for col in ("change", "ready", "meets", "worst margin", *(("slowdown",) if workloads else ()), "note"):
        t.add_column(col, justify="left" if col in ("change", "note") else "right", overflow="fold")
    for o in a.candidates:
        meets = ("yes" if o.meets else "no") if o.ranged else ("yes, nominal" if o.meets else "no")
        t.add_row(escape(o.change.describe()), _ranged(o.result.ready_s, o.result.ready_range if o.ranged else None),
                  meets, f"{o.worst_margin_s:+.1f} s", *((f"{_price(o.result)[0]:.2f}x",) if workloads else ()),
                  escape("; ".join(o.change.notes)))
    console.print(t)
    console.print("ready in brackets: one-sigma range (finalists only); a deadline is met by the range's upper end",
                  style="dim")
    if a.best is not None and not a.best.change.moves:
        console.print("[bold]Advice:[/bold] nothing to change: the guest as given meets every deadline.")
    elif a.best is not None:
        o = a.best
        notes = f" ({escape('; '.join(o.change.notes))})" if o.change.notes else ""
        console.print(f"[bold]Advice:[/bold] {escape(o.change.describe())}{notes}: ready "
                      f"{_ranged(o.result.ready_s, o.result.ready_range)}, every deadline met with "
                      f"{o.worst_margin_s:.1f} s to spare; {escape(a.moved)}.", highlight=False)
    else:
        console.print("[bold]No change tried meets every deadline.[/bold]")
    for d, needed in a.timeouts:
        console.print(f"Or change the timeout: {escape(d.label)} would need {needed:.0f} s (now {d.timeout_s:g} s).",
                      highlight=False)
    if a.slower_with_more_vcpus:
        console.print(escape(a.slower_with_more_vcpus) + ".", highlight=False)
    if not workloads:
        console.print("Run time not measured (give --workload to rank changes by their run-time price).", style="dim")

