"""``lazyaccept advise``: which firmware accept amount and policy meet the deadlines with the
smallest run-time price.

The deadlines are an orchestrator's (``--orchestrator``), one's own (``--deadline STAGE=SECONDS``)
and ``--boot-deadline S`` (the same as ``--deadline boot=S``); with none given, the boot is held
to Kata's 45 s.  A candidate meets them when every one is met by the upper end of its range."""

from __future__ import annotations

import json
from dataclasses import replace

import click
from rich.markup import escape
from rich.table import Table

from ..base.choices import FirmwareAccept
from ..base.errors import ConfigError
from ..base.units import format_size, parse_size
from ..guest.policies import Policy
from ..presentation.console import make_console
from ..presentation.deadline_report import deadlines_document
from ..sim.deadlines import Deadline, Stage, Verdict, describe_miss, evaluate, first_failing
from ..sim.milestones import run_milestones
from ..sim.profile import CostProfile
from ..sim.runtime import RunResult, simulate_run
from .options import FiniteFloat, deadline_options, given_deadlines, guest_options, guest_profile, guest_request
from .run import given_stages, run_config, runtime_options

#: Kata Containers' agent gives a guest 45 s to come up (kata-containers/kata-containers
#: src/runtime-rs/config/configuration-qemu-tdx-runtime-rs.toml.in, [agent.kata]
#: reconnect_timeout_ms = 45000): large guests miss it when they accept eagerly.
KATA_DEADLINE_S = 45.0


#: Largest guest advise tries its candidates on: each is a boot and a run, and a background policy's
#: simulation grows with memory and threads (1 TiB with 1,024 threads takes over a minute; 64 TiB
#: with 4,096 vCPUs ran out of memory).  `run --policy` models one policy at any size.
MAX_MEMORY = 1 << 40
MAX_VCPUS = 512


def _candidates(vcpus: int, firmware_accept: str | None = None) -> list[tuple[str, str]]:
    """(firmware accept, policy) pairs worth trying; only ``firmware_accept`` when one is given."""
    bg = f"background:threads={max(1, vcpus // 4)},rate={max(1, vcpus // 4) * 2}G"
    policies = ["lazy", "eager", bg, "accept-ahead:chunks=8"]
    if firmware_accept is not None:
        return [(str(FirmwareAccept.parse(firmware_accept)), p) for p in policies]
    return [(fw, p) for fw in ("below-4g", "all") for p in policies if not (fw == "all" and p != "lazy")]


def _price(r: RunResult) -> tuple[float, float]:
    """Run-time price, smallest first: the worst workload slowdown, then the p99 stall."""
    slow = max((w.slowdown for w in r.workloads if w.slowdown is not None), default=1.0)
    p99 = r.stall_summary()["p99_s"] or 0.0
    return (slow, p99)


def _upper(r: RunResult) -> float:
    """The boot time advise holds against the deadline: the upper end of its one-sigma range."""
    return r.boot_range.high if r.boot_range is not None else r.boot_s


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


def _verdicts(r: RunResult, prof: CostProfile, held: list[Deadline]) -> list[Verdict]:
    return evaluate(held, run_milestones(r, prof, init_range=any(d.stage is Stage.INIT for d in held)))


@click.command("advise")
@click.option("--memory", required=True, metavar="SIZE", help="Guest memory, e.g. 256G.")
@click.option("--boot-deadline", type=FiniteFloat(0.1, 86400), default=None, metavar="SECONDS",
              help="Seconds the guest may take to reach its shell, as --deadline boot=SECONDS (with no deadline "
                   "given: 45 s, Kata's agent reconnect budget).")
@deadline_options
@guest_options
@runtime_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def advise_cmd(memory: str, boot_deadline: float | None, orchestrator: str | None, deadlines: tuple[str, ...],
               profile: str | None, workloads: tuple[str, ...], stages: tuple[str, ...], thp: str,
               host_cpus: int | None, watchdog_thresh: float, as_json: bool, **guest: object) -> None:
    """Try firmware accept amounts and acceptance policies; say which meet the boot deadline with
    the smallest run-time price (workload slowdown, then p99 first-touch stall), and why."""
    held = _held(boot_deadline, orchestrator, deadlines)
    parsed_stages = given_stages(stages, orchestrator)
    prof = guest_profile(profile, guest)
    fixed_fw = guest.pop("firmware_accept", None)  # given: only that amount is tried
    base = guest_request(parse_size(memory), **guest)  # type: ignore[arg-type]
    vcpus = base.vcpus or prof.defaults.vcpus
    if base.memory > MAX_MEMORY or vcpus > MAX_VCPUS:
        raise ConfigError(f"advise tries its candidates on guests of at most {format_size(MAX_MEMORY)} and "
                          f"{MAX_VCPUS} vCPUs (this one: {format_size(base.memory)}, {vcpus} vCPUs); "
                          "model one policy at this size with run --policy")
    rows = []
    baselines: dict = {}  # candidates with the same firmware share their eager baseline
    for fw, pol in _candidates(vcpus, fixed_fw):  # type: ignore[arg-type]
        request = replace(base, firmware_accept=FirmwareAccept.parse(fw))
        policy = Policy.parse(pol)
        result = simulate_run(run_config(request, policy, prof, workloads, thp, host_cpus, watchdog_thresh,
                                         stages=parsed_stages), prof, baselines=baselines)
        rows.append((fw, policy, result))
    verdicts = {id(r): _verdicts(r, prof, held) for _, _, r in rows}

    def meets_all(r: RunResult) -> bool:
        """Every deadline met by the upper end of its milestone's one-sigma range."""
        return all(v.met for v in verdicts[id(r)])

    meets = [r for r in rows if meets_all(r[2])]
    ranked = sorted(meets, key=lambda r: _price(r[2])) + sorted((r for r in rows if r not in meets),
                                                                 key=lambda r: _upper(r[2]))
    best = ranked[0] if meets else None
    if as_json:
        boot_held = [d.timeout_s for d in held if d.stage is Stage.BOOT]
        doc = {"boot_deadline_s": min(boot_held, default=None),
               "deadlines_held": [d.as_dict() for d in held],
               "recommended": None if best is None else {"firmware_accept": best[0], "policy": str(best[1])},
               "candidates": [{"firmware_accept": fw, "policy": str(p), "boot_s": r.boot_s,
                               "boot_s_range": None if r.boot_range is None else r.boot_range.as_list(),
                               "meets_deadline": meets_all(r), **deadlines_document(verdicts[id(r)]),
                               "slowdown": _price(r)[0],
                               "p99_stall_s": r.stall_summary()["p99_s"], "fully_accepted_s": r.fully_accepted_s}
                              for fw, p, r in ranked]}
        click.echo(json.dumps(doc, indent=2))
        return
    console = make_console()
    said = ", ".join(f"{d.stage.value} {d.timeout_s:g} s" for d in held)
    t = Table(title=f"{format_size(base.memory)}, {vcpus} vCPUs, profile {prof.name}: deadlines {said}",
              title_justify="left")
    for col in ("firmware accepts", "policy", "boot", "meets", "slowdown", "p99 stall", "fully accepted"):
        if col == "policy":  # never folded or cut: the other columns give way first
            t.add_column(col, no_wrap=True, min_width=max(len(str(p)) for _, p, _ in ranked))
            continue
        t.add_column(col, justify="left" if col == "firmware accepts" else "right", overflow="fold")
    for fw, p, r in ranked:
        st = r.stall_summary()
        boot = f"{r.boot_s:.1f} s" + ("" if r.boot_range is None else
                                      f" ({r.boot_range.low:.1f}-{r.boot_range.high:.1f})")
        t.add_row(fw, escape(str(p)), boot, "yes" if meets_all(r) else "no",
                  f"{_price(r)[0]:.2f}x", "-" if st["p99_s"] is None else f"{st['p99_s'] * 1e3:.1f} ms",
                  "never" if r.fully_accepted_s is None else f"{r.fully_accepted_s:.1f} s")
    console.print(t)
    if best is None:
        fastest = min(rows, key=lambda r: r[2].boot_s)
        console.print(f"[bold]None meets the deadlines[/bold]: the fastest boot is {escape(str(fastest[1]))} with "
                      f"firmware accepting {fastest[0]}, {fastest[2].boot_s:.1f} s.")
        first = first_failing(verdicts[id(fastest[2])])
        if first is not None:
            console.print(f"Its first to fail: {escape(describe_miss(first))}", highlight=False)
        return
    fw, p, r = best
    why = ("no workload given: its boot meets the deadline (the upper end of its range), and the run-time "
           "price was not measured (give --workload to rank by it)" if not r.workloads else
           f"it meets the deadline ({r.boot_s:.1f} s) with the smallest slowdown of the workloads "
           f"({_price(r)[0]:.2f}x)")
    console.print(f"[bold]Advice:[/bold] firmware accepts {fw}, --policy {escape(str(p))}: {why}.")
