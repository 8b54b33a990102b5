"""A tiny simulated clock: vCPUs run work items, share memory bandwidth, and take locks.

This is the whole of the time-keeping machinery.  Nothing else in the project knows how time
passes: the model records *what* was done (:mod:`lazyaccept.base.record`), a cost profile turns each
record into a :class:`WorkItem` (CPU seconds plus bytes moved through memory), and
:class:`PhaseRun` runs those items on the vCPUs of one boot phase.

The mechanisms, each one rule:

* **CPU time** is private to a vCPU: ``cpu_s`` seconds of it are never shared or slowed.
* **Memory bandwidth** is shared.  A vCPU streams at most ``Host.vcpu_bandwidth`` bytes/s; all
  vCPUs streaming at the same time together get at most ``Host.memory_bandwidth``.  The per-page
  work inside an item interleaves CPU and streaming, so an item of ``c`` CPU seconds and ``b``
  bytes running alone takes ``c + b / vcpu_bandwidth`` and, in that time, *asks* for an average
  bandwidth of ``b / (c + b / vcpu_bandwidth)``.  When the asks of all running items exceed the
  host bandwidth, the host bandwidth is divided max-min fairly (water-filling): items asking for
  less than the fair level get what they ask, the others share the rest equally, and each item
  then progresses at ``granted / b`` items per second.  Saturation thus emerges from the
  mechanism: more vCPUs help until their summed asks reach the host bandwidth.
* **Locks** are named.  Items with the same ``lock`` never overlap in time, on any vCPUs.  A
  vCPU whose next item needs a lock held elsewhere *spins*: it is busy but makes no progress
  (the v6.5 accept lock is a spinlock taken with IRQs off).  Waiters get the lock in arrival
  order (Linux queued spinlocks are FIFO); simultaneous arrivals in vCPU order.

The simulation is a fluid, event-driven one: between two events (an item starting or ending)
every running item progresses at a constant rate; at each event the rates are recomputed.
Identical items on many vCPUs end at the same instant and are handled as one event, so a phase
costs about (items per vCPU) events, whatever the vCPU count.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..base.errors import ConfigError

#: A running item whose remaining fraction is at most this is complete (absorbs float rounding).
_DONE_FRACTION = 1e-9


@dataclass(frozen=True, slots=True)
class WorkItem:
    """Work one vCPU does: ``cpu_s`` seconds of CPU plus moving ``bytes`` through memory.

    ``lock`` names a lock held for the whole item (``None``: no lock).  ``label`` says what it
    is, for reports.  ``accepted_bytes`` / ``committed_bytes`` are the guest memory this item
    accepts and the host memory it commits; they do not change its duration, but the timeline
    draws them over time.
    """

    vcpu: int
    cpu_s: float
    bytes: float
    lock: str | None = None
    label: str = ""
    accepted_bytes: int = 0
    committed_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Host:
    """The memory system the vCPUs share: total bandwidth and what one vCPU can stream (B/s)."""

    memory_bandwidth: float
    vcpu_bandwidth: float

    def __post_init__(self) -> None:
        for name in ("memory_bandwidth", "vcpu_bandwidth"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"host {name} must be a positive number of bytes/s, not {v!r}")


@dataclass(slots=True)
class VcpuTiming:
    """One vCPU in one phase: it starts with the phase and is busy until its last item ends.

    ``busy_s = end - start`` (items run back to back); ``spin_s`` is the part of it spent
    waiting for a lock; ``work_s`` the rest.
    """

    start: float
    end: float
    spin_s: float = 0.0

    @property
    def busy_s(self) -> float:
        return self.end - self.start

    @property
    def work_s(self) -> float:
        return self.busy_s - self.spin_s


@dataclass(slots=True)
class PhaseTiming:
    """When a phase and each of its items started and ended (simulated seconds).

    ``item_start[v][i]`` / ``item_end[v][i]`` belong to ``items_by_vcpu[v][i]``; an item's start
    is when it got its lock (if any) and began to make progress.
    """

    start: float
    end: float
    vcpus: dict[int, VcpuTiming] = field(default_factory=dict)
    item_start: dict[int, list[float]] = field(default_factory=dict)
    item_end: dict[int, list[float]] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start


def _check_item(v: int, i: int, item: WorkItem) -> None:
    if item.vcpu != v:
        raise ConfigError(f"work item {i} of vCPU {v} ({item.label!r}) says it runs on vCPU {item.vcpu}")
    for name in ("cpu_s", "bytes"):
        x = getattr(item, name)
        if not (isinstance(x, int | float) and math.isfinite(x) and x >= 0):
            raise ConfigError(
                f"work item {item.label!r} on vCPU {v}: {name} must be >= 0 and finite, not {x!r}"
            )


def _fair_shares(asks: np.ndarray, capacity: float) -> np.ndarray:
    """Max-min fair division of ``capacity`` among ``asks`` (water-filling)."""
    if float(asks.sum()) <= capacity:
        return asks
    ordered = np.sort(asks)
    n = len(ordered)
    before = np.concatenate(([0.0], np.cumsum(ordered)[:-1]))
    # The level if the k smallest asks are granted in full and the rest share what is left.
    levels = (capacity - before) / (n - np.arange(n))
    k = int(np.argmax(ordered > levels))  # the first ask above its level (one exists: saturated)
    return np.minimum(asks, levels[k])


#: Phases with at most this many vCPUs are stepped in plain Python (cheaper than numpy calls).
_SMALL = 8


def _step(
    frac: np.ndarray, running: np.ndarray, cpu: np.ndarray, nbytes: np.ndarray, vbw: float, hbw: float
) -> tuple[float, list[int]]:
    """Advance the running items to the next completion; return the time step and who finished.

    Rates: a CPU-only item progresses at ``1 / cpu``; a streaming item at its fair share of the
    host bandwidth divided by its bytes (see the module docstring).  Updates ``frac`` and
    ``running`` in place.
    """
    if len(frac) <= _SMALL:
        run = [i for i, r in enumerate(running.tolist()) if r]
        c, b, f = cpu.tolist(), nbytes.tolist(), frac.tolist()
        streams = [i for i in run if b[i] > 0]
        rate = {i: 1.0 / c[i] for i in run if b[i] <= 0}
        if streams:
            asks = [b[i] / (c[i] + b[i] / vbw) for i in streams]
            shares = asks if sum(asks) <= hbw else _fair_shares(np.array(asks), hbw).tolist()
            for i, share in zip(streams, shares, strict=True):
                rate[i] = share / b[i]
        dt = min(f[i] / rate[i] for i in run)
        done = []
        for i in run:
            left = f[i] - rate[i] * dt
            frac[i] = left
            if left <= _DONE_FRACTION:
                done.append(i)
                running[i] = False
        return dt, done
    run_idx = np.flatnonzero(running)
    c, b = cpu[run_idx], nbytes[run_idx]
    rates = np.empty(len(run_idx))
    streaming = b > 0
    rates[~streaming] = 1.0 / c[~streaming]
    if streaming.any():
        bs, cs = b[streaming], c[streaming]
        rates[streaming] = _fair_shares(bs / (cs + bs / vbw), hbw) / bs
    f = frac[run_idx]
    dt = float(np.min(f / rates))
    left = f - rates * dt
    frac[run_idx] = left
    finished = run_idx[left <= _DONE_FRACTION]
    running[finished] = False
    return dt, finished.tolist()


class PhaseRun:
    """One phase on the clock: each vCPU runs its items in order, all vCPUs in parallel.

    The methods say what happens at an event: an item is :meth:`_started` (after taking its
    lock, or queueing for it), runs at the rate :func:`_step` gives it, and when it ends its lock
    is :meth:`_released` to the next waiter and its vCPU moves on.
    """

    def __init__(self, items_by_vcpu: dict[int, list[WorkItem]], start: float, host: Host) -> None:
        self.items = items_by_vcpu
        self.vcpus = sorted(items_by_vcpu)
        for v in self.vcpus:
            for i, item in enumerate(items_by_vcpu[v]):
                _check_item(v, i, item)
        self.host = host
        self.t = float(start)
        self.timing = PhaseTiming(start=self.t, end=self.t)
        for v in self.vcpus:
            self.timing.vcpus[v] = VcpuTiming(start=self.t, end=self.t)
            self.timing.item_start[v] = []
            self.timing.item_end[v] = []
        self.next_item = {v: 0 for v in self.vcpus}
        self.waiting_since: dict[int, float] = {}
        self.lock_owner: dict[str, int] = {}
        self.lock_queue: dict[str, deque[int]] = {}
        self.ready: deque[int] = deque(self.vcpus)
        # Per-vCPU state of the current item, as arrays (position = index in ``vcpus``).
        self.pos = {v: i for i, v in enumerate(self.vcpus)}
        n = len(self.vcpus)
        self.frac = np.zeros(n)  # remaining fraction of the current item
        self.running = np.zeros(n, dtype=bool)
        self.cpu = np.zeros(n)
        self.nbytes = np.zeros(n)

    def run(self) -> PhaseTiming:
        """Run to the end of the phase (a barrier: the last vCPU's last item)."""
        while True:
            while self.ready:
                v = self.ready.popleft()
                if self._started(v):
                    self._set_running(v)
            if not self.running.any():
                break
            dt, done = _step(
                self.frac, self.running, self.cpu, self.nbytes, self.host.vcpu_bandwidth, self.host.memory_bandwidth
            )
            self.t += dt
            for i in done:
                self._ended(self.vcpus[i])
        if self.waiting_since:  # cannot happen: an owner is always running its item
            raise RuntimeError(f"lock wait never ended on vCPUs {sorted(self.waiting_since)}")
        self.timing.end = max((vt.end for vt in self.timing.vcpus.values()), default=self.timing.start)
        return self.timing

    def _started(self, v: int) -> bool:
        """vCPU ``v`` moves to its next item at time ``t``: it takes the item's lock or queues
        for it.  True if an item with work to do has started (the caller sets it running)."""
        items = self.items[v]
        while self.next_item[v] < len(items):
            item = items[self.next_item[v]]
            lock = item.lock
            if lock is not None and self.lock_owner.get(lock) != v:
                if lock not in self.lock_owner:
                    self.lock_owner[lock] = v
                else:
                    self.lock_queue.setdefault(lock, deque()).append(v)
                    self.waiting_since[v] = self.t
                    return False
            self.timing.item_start[v].append(self.t)
            if item.cpu_s > 0 or item.bytes > 0:
                return True
            # Nothing to do: the item ends as it starts.
            self.timing.item_end[v].append(self.t)
            self.next_item[v] += 1
            if lock is not None:
                self._released(lock)
        self.timing.vcpus[v].end = self.t
        return False

    def _set_running(self, v: int) -> None:
        i = self.pos[v]
        item = self.items[v][self.next_item[v]]
        self.frac[i] = 1.0
        self.running[i] = True
        self.cpu[i] = item.cpu_s
        self.nbytes[i] = item.bytes

    def _ended(self, v: int) -> None:
        """vCPU ``v``'s current item has ended: record it, free its lock, move on."""
        item = self.items[v][self.next_item[v]]
        self.timing.item_end[v].append(self.t)
        self.next_item[v] += 1
        if item.lock is not None:
            self._released(item.lock)
        self.ready.append(v)

    def _released(self, lock: str) -> None:
        """The lock passes to the first waiter (FIFO, as Linux queued spinlocks), which stops spinning."""
        q = self.lock_queue.get(lock)
        if q:
            w = q.popleft()
            self.lock_owner[lock] = w
            self.timing.vcpus[w].spin_s += self.t - self.waiting_since.pop(w)
            self.ready.append(w)
        else:
            del self.lock_owner[lock]


def simulate_phase(items_by_vcpu: dict[int, list[WorkItem]], start: float, host: Host) -> PhaseTiming:
    """Run each vCPU's items in order, all vCPUs in parallel, from ``start``.

    Returns the phase timing; the phase ends when the last vCPU finishes its last item (a
    barrier).  See the module docstring for the bandwidth and lock rules.
    """
    return PhaseRun(items_by_vcpu, start, host).run()
