"""``lazyaccept boot``: model and simulate one boot, report what was accepted, by whom, when.

Exit status 0 when the modelled guest boots, 3 when it fails (a crash, an out-of-memory: a
result of the model, reported as ``lazyaccept: guest failed: ...``), 2 for bad input.  A deadline
(``--orchestrator``, ``--deadline``) the boot misses is such a result too: the report is printed
in full, then the first deadline to fail on one line and exit status 3, as the orchestrator would
give up on the guest there.
"""

from __future__ import annotations

import click

from ..base.choices import AcceptPolicy
from ..base.fileio import STDOUT, write_output
from ..base.units import parse_size
from ..presentation.boot_report import boot_summary, failure_document, print_boot
from ..presentation.console import json_text, make_console, wrote
from ..presentation.deadline_report import deadlines_document, print_deadlines
from ..presentation.like_report import like_document, print_like, print_milestones
from ..scenario.artefacts import check_dump_folder, write_dump
from ..scenario.like import add_assumed
from ..sim.deadlines import Deadline, Stage, Verdict, evaluate
from ..sim.milestones import boot_milestones
from ..sim.outcome import Failure, try_run
from ..sim.profile import CostProfile
from ..sim.run import BootResult, resolve
from .options import (
    EXIT_GUEST_FAILED,
    check_output_file,
    check_plot_file,
    check_stdout_once,
    deadline_options,
    enum_choice,
    exit_if_missed,
    given_deadlines,
    guest_options,
    guest_profile,
    guest_request,
    like_options,
)


def report_failure(failure: Failure, document: dict[str, object] | None) -> None:
    """A failed guest: the JSON document (if asked for) on stdout, one line on stderr, exit 3."""
    if document is not None:
        click.echo(json_text(document))
    click.echo(f"lazyaccept: guest failed: {failure.one_line()}", err=True)
    click.get_current_context().exit(EXIT_GUEST_FAILED)


@click.command("boot")
@click.option("--memory", default=None, metavar="SIZE", help="Guest memory, e.g. 4G, 4095M, 16T.")
@click.option("--policy", type=enum_choice(AcceptPolicy), default=None,
              help="accept_memory= kernel parameter (default: lazy).")
@guest_options
@deadline_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--dump", "dump_dir", default=None, metavar="DIR",
              help="Write the EFI memory map, unaccepted table, TD HOB, e820, meminfo, vmstat, dmesg and the "
                   "host trace into a new or empty folder, all or nothing.")
@click.option("--force", is_flag=True, help="With --dump: replace an earlier dump in that folder.")
@click.option("--like", "like_log", default=None, metavar="LOG",
              help="Take memory, vCPUs, kernel, platform, accept_memory= and firmware acceptance from a guest's "
                   "kernel log (options given win); show the log's milestones beside the model's.")
@click.option("--plot", "plot_file", default=None, metavar="FILE",
              help="Draw the timeline and memory over time (.png, .svg or .pdf by the suffix; - for PNG on stdout).")
@click.option("--html", "html_file", default=None, metavar="FILE.html",
              help="Write a one-page report (self-contained HTML) of this boot (- for stdout).")
def boot_cmd(memory: str | None, policy: str | None, profile: str | None, as_json: bool, dump_dir: str | None,
             plot_file: str | None, html_file: str | None, force: bool, like_log: str | None,
             orchestrator: str | None, deadlines: tuple[str, ...], **guest: object) -> None:
    """Simulate one boot of a confidential guest and report its acceptance."""
    held, _ = given_deadlines(orchestrator, deadlines)
    check_plot_file(plot_file)
    check_output_file(html_file, stdout=True)
    check_stdout_once(("--json", as_json), ("--plot -", plot_file == STDOUT), ("--html -", html_file == STDOUT))
    if dump_dir is not None:
        check_dump_folder(dump_dir, force)
    likeness = None
    if like_log is not None:
        likeness = like_options(like_log, guest, memory=memory, policy=policy)
        memory, policy = likeness.values["memory"], likeness.values.get("policy")
    if memory is None:
        raise click.UsageError("Missing option '--memory'.")
    prof = guest_profile(profile, guest)
    request = guest_request(parse_size(memory), policy=policy or AcceptPolicy.LAZY.value, **guest)  # type: ignore[arg-type]
    config = resolve(request, prof)
    if likeness is not None:
        add_assumed(likeness, config)
    result = try_run(config, prof)
    if isinstance(result, Failure):
        doc = failure_document(config, prof.name, result) if as_json else None
        if likeness is not None:
            if doc is not None:
                doc["like"] = like_document(likeness, None)
            else:
                print_like(make_console(stderr=STDOUT in (plot_file, html_file)), likeness)
        report_failure(result, doc)
        return
    if dump_dir is not None:
        from ..formats.host_trace import format_host_trace
        from ..sim.host_trace import model_host_trace

        trace = format_host_trace(model_host_trace(result.record, result.timeline, prof))
        write_dump(result.record, dump_dir, {p.name: p.start for p in result.timeline.phases}, force=force,
                   extra={"host-trace.txt": trace})
    if plot_file is not None:
        from ..presentation.plots import plot_boot

        plot_boot(result, plot_file)
    if html_file is not None:
        from ..presentation.result_pages import boot_page

        write_output(html_file, boot_page(result, prof, likeness))
    verdicts = _verdicts(result, prof, held)
    if as_json:
        summary = boot_summary(result, prof.name)
        if likeness is not None:
            summary["like"] = like_document(likeness, result)
        if held:
            summary |= deadlines_document(verdicts)
        click.echo(json_text(summary))
        exit_if_missed(verdicts)
        return
    console = make_console(stderr=STDOUT in (plot_file, html_file))
    if likeness is not None:
        print_like(console, likeness)
    print_boot(result, console)
    if likeness is not None:
        print_milestones(console, likeness, result)
    if dump_dir is not None:
        console.print(wrote(f"{dump_dir}/", "the artefacts"), markup=False, highlight=False)
    for written in (plot_file, html_file):
        if written is not None and written != STDOUT:
            console.print(wrote(written), markup=False, highlight=False)
    if held:
        print_deadlines(console, verdicts)
    exit_if_missed(verdicts)


def _verdicts(result: BootResult, profile: CostProfile, held: list[Deadline]) -> list[Verdict]:
    """Each deadline held against this boot's milestones (the range of /init's time is worked out
    only when a deadline names it)."""
    if not held:
        return []
    marks = boot_milestones(result.record.phases, result.timeline, result.boot_s, result.boot_range, profile,
                            init_range=any(d.stage is Stage.INIT for d in held))
    return evaluate(held, marks)
