"""``lazyaccept sweep``: every run of a grid, on a local process pool or a Dask cluster, streamed
to a JSON-lines file that an interrupted sweep resumes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..base.errors import ConfigError
from ..base.fileio import check_writable
from ..sim.fleet.driver import plan_sweep, run_sweep
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


@click.command("sweep")
@click.argument("grid_file", metavar="GRID.toml")
@click.option("--out", "out", required=True, metavar="RESULTS.jsonl", help="Results file, one JSON line per run.")
@click.option("--jobs", type=int, default=None, metavar="N",
              help="Local worker processes, or workers of --dask local (default: the number of CPUs).")
@click.option("--dask", "dask", default=None, metavar="tcp://HOST:PORT|local",
              help="Run on a Dask cluster; 'local' starts a LocalCluster (needs the dask extra).")
@click.option("--resume", is_flag=True, help="Continue RESULTS.jsonl, skipping the runs it already holds.")
def sweep_cmd(grid_file: str, out: str, jobs: int | None, dask: str | None, resume: bool) -> None:
    """Run every configuration of GRID.toml and stream the results to RESULTS.jsonl."""
    # Everything that can be wrong with the input is found before the first run.
    plan = plan_sweep(load_grid(grid_file))
    check_writable(out)
    if Path(out).exists() and not resume:
        raise ConfigError(f"{out}: exists; --resume continues it, or remove it")
    err = Console(stderr=True)
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
            except KeyboardInterrupt:
                bar.stop()
                click.echo(f"lazyaccept: interrupted; the runs done are in {out}, --resume continues", err=True)
                sys.exit(130)
    click.echo(
        f"{summary.total} runs ({summary.ran} now on {executor.label}, {summary.skipped} already there), "
        f"{summary.failed} failed; {summary.elapsed_s:.1f} s -> {out}"
    )
