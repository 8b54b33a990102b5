"""Attribute a measured boot's seconds to mechanisms, beside the model's prediction
(``lazyaccept attribute``).

The model's side: every phase of the simulated boot is split among mechanisms.  A phase lasts
as long as its last vCPU (the *critical* one); that vCPU's items, from when it reached each to
its end (lock waits included), are assigned by what they were (:func:`mechanism_of`), and the
rest of the phase to the phase's own mechanism.  What the idle vCPUs' timer ticks cost is a
counterfactual: the phase simulated again without ticks (``tick_hz = 0``) is shorter by that
much, which is taken out of the others in proportion.

The measured side: a kernel log time-stamps milestones (``formats.kernel_text.MILESTONES``);
between two milestones the log says how long, not why.  Each measured segment is split among
mechanisms in the proportions the model gives the same segment (an assumption the output names),
so the difference per mechanism is where the log's segment is longer or shorter than the model's.
Firmware and the EFI stub run before the kernel's clock starts: they are the model's.

With a host trace, the host's wall clock checks the guest's: milestones are placed on the host's
clock by the faults on guest memory counted so far (:func:`_lost_clock`); where a stretch took
longer on the host than the log says, the guest's clock lost that time (Dstack PR 1220:
timestamps stall while a starved guest loses its ticks).  It is shown as its own mechanism,
measured by the host, predicted as 0 by the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ..base.choices import BootPhase
from ..base.record import AcceptEvent, ConvertEvent, Event, Phase, WorkEvent
from ..formats.host_trace import FAULT_EXIT, TICK_EXIT, Counter, HostTrace
from ..scenario.like import MILESTONE_PHASES
from .host_clock import fault_counts, host_time
from .host_trace import model_host_trace
from .profile import CostProfile
from .run import BootResult
from .timeline import PhaseSpan, simulate, timed_events


class Mechanism(StrEnum):
    """Where a boot's time goes, in boot order."""

    FIRMWARE = "firmware and EFI stub"
    FIRMWARE_ACCEPT = "firmware accept"
    MEMBLOCK = "early init and memblock"
    ACCEPT_STORM = "accept storm before the watermarks"
    SWIOTLB = "SWIOTLB conversion"
    SMP = "SMP bring-up"
    DEFERRED_INIT = "deferred struct page init"
    INITCALLS = "initcalls"
    ALLOC_ACCEPT = "accept on allocation"
    USERSPACE = "user space to the shell"
    IDLE_TICKS = "idle ticks"
    #: Log time between two milestones the model puts at the same instant (work it has no phase for).
    UNMODELLED = "not in the model"
    CLOCK_LOST = "guest clock lost (host trace)"


_PHASE_MECHANISM = {
    BootPhase.FIRMWARE: Mechanism.FIRMWARE,
    BootPhase.FIRMWARE_ACCEPT: Mechanism.FIRMWARE_ACCEPT,
    BootPhase.EFI_STUB: Mechanism.FIRMWARE,
    BootPhase.EARLY_INIT: Mechanism.MEMBLOCK,
    BootPhase.MEMBLOCK_FREE: Mechanism.MEMBLOCK,
    BootPhase.EARLY_ALLOCS: Mechanism.ACCEPT_STORM,
    BootPhase.MEM_ENCRYPT_INIT: Mechanism.SWIOTLB,
    BootPhase.SMP_BRINGUP: Mechanism.SMP,
    BootPhase.DEFERRED_INIT: Mechanism.DEFERRED_INIT,
    BootPhase.EARLY_INITCALLS: Mechanism.INITCALLS,
    BootPhase.FS_INITCALLS: Mechanism.INITCALLS,
    BootPhase.INITCALLS: Mechanism.INITCALLS,
    BootPhase.USERSPACE: Mechanism.USERSPACE,
}
#: Phases in which the zone watermarks are still 0 (set at the postcore initcall, in early-initcalls).
_BEFORE_WATERMARKS = {BootPhase.EARLY_ALLOCS, BootPhase.SMP_BRINGUP, BootPhase.DEFERRED_INIT,
                      BootPhase.EARLY_INITCALLS}
_WORK_MECHANISM = {
    "struct_page_init": Mechanism.DEFERRED_INIT,
    "initcalls": Mechanism.INITCALLS,
    "smp_bringup": Mechanism.SMP,
    "early_init": Mechanism.MEMBLOCK,
    "memmap_init": Mechanism.MEMBLOCK,
}
#: The host's clock must exceed the guest's by this much (and this share) to say the guest lost time:
#: a trace's intervals are 100 ms, and firmware's own start is not in a log.
LOST_MIN_S = 0.3
#: A segment's difference for a mechanism is named from this size on (a log stamps microseconds).
DIFF_NOTED_S = 1e-5
LOST_MIN_SHARE = 0.05


def mechanism_of(phase: str, ev: Event) -> Mechanism:
    """The mechanism an event of ``phase`` belongs to."""
    default = _PHASE_MECHANISM.get(BootPhase(phase), Mechanism.INITCALLS)
    if isinstance(ev, ConvertEvent):
        return Mechanism.SWIOTLB
    if isinstance(ev, WorkEvent):
        return _WORK_MECHANISM.get(ev.kind, default)
    if isinstance(ev, AcceptEvent):
        if ev.reason == "memblock":
            return Mechanism.MEMBLOCK
        if ev.actor.startswith("page_alloc"):
            return Mechanism.ACCEPT_STORM if phase in _BEFORE_WATERMARKS else Mechanism.ALLOC_ACCEPT
    return default


@dataclass
class PhaseSplit:
    """One phase of the model on its clock and its seconds by mechanism (they sum to its length)."""

    name: str
    start: float
    end: float
    by: dict[Mechanism, float]


def _critical(span: PhaseSpan) -> int | None:
    ends = {v: e[-1] for v, e in span.timing.item_end.items() if e}
    return max(ends, key=lambda v: ends[v]) if ends else None


def split_phases(result: BootResult, profile: CostProfile) -> list[PhaseSplit]:
    """Each phase of the simulated boot split among mechanisms (see the module docstring)."""
    record, tl = result.record, result.timeline
    untick = simulate([replace(p, tick_hz=0) for p in record.phases], profile,
                      committed_at_start=record.platform.host.added_bytes)
    out = []
    for phase, span, calm in zip(record.phases, tl.phases, untick.phases, strict=True):
        out.append(PhaseSplit(phase.name, span.start, span.end, _split(phase, span, calm.duration)))
    return out


def _split(phase: Phase, span: PhaseSpan, untick_s: float) -> dict[Mechanism, float]:
    by: dict[Mechanism, float] = {}
    total = span.duration
    if total <= 0:
        return by
    v = _critical(span)
    used = 0.0
    if v is not None:
        for ev, _, e, reached in timed_events(phase, span):
            if ev.vcpu == v and e > reached:
                m = mechanism_of(phase.name, ev)
                by[m] = by.get(m, 0.0) + (e - reached)
                used += e - reached
    rest = total - used
    if rest > 1e-12:
        m = _PHASE_MECHANISM.get(BootPhase(phase.name), Mechanism.INITCALLS)
        by[m] = by.get(m, 0.0) + rest
    ticks = min(total, max(0.0, total - untick_s))
    if ticks > 0:
        scale = (total - ticks) / total
        by = {m: s * scale for m, s in by.items()}
        by[Mechanism.IDLE_TICKS] = by.get(Mechanism.IDLE_TICKS, 0.0) + ticks
    return by


def _between(splits: list[PhaseSplit], a: float, b: float) -> dict[Mechanism, float]:
    """The model's seconds by mechanism in ``[a, b)`` of its clock (phases cut in proportion)."""
    by: dict[Mechanism, float] = {}
    for p in splits:
        lo, hi = max(a, p.start), min(b, p.end)
        if hi <= lo or p.end <= p.start:
            continue
        share = (hi - lo) / (p.end - p.start)
        for m, s in p.by.items():
            by[m] = by.get(m, 0.0) + s * share
    return by


@dataclass
class Segment:
    """From one milestone to the next: the log's seconds and the model's, by mechanism."""

    start_key: str
    end_key: str
    log_start: float
    log_end: float
    model_start: float  # on the model's clock (from power-on)
    model_end: float
    model_by: dict[Mechanism, float]
    measured_by: dict[Mechanism, float]
    #: From the host trace, where given: tick exits and faults on guest memory in the segment.
    trace: dict[str, int] | None = None
    #: Time the guest's clock did not count, placed at the start of this segment (host trace).
    lost_s: float = 0.0


@dataclass
class Row:
    mechanism: Mechanism
    measured_s: float | None
    model_s: float
    #: The milestone stretches in which measured and modelled differ for this mechanism.
    segments: list[str] = field(default_factory=list)

    @property
    def diff_s(self) -> float | None:
        return None if self.measured_s is None else self.measured_s - self.model_s


@dataclass
class Attribution:
    rows: list[Row]
    segments: list[Segment]
    splits: list[PhaseSplit]
    assumptions: list[str]
    kernel_start_s: float  # model: power-on to the kernel's first line
    measured_total_s: float  # the log's last milestone (+ the lost clock) since the kernel started
    model_total_s: float  # the model's instant of the same milestone, since the kernel started
    clock_lost_s: float = 0.0
    host_active_s: float | None = None
    #: Per-operation latencies the host trace measured (us), beside the profile's price of the same.
    host_costs: list[tuple[str, float, str, float]] = field(default_factory=list)

    def row(self, m: Mechanism) -> Row | None:
        return next((r for r in self.rows if r.mechanism is m), None)


def attribute(result: BootResult, profile: CostProfile, log_times: dict[str, float],
              trace: HostTrace | None = None) -> Attribution:
    """Line the log's milestones up with the model's phases and attribute (module docstring)."""
    splits = split_phases(result, profile)
    phases = {p.name: (p.start, p.end) for p in splits}
    kernel0 = phases.get(BootPhase.EARLY_INIT.value, (0.0, 0.0))[0]
    points: list[tuple[str, float, float]] = []
    for key, _, phase, edge in MILESTONE_PHASES:
        span = phases.get(phase.value)
        if span is None or key not in log_times:
            continue
        model_t = span[0] if edge == "start" else span[1]
        if points and (log_times[key] < points[-1][1] or model_t < points[-1][2]):
            continue  # out of order in the log (a late line for an early event): not a boundary
        points.append((key, log_times[key], model_t))
    if not points or points[0][0] != "kernel-start":
        points.insert(0, ("kernel-start", 0.0, kernel0))
        no_start = ["the log's clock starts with the kernel (printk time 0): the kernel's start is at 0 s"]
    else:
        no_start = []
    assumptions = [
        "firmware and the EFI stub run before the kernel's clock starts: their seconds are the model's",
        "between two milestones the log gives only the total: it is split among mechanisms as the model splits "
        "the same stretch",
    ]
    assumptions += no_start
    missing = [label for key, label, *_ in MILESTONE_PHASES if key not in log_times]
    if missing:
        assumptions.append("milestones the log does not time: " + ", ".join(missing))
    segments = []
    for (k0, l0, m0), (k1, l1, m1) in zip(points, points[1:], strict=False):
        model_by = _between(splits, m0, m1)
        model_len = m1 - m0
        measured = l1 - l0
        if model_len > 0:
            measured_by = {m: measured * s / model_len for m, s in model_by.items()}
        else:
            measured_by = {Mechanism.UNMODELLED: measured} if measured > 0 else {}
        segments.append(Segment(k0, k1, l0, l1, m0, m1, model_by, measured_by))
    last_model = points[-1][2]
    pre = _between(splits, 0.0, kernel0)
    rows: dict[Mechanism, Row] = {}
    for m in Mechanism:
        rows[m] = Row(m, None, 0.0)
    for m, s in pre.items():
        rows[m].model_s += s
    for seg in segments:
        for m, s in seg.model_by.items():
            rows[m].model_s += s
        for m, s in seg.measured_by.items():
            rows[m].measured_s = (rows[m].measured_s or 0.0) + s
            if abs(s - seg.model_by.get(m, 0.0)) > DIFF_NOTED_S:
                rows[m].segments.append(f"{seg.start_key}..{seg.end_key}")  # where the difference arose
    for m, s in pre.items():
        so_far = rows[m].measured_s
        if so_far is not None:
            rows[m].measured_s = so_far + s  # the part before the kernel's clock is the model's (assumed)
    measured_total = points[-1][1]
    model_total = last_model - kernel0
    lost = 0.0
    host_active = None
    if trace is not None:
        model_trace = model_host_trace(result.record, result.timeline, profile)
        plat = result.record.config.tee.value
        start, end = trace.span_ns()
        host_active = (end - start) / 1e9
        offset = start / 1e9 - model_trace.span_ns()[0] / 1e9
        host_faults, model_faults = fault_counts(trace, plat), fault_counts(model_trace, plat)

        def place(model_t: float) -> float:
            """The host's instant of a model instant: by the faults counted, else by the first activity."""
            h = host_time(host_faults, model_faults, model_t) if host_faults and model_faults else None
            return model_t + offset if h is None else h

        _add_trace(trace, segments, plat, place)
        for seg, extra, stretch in _lost_clock(trace, model_trace, segments, plat):
            seg.lost_s += extra
            lost += extra
            rows[Mechanism.CLOCK_LOST].segments.append(stretch)
        if lost:
            rows[Mechanism.CLOCK_LOST].measured_s = lost
        assumptions.append("the host trace is lined up with the log by the guest's faults on its memory: a "
                           "milestone is where the trace has counted as many faults as the model has by then")
    keep = [r for r in rows.values() if r.model_s > 1e-9 or (r.measured_s or 0) > 1e-9]
    att = Attribution(keep, segments, splits, assumptions, kernel0, measured_total + lost, model_total, lost,
                      host_active)
    if trace is not None:
        att.host_costs = _host_costs(trace, profile)
    return att


def _host_costs(trace: HostTrace, profile: CostProfile) -> list[tuple[str, float, str, float]]:
    """The mean latency of each timed host operation in the trace, with the profile's serialised
    host-path price per 4 KiB page beside it (the AUG or RMP update is one part of that path)."""
    out = []
    per_page = profile.si("host.path_fault_4k") * 1e6
    for name, count, ns in (("TDH.MEM.PAGE.AUG", Counter.AUG, Counter.AUG_NS),
                            ("RMP update", Counter.RMPUPDATE, Counter.RMPUPDATE_NS)):
        n = trace.total(count)
        if n and trace.total(ns):
            out.append((name, trace.total(ns) / n / 1000, "host.path_fault_4k", per_page))
    return out


def _lost_clock(trace: HostTrace, model: HostTrace, segments: list[Segment], platform: str
                ) -> list[tuple[Segment, float, str]]:
    """Stretches of the boot where the host's clock ran longer than the guest's.

    Each milestone is placed on the host's clock by the faults on guest memory counted so far
    (:func:`.host_clock.host_time`); between two placed milestones, the host's stretch less the
    log's, past :data:`LOST_MIN_S` and :data:`LOST_MIN_SHARE`, is time the guest's clock did not count."""
    host, mod = fault_counts(trace, platform), fault_counts(model, platform)
    if not segments or not host or host[-1][1] <= 0 or mod[-1][1] <= 0:
        return []
    marks = [(segments[0].model_start, segments[0].log_start, segments[0].start_key)]
    marks += [(seg.model_end, seg.log_end, seg.end_key) for seg in segments]
    anchors = []
    for model_t, log_t, key in marks:
        h = host_time(host, mod, model_t)
        if h is not None:
            anchors.append((model_t, log_t, h, key))
    out = []
    for (m0, l0, h0, k0), (_, l1, h1, k1) in zip(anchors, anchors[1:], strict=False):
        extra = (h1 - h0) - (l1 - l0)
        if extra > max(LOST_MIN_S, LOST_MIN_SHARE * (l1 - l0)):
            first = next(s for s in segments if s.model_start >= m0 - 1e-12)
            out.append((first, extra, f"{k0}..{k1}"))
    return out


def _add_trace(trace: HostTrace, segments: list[Segment], platform: str, place: Callable[[float], float]) -> None:
    """Per segment, the trace's tick exits and faults on guest memory, its ends placed on the
    host's clock by ``place`` (an interval counts where it ends)."""
    tick, fault = TICK_EXIT[platform], FAULT_EXIT[platform]
    for seg in segments:
        lo = round(place(seg.model_start) * 1e9)
        hi = round(place(seg.model_end) * 1e9)
        got = trace.between(lo, hi)
        seg.trace = {"tick_exits": sum(i.exits.get(tick, 0) for i in got),
                     "fault_exits": sum(i.exits.get(fault, 0) for i in got),
                     "intervals": len(got)}
