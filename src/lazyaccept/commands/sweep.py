"""``lazyaccept sweep``: every run of a grid, on a local process pool or a Dask cluster, streamed
to a JSON-lines file that an interrupted sweep resumes."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..base.errors import ConfigError
from ..base.fileio import STDOUT, check_writable
from ..presentation.console import wrote
from ..sim.fleet.driver import Plan, plan_sweep, run_sweep
from ..sim.fleet.executors import make_executor
from ..sim.fleet.grid import load_grid


def progress_bar(console: Console) -> Progress:
    """done / total, failures and the time left; drawn only on a terminal (pipes stay clean)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


#: More local workers than this is a typo (each is a process of ~100 MiB).
MAX_JOBS = 256


@click.command("sweep")
@click.argument("grid_file", metavar="GRID.toml")
@click.option("--out", "out", required=True, metavar="RESULTS.jsonl", help="Results file, one JSON line per run.")
@click.option("--jobs", type=click.IntRange(1, MAX_JOBS), default=None, metavar="N",
              help=f"Local worker processes, or workers of --dask local, 1 to {MAX_JOBS} "
                   "(default: the number of CPUs).")
@click.option("--dask", "dask", default=None, metavar="tcp://HOST:PORT|local",
              help="Run on a Dask cluster; 'local' starts a LocalCluster (needs the dask extra).")
@click.option("--resume", is_flag=True, help="Continue RESULTS.jsonl, skipping the runs it already holds.")
def sweep_cmd(grid_file: str, out: str, jobs: int | None, dask: str | None, resume: bool) -> None:
    """Run every configuration of one grid, GRID.toml, and stream the results to RESULTS.jsonl."""
    if out == STDOUT:
        raise ConfigError("--out -: a sweep's results go to a file (it is written as runs finish, and resumed)")
    # Everything that can be wrong with the input is found before the first run.
    plan = plan_sweep(load_grid(grid_file))
    check_writable(out)
    if Path(out).exists() and not resume:
        raise ConfigError(f"{out}: exists; --resume continues it, or remove it")
    err = Console(stderr=True)
    # SIGTERM (kill, a batch system's time limit) ends a sweep as Ctrl-C does: the pool's workers are
    # stopped, the rows written so far stay, and --resume continues.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _sweep(plan, out, jobs, dask, resume, err)
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interruption."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _sweep(plan: Plan, out: str, jobs: int | None, dask: str | None, resume: bool, err: Console) -> None:
    with make_executor(jobs, dask) as executor:
        with progress_bar(err) as bar:
            task = bar.add_task("sweep", total=len(plan.tasks), failed=0)

            started = False

            def show(done: int, total: int, failed: int) -> None:
                nonlocal started
                if not started:  # runs already in the file: not part of the speed behind the estimate
                    bar.reset(task, completed=done, failed=failed)
                    started = True
                bar.update(task, completed=done, failed=failed)

            try:
                summary = run_sweep(plan, out, executor, resume=resume, on_progress=show)
            except KeyboardInterrupt as exc:
                bar.stop()
                how = "terminated" if isinstance(exc, _Terminated) else "interrupted"
                click.echo(f"lazyaccept: {how}; the runs done are in {out}, --resume continues", err=True)
                # 128 + the signal, as a shell reports a program the signal stopped.
                sys.exit(128 + (signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT))
    click.echo(
        f"{summary.total} runs ({summary.ran} now on {executor.label}, {summary.skipped} already there), "
        f"{summary.failed} failed; {summary.elapsed_s:.1f} s; {wrote(out)}"
    )
