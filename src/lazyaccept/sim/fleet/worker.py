"""What runs in a worker process: a task in, one results row out, a pure function of the task.

A :class:`Task` holds the resolved configuration (resolved and checked on the client, before any
run starts) and the digest of its profile; :func:`run_chunk` runs a list of them against the
profile texts it is given, parsing each profile once per process.  A failure the model raises
on purpose (a :class:`~lazyaccept.base.errors.LazyAcceptError`: a safety violation, a boot
failure, a configuration the model refuses while booting) is a result, recorded as a row; any
other exception is a bug and stops the sweep, naming the run.

Row schema (``kind = "run"``; every key is present in every row, metrics ``null`` on failure)::

    key                  str    identity of the run: digest of point + profile digest
    point                obj    the grid coordinates and fixed values, canonical (sizes in bytes)
    profile              obj    {ref, name, sha256}: the profile as the grid named it
    config               obj    the whole resolved configuration (VMConfig.as_dict() + profile)
    ok                   bool   the boot reached a shell
    failure              str    one line: why it did not (null when ok)
    failure_kind         str    the error's class (SafetyViolation, BootFailure, ...)
    boot_s               float  simulated boot to shell
    accept_s             float  vCPU-seconds accepting memory (lock spins included)
    accept_wall_s        float  seconds during which any vCPU was accepting
    accepted_bytes       int    accepted by firmware, EFI stub and kernel together
    accepted_by          obj    the same per actor group: firmware, efi stub, kernel
    exits                int    exits to the host that acceptance caused
    host_committed_bytes int    host memory committed at the end of boot
    unaccepted_after_boot_bytes int  guest memory still unaccepted at the shell
    phases_s             obj    phase name -> simulated duration
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ... import __version__
from ...base.errors import LazyAcceptError
from ...base.record import AcceptEvent, AcceptStats
from ...guest.policies import Policy
from ...scenario.config import VMConfig
from ...scenario.runtime import RunConfig
from ...scenario.stages import Stage
from ...scenario.workloads import Workload
from ..host_features import HostFeatures
from ..profile import CostProfile
from ..run import BootResult, run
from ..runtime import simulate_run, weighted_quantiles
from ..timeline import Pricing
from .dimensions import RunOptions, Value
from .profiles import ProfileText, parsed

#: Actor names in a record, grouped as a user thinks of them (as ``boot --json`` does).
_GROUPS = {"firmware": "firmware", "efistub": "efi stub"}
METRIC_KEYS = (
    "boot_s", "boot_s_range", "accept_s", "accept_wall_s", "accepted_bytes", "accepted_by", "exits",
    "host_committed_bytes", "unaccepted_after_boot_bytes", "phases_s",
)


@dataclass(frozen=True)
class Task:
    """One run: picklable, and all a worker needs besides the profile texts."""

    key: str
    point: tuple[tuple[str, Value], ...]
    config: VMConfig
    profile_ref: str
    profile_sha256: str
    options: RunOptions = field(default_factory=RunOptions)


def run_key(point: Mapping[str, Value], profile_sha256: str) -> str:
    """A run's identity: the same point with the same profile text is the same run."""
    canon = json.dumps({"point": dict(sorted(point.items())), "profile": profile_sha256}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:20]


def run_task(task: Task, profile: ProfileText) -> dict[str, Any]:
    """Run one task: its row."""
    prof = parsed(profile)
    row: dict[str, Any] = {
        "kind": "run",
        "key": task.key,
        "point": dict(task.point),
        "profile": {"ref": task.profile_ref, "name": prof.name, "sha256": task.profile_sha256},
        "config": task.config.as_dict() | {"profile": prof.name},
    }
    try:
        if task.options.host_feature:
            # A host feature pending upstream: the guest as that host runs it, its events priced so.
            features = HostFeatures.parse((task.options.host_feature,), task.config.tee)
            task = replace(task, config=features.guest(task.config))
            row["config"] = task.config.as_dict() | {"profile": prof.name}
            prices: Callable[[], Pricing] | None = features.pricing
        else:
            prices = None
        if task.options.runs_after_boot:
            return row | {"ok": True, "failure": None, "failure_kind": None} | run_metrics(task, prof, prices)
        result = run(task.config, prof, prices)
    except LazyAcceptError as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return row | {"ok": False, "failure": text, "failure_kind": type(exc).__name__} | dict.fromkeys(METRIC_KEYS)
    out = metrics(result)
    if prices is not None:  # a host feature commits as it prices (1 GiB pages, PAMT page pairs)
        out["host_committed_bytes"] = result.timeline.committed_bytes[-1][1]
    return row | {"ok": True, "failure": None, "failure_kind": None} | out


#: The quantiles of a run's first-touch stalls a row carries (a distribution the report can draw).
STALL_QUANTILES = tuple(q / 20 for q in range(1, 20)) + (0.99, 0.999, 1.0)


def run_metrics(task: Task, prof: CostProfile, prices: Callable[[], Pricing] | None = None) -> dict[str, Any]:
    """A boot and its workloads: the boot's figures, and ``workload`` with its name, duration,
    slowdown against an eagerly accepted guest, and stalls (as quantiles) when it has some."""
    result = simulate_run(RunConfig(task.config, tuple(Workload.parse(w) for w in task.options.workloads),
                                    Policy.parse(task.options.policy),
                                    stages=tuple(Stage.parse(st) for st in task.options.stages)), prof,
                          prices=prices)
    boot = BootResult(result.record.boot, result.timeline, result.boot_range)
    out = metrics(boot)
    out["boot_s"] = result.boot_s
    out["ready_s"] = result.ready_s
    out["ready_s_range"] = None if result.ready_range is None else result.ready_range.as_list()
    out["stages"] = [{"name": st.name, "start_s": st.start_s, "end_s": st.end_s} for st in result.stages]
    summary = result.stall_summary()
    stalls = [] if not summary["count"] else weighted_quantiles(result.stall_s, result.stall_weight,
                                                                 list(STALL_QUANTILES))
    slow = [w.slowdown for w in result.workloads if w.slowdown is not None]
    out["workload"] = None if not result.workloads else {
        "name": " + ".join(w.name for w in result.workloads),
        "duration_s": max(w.end_s for w in result.workloads) - min(w.start_s for w in result.workloads),
        "duration_s_range": result.workloads[0].duration_range.as_list()
        if len(result.workloads) == 1 and result.workloads[0].duration_range is not None else None,
        "slowdown": max(slow) if slow else None,
        "stalls": summary,
        "stalls_s": stalls,
        "fully_accepted_s": result.fully_accepted_s,
        "irqs_off_max_s": result.irqs_off_max_s,
    }
    out["host_committed_bytes"] = result.record.boot.platform.host_committed
    if prices is not None:  # a host feature commits as it prices (1 GiB pages, PAMT page pairs)
        out["host_committed_bytes"] = result.timeline.committed_bytes[-1][1]
    return out


def metrics(result: BootResult) -> dict[str, Any]:
    """The figures of a boot a fleet report needs (the full document is ``boot --json``)."""
    rec, tl = result.record, result.timeline
    groups = {"firmware": AcceptStats(), "efi stub": AcceptStats(), "kernel": AcceptStats()}
    for ph in rec.phases:
        for ev in ph.events:
            if isinstance(ev, AcceptEvent):
                groups[_GROUPS.get(ev.actor, "kernel")] += ev.stats
    phases: dict[str, float] = {}
    for p in tl.phases:
        phases[p.name] = phases.get(p.name, 0.0) + p.duration
    return {
        "boot_s": tl.total_s,
        "boot_s_range": None if result.boot_range is None else result.boot_range.as_list(),
        "accept_s": tl.accept_s,
        "accept_wall_s": tl.accept_wall_s,
        "accepted_bytes": sum(s.bytes_accepted for s in groups.values()),
        "accepted_by": {k: s.bytes_accepted for k, s in groups.items()},
        "exits": sum(s.exits for s in groups.values()),
        "host_committed_bytes": rec.platform.host_committed,
        "unaccepted_after_boot_bytes": rec.unaccepted_after_boot,
        "phases_s": phases,
    }


def run_chunk(tasks: list[Task], profiles: Mapping[str, ProfileText]) -> list[dict[str, Any]]:
    """Run ``tasks`` in this process; ``profiles`` maps digest -> text.  One row per task."""
    rows = []
    for task in tasks:
        try:
            rows.append(run_task(task, profiles[task.profile_sha256]))
        except Exception as exc:  # a bug, not a modelled failure: say which run hit it
            raise RuntimeError(f"run {task.key} {dict(task.point)}: {type(exc).__name__}: {exc}") from exc
    return rows


def worker_version() -> str:
    """The lazyaccept version a worker runs (a Dask cluster's workers must match the client)."""
    return __version__


#: prctl(2) option: the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def ignore_interrupts(client: int | None = None) -> None:
    """Pool worker initializer: Ctrl-C is the client's to handle (it cancels, then stops the pool);
    and the worker dies with the sweep, so no worker outlives a sweep killed with SIGKILL.

    A pool worker's parent is the fork server, not the sweep (``client``): a thread waits on the
    sweep's pidfd and ends the worker when the sweep is gone (the fork server then exits too, as its
    last client connection closes), and the kernel ends the worker if the fork server dies.  A
    worker holds nothing worth saving: rows are written by the client."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if client is not None:
        _die_with(client)


def _die_with(pid: int) -> None:
    import os
    import select
    import threading

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)  # the sweep is already gone
    except OSError:
        return  # no pidfd (a kernel before 5.3): the fork server's end still ends the workers

    def wait() -> None:
        select.select([fd], [], [])  # readable once the process has exited
        os._exit(1)

    threading.Thread(target=wait, name="die-with-sweep", daemon=True).start()
