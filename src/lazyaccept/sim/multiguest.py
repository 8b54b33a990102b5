"""Several guests on one host: each guest's phases in order, all guests on one clock and one set
of host resources.

Each guest's boot is a sequence of phases, each a barrier *within that guest* (its next phase
starts when its own vCPUs are done); guests start at their own times.  While they overlap their
running items share the host's memory bandwidth (one max-min fair pool), the host's serialised
path (every guest's running items and ticking idle vCPUs are customers of one closed network,
:func:`~lazyaccept.sim.queueing.share_path_classes`, one idle class per guest) and the host CPUs
(time-shared by every guest's running and spinning vCPUs).  Locks and the accepting list are a
guest kernel's own: their names and unit ranges are made distinct per guest, so guests never
wait for each other there.

:class:`HostRun` is the engine's :class:`~lazyaccept.sim.engine.PhaseRun` holding every guest's
vCPUs (guest ``k``'s vCPU ``v`` is global vCPU ``base_k + v``), fed phase by phase: a vCPU that
runs out of work asks for the next items of its guest's phase; once every vCPU of that phase is
done the guest's next phase begins and its vCPUs are readied in order, as a fresh phase readies
them.  With one guest every step is the engine's own (:func:`~lazyaccept.sim.engine._step`, a
fresh memo per phase): one guest's timing is exactly what :func:`simulate_phase` gives phase after
phase.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from ..base.choices import HostPath
from .engine import (
    _MEMO_SETS,
    Feed,
    Host,
    Idle,
    PhaseRun,
    PhaseTiming,
    VcpuTiming,
    WorkItem,
    _fifo_streams,
    _step,
    limited_rates,
)
from .queueing import IdleClass, share_path, share_path_classes

#: Unit offset between guests' accepting-list ranges: guest k's ranges start at k times this, so
#: no two guests' ranges ever intersect (a bitmap unit is at least 2 MiB: 2**40 units is 2 EiB).
_GUEST_UNITS = 1 << 40


@dataclass
class GuestPhase:
    """One phase of one guest: each (guest-local) vCPU's recorded items, or a ``feed`` for a phase
    recorded as it runs (the vCPUs of ``items`` ask it, their lists start empty and get the fed
    items), and the phase's idle vCPUs."""

    items: dict[int, list[WorkItem]]
    idle: Idle
    fifo_order: list[tuple[int, int]] | None = None
    feed: Feed | None = None
    shared_fifos: frozenset[str] = frozenset()


@dataclass
class GuestPlan:
    """A guest on the host: its vCPU count, when it starts (host seconds) and its phases."""

    vcpus: int
    start: float
    phases: list[GuestPhase]


@dataclass
class _Guest:
    """A guest as the run goes: its current phase and what is measured of it."""

    index: int
    base: int
    plan: GuestPlan
    p: int = -1
    finished: bool = False
    phase_start: float = 0.0
    idle: int = 0
    spec: Idle = field(default_factory=Idle)
    #: Global vCPUs with recorded items of the phase not yet handed to them.
    pending: dict[int, list[WorkItem]] = field(default_factory=dict)
    #: Global vCPUs of the phase not done with it.
    remaining: set[int] = field(default_factory=set)
    parked: list[int] = field(default_factory=list)
    moved: bool = False
    ticks: float = 0.0
    timing: PhaseTiming = field(default_factory=lambda: PhaseTiming(0.0, 0.0))
    memo: dict = field(default_factory=dict)  # type: ignore[type-arg]
    streams: list[str] = field(default_factory=list)
    timings: list[PhaseTiming] = field(default_factory=list)

    @property
    def in_phase(self) -> bool:
        return self.p >= 0 and not self.finished


def _no_feed(v: int, t: float) -> list[WorkItem] | None:  # pragma: no cover - HostRun feeds itself
    raise RuntimeError("HostRun hands out its guests' items itself")


class HostRun(PhaseRun):
    """Every guest's phases on one clock (see the module docstring)."""

    def __init__(self, plans: list[GuestPlan], host: Host, path: HostPath = HostPath.SHARED) -> None:
        bases = [0]
        for plan in plans:
            bases.append(bases[-1] + plan.vcpus)
        super().__init__({g: [] for g in range(bases[-1])}, 0.0, host, Idle(online=0), None, _no_feed)
        self.guests = [_Guest(k, bases[k], plan) for k, plan in enumerate(plans)]
        self.single = len(plans) == 1
        self.path_per_guest = path is HostPath.PER_GUEST
        self.guest_of = np.repeat(np.arange(len(plans)), [p.vcpus for p in plans])
        self.ready = deque()
        # Each guest begins when its first vCPU wakes at its start time.
        self.sleeping = [(float(plan.start), bases[k]) for k, plan in enumerate(plans) if plan.vcpus]
        heapq.heapify(self.sleeping)
        #: Several guests: vCPU-seconds each guest's items lost to the path and to the bandwidth,
        #: summed over the run, and their values when each guest's phase began.
        self.path_wait = np.zeros(len(plans))
        self.bw_wait = np.zeros(len(plans))
        self.waits_at_begin = [(0.0, 0.0)] * len(plans)
        #: Guests in a phase with idle vCPUs that take the tick: the path's idle customers.
        self.ticking: dict[int, _Guest] = {}
        #: The mean queue at the path in the last step (for the phases of guests not ticking).
        self.last_queue = 0.0
        self.guest_memo: dict[tuple[object, ...], tuple[np.ndarray, list[tuple[float, float, float]], float,
                                                          np.ndarray, np.ndarray]] = {}
        self.multi_memo: dict[tuple[object, ...], tuple[np.ndarray, list[tuple[float, float]], float,
                                                           np.ndarray, np.ndarray]] = {}

    def run_guests(self) -> list[list[PhaseTiming]]:
        """Run every guest to the end of its last phase: each guest's phase timings, in order."""
        self.run()
        return [g.timings for g in self.guests]

    # -- a guest's phases ----------------------------------------------------------------------
    def _remap(self, g: _Guest, item: WorkItem, v: int) -> WorkItem:
        """A guest's item as the host run holds it: on its global vCPU, its lock and accepting-list
        ranges the guest's own."""
        if self.single:
            return item
        e = item.entry
        if e is not None:
            off = g.index * _GUEST_UNITS
            e = replace(e, first=e.first + off, end=e.end + off,
                        fifo=None if e.fifo is None else f"{g.index}:{g.p}:{e.fifo}")
        # The constructor, not replace(): a host of many guests remaps every item it runs.
        return WorkItem(g.base + v, item.cpu_s, item.bytes, None if item.lock is None else f"{g.index}:{item.lock}",
                        item.label, item.accepted_bytes, item.committed_bytes, item.host_s, item.onlines,
                        item.not_before, e, item.requests)

    def _fifo_name(self, g: _Guest, name: str) -> str:
        return name if self.single else f"{g.index}:{g.p}:{name}"

    def _begin(self, g: _Guest, p: int) -> None:
        """Guest ``g``'s phase ``p`` begins now (an empty phase ends as it begins): its vCPUs'
        per-phase state starts afresh and those with work are readied in order."""
        while True:
            for name in g.streams:
                self.streams.pop(name, None)
            g.streams = []
            if p >= len(g.plan.phases):
                g.finished = True
                self.ticking.pop(g.index, None)
                return
            ph = g.plan.phases[p]
            g.p, g.phase_start, g.spec = p, self.t, ph.idle
            g.timing = PhaseTiming(start=self.t, end=self.t)
            self.waits_at_begin[g.index] = (float(self.path_wait[g.index]), float(self.bw_wait[g.index]))
            g.ticks = 0.0
            g.memo = {}
            g.parked = []
            g.moved = False
            for v in ph.items:
                gv = g.base + v
                self.items[gv].clear()  # in place: a caller may be iterating it
                self.next_item[gv] = 0
                self.timing.vcpus[gv] = VcpuTiming(start=self.t, end=self.t)
                self.timing.item_start[gv] = []
                self.timing.item_end[gv] = []
                self.timing.call_s.pop(gv, None)
                self.timing.call_spin_s.pop(gv, None)
            workers = sorted(v for v, its in ph.items.items() if its or ph.feed is not None)
            g.idle = max(0, ph.idle.online - len(workers))
            self._idle_changed(g)
            g.pending = {g.base + v: [self._remap(g, it, v) for it in its] for v, its in ph.items.items() if its}
            g.remaining = {g.base + v for v in workers}
            for name, stream in _fifo_streams(ph.items, ph.fifo_order).items():
                off = 0 if self.single else g.index * _GUEST_UNITS
                self._add_stream(g, name, deque((a + off, b + off) for a, b in stream))
            if ph.feed is not None:
                for name in ph.shared_fifos:
                    self._add_stream(g, name, deque())
            if workers:
                self.ready.extend(g.base + v for v in workers)
                return
            self._close(g)
            p += 1

    def _add_stream(self, g: _Guest, name: str, stream: deque[tuple[int, int]]) -> None:
        full = self._fifo_name(g, name)
        self.streams[full] = stream
        g.streams.append(full)

    def _close(self, g: _Guest) -> None:
        """Guest ``g``'s current phase is over: its timing, per guest-local vCPU."""
        ph = g.plan.phases[g.p]
        tm = g.timing
        for v in ph.items:
            gv = g.base + v
            tm.vcpus[v] = self.timing.vcpus[gv]
            tm.item_start[v] = self.timing.item_start[gv]
            tm.item_end[v] = self.timing.item_end[gv]
            if gv in self.timing.call_s:
                tm.call_s[v] = self.timing.call_s.pop(gv)
                tm.call_spin_s[v] = self.timing.call_spin_s.pop(gv)
        tm.end = max((vt.end for vt in tm.vcpus.values()), default=tm.start)
        tm.idle_at_end = g.idle
        if not self.single:
            path0, bw0 = self.waits_at_begin[g.index]
            tm.path_wait_s = float(self.path_wait[g.index]) - path0
            tm.bandwidth_wait_s = float(self.bw_wait[g.index]) - bw0
        if not self.single and g.index not in self.ticking:  # no idle customer at the end
            tm.idle_host_rate_end = tm.idle_response_end = 0.0
            tm.path_queue_end = self.last_queue
        g.timings.append(tm)

    # -- the engine's hooks ----------------------------------------------------------------------
    def _start_of(self, v: int) -> float:
        return self.guests[int(self.guest_of[v])].phase_start

    def _onlined(self, v: int, n: int) -> None:
        g = self.guests[int(self.guest_of[v])]
        g.idle += n
        self._idle_changed(g)

    def _idle_changed(self, g: _Guest) -> None:
        if g.idle > 0 and g.spec.exit_s > 0 and g.spec.tick_hz > 0:
            self.ticking[g.index] = g
        else:
            self.ticking.pop(g.index, None)

    def _out_of_work(self, v: int) -> None:
        """Done in :meth:`_fed`, which every vCPU out of work has just asked."""

    def _unpark(self) -> None:
        for g in self.guests:
            if g.moved:
                g.moved = False
                self.ready.extend(g.parked)

    def _fed(self, v: int) -> bool:
        """vCPU ``v``'s next items of its guest's phase: its recorded ones, or its feed's; a vCPU
        done with the phase waits for the guest's other vCPUs, the last one begins the next phase."""
        g = self.guests[int(self.guest_of[v])]
        if g.p < 0:  # the guest's start time: its first phase begins
            self._begin(g, 0)
            return False
        if g.finished:
            return False
        new = g.pending.pop(v, None)
        if new is not None:
            self.items[v].extend(new)
            return True
        ph = g.plan.phases[g.p]
        local = v - g.base
        if ph.feed is not None and v in g.remaining:
            fed = ph.feed(local, self.t - g.phase_start)
            if fed is None:  # its work waits for work on the guest's other vCPUs
                if v not in g.parked:
                    g.parked.append(v)
                    self.parked.append(v)
                    g.idle += 1
                    self._idle_changed(g)
                return False
            g.moved = self.feed_moved = True
            if v in g.parked:
                g.parked.remove(v)
                self.parked.remove(v)
                g.idle -= 1
                self._idle_changed(g)
            if fed:
                ph.items[local].extend(fed)
                for item in fed:
                    self._append_fed(v, self._remap(g, item, local))
                return True
        if v in g.remaining:
            g.remaining.discard(v)
            self.timing.vcpus[v].end = self.t
            g.idle += 1  # idle for the rest of its guest's phase
            self._idle_changed(g)
            if not g.remaining:
                self._close(g)
                self._begin(g, g.p + 1)
        return False

    # -- a step on the clock ---------------------------------------------------------------------
    def _advance(self, max_dt: float) -> tuple[float, list[int]]:
        if self.single:
            g = self.guests[0]
            dt, done, share, path_wait, bw_wait = _step(
                self.frac, self.running, self.cpu, self.nbytes, self.hpath, self.host,
                g.idle, g.spec, len(self.waiting_since), max_dt, g.memo,
            )
            self._tick(g, share.idle_rate, share.idle_response, share.queue, dt)
            g.timing.path_wait_s += path_wait
            g.timing.bandwidth_wait_s += bw_wait
            return dt, done
        return self._advance_many(max_dt)

    def _advance_many(self, max_dt: float) -> tuple[float, list[int]]:
        """:func:`~lazyaccept.sim.engine._step` for several guests: one bandwidth pool, one path
        whose idle customers are every ticking guest's idle vCPUs (guests with the same tick are
        one class: the same answer, see :func:`share_path_classes`), the host CPUs; the waits
        charged per guest."""
        run_idx = np.flatnonzero(self.running)
        if self.path_per_guest:
            return self._advance_per_guest(run_idx, max_dt)
        groups: dict[tuple[float, float], int] = {}
        for g in self.ticking.values():
            tick = (g.spec.exit_s, g.spec.tick_period)
            groups[tick] = groups.get(tick, 0) + g.idle
        ticks = sorted(groups)
        classes = tuple((groups[k], k[0], k[1]) for k in ticks)
        c, b, h = self.cpu[run_idx], self.nbytes[run_idx], self.hpath[run_idx]
        spinning = len(self.waiting_since)
        key = (c.tobytes(), b.tobytes(), h.tobytes(), classes, spinning)
        known = self.multi_memo.get(key)
        if known is None:
            known = _rates_many(c, b, h, self.host, classes, spinning)
            if len(self.multi_memo) >= _MEMO_SETS:
                self.multi_memo.clear()
            self.multi_memo[key] = known
        rates, per_class, queue, rate_alone, path_bound = known
        dt, finished = self._progress(run_idx, rates, rate_alone, path_bound, max_dt)
        self.last_queue = queue
        for g in self.ticking.values():
            r_idle, rate = per_class[ticks.index((g.spec.exit_s, g.spec.tick_period))]
            self._tick(g, rate, r_idle, queue, dt)
        return dt, finished

    def _advance_per_guest(self, run_idx: np.ndarray, max_dt: float) -> tuple[float, list[int]]:
        """As :meth:`_advance_many` with a path of each guest's own: a guest's items and ticking
        idle vCPUs queue only behind each other (bandwidth and host CPUs stay shared)."""
        owner = self.guest_of[run_idx]
        ticking = sorted(self.ticking)
        classes = tuple((k, self.guests[k].idle, self.guests[k].spec.exit_s, self.guests[k].spec.tick_period)
                        for k in ticking)
        c, b, h = self.cpu[run_idx], self.nbytes[run_idx], self.hpath[run_idx]
        spinning = len(self.waiting_since)
        key = (c.tobytes(), b.tobytes(), h.tobytes(), owner.tobytes(), classes, spinning)
        known = self.guest_memo.get(key)
        if known is None:
            known = _rates_per_guest(c, b, h, owner, self.host, classes, spinning)
            if len(self.guest_memo) >= _MEMO_SETS:
                self.guest_memo.clear()
            self.guest_memo[key] = known
        rates, per_class, _, rate_alone, path_bound = known
        dt, finished = self._progress(run_idx, rates, rate_alone, path_bound, max_dt)
        self.last_queue = 0.0
        for k, (r_idle, rate, queue) in zip(ticking, per_class, strict=True):
            self._tick(self.guests[k], rate, r_idle, queue, dt)
        return dt, finished

    def _progress(self, run_idx: np.ndarray, rates: np.ndarray, rate_alone: np.ndarray, path_bound: np.ndarray,
                  max_dt: float) -> tuple[float, list[int]]:
        """The running items progress at ``rates`` to the next completion (or ``max_dt``); what
        they lost to the path or the bandwidth is charged to their guests."""
        f = self.frac[run_idx]
        dt = min(float(np.min(f / rates)), max_dt)
        lost = (1.0 - rates / rate_alone) * dt
        owner = self.guest_of[run_idx]
        if lost.any():  # per guest, summed on; a guest's phase takes its part when it closes
            n = len(self.guests)
            self.path_wait += np.bincount(owner[path_bound], weights=lost[path_bound], minlength=n)
            self.bw_wait += np.bincount(owner[~path_bound], weights=lost[~path_bound], minlength=n)
        left = f - rates * dt
        self.frac[run_idx] = left
        finished = run_idx[left <= 1e-9]
        self.running[finished] = False
        return dt, finished.tolist()

    def _tick(self, g: _Guest, idle_rate: float, idle_response: float, queue: float, dt: float) -> None:
        """Guest ``g``'s idle vCPUs' ticks in a step (as :meth:`PhaseRun._idle_ticks`)."""
        tm = g.timing
        grant = idle_rate * g.spec.exit_s
        tm.idle_host_s += grant * g.idle * dt
        tm.idle_host_rate_end = grant * g.idle
        tm.path_queue_end = queue
        tm.idle_response_end = idle_response
        if g.idle and idle_rate > 0:
            g.ticks += idle_rate * g.idle * dt
            tm.idle_exit_series.append((self.t + dt, g.ticks, g.idle))


def _rates_many(c: np.ndarray, b: np.ndarray, h: np.ndarray, host: Host, classes: tuple[IdleClass, ...],
                spinning: int) -> tuple[np.ndarray, list[tuple[float, float]], float, np.ndarray, np.ndarray]:
    """:func:`~lazyaccept.sim.engine._rates` with several idle classes at the path."""
    think = c + b / host.vcpu_bandwidth
    response, per_class, queue = share_path_classes(think, h, classes)
    rates, rate_alone, path_bound = limited_rates(think, b, h, response, host, spinning)
    return rates, per_class, queue, rate_alone, path_bound


def _rates_per_guest(c: np.ndarray, b: np.ndarray, h: np.ndarray, owner: np.ndarray, host: Host,
                     classes: tuple[tuple[int, int, float, float], ...], spinning: int
                     ) -> tuple[np.ndarray, list[tuple[float, float, float]], float, np.ndarray, np.ndarray]:
    """:func:`_rates_many` with a path per guest: ``owner`` is each item's guest, ``classes`` the
    ticking guests' (guest, idle vCPUs, demand per tick, tick period)."""
    think = c + b / host.vcpu_bandwidth
    idle = {k: (n, d, p) for k, n, d, p in classes}
    per_class: dict[int, tuple[float, float, float]] = {}
    response = np.zeros(len(c))
    for k in sorted(set(owner[h > 0].tolist()) | set(idle)):
        mine = owner == k
        n, d, p = idle.get(k, (0, 0.0, math.inf))
        share = share_path(think[mine], h[mine], n, d, p)
        response[mine] = share.response
        per_class[k] = (share.idle_response, share.idle_rate, share.queue)
    rates, rate_alone, path_bound = limited_rates(think, b, h, response, host, spinning)
    return rates, [per_class[k] for k, _, _, _ in classes], 0.0, rate_alone, path_bound


def simulate_guests(plans: list[GuestPlan], host: Host, path: HostPath = HostPath.SHARED) -> list[list[PhaseTiming]]:
    """Run every guest's phases on one host from t = 0 (each from its own start): per guest, its
    phases' timings in order.  One guest gives what :func:`simulate_phase` gives phase by phase."""
    return HostRun(plans, host, path).run_guests()
