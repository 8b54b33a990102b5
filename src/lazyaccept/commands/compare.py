"""``lazyaccept compare``: eager vs lazy acceptance across memory sizes, for one or more hosts."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import Progress

from ..base.choices import HostMapping, Tee
from ..base.errors import ConfigError
from ..base.fileio import STDOUT, write_output
from ..base.units import format_size, parse_size
from ..presentation.compare_report import compare_document, print_compare
from ..presentation.console import json_text, make_console, wrote
from ..presentation.like_report import like_document, print_like
from ..scenario.like import Likeness, add_assumed
from ..scenario.stages import Stage
from ..sim.profile import load_profile
from ..sim.run import check_profile_fits, resolve
from ..sim.sweep import FailedRow, compare_policies
from .options import (
    check_output_file,
    check_plot_file,
    check_stdout_once,
    enum_choice,
    guest_request,
    large_guest_options,
    like_options,
)
from .run import run_config, runtime_options

#: What ``compare --like`` takes from a log: not accept_memory= (compare boots both policies).
COMPARE_FIELDS = ("memory", "platform", "vcpus", "kernel", "firmware_accept")
COMPARE_ASSUMED = ("platform", "vcpus", "kernel", "firmware_accept", "host_mapping")


@click.command("compare")
@click.option("--memory", "memory", multiple=True, metavar="SIZE", help="Guest memory size (repeatable), e.g. 4G.")
@click.option("--profile", "profiles", multiple=True, metavar="NAME|PATH",
              help="Host profile (repeatable: the rows of each; default: the platform's).")
@click.option("--platform", type=enum_choice(Tee), default=None, help="TEE platform (default: each profile's).")
@click.option("--vcpus", type=int, default=None, metavar="N", help="vCPUs (default: each profile's).")
@click.option("--max-vcpus", type=int, default=None, metavar="N",
              help="Possible CPUs, QEMU's -smp maxcpus (default: --vcpus).")
@click.option("--host-mapping", type=enum_choice(HostMapping), default=None, help="Host private mapping size.")
@click.option("--kernel", default=None, metavar="RELEASE",
              help="Kernel release whose rules apply, e.g. 6.5, 6.8, 6.12, mainline (default: each profile's).")
@click.option("--firmware-accept", default=None, metavar="below-4g|all|SIZE",
              help="What firmware accepts before the OS (default: each profile's).")
@click.option("--firmware", "firmware_path", default=None, metavar="PATH",
              help="OVMF/TDVF image to take TDVF sections from (default: Debian's OVMF_CODE.fd).")
@click.option("--shell-footprint", default=None, metavar="SIZE", help="Memory touched to reach a shell (default 256M).")
@large_guest_options
@click.option("--snp-prefault", is_flag=True,
              help="SNP host option: QEMU pre-faults each range a page-state change makes private "
                   "(KVM_PRE_FAULT_MEMORY), so validation takes no nested page fault per page.")
@click.option("--os-opt-in/--no-os-opt-in", default=True, show_default=True,
              help="SNP: the OS calls AllowUnacceptedMemory; without it OVMF accepts everything at "
                   "ExitBootServices.")
@click.option("--kconfig", "kconfig", multiple=True, metavar="NAME=VALUE", help="Kernel build option (repeatable).")
@click.option("--patch", "patches", multiple=True, metavar="NAME", help="Guest kernel patch (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--like", "like_log", default=None, metavar="LOG",
              help="Take memory, vCPUs, kernel, platform and firmware acceptance from a guest's kernel log "
                   "(options given win).")
@click.option("--plot", "plot_path", default=None, metavar="FILE",
              help="Plot boot time against memory (with --policy/--workload: stall CDF and memory accepted); "
                   ".png, .svg or .pdf by the suffix; - for PNG on stdout.")
@click.option("--html", "html_path", default=None, metavar="FILE.html",
              help="Write a one-page report (self-contained HTML) of the eager/lazy comparison (- for stdout; "
                   "not with --policy or --workload).")
@click.option("--policy", "policies", multiple=True, metavar="NAME[:ARGS]",
              help="Compare these acceptance policies at boot and at run time (repeatable): lazy, eager, "
                   "background:threads=N,rate=R, accept-ahead:chunks=K, userspace-drain:rate=R, accepted-reserve.")
@runtime_options
def compare_cmd(memory: tuple[str, ...], profiles: tuple[str, ...], as_json: bool, plot_path: str | None,
                html_path: str | None, policies: tuple[str, ...], workloads: tuple[str, ...],
                stages: tuple[str, ...], thp: str, host_cpus: int | None, watchdog_thresh: float,
                like_log: str | None = None, **guest: object) -> None:
    """Boot time with eager and with lazy acceptance, for each memory size and host profile; with
    --policy or --workload, each policy's boot time and run-time price (stalls, slowdown, IRQs
    off, time to fully accepted, host memory committed)."""
    likeness = None
    if like_log is not None:
        likeness = like_options(like_log, guest, memory=" ".join(memory) or None, policy=None,
                                fields=COMPARE_FIELDS)
        memory = memory or (likeness.values["memory"],)
    if not memory:
        raise click.UsageError("Missing option '--memory'.")
    sizes = sorted(dict.fromkeys(parse_size(m) for m in memory))
    platform = guest.get("platform")
    names = list(dict.fromkeys(profiles)) or [str(platform).lower() if platform else Tee.TDX.value]
    loaded = [load_profile(n) for n in names]
    requests = []
    for prof in loaded:
        request = guest_request(sizes[0], **{**guest, "platform": platform or prof.tee.value})  # type: ignore[arg-type]
        check_profile_fits(request, prof)
        requests.append(request)
    check_plot_file(plot_path)
    check_output_file(html_path, stdout=True)
    check_stdout_once(("--json", as_json), ("--plot -", plot_path == STDOUT), ("--html -", html_path == STDOUT))
    parsed_stages = tuple(Stage.parse(st) for st in stages)
    if (policies or workloads or stages) and html_path is not None:
        # No page of a policy comparison exists yet: refused rather than silently not written.
        raise ConfigError("--html is not written for a policy comparison (--policy, --workload, --stage); use "
                          "--json or --plot, or run --html for one policy")
    if policies or workloads or stages:
        if likeness is not None:
            add_assumed(likeness, resolve(requests[0], loaded[0]),
                        fields=COMPARE_ASSUMED)
        _compare_policies(sizes, loaded, requests, policies or ("lazy", "eager"), workloads, thp, host_cpus,
                          watchdog_thresh, as_json, plot_path, likeness, parsed_stages)
        return
    # Progress goes to stderr, and only to a terminal: pipes and --json output stay clean.
    err = Console(stderr=True)
    total = len(sizes) * len(loaded)
    comparisons = []
    with Progress(console=err, transient=True, disable=not err.is_terminal or total < 3) as progress:
        task = progress.add_task("booting eager and lazy", total=total)
        for prof, request in zip(loaded, requests, strict=True):
            config, rows = compare_policies(request, sizes, prof, on_size_done=lambda _size: progress.advance(task))
            comparisons.append((config, rows, prof))
    if plot_path is not None:
        from ..presentation.plots import plot_compare

        plot_compare(plot_path, comparisons)
    if html_path is not None:
        from ..presentation.result_pages import compare_page

        write_output(html_path, compare_page(comparisons))
    failed = [r for _, rows, _ in comparisons for r in rows if isinstance(r, FailedRow)]
    if likeness is not None:
        add_assumed(likeness, comparisons[0][0], fields=COMPARE_ASSUMED)
    if as_json:
        doc = {"comparisons": [compare_document(*c) for c in comparisons]}
        if likeness is not None:
            doc["like"] = like_document(likeness, None)
        click.echo(json_text(doc))
        _exit_if_failed(failed)
        return
    console = make_console(stderr=STDOUT in (plot_path, html_path))
    if likeness is not None:
        print_like(console, likeness)
    for c in comparisons:
        print_compare(console, *c)
    console.print(
        "accepting = time during which at least one vCPU was accepting memory (firmware + kernel, "
        "lock waits included)",
        style="dim",
    )
    for written in (plot_path, html_path):
        if written is not None and written != STDOUT:
            console.print(wrote(written), markup=False, highlight=False)
    _exit_if_failed(failed)


def _exit_if_failed(failed: list[FailedRow]) -> None:
    """Exit status 3 when the modelled guest failed at some size (the other rows are complete)."""
    if failed:
        for r in failed:
            click.echo(f"lazyaccept: guest failed: {format_size(r.memory_bytes)}: {r.one_line()}", err=True)
        click.get_current_context().exit(3)


def _compare_policies(sizes: list[int], loaded: list, requests: list, policies: tuple[str, ...],  # noqa: ANN001
                      workloads: tuple[str, ...], thp: str, host_cpus: int | None, watchdog_thresh: float,
                      as_json: bool, plot_path: str | None, likeness: Likeness | None = None,
                      stages: tuple[Stage, ...] = ()) -> None:
    from dataclasses import replace

    from ..guest.policies import Policy
    from ..presentation.run_report import print_policies
    from ..scenario.workloads import Workload
    from ..sim.runtime import run_document, simulate_run

    parsed_policies = [Policy.parse(p) for p in dict.fromkeys(policies)]
    parsed = tuple(Workload.parse(w) for w in workloads)
    groups = []
    for prof, request in zip(loaded, requests, strict=True):
        for size in sizes:
            baselines: dict = {}  # the policies of one guest share its eager baseline
            results = [simulate_run(run_config(replace(request, memory=size), pol, prof, workloads, thp, host_cpus,
                                               watchdog_thresh, parsed, stages), prof, baselines=baselines)
                       for pol in parsed_policies]
            if stages:  # ranked by when the guest is ready (the upper end of its range), not the boot alone
                results.sort(key=lambda r: r.ready_range.high if r.ready_range is not None else r.ready_s)
            groups.append((prof, size, results))
    if plot_path is not None:
        from ..presentation.plots import plot_policies

        plot_policies(plot_path, groups[0][2])
    if as_json:
        doc: dict[str, object] = {"policies": [{"profile": prof.name, "memory_bytes": size,
                                                "runs": [run_document(r, prof) for r in results]}
                                               for prof, size, results in groups]}
        if likeness is not None:
            doc["like"] = like_document(likeness, None)
        click.echo(json_text(doc))
        return
    console = make_console(stderr=plot_path == STDOUT)
    if likeness is not None:
        print_like(console, likeness)
    for prof, _, results in groups:
        print_policies(console, results, prof)
    console.print("slowdown: workload duration over the same workload on an eagerly accepted guest; stalls: first "
                  "touches that waited for acceptance", style="dim")
    if plot_path is not None and plot_path != STDOUT:
        console.print(wrote(plot_path), markup=False, highlight=False)
