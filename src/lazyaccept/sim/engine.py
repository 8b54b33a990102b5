"""A tiny simulated clock: vCPUs run work items and share the host's memory bandwidth, its
serialised fault path, and locks.

This is the whole of the time-keeping machinery.  Nothing else in the project knows how time
passes: the model records *what* was done (:mod:`lazyaccept.base.record`), a host profile turns
each record into a :class:`WorkItem` (CPU seconds, bytes moved through memory, seconds of the
host's serialised path), and :class:`PhaseRun` runs those items on the vCPUs of one boot phase.

The mechanisms, each one rule:

* **CPU time** is private to a vCPU: ``cpu_s`` seconds of it are never shared or slowed.
* **Memory bandwidth** is divided max-min fairly (water-filling): an item of ``c`` CPU seconds,
  ``b`` bytes and ``h`` host-path seconds running alone takes ``T0 = c + b / vcpu_bandwidth + h``
  and asks ``b / T0`` bytes/s; parties asking less than the fair level get what they ask, the
  others share the rest equally (``Host.memory_bandwidth`` in total, ``Host.vcpu_bandwidth`` per
  vCPU: zeroing of accepted pages).
* **The host path** is a queue: the part of the host's work for the guest that only one
  operation at a time can do (fault handling and TD entries that take the same lock in KVM or
  the TDX module, page removals under KVM's MMU lock).  Each running item cycles between its own
  work (``c + b / vcpu_bandwidth``) and its operations at the path (``h``), and each idle vCPU
  that takes the periodic tick sends one exit per tick (``Idle``); mean-value analysis of that
  closed network (:mod:`lazyaccept.sim.queueing`) gives each item its response time at the path
  ``R >= h``, waiting included, so it runs at ``1 / (c + b / vcpu_bandwidth + R)`` items per
  second.  Waiting grows from the first contender on, smoothly; the path's throughput tends to
  one second per second as the contenders grow.  vCPUs come online during a phase
  (``WorkItem.onlines``), so a long phase on the boot vCPU sees the path get busier as it goes.
  The path time the idle vCPUs were granted (their ticks, fewer than ``HZ`` each only when an
  exit takes longer than a tick period) is recorded.
* **NUMA nodes** (``Host.nodes``: each vCPU's node) split the bandwidth into one pool per node,
  ``memory_bandwidth / nodes`` each, shared max-min fairly by that node's vCPUs only: a node's
  share of the host, its memory behind its own controllers.  A vCPU's traffic counts in its own
  node's pool (the kernel allocates on the local node first); without nodes there is one pool.
* An item progresses at the rate its tightest resource allows: the path's, or the bandwidth's.
* **Locks** are named.  Items with the same ``lock`` never overlap in time, on any vCPUs.  A
  vCPU whose next item needs a lock held elsewhere *spins*: it is busy but makes no progress
  (the v6.5 accept lock is a spinlock taken with IRQs off).  Waiters get the lock in arrival
  order (Linux queued spinlocks are FIFO); simultaneous arrivals in vCPU order.
* **The accepting list** (v6.6+): an accept item made of ``requests`` ``accept_memory()`` calls
  (``WorkItem.entry``) holds, while a call runs, that call's bitmap-unit range; a call whose
  range intersects one held by another vCPU (under the release's overlap test) spins until no
  held range does, then takes its own.  Calls whose chunks come off a zone's FIFO list
  (``entry.fifo``) take the list's next chunk when they start, in the order the engine reaches
  them, so CPUs accepting at once hold neighbouring chunks, whose guard units intersect; when
  several vCPUs draw on one list, each call is a segment of its item on the clock.  A run of
  calls over ranges of its own (``fifo`` None) is checked at its first call, and holds the call
  its progress has reached.  Spinning vCPUs are busy: they count against the host CPUs, and
  their wait is part of the item's time.

The simulation is a fluid, event-driven one: between two events (an item starting or ending)
every running item progresses at a constant rate; at each event the rates are recomputed.
Identical items on many vCPUs end at the same instant and are handled as one event, so a phase
costs about (items per vCPU) events, whatever the vCPU count.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..base.errors import ConfigError
from ..base.record import AcceptingEntry
from .queueing import PathShare, share_path, share_path_one

#: A running item whose remaining fraction is at most this is complete (absorbs float rounding).
_DONE_FRACTION = 1e-9

#: What a phase whose work is decided as it runs (the workloads after the shell) asks for more:
#: called with a vCPU that has run out of items and the seconds since the phase started, it
#: returns that vCPU's next items (none: the vCPU has nothing more to do in the phase), or
#: ``None``: the vCPU's work waits for work elsewhere to finish (a stage for the one before it);
#: the vCPU idles and asks again whenever another vCPU's feed has moved on.
Feed = Callable[[int, float], "list[WorkItem] | None"]


@dataclass(frozen=True, slots=True)
class WorkItem:
    """Work one vCPU does: ``cpu_s`` seconds of CPU, moving ``bytes`` through memory, and
    ``host_s`` seconds of the host's serialised path.

    ``lock`` names a lock held for the whole item (``None``: no lock).  ``label`` says what it
    is, for reports.  ``accepted_bytes`` / ``committed_bytes`` are the guest memory this item
    accepts and the host memory it commits; they do not change its duration, but the timeline
    draws them over time.  ``onlines`` vCPUs come online (idle) when the item ends.
    """

    vcpu: int
    cpu_s: float
    bytes: float
    lock: str | None = None
    label: str = ""
    accepted_bytes: int = 0
    committed_bytes: int = 0
    host_s: float = 0.0
    onlines: int = 0
    #: Seconds after the phase start before which the item may not start (the vCPU waits idle):
    #: paces a workload that allocates at a given rate.  ``None``: start when the vCPU is free.
    not_before: float | None = None
    #: The item's ``accept_memory()`` calls on the accepting list (``None``: not on it), and how
    #: many calls it is.
    entry: AcceptingEntry | None = None
    requests: int = 1


@dataclass(frozen=True, slots=True)
class Host:
    """The memory system the vCPUs share: total bandwidth and what one vCPU can stream (B/s),
    and how many physical CPUs run the guest's vCPUs (``None``: one each)."""

    memory_bandwidth: float
    vcpu_bandwidth: float
    cpus: int | None = None
    #: The NUMA node of each vCPU (empty: one node), and how many nodes share the bandwidth.
    nodes: tuple[int, ...] = ()
    node_count: int = 1

    def with_nodes(self, nodes: tuple[int, ...]) -> Host:
        """This host with the vCPUs on ``nodes`` (the node of each vCPU; empty: one node)."""
        return Host(self.memory_bandwidth, self.vcpu_bandwidth, self.cpus, nodes, max(nodes) + 1 if nodes else 1)

    @property
    def node_bandwidth(self) -> float:
        """What each node's pool holds: an even share of the host's bandwidth."""
        return self.memory_bandwidth / self.node_count

    def __post_init__(self) -> None:
        for name in ("memory_bandwidth", "vcpu_bandwidth"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"host {name} must be a positive number of bytes/s, not {v!r}")
        if self.cpus is not None and (not isinstance(self.cpus, int) or self.cpus < 1):
            raise ConfigError(f"host CPUs must be a whole number >= 1, not {self.cpus!r}")
        if self.node_count != (max(self.nodes) + 1 if self.nodes else 1) or min(self.nodes, default=0) < 0:
            raise ConfigError(f"host nodes {self.nodes!r} do not number {self.node_count} nodes from 0")


@dataclass(frozen=True, slots=True)
class Idle:
    """The online vCPUs of a phase that have nothing to do, and what they ask of the host path.

    ``online`` vCPUs are online when the phase starts; those without items are idle from the
    start, the others once their last item ends.  Each takes ``tick_hz`` timer ticks per second
    (0: tickless), each an exit and re-entry holding the host path ``exit_s`` seconds.
    """

    online: int = 1
    tick_hz: float = 0.0
    exit_s: float = 0.0

    @property
    def host_s_per_s(self) -> float:
        """What one idle vCPU asks of the path at its full tick rate."""
        return self.tick_hz * self.exit_s

    @property
    def tick_period(self) -> float:
        return 1.0 / self.tick_hz if self.tick_hz > 0 else math.inf


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
    #: Host-path seconds granted to idle vCPUs (their ticks) during the phase.
    idle_host_s: float = 0.0
    #: Idle vCPUs at the end of the phase (online, nothing left to do).
    idle_at_end: int = 0
    #: Host-path seconds per second granted to all idle vCPUs together in the phase's last step.
    idle_host_rate_end: float = 0.0
    #: The mean number of operations at the host path in the phase's last step, and an idle
    #: vCPU's response time per tick then (its exit's service and waiting).
    path_queue_end: float = 0.0
    idle_response_end: float = 0.0
    #: (time, ticks idle vCPUs took since the phase start, idle vCPUs) at each step with idle
    #: vCPUs ticking: the exits' counter over time.
    idle_exit_series: list[tuple[float, float, int]] = field(default_factory=list)
    #: vCPU-seconds items ran slower than alone because the host path (or memory bandwidth)
    #: was their tightest resource.
    path_wait_s: float = 0.0
    bandwidth_wait_s: float = 0.0
    #: Items run as one segment per call (several vCPUs drawing chunks from one FIFO list): per
    #: vCPU and item index, each call's seconds from when the vCPU reached it (its spinning on the
    #: accepting list included) to its end.
    call_s: dict[int, dict[int, list[float]]] = field(default_factory=dict)
    #: The part of each of those calls spent spinning before it took its range.
    call_spin_s: dict[int, dict[int, list[float]]] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start


def _check_item(v: int, i: int, item: WorkItem) -> None:
    if item.vcpu != v:
        raise ConfigError(f"work item {i} of vCPU {v} ({item.label!r}) says it runs on vCPU {item.vcpu}")
    for name in ("cpu_s", "bytes", "host_s"):
        x = getattr(item, name)
        if not (isinstance(x, int | float) and math.isfinite(x) and x >= 0):
            raise ConfigError(
                f"work item {item.label!r} on vCPU {v}: {name} must be >= 0 and finite, not {x!r}"
            )


def fair_level(asks: np.ndarray, capacity: float, extra_ask: float = 0.0, extra_count: int = 0) -> float:
    """The water level of a max-min fair division of ``capacity`` among ``asks`` plus
    ``extra_count`` parties asking ``extra_ask`` each; ``inf`` when every ask fits.

    Each party gets ``min(ask, level)``."""
    total = float(asks.sum()) + extra_ask * extra_count
    if total <= capacity:
        return math.inf
    if extra_count:
        values = np.concatenate((asks, [extra_ask]))
        counts = np.concatenate((np.ones(len(asks)), [float(extra_count)]))
    else:
        values, counts = asks, np.ones(len(asks))
    order = np.argsort(values)
    v, c = values[order], counts[order]
    before = np.concatenate(([0.0], np.cumsum(v * c)[:-1]))  # what the smaller asks take in full
    left = np.concatenate(([0.0], np.cumsum(c)[:-1]))
    levels = (capacity - before) / (c.sum() - left)  # level if this group and the larger share the rest
    k = int(np.argmax(v > levels))  # the first group asking more than its level (one exists)
    return float(levels[k])


#: What :func:`_step` computes from a running set, whatever its progress: the rates, how the
#: path was shared, and which items were held back by the path rather than the bandwidth.
_Rates = tuple[np.ndarray, PathShare, np.ndarray, np.ndarray]


def _step(
    frac: np.ndarray, running: np.ndarray, cpu: np.ndarray, nbytes: np.ndarray, hpath: np.ndarray,
    host: Host, idle: int, idle_spec: Idle, spinning: int = 0, max_dt: float = math.inf,
    memo: dict[tuple[bytes, bytes, bytes, int, int, bytes], _Rates] | None = None,
    node: np.ndarray | None = None,
) -> tuple[float, list[int], PathShare, float, float]:
    """Advance the running items to the next completion.

    Returns the time step, the positions that finished, how the path was shared in the step,
    and the vCPU-seconds lost in the step to the host path and to memory bandwidth.  Updates
    ``frac`` and ``running`` in place.  ``memo`` keeps the rates of running sets already seen
    (a phase of many alike workers meets the same few sets again and again).  ``node`` is the
    NUMA node of each position (``None``: one node)."""
    run_idx = np.flatnonzero(running)
    if len(run_idx) == 1:
        return _step_one(int(run_idx[0]), frac, running, cpu, nbytes, hpath, host, idle, idle_spec, spinning, max_dt)
    c, b, h = cpu[run_idx], nbytes[run_idx], hpath[run_idx]
    n = node[run_idx] if node is not None else None
    key = (c.tobytes(), b.tobytes(), h.tobytes(), idle, spinning, n.tobytes() if n is not None else b"")
    known = memo.get(key) if memo is not None else None
    if known is None:
        known = _rates(c, b, h, host, idle, idle_spec, spinning, n)
        if memo is not None:
            if len(memo) >= _MEMO_SETS:
                memo.clear()
            memo[key] = known
    rates, share, rate_alone, path_bound = known
    f = frac[run_idx]
    dt = min(float(np.min(f / rates)), max_dt)
    # The share of the step an item spent waiting: 1 - rate / rate_alone, charged to its tightest resource.
    lost = (1.0 - rates / rate_alone) * dt
    path_wait = float(lost[path_bound].sum())
    bw_wait = float(lost[~path_bound].sum())
    left = f - rates * dt
    frac[run_idx] = left
    finished = run_idx[left <= _DONE_FRACTION]
    running[finished] = False
    return dt, finished.tolist(), share, path_wait, bw_wait


#: Running sets whose rates a phase remembers at most (bounds the memory of a long phase).
_MEMO_SETS = 4096


def _rates(c: np.ndarray, b: np.ndarray, h: np.ndarray, host: Host, idle: int, idle_spec: Idle,
           spinning: int, node: np.ndarray | None = None) -> _Rates:
    """The rate of each running item (CPU ``c``, bytes ``b``, path ``h``) with one path shared
    by the items and the phase's idle vCPUs (:func:`limited_rates`)."""
    think = c + b / host.vcpu_bandwidth
    share = share_path(think, h, idle, idle_spec.exit_s, idle_spec.tick_period)
    rates, rate_alone, path_bound = limited_rates(think, b, h, share.response, host, spinning, node)
    return rates, share, rate_alone, path_bound


def limited_rates(think: np.ndarray, b: np.ndarray, h: np.ndarray, response: np.ndarray, host: Host,
                  spinning: int, node: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each running item's rate (items per second) given its own work ``think`` (CPU and its
    bytes ``b`` at the vCPU's bandwidth), its path demand ``h`` and its response ``response`` at
    the path (however the caller's path model shares it): the least of alone, its bandwidth share
    (max-min fair in the host's pool, or in its NUMA ``node``'s) and its path rate, time-shared
    over the host CPUs.  Returns the rates, the rates alone, and which items the path (rather
    than the bandwidth) held back."""
    alone = think + h
    rate_alone = 1.0 / alone
    rate_bw = np.full(len(think), math.inf)
    rate_path = np.full(len(think), math.inf)
    streaming = b > 0
    if streaming.any() and node is not None:
        for k in np.unique(node[streaming]):
            mine = streaming & (node == k)
            asks = b[mine] / alone[mine]
            level = fair_level(asks, host.node_bandwidth)
            if level != math.inf:
                rate_bw[mine] = np.minimum(asks, level) / b[mine]
    elif streaming.any():
        asks = b[streaming] / alone[streaming]
        level = fair_level(asks, host.memory_bandwidth)
        if level != math.inf:
            rate_bw[streaming] = np.minimum(asks, level) / b[streaming]
    on_path = h > 0
    if on_path.any():
        rate_path[on_path] = 1.0 / (think[on_path] + response[on_path])
    rates = np.minimum(rate_alone, np.minimum(rate_bw, rate_path))
    if host.cpus is not None:
        # More runnable vCPUs (spinning ones included: a spin burns its host CPU) than host CPUs:
        # the host time-shares them fairly, and every vCPU runs that fraction of the time.
        active = len(think) + spinning
        if active > host.cpus:
            rates = rates * (host.cpus / active)
    return rates, rate_alone, rate_path <= rate_bw


def _step_one(
    i: int, frac: np.ndarray, running: np.ndarray, cpu: np.ndarray, nbytes: np.ndarray, hpath: np.ndarray,
    host: Host, idle: int, idle_spec: Idle, spinning: int, max_dt: float,
) -> tuple[float, list[int], PathShare, float, float]:
    """:func:`_step` with one running item, in plain floats: the same rules, without numpy's cost
    per call on arrays of one."""
    c, b, h = float(cpu[i]), float(nbytes[i]), float(hpath[i])
    think = c + b / host.vcpu_bandwidth
    alone = think + h
    rate_alone = 1.0 / alone
    rate_bw = math.inf
    pool = host.node_bandwidth  # the whole host's without nodes
    if b > 0 and b / alone > pool:
        rate_bw = pool / b
    response, r_idle, idle_rate, queue = share_path_one(think, h, idle, idle_spec.exit_s, idle_spec.tick_period)
    rate_path = 1.0 / (think + response) if h > 0 else math.inf
    rate = min(rate_alone, rate_bw, rate_path)
    if host.cpus is not None and 1 + spinning > host.cpus:
        rate *= host.cpus / (1 + spinning)
    f = float(frac[i])
    dt = min(f / rate, max_dt)
    lost = (1.0 - rate / rate_alone) * dt
    path_wait, bw_wait = (lost, 0.0) if rate_path <= rate_bw else (0.0, lost)
    left = f - rate * dt
    frac[i] = left
    done = []
    if left <= _DONE_FRACTION:
        running[i] = False
        done = [i]
    return dt, done, PathShare(np.zeros(0), r_idle, idle_rate, queue), path_wait, bw_wait


def _fifo_streams(
    items_by_vcpu: dict[int, list[WorkItem]], fifo_order: list[tuple[int, int]] | None
) -> dict[str, deque[tuple[int, int]]]:
    """The unit ranges of every call drawing on each FIFO list that more than one vCPU draws on,
    in list order (the record's order of the calls: ``fifo_order``, (vCPU, item index) pairs;
    without it, vCPU by vCPU)."""
    users: dict[str, set[int]] = {}
    for v, items in items_by_vcpu.items():
        for item in items:
            if item.entry is not None and item.entry.fifo is not None:
                users.setdefault(item.entry.fifo, set()).add(v)
    shared = {name for name, vs in users.items() if len(vs) > 1}
    if not shared:
        return {}
    order = fifo_order if fifo_order is not None else [
        (v, i) for v in sorted(items_by_vcpu) for i in range(len(items_by_vcpu[v]))
    ]
    streams: dict[str, deque[tuple[int, int]]] = {name: deque() for name in shared}
    for v, i in order:
        e = items_by_vcpu[v][i].entry
        if e is None or e.fifo not in shared:
            continue
        k = items_by_vcpu[v][i].requests
        streams[e.fifo].extend((e.first + j * e.stride, e.end + j * e.stride) for j in range(max(1, k)))
    return streams


class PhaseRun:
    """One phase on the clock: each vCPU runs its items in order, all vCPUs in parallel.

    The methods say what happens at an event: an item is :meth:`_started` (after taking its
    lock, or queueing for it, and its range on the accepting list, or spinning for it), runs at
    the rate :func:`_step` gives it, and when it ends its lock is :meth:`_released` to the next
    waiter, its range is dropped, and its vCPU moves on.
    """

    def __init__(
        self, items_by_vcpu: dict[int, list[WorkItem]], start: float, host: Host, idle: Idle | None = None,
        fifo_order: list[tuple[int, int]] | None = None, feed: Feed | None = None,
        shared_fifos: frozenset[str] = frozenset(),
    ) -> None:
        self.items = items_by_vcpu
        self.vcpus = sorted(items_by_vcpu)
        for v in self.vcpus:
            for i, item in enumerate(items_by_vcpu[v]):
                _check_item(v, i, item)
        self.host = host
        #: With a feed, every vCPU of ``items_by_vcpu`` asks it for more when its items run out, at
        #: the time the clock reaches that point: what the guest does next is decided then.
        self.feed = feed
        self.idle_spec = idle if idle is not None else Idle(online=max(1, len(self.vcpus)))
        #: Online vCPUs with nothing (left) to do: they take the tick if the phase says so.
        self.idle = max(0, self.idle_spec.online - sum(1 for v in self.vcpus if items_by_vcpu[v] or feed))
        #: vCPUs whose feed said their work waits for other work (idle meanwhile), and whether a
        #: feed has given work or ended a vCPU since they last asked.
        self.parked: list[int] = []
        self.feed_moved = False
        self.t = float(start)
        self.ticks = 0.0
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
        #: vCPUs waiting for their next item's ``not_before`` time: (wake time, vCPU).
        self.sleeping: list[tuple[float, int]] = []
        self.phase_start = float(start)
        self.memo: dict[tuple[bytes, bytes, bytes, int, int, bytes], _Rates] = {}
        # Per-vCPU state of the current item, as arrays (position = index in ``vcpus``).
        self.pos = {v: i for i, v in enumerate(self.vcpus)}
        n = len(self.vcpus)
        #: Each position's NUMA node (``None``: one node, one pool).
        self.node = np.array([host.nodes[v] if v < len(host.nodes) else 0 for v in self.vcpus],
                             dtype=np.int64) if host.nodes else None
        self.frac = np.zeros(n)  # remaining fraction of the current item (or call)
        self.running = np.zeros(n, dtype=bool)
        self.cpu = np.zeros(n)
        self.nbytes = np.zeros(n)
        self.hpath = np.zeros(n)
        # The accepting list.  A holder's call in progress is
        # ``first + min(k - 1, floor((1 - frac) * k)) * stride`` (k = 1 for a call on its own).
        self.streams = _fifo_streams(items_by_vcpu, fifo_order)
        # With a feed the lists' users are known only as the phase runs: the caller names the lists
        # several vCPUs may draw on, and each fed item's chunks join its list's stream in feed order.
        for name in shared_fifos:
            self.streams.setdefault(name, deque())
        #: A spinning vCPU's wanted calls and their stride, until it takes its range.
        self.h_stride = np.zeros(n, dtype=np.int64)
        self.h_k = np.ones(n, dtype=np.int64)
        #: Holders by vCPU: (first, width, stride, k).
        self.holders: dict[int, tuple[int, int, int, int]] = {}
        #: The same holders as (first unit, end of their last call, vCPU), sorted by first unit: a
        #: binary search finds the few that can intersect a request.
        self.sorted_held: list[tuple[int, int, int]] = []
        #: The longest span ever held (a bound on how far before a request a holder can start).
        self.longest_span = 0
        #: vCPUs spinning for a range, in arrival order, with the range they want; whether a
        #: range was dropped (or a multi-call holder moved on) since they last retried.
        self.range_waiters: deque[tuple[int, int, int]] = deque()
        self.ranges_changed = False
        #: Holders of a multi-call item timed whole: their current call moves as they progress.
        self.moving_holders = 0
        #: Per vCPU in a segmented item: calls left after the current one, and when it reached it.
        self.calls_left: dict[int, int] = {}
        self.call_reached: dict[int, float] = {}
        self.call_spun: dict[int, float] = {}
        self.item_begun: dict[int, bool] = {}

    def run(self) -> PhaseTiming:
        """Run to the end of the phase (a barrier: the last vCPU's last item)."""
        while True:
            # vCPUs already spinning retry before the others make new requests: they are in the
            # retry loop, the others have a fault to finish and a chunk to take off the list first.
            self._retry_if_changed()
            while self.ready:
                v = self.ready.popleft()
                if self._started(v):
                    self._set_running(v)
            self._retry_if_changed()
            if self.parked and self.feed_moved:
                self.feed_moved = False
                self._unpark()
            if self.ready:
                continue
            if not self.running.any():
                if not self.sleeping:
                    break
                self._wake_next()
                continue
            next_wake = self.sleeping[0][0] - self.t if self.sleeping else math.inf
            dt, done = self._advance(next_wake)
            self.t += dt
            for i in done:
                self._ended(self.vcpus[i])
            while self.sleeping and self.sleeping[0][0] <= self.t + 1e-12:
                self._wake_next()
        if self.waiting_since:  # cannot happen: an owner is always running its item
            raise RuntimeError(f"lock wait never ended on vCPUs {sorted(self.waiting_since)}")
        if self.parked:  # their work waits for work that never comes: the feed's own error
            raise RuntimeError(f"vCPUs {sorted(self.parked)} wait for work that never finished")
        self.timing.end = max((vt.end for vt in self.timing.vcpus.values()), default=self.timing.start)
        self.timing.idle_at_end = self.idle
        return self.timing

    def _advance(self, max_dt: float) -> tuple[float, list[int]]:
        """Run the running items to the next completion (or ``max_dt``): the step and the
        positions that finished; the idle vCPUs' ticks and the waits are counted."""
        dt, done, share, path_wait, bw_wait = _step(
            self.frac, self.running, self.cpu, self.nbytes, self.hpath, self.host,
            self.idle, self.idle_spec, len(self.waiting_since), max_dt, self.memo, self.node,
        )
        self._idle_ticks(share, dt)
        self.timing.path_wait_s += path_wait
        self.timing.bandwidth_wait_s += bw_wait
        return dt, done

    def _idle_ticks(self, share: PathShare, dt: float) -> None:
        """Count the ticks idle vCPUs took in a step of ``dt`` seconds, and the path's state."""
        grant = share.idle_rate * self.idle_spec.exit_s  # path s/s per idle vCPU
        self.timing.idle_host_s += grant * self.idle * dt
        self.timing.idle_host_rate_end = grant * self.idle
        self.timing.path_queue_end = share.queue
        self.timing.idle_response_end = share.idle_response
        if self.idle and share.idle_rate > 0:
            self.ticks += share.idle_rate * self.idle * dt
            self.timing.idle_exit_series.append((self.t + dt, self.ticks, self.idle))

    def _unpark(self) -> None:
        """Parked vCPUs ask their feed again (in the order they parked)."""
        self.ready.extend(self.parked)

    def _wake_next(self) -> None:
        wake, v = heapq.heappop(self.sleeping)
        self.t = max(self.t, wake)
        self.ready.append(v)

    def _started(self, v: int) -> bool:
        """vCPU ``v`` moves to its next item at time ``t``: it waits for the item's start time,
        takes the item's lock or queues for it, takes its range on the accepting list or spins
        for it.  True if an item with work to do has started (the caller sets it running)."""
        items = self.items[v]
        while self.next_item[v] < len(items) or (self.feed is not None and self._fed(v)):
            item = items[self.next_item[v]]
            if v in self.calls_left:  # the next call of a segmented item
                return self._call(v, item)
            if item.not_before is not None and self._start_of(v) + item.not_before > self.t + 1e-12:
                heapq.heappush(self.sleeping, (self._start_of(v) + item.not_before, v))
                return False
            lock = item.lock
            if lock is not None and self.lock_owner.get(lock) != v:
                if lock not in self.lock_owner:
                    self.lock_owner[lock] = v
                else:
                    self.lock_queue.setdefault(lock, deque()).append(v)
                    self.waiting_since[v] = self.t
                    return False
            if item.entry is not None:
                self.item_begun[v] = False
                segmented = item.entry.fifo in self.streams and item.requests > 1
                self.calls_left[v] = item.requests - 1 if segmented else 0
                self.call_reached[v] = self.t
                if segmented:
                    self.timing.call_s.setdefault(v, {})[self.next_item[v]] = []
                    self.timing.call_spin_s.setdefault(v, {})[self.next_item[v]] = []
                return self._call(v, item)
            self.timing.item_start[v].append(self.t)
            if item.cpu_s > 0 or item.bytes > 0 or item.host_s > 0:
                return True
            # Nothing to do: the item ends as it starts.
            self.timing.item_end[v].append(self.t)
            self.next_item[v] += 1
            self._onlined(v, item.onlines)
            if lock is not None:
                self._released(lock)
        self._out_of_work(v)
        return False

    def _start_of(self, v: int) -> float:
        """When the phase of vCPU ``v`` started (its items' ``not_before`` count from it)."""
        return self.phase_start

    def _onlined(self, v: int, n: int) -> None:
        """``n`` vCPUs came online (idle) as an item of vCPU ``v`` ended."""
        self.idle += n

    def _out_of_work(self, v: int) -> None:
        """vCPU ``v`` has no item to run now."""
        self.timing.vcpus[v].end = self.t
        if v in self.parked:
            return
        if self.items[v] or self.feed is not None:
            self.idle += 1  # its last item is done: the vCPU is idle for the rest of the phase

    def _fed(self, v: int) -> bool:
        """Ask the feed for vCPU ``v``'s next items, now; True if it gave any.  A vCPU whose work
        waits for other work is parked (idle) until the feed moves on elsewhere."""
        assert self.feed is not None
        new = self.feed(v, self.t - self.phase_start)
        if new is None:
            if v not in self.parked:
                self.parked.append(v)
                self.idle += 1
            return False
        self.feed_moved = True
        if v in self.parked:
            self.parked.remove(v)
            self.idle -= 1
        for item in new:
            self._append_fed(v, item)
        return bool(new)

    def _append_fed(self, v: int, item: WorkItem) -> None:
        """A fed item joins vCPU ``v``'s items, and its calls' chunks its FIFO list's stream."""
        items = self.items[v]
        _check_item(v, len(items), item)
        items.append(item)
        e = item.entry
        stream = self.streams.get(e.fifo) if e is not None and e.fifo is not None else None
        if stream is not None:
            assert e is not None
            stream.extend((e.first + j * e.stride, e.end + j * e.stride) for j in range(max(1, item.requests)))

    # -- the accepting list ------------------------------------------------------------------
    def _call(self, v: int, item: WorkItem) -> bool:
        """vCPU ``v`` begins an ``accept_memory()`` call of ``item``: the next chunk of its FIFO
        list (segmented), or the item's first call; it takes the range or spins for it."""
        e = item.entry
        assert e is not None
        self.call_spun[v] = 0.0
        stream = self.streams.get(e.fifo) if e.fifo is not None else None
        if stream is not None:  # one call at a time, on the list's next chunk
            first, end = stream.popleft() if stream else (e.first, e.end)
            k, stride = 1, 0
        else:
            first, end, k, stride = e.first, e.end, max(1, item.requests), e.stride
        if self._conflicts(v, first, end, e.touching):
            self.range_waiters.append((v, first, end))
            self.waiting_since[v] = self.t
            self.h_k[self.pos[v]] = k
            self.h_stride[self.pos[v]] = stride
            return False
        self._hold(v, first, end, k, stride)
        return self._begin_call(v, item)

    def _conflicts(self, v: int, first: int, end: int, touching: bool) -> bool:
        """Would a request for units ``[first, end)`` on vCPU ``v`` find an intersecting entry?
        (v6.6: ``entry->end < start`` passes; fixed: ``entry->end <= start``.)

        Holders are kept sorted by the first unit of their span (all their calls); only those
        whose span starts before ``end`` and no more than the longest span before ``first`` can
        intersect, and each of those is checked at the call its progress has reached."""
        held = self.sorted_held
        i = bisect.bisect_left(held, (end,)) - 1
        reach = first - self.longest_span
        frac, pos = self.frac, self.pos
        while i >= 0 and held[i][0] >= reach:
            w = held[i][2]
            i -= 1
            if w == v:
                continue
            h_first, width, stride, k = self.holders[w]
            cur = h_first
            if k > 1:
                cur += min(k - 1, max(0, int((1.0 - frac[pos[w]]) * k))) * stride
            cur_end = cur + width
            if (cur_end >= first if touching else cur_end > first) and cur < end:
                return True
        return False

    def _hold(self, v: int, first: int, end: int, k: int, stride: int) -> None:
        i = self.pos[v]
        self.holders[v] = (first, end - first, stride, k)
        self.moving_holders += k > 1
        span = (k - 1) * stride + (end - first)
        self.longest_span = max(self.longest_span, span)
        bisect.insort(self.sorted_held, (first, first + span, v))
        self.h_stride[i] = stride
        self.h_k[i] = k

    def _drop(self, v: int) -> None:
        held = self.holders.pop(v, None)
        if held is not None:
            self.moving_holders -= held[3] > 1
            first, width, stride, k = held
            del self.sorted_held[bisect.bisect_left(self.sorted_held, (first, first + (k - 1) * stride + width, v))]
            self.ranges_changed = True

    def _begin_call(self, v: int, item: WorkItem) -> bool:
        """The call has its range: the item starts (at its first call) and runs; True if it has
        work to do (the caller sets it running), else it ends at once."""
        if not self.item_begun[v]:
            self.item_begun[v] = True
            self.timing.item_start[v].append(self.t)
        if item.cpu_s > 0 or item.bytes > 0 or item.host_s > 0:
            return True
        self._ended(v)
        return False

    def _retry_if_changed(self) -> None:
        if self.range_waiters and (self.ranges_changed or self.moving_holders):
            self.ranges_changed = False
            self._retry_ranges()

    def _retry_ranges(self) -> None:
        """Spinning vCPUs retry in arrival order; one that finds no intersecting entry takes its
        range at once, so those after it see it."""
        waiting = self.range_waiters
        self.range_waiters = deque()
        for v, first, end in waiting:
            item = self.items[v][self.next_item[v]]
            assert item.entry is not None
            if self._conflicts(v, first, end, item.entry.touching):
                self.range_waiters.append((v, first, end))
                continue
            i = self.pos[v]
            self._hold(v, first, end, int(self.h_k[i]), int(self.h_stride[i]))
            spun = self.t - self.waiting_since.pop(v)
            self.timing.vcpus[v].spin_s += spun
            self.call_spun[v] = spun
            if self._begin_call(v, item):
                self._set_running(v)

    # -- running and ending --------------------------------------------------------------------
    def _set_running(self, v: int) -> None:
        i = self.pos[v]
        item = self.items[v][self.next_item[v]]
        segmented = item.entry is not None and item.requests > 1 and item.entry.fifo in self.streams
        calls = item.requests if segmented else 1
        self.frac[i] = 1.0
        self.running[i] = True
        self.cpu[i] = item.cpu_s / calls
        self.nbytes[i] = item.bytes / calls
        self.hpath[i] = item.host_s / calls

    def _ended(self, v: int) -> None:
        """vCPU ``v``'s current item (or call) has ended: record it, free its lock and range, move on."""
        item = self.items[v][self.next_item[v]]
        if item.entry is not None:
            self._drop(v)
            calls = self.timing.call_s.get(v, {}).get(self.next_item[v])
            if calls is not None:
                calls.append(self.t - self.call_reached[v])
                self.timing.call_spin_s[v][self.next_item[v]].append(self.call_spun.pop(v, 0.0))
                self.call_reached[v] = self.t
            left = self.calls_left.pop(v, 0)
            if left > 0:
                self.calls_left[v] = left - 1
                self.ready.append(v)
                return
            self.item_begun.pop(v, None)
        self.timing.item_end[v].append(self.t)
        self.next_item[v] += 1
        self._onlined(v, item.onlines)
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


def simulate_phase(
    items_by_vcpu: dict[int, list[WorkItem]], start: float, host: Host, idle: Idle | None = None,
    fifo_order: list[tuple[int, int]] | None = None, feed: Feed | None = None,
    shared_fifos: frozenset[str] = frozenset(),
) -> PhaseTiming:
    """Run each vCPU's items in order, all vCPUs in parallel, from ``start``.

    Returns the phase timing; the phase ends when the last vCPU finishes its last item (a
    barrier).  ``fifo_order`` gives the record's order of the items that draw chunks from a FIFO
    list, as (vCPU, item index).  With a ``feed``, each vCPU of ``items_by_vcpu`` asks it for its
    next items when it runs out (see :data:`Feed`); ``shared_fifos`` names the FIFO lists that
    more than one of them may draw on.  See the module docstring for the shared resources, the
    lock and the accepting-list rules.
    """
    return PhaseRun(items_by_vcpu, start, host, idle, fifo_order, feed, shared_fifos).run()
