"""A boot's phases, priced by a cost profile and run on the simulated clock.

:func:`simulate` is the bridge from a record (what happened, :mod:`lazyaccept.base.record`) to time:
every event of every phase is priced with :func:`~lazyaccept.sim.pricing.price`, the phases run one after
the other on :func:`~lazyaccept.sim.engine.simulate_phase` (each starts when the previous one's
last vCPU finishes), and the result says where the time went.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..base.choices import HostPath
from ..base.errors import ConfigError
from ..base.record import AcceptEvent, Event, Phase, WorkEvent
from .engine import Feed, Host, Idle, PhaseTiming, WorkItem, simulate_phase
from .multiguest import GuestPhase, GuestPlan, simulate_guests
from .pricing import price
from .profile import CostProfile

#: A step series: ``(t, cumulative bytes)`` points, time ascending, starting at ``(start, 0)``.
Series = list[tuple[float, int]]


@dataclass
class PhaseSpan:
    """One phase on the clock: when it ran, and the timing of each of its work items."""

    name: str
    actor: str
    start: float
    end: float
    online_vcpus: int
    timing: PhaseTiming
    items: dict[int, list[WorkItem]]
    #: vCPU seconds spent in accept items (lock spinning included).
    accept_s: float = 0.0
    #: Timer ticks idle vCPUs took (each an exit and re-entry on the host path), and their rate
    #: (per second, all idle vCPUs together) at the end of the phase.
    idle_exits: float = 0.0
    idle_exit_rate_at_end: float = 0.0
    #: vCPU-seconds items waited because the host path was their tightest resource.
    path_wait_s: float = 0.0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Timeline:
    """Where the time of a boot went.

    * ``total_s``: end of the last phase (the boot starts at 0);
    * ``phases``: per phase start/end and item timings;
    * ``vcpu_busy_s`` / ``vcpu_spin_s``: per vCPU, summed over phases (spin is waiting for a lock);
    * ``accept_s``: vCPU-seconds in accept items, summed over vCPUs (spinning on the accept lock
      included); ``accept_by_actor`` splits it by actor; ``accept_wall_s`` counts each instant
      once however many vCPUs were accepting;
    * ``accepted_bytes`` / ``committed_bytes``: step series of guest memory accepted and host
      memory committed, cumulative, a step at the end of each item that did so.
    """

    total_s: float
    phases: list[PhaseSpan]
    vcpu_busy_s: dict[int, float] = field(default_factory=dict)
    vcpu_spin_s: dict[int, float] = field(default_factory=dict)
    accept_s: float = 0.0
    accept_by_actor: dict[str, float] = field(default_factory=dict)
    accept_wall_s: float = 0.0
    accepted_bytes: Series = field(default_factory=list)
    committed_bytes: Series = field(default_factory=list)

    def phase(self, name: str) -> PhaseSpan:
        """The (first) phase called ``name``."""
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class LivePhase:
    """A phase the guest records as the clock runs it (the workloads after the shell): when a
    vCPU of ``vcpus`` runs out of work, ``next_work(vcpu, t)`` records what it does next at ``t``
    seconds into the phase (events appended to ``phase``, all on that vCPU) and returns how many
    events it recorded (0: nothing more; ``None``: its work waits for work on other vCPUs).
    ``shared_fifos`` names the FIFO lists of unaccepted chunks that more than one of them may
    draw on."""

    phase: Phase
    vcpus: tuple[int, ...]
    next_work: Callable[[int, float], int | None]
    shared_fifos: frozenset[str] = frozenset()


#: How an event is priced: :func:`~lazyaccept.sim.pricing.price`, or a host's own (a host feature
#: that adds to what the host does for some events).
Pricing = Callable[[CostProfile, Event], WorkItem]


def _feed(live: LivePhase, profile: CostProfile, actors: dict[int, list[str | None]],
          pricing: Pricing = price) -> Feed:
    """The engine's feed for ``live``: the events the guest records for a vCPU, priced."""
    events = live.phase.events

    def feed(vcpu: int, t: float) -> list[WorkItem] | None:
        before = len(events)
        if live.next_work(vcpu, t) is None:
            return None
        new = events[before:]
        wrong = [e for e in new if e.vcpu != vcpu]
        if wrong:
            raise RuntimeError(f"the guest recorded work on vCPU {wrong[0].vcpu} when vCPU {vcpu} asked for its own")
        actors[vcpu].extend(e.actor if isinstance(e, AcceptEvent) else None for e in new)
        return [pricing(profile, e) for e in new]

    return feed


@dataclass
class _Prepared:
    """A phase priced for the engine, and the actor of each item (``None``: not an accept)."""

    engine: GuestPhase
    actors: dict[int, list[str | None]]


def _prepare(phase: Phase, profile: CostProfile, live: LivePhase | None, pricing: Pricing = price,
             work_prices: dict[tuple[str, int, float, int], WorkItem] | None = None) -> _Prepared:
    """``phase``'s events priced as the engine's items (a live phase: its feed), its idle vCPUs.
    ``work_prices`` keeps boot steps already priced (they repeat: one per AP brought up)."""
    items: dict[int, list[WorkItem]] = {}
    actors: dict[int, list[str | None]] = {}
    fifo_order: list[tuple[int, int]] = []
    feed: Feed | None = None
    shared: frozenset[str] = frozenset()
    if live is not None and phase is live.phase:
        if phase.events:
            raise RuntimeError("a live phase starts empty: its events are recorded as it runs")
        items = {v: [] for v in live.vcpus}
        actors = {v: [] for v in live.vcpus}
        feed = _feed(live, profile, actors, pricing)
        shared = live.shared_fifos
    for ev in phase.events:
        vcpu_items = items.setdefault(ev.vcpu, [])
        if isinstance(ev, AcceptEvent) and ev.entry is not None and ev.entry.fifo is not None:
            fifo_order.append((ev.vcpu, len(vcpu_items)))
        if work_prices is not None and isinstance(ev, WorkEvent):
            key = (ev.kind, ev.vcpu, ev.amount, ev.onlines)
            item = work_prices.get(key)
            if item is None:
                item = work_prices[key] = pricing(profile, ev)
            vcpu_items.append(item)
        else:
            vcpu_items.append(pricing(profile, ev))
        actors.setdefault(ev.vcpu, []).append(ev.actor if isinstance(ev, AcceptEvent) else None)
    idle = Idle(online=phase.online_vcpus, tick_hz=phase.tick_hz, exit_s=profile.si("host.path_idle_exit"))
    return _Prepared(GuestPhase(items, idle, fifo_order, feed, shared), actors)


def simulate(
    phases: list[Phase], profile: CostProfile, *, committed_at_start: int = 0, host: Host | None = None,
    live: LivePhase | None = None, pricing: Pricing = price,
) -> Timeline:
    """Price every event of ``phases`` with ``profile`` and run the phases in order from t = 0.

    ``committed_at_start`` is host memory committed before the guest runs (pages the host added
    at build time); the committed series starts there.  ``live``, one of ``phases``, is recorded
    as the clock reaches it (:class:`LivePhase`): the guest decides what happens next when the
    engine says its vCPU is free.  ``pricing`` prices each event (a host feature's own: see
    :mod:`lazyaccept.sim.host_features`)."""
    host = host if host is not None else profile.host
    t = 0.0
    prepared: list[_Prepared] = []
    timings: list[PhaseTiming] = []
    work_prices: dict[tuple[str, int, float, int], WorkItem] = {}
    for phase in phases:
        prep = _prepare(phase, profile, live, pricing, work_prices if pricing is price else None)
        e = prep.engine
        # NUMA: each vCPU's traffic in its own node's bandwidth pool.
        phase_host = host.with_nodes(phase.vcpu_nodes) if phase.vcpu_nodes else host
        timing = simulate_phase(e.items, t, phase_host, e.idle, e.fifo_order, e.feed, e.shared_fifos)
        prepared.append(prep)
        timings.append(timing)
        t = timing.end
    return _assemble(phases, prepared, timings, profile, committed_at_start)


@dataclass(frozen=True)
class GuestBoot:
    """One guest of several on a host: its phases (``live`` one of them, or ``None``), its cost
    profile, the host memory committed when it is created, and when it starts (host seconds)."""

    phases: list[Phase]
    profile: CostProfile
    committed_at_start: int = 0
    live: LivePhase | None = None
    start: float = 0.0
    pricing: Pricing = price


def simulate_many(guests: list[GuestBoot], host: Host, path: HostPath = HostPath.SHARED) -> list[Timeline]:
    """Every guest's phases on one host and one clock (:mod:`lazyaccept.sim.multiguest`): per
    guest its timeline, in host seconds (a guest's boot starts at its ``start``).  One guest at
    0 gives what :func:`simulate` gives."""
    if any(phase.vcpu_nodes for gb in guests for phase in gb.phases):
        raise ConfigError("several guests on one host are modelled without NUMA nodes (leave out --numa)")
    prepared = [[_prepare(phase, gb.profile, gb.live, gb.pricing, {} if gb.pricing is price else None)
                 for phase in gb.phases] for gb in guests]
    plans = [
        GuestPlan(max((v + 1 for p in prep for v in p.engine.items), default=0), gb.start, [p.engine for p in prep])
        for gb, prep in zip(guests, prepared, strict=True)
    ]
    timings = simulate_guests(plans, host, path)
    return [
        _assemble(gb.phases, prep, tms, gb.profile, gb.committed_at_start, gb.start)
        for gb, prep, tms in zip(guests, prepared, timings, strict=True)
    ]


def _assemble(phases: list[Phase], prepared: list[_Prepared], timings: list[PhaseTiming], profile: CostProfile,
              committed_at_start: int, start: float = 0.0) -> Timeline:
    """The timeline of phases the engine has timed."""
    t = start
    spans: list[PhaseSpan] = []
    busy: dict[int, float] = {}
    spin: dict[int, float] = {}
    accept_by_actor: dict[str, float] = {}
    accept_intervals: list[tuple[float, float]] = []
    accepted_steps: list[tuple[float, int]] = []
    committed_steps: list[tuple[float, int]] = []
    for phase, prep, timing in zip(phases, prepared, timings, strict=True):
        items, actors = prep.engine.items, prep.actors
        phase_accept = 0.0
        for v, vt in timing.vcpus.items():
            busy[v] = busy.get(v, 0.0) + vt.busy_s
            spin[v] = spin.get(v, 0.0) + vt.spin_s
            reached = timing.start  # when the vCPU reached the item: the end of its previous one
            for item, actor, e in zip(items[v], actors[v], timing.item_end[v], strict=True):
                if item.accepted_bytes:
                    accepted_steps.append((e, item.accepted_bytes))
                if item.committed_bytes:
                    committed_steps.append((e, item.committed_bytes))
                if actor is not None:
                    # An accept item's time counts from when the vCPU reached it: lock spin included.
                    d = e - reached
                    phase_accept += d
                    accept_by_actor[actor] = accept_by_actor.get(actor, 0.0) + d
                    if e > reached:
                        accept_intervals.append((reached, e))
                reached = e
        spans.append(
            PhaseSpan(
                name=phase.name,
                actor=phase.actor,
                start=timing.start,
                end=timing.end,
                online_vcpus=phase.online_vcpus,
                timing=timing,
                items=items,
                accept_s=phase_accept,
                idle_exits=timing.idle_host_s / profile.si("host.path_idle_exit"),
                idle_exit_rate_at_end=timing.idle_host_rate_end / profile.si("host.path_idle_exit"),
                path_wait_s=timing.path_wait_s,
            )
        )
        t = timing.end

    return Timeline(
        total_s=t,
        phases=spans,
        vcpu_busy_s=busy,
        vcpu_spin_s=spin,
        accept_s=sum(accept_by_actor.values()),
        accept_by_actor=accept_by_actor,
        accept_wall_s=_union_length(accept_intervals),
        accepted_bytes=_cumulative(accepted_steps, 0, start),
        committed_bytes=_cumulative(committed_steps, committed_at_start, start),
    )


def timed_events(phase: Phase, span: PhaseSpan) -> Iterator[tuple[Event, float, float, float]]:
    """Each event of a recorded ``phase`` with the timing of its work item in ``span`` (items run
    in event order on their vCPU): ``(event, start, end, reached)``, where ``reached`` is when the
    vCPU came to the item (the end of its previous one, or the phase start), so ``start -
    reached`` is any wait for a lock."""
    cursor: dict[int, int] = {}
    for ev in phase.events:
        i = cursor.get(ev.vcpu, 0)
        cursor[ev.vcpu] = i + 1
        ends = span.timing.item_end[ev.vcpu]
        yield ev, span.timing.item_start[ev.vcpu][i], ends[i], ends[i - 1] if i else span.start


def timed_calls(
    phase: Phase, span: PhaseSpan
) -> Iterator[tuple[Event, float, float, float, list[float] | None, list[float] | None]]:
    """As :func:`timed_events`, with each event's ``accept_memory()`` calls when the engine ran
    them one by one (an item drawing chunks from a FIFO list that other vCPUs draw on too): each
    call's seconds from when its vCPU reached it, spinning on the accepting list included, and
    the spinning alone; else ``None`` twice."""
    cursor: dict[int, int] = {}
    calls, spins = span.timing.call_s, span.timing.call_spin_s
    for ev, s, e, reached in timed_events(phase, span):
        i = cursor.get(ev.vcpu, 0)
        cursor[ev.vcpu] = i + 1
        yield ev, s, e, reached, calls.get(ev.vcpu, {}).get(i), spins.get(ev.vcpu, {}).get(i)


def _cumulative(steps: Iterable[tuple[float, int]], start: int = 0, t0: float = 0.0) -> Series:
    out: Series = [(t0, start)]
    total = start
    for t, b in sorted(steps):
        total += b
        if out[-1][0] == t:
            out[-1] = (t, total)
        else:
            out.append((t, total))
    return out


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total = 0.0
    cur_s = cur_e = None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s  # type: ignore[operator]
    return total
