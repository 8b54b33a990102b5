"""``lazyaccept run``: boot, then run workloads on the same simulated clock."""

from __future__ import annotations

import json

import click

from ..base.fileio import STDOUT, write_output
from ..base.units import parse_size
from ..guest.policies import Policy
from ..presentation.console import make_console, wrote
from ..presentation.deadline_report import deadlines_document, print_deadlines
from ..presentation.run_report import print_run
from ..scenario.runtime import RunConfig
from ..scenario.stages import Stage
from ..scenario.workloads import Workload
from ..sim.deadlines import Stage as Milestone
from ..sim.deadlines import evaluate
from ..sim.milestones import run_milestones
from ..sim.orchestrators import load_orchestrator
from ..sim.run import resolve
from ..sim.runtime import run_document, simulate_run
from .options import (
    FiniteFloat,
    check_output_file,
    check_plot_file,
    check_stdout_once,
    deadline_options,
    exit_if_missed,
    given_deadlines,
    guest_options,
    guest_profile,
    guest_request,
)


def runtime_options(f):  # noqa: ANN001, ANN201
    """Options of what runs after the shell, shared by ``run``, ``compare`` and ``advise``."""
    opts = [
        click.option("--workload", "workloads", multiple=True, metavar="KIND:ARGS[@SECONDS]",
                     help="touch:SIZE[,threads=N], drain[,workers=N], steady:RATE,for=DURATION, pretouch:SIZE, "
                          "trace:FILE.csv (repeatable; @SECONDS: start that long after the shell)."),
        click.option("--stage", "stages", multiple=True, metavar="NAME[:ARGS]",
                     help="A stage from the shell to ready, in order (repeatable): agent[:SECONDS], attest[:SECONDS], "
                          "modelload:SIZE,from=RATE[,threads=N]. Default: the --orchestrator's stages, if any."),
        click.option("--thp", type=click.Choice(["never", "always"], case_sensitive=False), default="never",
                     show_default=True, help="Transparent huge pages for the workloads' memory."),
        click.option("--host-cpus", type=click.IntRange(1, 65536), default=None, metavar="N",
                     help="Physical CPUs the host runs the vCPUs on (default: one each)."),
        click.option("--watchdog-thresh", type=FiniteFloat(1, 60), default=10.0, show_default=True, metavar="SECONDS",
                     help="kernel.watchdog_thresh (s): a soft lockup is reported past twice it."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def run_config(request, policy: Policy, profile, workloads: tuple[str, ...], thp: str, host_cpus: int | None,  # noqa: ANN001
               watchdog_thresh: float, parsed: tuple[Workload, ...] | None = None,
               stages: tuple[Stage, ...] = ()) -> RunConfig:
    from dataclasses import replace

    req = replace(request, policy=policy.accept_memory, patches=policy.with_patches(request.patches))
    vm = resolve(req, profile)
    wl = parsed if parsed is not None else tuple(Workload.parse(w) for w in workloads)
    return RunConfig(vm, wl, policy, thp.lower() == "always", host_cpus, watchdog_thresh, stages)


def given_stages(stages: tuple[str, ...], orchestrator: str | None) -> tuple[Stage, ...]:
    """The stages the options give; with none, the orchestrator's (Kata: its agent, then the
    attestation)."""
    if not stages and orchestrator is not None:
        stages = load_orchestrator(orchestrator).stages
    return tuple(Stage.parse(s) for s in stages)


@click.command("run")
@click.option("--memory", required=True, metavar="SIZE", help="Guest memory, e.g. 64G.")
@click.option("--policy", default="lazy", show_default=True, metavar="NAME[:ARGS]",
              help="lazy, eager, background:threads=N,rate=R, accept-ahead:chunks=K, userspace-drain:rate=R, "
                   "accepted-reserve.")
@guest_options
@runtime_options
@deadline_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--plot", "plot_file", default=None, metavar="FILE",
              help="Draw the stall distribution and memory accepted over time (.png, .svg or .pdf by the suffix; "
                   "- for PNG on stdout).")
@click.option("--html", "html_file", default=None, metavar="FILE.html",
              help="Write a one-page report (self-contained HTML) of the run (- for stdout).")
def run_cmd(memory: str, policy: str, profile: str | None, workloads: tuple[str, ...], stages: tuple[str, ...],
            thp: str, host_cpus: int | None, watchdog_thresh: float, orchestrator: str | None,
            deadlines: tuple[str, ...], as_json: bool, plot_file: str | None, html_file: str | None,
            **guest: object) -> None:
    """Boot a confidential guest, then run workloads and the stages to ready on the same clock:
    first-touch stalls, slowdown against an eagerly accepted guest, IRQs-off time, when memory is
    fully accepted, when the guest is ready, and the deadlines it meets or misses.

    Exit status 3 when a deadline is missed (after the report), 2 for bad input."""
    held, _ = given_deadlines(orchestrator, deadlines)
    parsed_stages = given_stages(stages, orchestrator)
    check_plot_file(plot_file)
    check_output_file(html_file, stdout=True)
    check_stdout_once(("--json", as_json), ("--plot -", plot_file == STDOUT), ("--html -", html_file == STDOUT))
    pol = Policy.parse(policy)
    parsed = tuple(Workload.parse(w) for w in workloads)
    prof = guest_profile(profile, guest)
    request = guest_request(parse_size(memory), **guest)  # type: ignore[arg-type]
    config = run_config(request, pol, prof, workloads, thp, host_cpus, watchdog_thresh, parsed, parsed_stages)
    result = simulate_run(config, prof)
    verdicts = evaluate(held, run_milestones(result, prof, init_range=any(d.stage is Milestone.INIT for d in held))
                        ) if held else []
    if plot_file is not None:
        from ..presentation.plots import plot_policies

        plot_policies(plot_file, [result])
    if html_file is not None:
        from ..presentation.result_pages import run_page

        write_output(html_file, run_page(result, prof))
    if as_json:
        doc = run_document(result, prof)
        if verdicts:
            doc |= deadlines_document(verdicts)
        click.echo(json.dumps(doc, indent=2))
        exit_if_missed(verdicts)
        return
    console = make_console(stderr=STDOUT in (plot_file, html_file))
    print_run(console, result, prof)
    if verdicts:
        print_deadlines(console, verdicts)
    for written in (plot_file, html_file):
        if written is not None and written != STDOUT:
            console.print(wrote(written), markup=False, highlight=False)
    exit_if_missed(verdicts)
