"""A run timed: the boot and the workloads after it on one clock, and what they cost.

What it measures (all seconds unless said):

* ``boot_s``: the end of the boot (the shell prompt);
* per workload: ``start_s``, ``end_s``, ``duration_s``, and ``baseline_s`` (the same workloads
  on a guest booted with ``accept_memory=eager``: the slowdown is the run-time price of laziness);
* ``stalls``: every first touch that waited for acceptance, one sample per accepted chunk
  (``count``, ``p50_s``, ``p99_s``, ``p999_s``, ``max_s``), weighted quantiles over chunk-level
  events, computed with numpy.  A stall is what the faulting task waits: its own
  ``accept_memory()`` call and the spinning before it on another CPU's accepting-list entry
  (or, in v6.5, on the global lock);
* ``irqs_off_max_s``: the longest ``accept_memory()`` call, spinning included (IRQs are off
  for all of it: the lock is dropped for the architecture accept, but interrupts stay disabled);
* ``watchdog_stretch_max_s``: the longest time the soft-lockup watchdog can see a CPU in
  ``accept_memory()`` without a touch, and ``soft_lockup``: it passes twice ``watchdog_thresh``
  (kernel/watchdog.c warns then).  Before v6.9 that is a whole call, its spinning included.
  From v6.9 (1c5a1627f481) the call ends with ``touch_softlockup_watchdog()`` after
  ``list_del(&range.list)``, just before ``spin_unlock_irqrestore()``: the watchdog's timer, which
  fires when IRQs come back on, finds the CPU touched, so only the spinning before the accept
  (the ``goto retry`` loop, which re-enables IRQs between tries) can be seen;
* ``fully_accepted_s``: when the last unaccepted chunk was accepted (``None`` if never);
* host memory committed and guest memory accepted over time, and CPU time spent accepting by
  whom (firmware, kernel, the workloads' faults, background threads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..base.choices import BootPhase
from ..base.record import AcceptEvent, WaitEvent
from ..guest.policies import Policy, PolicyKind
from ..scenario.build import build_record
from ..scenario.runtime import RunConfig, RunRecord, RunThreads
from .engine import Host
from .pricing import price
from .profile import CostProfile
from .run import check_profile_fits
from .timeline import LivePhase, Pricing, Timeline, simulate, timed_calls
from .uncertainty import Range, perturbed_profiles, spread


@dataclass
class WorkloadTiming:
    name: str
    start_s: float
    end_s: float
    baseline_s: float | None = None
    #: The duration's one-sigma range from the profile's fitted uncertainties.
    duration_range: Range | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def slowdown(self) -> float | None:
        if not self.baseline_s:
            return None
        return self.duration_s / self.baseline_s


@dataclass
class StageTiming:
    """A stage from the shell to ready: when it started (its first thread ran) and ended."""

    name: str
    start_s: float
    end_s: float
    #: The end's one-sigma range from the profile's fitted uncertainties.
    end_range: Range | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class RunResult:
    record: RunRecord
    timeline: Timeline
    boot_s: float
    workloads: list[WorkloadTiming]
    stall_s: np.ndarray  # one value per sample
    stall_weight: np.ndarray  # how many chunk acceptances each value stands for
    irqs_off_max_s: float
    fully_accepted_s: float | None
    accept_by: dict[str, float] = field(default_factory=dict)
    #: The boot time's one-sigma range from the profile's fitted uncertainties.
    boot_range: Range | None = None
    #: The longest stretch in accept_memory() the soft-lockup watchdog sees without a touch.
    watchdog_stretch_max_s: float = 0.0
    #: The stages from the shell to ready, in order.
    stages: list[StageTiming] = field(default_factory=list)

    @property
    def ready_s(self) -> float:
        """When the guest is ready: the end of its last stage, else the shell."""
        return self.stages[-1].end_s if self.stages else self.boot_s

    @property
    def ready_range(self) -> Range | None:
        return self.stages[-1].end_range if self.stages else self.boot_range

    @property
    def soft_lockup(self) -> bool:
        return self.watchdog_stretch_max_s > 2 * self.record.config.watchdog_thresh

    def stall_summary(self) -> dict[str, float | int | None]:
        count = int(self.stall_weight.sum())
        if count == 0:
            return {"count": 0, "p50_s": None, "p99_s": None, "p999_s": None, "max_s": None}
        q = weighted_quantiles(self.stall_s, self.stall_weight, [0.5, 0.99, 0.999])
        return {"count": count, "p50_s": q[0], "p99_s": q[1], "p999_s": q[2], "max_s": float(self.stall_s.max())}


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> list[float]:
    """The ``qs`` quantiles of ``values`` each repeated ``weights`` times (lower, as np.quantile's
    "inverted_cdf": the smallest value whose cumulative weight reaches q of the total)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    total = cum[-1]
    return [float(v[min(int(np.searchsorted(cum, q * total, side="left")), len(v) - 1)]) for q in qs]


def set_ranges(result: RunResult, nominal: RunResult, moved: list[RunResult]) -> None:
    """Give ``result`` the one-sigma ranges of its boot, workloads and stages from runs with each
    fitted parameter moved (``moved``) and the same run unmoved (``nominal``): each time moves as
    the nominal one does.  ``nominal`` is ``result`` itself, or a coarse run of the same guest,
    whose sensitivities stand in for the full run's (the boot is the same in both)."""
    if not moved:
        return

    def shifted(value: float, base: float, values: list[float]) -> Range:
        return spread(value, [value + v - base for v in values])

    result.boot_range = shifted(result.boot_s, nominal.boot_s, [m.boot_s for m in moved])
    for i, w in enumerate(result.workloads):
        w.duration_range = shifted(w.duration_s, nominal.workloads[i].duration_s,
                                   [m.workloads[i].duration_s for m in moved])
    for i, st in enumerate(result.stages):
        st.end_range = shifted(st.end_s, nominal.stages[i].end_s, [m.stages[i].end_s for m in moved])


def simulate_run(config: RunConfig, profile: CostProfile, *, baseline: bool = True,
                 baselines: dict[RunConfig, list[float]] | None = None, ranges: bool = True,
                 coarse_ranges: bool = False, prices: Callable[[], Pricing] | None = None) -> RunResult:
    """Record and time ``config`` with ``profile``; with ``baseline``, also time the same workloads
    on an eagerly accepted guest for the slowdown.  Callers that run several policies of one
    guest pass one ``baselines`` dict (eager run -> its workloads' durations, for this profile):
    the eager run they share is then timed once.  With ``ranges``, the boot and each workload's
    duration get their one-sigma range from the profile's fitted uncertainties (re-timing the
    run once per fitted parameter; with ``coarse_ranges``, re-timing a coarse run of it).
    ``prices`` makes a fresh pricing per simulation (a host feature's)."""
    check_profile_fits(config.vm, profile)
    host = profile.host
    if config.host_cpus is not None:
        host = Host(host.memory_bandwidth, host.vcpu_bandwidth, config.host_cpus)
    result = _timed_run(config, profile, host, prices)
    if ranges:
        # A coarse run's ranges come from coarse runs; a full run's from full runs, or, with
        # ``coarse_ranges``, from coarse ones (see set_ranges).
        sense = replace(config, coarse=True) if coarse_ranges else config
        nominal = result if sense == config else _timed_run(sense, profile, host, prices)
        set_ranges(result, nominal, [_timed_run(sense, q, host, prices) for q in perturbed_profiles(profile)])
    if baseline and config.workloads:
        eager = replace(config, vm=replace(config.vm, policy=Policy(PolicyKind.EAGER).accept_memory),
                        policy=Policy(PolicyKind.EAGER))
        known = baselines if baselines is not None else _known_baselines(profile)
        if eager not in known:
            known[eager] = [w.duration_s for w in simulate_run(eager, profile, baseline=False, ranges=False,
                                                                prices=prices).workloads]
        for w, b in zip(result.workloads, known[eager], strict=True):
            w.baseline_s = b
    return result


#: Eager baselines already timed in this process: profile fingerprint -> (eager run -> its
#: workloads' durations).  A run is a pure function of its configuration and profile, so a
#: sweep's or a session's runs of one guest time their shared baseline once.  Bounded: cleared
#: when it holds :data:`_BASELINE_CACHE_RUNS` runs.
_BASELINES: dict[tuple[object, ...], dict[RunConfig, list[float]]] = {}
_BASELINE_CACHE_RUNS = 256


def _known_baselines(profile: CostProfile) -> dict[RunConfig, list[float]]:
    if sum(map(len, _BASELINES.values())) >= _BASELINE_CACHE_RUNS:
        _BASELINES.clear()
    return _BASELINES.setdefault(profile.fingerprint, {})


def _timed_run(config: RunConfig, profile: CostProfile, host: Host,
               prices: Callable[[], Pricing] | None = None) -> RunResult:
    """Boot ``config.vm`` and run its workloads on one clock: the engine times the boot's phases,
    then asks the guest for each vCPU's next work whenever that vCPU is free."""
    record, timeline = time_run(config, profile, host, prices)
    return measure_run(record, timeline)


def time_run(config: RunConfig, profile: CostProfile, host: Host | None = None,
             prices: Callable[[], Pricing] | None = None) -> tuple[RunRecord, Timeline]:
    """The record of ``config``'s run and its timeline, recorded as the engine's clock runs it."""
    boot = build_record(config.vm)
    threads = RunThreads(config, boot)
    live = LivePhase(threads.phase, threads.busy_vcpus, threads.next_work, threads.shared_fifos)
    at_start = boot.platform.host.added_bytes
    pricing = prices() if prices is not None else price
    timeline = simulate(boot.phases, profile, committed_at_start=at_start, host=host, live=live, pricing=pricing)
    return threads.finish(), timeline


def measure_run(record: RunRecord, tl: Timeline) -> RunResult:
    """The figures of a run (stalls, workloads, acceptance by whom) from its record and simulated timeline."""
    phases = record.boot.phases
    spans = tl.phases
    boot_end = next(s.start for p, s in zip(phases, spans, strict=True) if p.name == BootPhase.WORKLOAD)
    work_phase = phases[-1]
    work_span = spans[-1]
    windows: dict[str, list[float]] = {}
    stage_names = {st.name for st in record.config.stages}
    #: A stage's span counts its waits (for its data, for the host's answer).
    stage_ends: dict[str, float] = {}
    stall_s: list[float] = []
    stall_w: list[int] = []
    last_accept_end = None
    policy = record.config.policy
    group = 1 + (policy.chunks if policy.kind is PolicyKind.ACCEPT_AHEAD else 0)
    for (ev, s, e, reached, calls, _), owner in zip(timed_calls(work_phase, work_span), record.owners, strict=True):
        if owner in stage_names:
            stage_ends[owner] = max(stage_ends.get(owner, e), e)
        elif not isinstance(ev, WaitEvent):  # a wait is not the workload's work
            win = windows.setdefault(owner, [e, e])
            win[0], win[1] = min(win[0], s), max(win[1], e)
        if isinstance(ev, AcceptEvent) and ev.stats.bytes_accepted:
            last_accept_end = e
            if ev.actor.startswith("workload:"):
                _stall_samples(ev, s, e, reached, calls, group, stall_s, stall_w)
    workloads = []
    for w in record.config.workloads:
        start = boot_end + w.start
        win = windows.get(w.name, [start, start])
        workloads.append(WorkloadTiming(w.name, start, max(win[1], start)))
    stages = []
    at = boot_end
    for st in record.config.stages:
        begun = work_span.start + record.stage_starts[st.name] if st.name in record.stage_starts else at
        stages.append(StageTiming(st.name, begun, max(stage_ends.get(st.name, begun), begun)))
        at = stages[-1].end_s
    irqs_off = 0.0
    untouched = 0.0
    touched = record.config.vm.kernel.touch_softlockup_after_accept
    # The soft-lockup watchdog watches from user space on: the shell and the workloads.
    watched = (BootPhase.USERSPACE, BootPhase.WORKLOAD)
    for p, span in zip(phases, spans, strict=True):
        if p.name not in watched:
            continue
        for ev, s, e, reached, calls, spins in timed_calls(p, span):
            # kexec's unsharing runs with IRQs off too, but it is not accept_memory(): the
            # machine is going down and the watchdog with it.
            if isinstance(ev, AcceptEvent) and ev.actor not in ("firmware", "efistub", "kexec"):
                # Each request is one accept_memory() call of its own, its spinning included.
                if calls:
                    call, spun = max(calls), max(spins or [0.0])
                else:
                    spun = s - reached
                    call = (e - s) / max(1, ev.requests) + spun
                irqs_off = max(irqs_off, call)
                # With the touch at the end of each call only the spinning before it is unseen.
                untouched = max(untouched, spun if touched else call)
    fully = last_accept_end if record.drained else None
    if record.drained and last_accept_end is None:  # nothing was left to accept after boot
        fully = boot_end
    return RunResult(
        record=record, timeline=tl, boot_s=boot_end, workloads=workloads,
        stall_s=np.array(stall_s, dtype=float), stall_weight=np.array(stall_w, dtype=float),
        irqs_off_max_s=irqs_off, fully_accepted_s=fully, accept_by=dict(tl.accept_by_actor),
        watchdog_stretch_max_s=untouched, stages=stages,
    )


def _stall_samples(ev: AcceptEvent, s: float, e: float, reached: float, calls: list[float] | None, group: int,
                   out_s: list[float], out_w: list[int]) -> None:
    """The stalls of the faults behind one accept event: one fault stalls per group of chunks its
    ``cond_accept_memory()`` call takes (one chunk at a time, or 1 + K with accept-ahead).  Calls
    the engine timed one by one give a sample per group; otherwise the event's time is shared
    equally, and the first fault also waited for whatever its vCPU spun on before it."""
    chunks = max(1, ev.requests)
    if calls:
        for k in range(0, len(calls), group):
            out_s.append(float(sum(calls[k : k + group])))
            out_w.append(1)
        return
    stalls = max(1, chunks // group)
    each = (e - s) / stalls
    out_s.append(each + (s - reached))
    out_w.append(1)
    if stalls > 1:
        out_s.append(each)
        out_w.append(stalls - 1)


def run_document(result: RunResult, profile: CostProfile) -> dict[str, Any]:
    """The JSON document of one run."""
    cfg = result.record.config
    return {
        "config": cfg.as_dict() | {"profile": profile.name},
        "boot_s": result.boot_s,
        "boot_s_range": None if result.boot_range is None else result.boot_range.as_list(),
        "ready_s": result.ready_s,
        "ready_s_range": None if result.ready_range is None else result.ready_range.as_list(),
        "stages": [
            {"name": st.name, "start_s": st.start_s, "end_s": st.end_s, "duration_s": st.duration_s,
             "end_s_range": None if st.end_range is None else st.end_range.as_list()}
            for st in result.stages
        ],
        "workloads": [
            {"name": w.name, "start_s": w.start_s, "end_s": w.end_s, "duration_s": w.duration_s,
             "duration_s_range": None if w.duration_range is None else w.duration_range.as_list(),
             "baseline_s": w.baseline_s, "slowdown": w.slowdown}
            for w in result.workloads
        ],
        "workload": None if not result.workloads else {
            "start_s": min(w.start_s for w in result.workloads),
            "end_s": max(w.end_s for w in result.workloads),
            "duration_s": max(w.end_s for w in result.workloads) - min(w.start_s for w in result.workloads),
        },
        "baseline_s": None if not result.workloads or result.workloads[0].baseline_s is None
        else max(w.baseline_s or 0.0 for w in result.workloads),
        "stalls": result.stall_summary(),
        "irqs_off_max_s": result.irqs_off_max_s,
        "watchdog_stretch_max_s": result.watchdog_stretch_max_s,
        "soft_lockup": result.soft_lockup,
        "watchdog_thresh_s": cfg.watchdog_thresh,
        "fully_accepted_s": result.fully_accepted_s,
        "unaccepted_at_end_bytes": result.record.unaccepted_at_end,
        "host_committed_bytes": result.record.boot.platform.host_committed,
        "accept_cpu_s_by": result.accept_by,
        "committed_over_time": result.timeline.committed_bytes,
        "accepted_over_time": result.timeline.accepted_bytes,
    }
