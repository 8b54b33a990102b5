"""A sweep from start to end: plan (everything checked, nothing run), then run and stream.

:func:`plan_sweep` reads every profile, translates and resolves every point of the grid, so bad
input is an error before the first run.  :func:`run_sweep` skips the runs a results file
already holds (``resume``), hands the rest to an executor in chunks, and appends each chunk's
rows to the file as it completes.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ... import __version__
from ...base.errors import ConfigError, LazyAcceptError
from ...base.units import format_size
from ...firmware.tdvf import load_tdvf
from ..profile_doc import describe_profile
from ..run import resolve
from .dimensions import Dimension, to_run
from .executors import Executor
from .grid import Grid
from .profiles import ProfileText, parsed, read_profile_text
from .results import Results, ResultsWriter, grid_digest
from .worker import Task, run_key

#: Largest chunk of runs sent to a worker as one task (see :mod:`.executors`).
MAX_CHUNK = 25


@dataclass
class Plan:
    """Every run of a grid, resolved and checked, and the profile texts they use by digest."""

    grid: Grid
    tasks: list[Task]
    profiles: dict[str, ProfileText]


@dataclass
class SweepSummary:
    total: int
    skipped: int
    ran: int
    failed: int
    elapsed_s: float


def plan_sweep(grid: Grid) -> Plan:
    """Resolve every run of ``grid``; a :class:`ConfigError` names the run that cannot be made."""
    texts: dict[str, ProfileText] = {}
    for ref in dict.fromkeys(str(p[Dimension.PROFILE]) for p in grid.points()):
        try:
            texts[ref] = read_profile_text(ref)
            parsed(texts[ref])  # validates it; workers parse their own copy
        except LazyAcceptError as exc:
            raise ConfigError(f"{grid.path}: profile {ref!r}: {exc}") from None
    profiles = {ref: parsed(t) for ref, t in texts.items()}
    tees = {ref: p.tee for ref, p in profiles.items()}
    tasks = []
    for point in grid.points():
        spec = to_run(point, tees)
        try:
            config = resolve(spec.request, profiles[spec.profile])
        except ConfigError as exc:
            raise ConfigError(f"{grid.path}: run {_describe(point)}: {exc}") from None
        sha = texts[spec.profile].sha256
        tasks.append(Task(run_key(point, sha), tuple(point.items()), config, spec.profile, sha, spec.options))
    # A firmware image boot would refuse is bad input, not a failed run of every point using it.
    for image in dict.fromkeys(t.config.tdvf_image for t in tasks if t.config.tdvf_image):
        try:
            load_tdvf(image)
        except LazyAcceptError as exc:
            raise ConfigError(f"{grid.path}: firmware: {exc}") from None
    return Plan(grid, tasks, {t.sha256: t for t in texts.values()})


def _describe(point: dict[str, Any]) -> str:
    sizes = (Dimension.MEMORY, Dimension.SHELL_FOOTPRINT)
    return ", ".join(f"{k}={format_size(v) if k in sizes else v}" for k, v in point.items())


def chunked(tasks: list[Task], workers: int, max_chunk: int = MAX_CHUNK) -> list[list[Task]]:
    """Tasks in chunks of at most ``max_chunk``, at least ~4 per worker so all stay busy to the end.

    The order is shuffled (seeded, so the same grid chunks the same way): a cross product
    puts all the big guests together, and chunks of equal cost balance better."""
    order = list(tasks)
    random.Random(0).shuffle(order)
    size = max(1, min(max_chunk, math.ceil(len(order) / (4 * max(1, workers)))))
    return [order[i : i + size] for i in range(0, len(order), size)]


def run_sweep(
    plan: Plan,
    out: str | Path,
    executor: Executor,
    *,
    resume: bool = False,
    on_progress: Callable[[int, int, int], None] | None = None,
    max_chunk: int = MAX_CHUNK,
) -> SweepSummary:
    """Run the plan's tasks that ``out`` does not hold yet, appending rows as they finish.

    ``on_progress(done, total, failed)`` is called after each chunk (``done`` counts the rows
    already in the file).  Without ``resume`` the file must not exist."""
    out = Path(out)
    with ResultsWriter(out, resume=resume) as writer:
        existing = writer.existing() if resume else Results()
        foreign = existing.runs.keys() - {t.key for t in plan.tasks}
        if foreign:
            # Runs this grid does not have: another grid's (or another profile text's) results, which
            # would mix into this grid's report.  A grid that only adds runs continues its file.
            grids = {grid_digest(s["grid"]) for s in existing.sweeps} - {grid_digest(plan.grid.as_dict())}
            whose = "another grid's" if grids else "runs this grid does not have, e.g. another profile text's"
            raise ConfigError(f"{out}: holds {len(foreign)} run(s) of {whose}; resume it with the grid it was "
                              "started with, or write this grid's runs to a new file")
        todo = [t for t in plan.tasks if t.key not in existing.runs]
        skipped = len(plan.tasks) - len(todo)
        failed_before = sum(1 for t in plan.tasks if t.key in existing.runs and not existing.runs[t.key]["ok"])
        started = time.perf_counter()
        header: list[dict[str, Any]] = [{
            "kind": "sweep", "lazyaccept": __version__, "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "grid": plan.grid.as_dict(), "grid_sha256": grid_digest(plan.grid.as_dict()), "runs": len(plan.tasks),
            "already_done": skipped,
        }]
        for sha, text in plan.profiles.items():
            if sha not in existing.profiles:
                header.append({"kind": "profile", "ref": text.ref, "sha256": sha,
                               "profile": describe_profile(parsed(text), sha)})
        done, failed = skipped, failed_before
        writer.write(header)
        if on_progress is not None:
            on_progress(done, len(plan.tasks), failed)
        for rows in executor.run(chunked(todo, executor.workers, max_chunk), plan.profiles):
            writer.write(rows)
            done += len(rows)
            failed += sum(1 for r in rows if not r["ok"])
            if on_progress is not None:
                on_progress(done, len(plan.tasks), failed)
    return SweepSummary(len(plan.tasks), skipped, len(todo), failed, time.perf_counter() - started)
