"""After the shell: the record of a boot followed by workloads, on the same model.

The guest that booted keeps running: the same page allocator (its watermarks, its FIFO lists
of unaccepted chunks, ``cond_accept_memory()`` by kernel release), the same ``accept_memory()``
and the same platform and host.  Each workload thread allocates and touches memory in batches
(the user fault path: fault, order-0 or THP allocation, acceptance of 4 MiB chunks up to the
watermark target when the allocator needs it, zeroing); a policy's own threads accept beside
them.  Everything is recorded in one ``workload`` phase, in the order the batches would happen
(planned times merge the threads), each event on its thread's vCPU; the simulator then times
it, so threads that run together share the host path, bandwidth and host CPUs.

Batches keep a run at chunk granularity without one event per chunk: a batch accepts the chunks
its pages need in one request (``AcceptEvent.requests`` chunks), and the stall of each first
touch that waited is that request's time per chunk.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from ..base.choices import BootPhase
from ..base.errors import ConfigError, SafetyViolation
from ..base.record import AcceptEvent
from ..base.units import CHUNK_SIZE, PAGE_SIZE, align_up
from ..guest import kexec
from ..guest.hotplug import DeviceMemory, hot_add
from ..guest.kconfig import ThpMode
from ..guest.page_alloc import BootFailure, PageAllocator
from ..guest.policies import Policy, PolicyKind
from .boot_record import BootRecord
from .build import build_record
from .config import VMConfig
from .sanitizer import check_boot
from .workloads import Workload, WorkloadKind

#: Batches per workload at most: bounds the events of a run whatever its size.
MAX_BATCHES = 4096
#: Rates (bytes/s) used only to order the threads' batches in time when the caller gives none.
NOMINAL_TOUCH_RATE = 2e9
NOMINAL_ACCEPT_RATE = 0.5e9
#: Transparent huge pages for the workloads' memory: 512 base pages per fault, an order-9
#: allocation (HPAGE_PMD_ORDER on x86-64) whose watermark checks run at that order.
THP_PAGES = 512
THP_ORDER = 9


@dataclass(frozen=True)
class RunConfig:
    """A guest, what runs on it after the shell, and how the host runs its vCPUs."""

    vm: VMConfig
    workloads: tuple[Workload, ...]
    policy: Policy = field(default_factory=Policy)
    #: ``--thp always``: workloads fault 2 MiB pages.
    thp: bool = False
    #: Physical CPUs the host runs the vCPUs on (``None``: one each).
    host_cpus: int | None = None
    #: ``kernel.watchdog_thresh`` (s): the soft-lockup watchdog warns at twice it.
    watchdog_thresh: float = 10.0

    def as_dict(self) -> dict[str, object]:
        return self.vm.as_dict() | {
            "policy": str(self.policy),
            "workloads": [w.name for w in self.workloads],
            "thp": "always" if self.thp else "never",
            "host_cpus": self.host_cpus,
            "watchdog_thresh_s": self.watchdog_thresh,
        }


@dataclass
class RunRecord:
    """A boot and the workload phase after it, without time."""

    config: RunConfig
    boot: BootRecord
    #: Per event of the workload phase (in order): who it belongs to (a workload's name, or the
    #: policy's actor), and for accepts triggered by a fault, how many faults stalled on it.
    owners: list[str]
    #: Unaccepted bytes left when the workloads are done.
    unaccepted_at_end: int
    #: Whether the run drained every unaccepted chunk (then the last accept is the moment).
    drained: bool


@dataclass(frozen=True)
class Pace:
    """How fast one thread touches already-accepted memory and accepts memory (bytes/s), as the
    caller estimates them: they only order the threads' batches in the record, so that what is
    recorded as happening first also happens first once timed."""

    touch_bps: float = NOMINAL_TOUCH_RATE
    accept_bps: float = NOMINAL_ACCEPT_RATE


def build_run(config: RunConfig, *, boot: BootRecord | None = None, pace: Pace | None = None,
              sanitize: bool = True) -> RunRecord:
    """Boot ``config.vm`` (or continue ``boot``, a record of it) and record its workloads and
    policy (see the module docstring)."""
    if config.vm.policy is not config.policy.accept_memory:
        raise ConfigError(f"policy {config.policy} boots with accept_memory={config.policy.accept_memory}")
    boot = boot if boot is not None else build_record(config.vm, sanitize=sanitize)
    alloc = boot.kernel.allocator
    rec = alloc.rec
    vcpus = config.vm.vcpus
    tick = 0 if config.vm.kconfig.no_hz_idle else config.vm.kconfig.hz
    rec.begin(BootPhase.WORKLOAD, "workload", online_vcpus=vcpus, tick_hz=tick)
    phase = rec.current
    alloc.accept_ahead_chunks = config.policy.chunks if config.policy.kind is PolicyKind.ACCEPT_AHEAD else 0
    owners: list[str] = []
    planner = _Planner(config, alloc, rec, owners, phase, pace or Pace())
    planner.boot = boot
    planner.run()
    if sanitize:
        check_boot(boot)
    return RunRecord(config, boot, owners, alloc.nr_unaccepted() * PAGE_SIZE, alloc.nr_unaccepted() == 0)


class _Planner:
    """Merges every thread's batches by planned time and records them against the allocator."""

    def __init__(self, config: RunConfig, alloc: PageAllocator, rec, owners: list[str], phase,  # noqa: ANN001
                 pace: Pace) -> None:
        self.config = config
        self.pace = pace
        self.alloc = alloc
        self.rec = rec
        self.owners = owners
        self.phase = phase
        self.vcpus = config.vm.vcpus
        self.queue: list[tuple[float, int, object]] = []
        self.seq = 0
        self.next_vcpu = 0
        self.last_batch_s = 0.0
        self.device_memory = DeviceMemory(alloc.ram.last() or 0)
        #: The boot this run continues (set by build_run): kexec reads its shared ranges.
        self.boot: BootRecord | None = None

    def _push(self, t: float, task: object) -> None:
        heapq.heappush(self.queue, (t, self.seq, task))
        self.seq += 1

    def _vcpus_for(self, n: int) -> list[int]:
        out = [(self.next_vcpu + j) % self.vcpus for j in range(n)]
        self.next_vcpu = (self.next_vcpu + n) % self.vcpus
        return out

    def _record(self, owner: str, fn, *args, **kw):  # noqa: ANN001, ANN202
        """Run ``fn`` and note ``owner`` for every event it records."""
        before = len(self.phase.events)
        try:
            return fn(*args, **kw)
        finally:
            self.owners.extend([owner] * (len(self.phase.events) - before))

    def run(self) -> None:
        for w in self.config.workloads:
            self._plan_workload(w)
        self._plan_policy()
        while self.queue:
            t, _, task = heapq.heappop(self.queue)
            task(t)  # type: ignore[operator]

    # -- workloads ---------------------------------------------------------------------------
    def _plan_workload(self, w: Workload) -> None:
        if w.kind is WorkloadKind.TRACE:
            threads = sorted({row[2] for row in w.trace})
            where = dict(zip(threads, self._vcpus_for(len(threads)), strict=True))
            for t, nbytes, thread in w.trace:
                self._push(w.start + t, self._batch_task(w, where[thread], nbytes, paced=True))
            return
        if w.kind is WorkloadKind.STEADY:
            (v,) = self._vcpus_for(1)
            total = w.rate * w.duration
            if total <= 0:
                return
            window = max(1.0, w.duration / MAX_BATCHES)
            steps = math.ceil(w.duration / window)
            for k in range(steps):
                span = min(window, w.duration - k * window)
                self._push(w.start + k * window, self._batch_task(w, v, int(w.rate * span), paced=True))
            return
        if w.kind is WorkloadKind.HOTPLUG:
            self._push(w.start, self._hotplug_task(w))
            return
        if w.kind is WorkloadKind.KEXEC:
            self._push(w.start, self._kexec_task(w))
            return
        if w.kind is WorkloadKind.DRAIN:
            for v in self._vcpus_for(w.threads):
                self._push(w.start, self._drain_task(w, v))
            return
        threads = w.threads or self.vcpus  # pretouch: one thread per vCPU
        batch = max(CHUNK_SIZE, align_up(max(1, w.size // MAX_BATCHES), CHUNK_SIZE))
        for v in self._vcpus_for(threads):
            self._push(w.start, self._sequence_task(w, v, w.size // threads, batch))

    def _sequence_task(self, w: Workload, vcpu: int, left: int, batch: int):  # noqa: ANN202
        """A thread touching ``left`` bytes batch after batch, each as soon as the last is done."""

        def task(t: float) -> None:
            n = min(batch, left)
            if w.start > 0 and t == w.start:  # the first batch waits for the workload's start
                self._record(w.name, self.rec.wait_until, vcpu, w.start, w.name)
            self._touch(w.name, vcpu, n)
            if left > n:
                self._push(t + self.last_batch_s, self._sequence_task(w, vcpu, left - n, batch))

        return task

    def _batch_task(self, w: Workload, vcpu: int, nbytes: int, *, paced: bool):  # noqa: ANN202
        def task(t: float) -> None:
            if paced:
                self._record(w.name, self.rec.wait_until, vcpu, t, w.name)
            self._touch(w.name, vcpu, nbytes)

        return task

    def _touch(self, owner: str, vcpu: int, nbytes: int, actor: str | None = None) -> list[tuple[int, int]]:
        pages = -(-nbytes // PAGE_SIZE)
        if self.config.thp:
            pages = align_up(pages, THP_PAGES)
        before = self.alloc.nr_unaccepted()
        got = self._record(owner, self.alloc.alloc, pages, actor=actor or f"workload:{owner}", vcpu=vcpu,
                           order=THP_ORDER if self.config.thp else 0)
        # The batch's time, as the caller's pace estimates it: touching, plus accepting what it took.
        self.last_batch_s = (pages * PAGE_SIZE / self.pace.touch_bps
                             + (before - self.alloc.nr_unaccepted()) * PAGE_SIZE / self.pace.accept_bps)
        faults = pages // THP_PAGES if self.config.thp else pages
        self._record(owner, self.rec.work, "user_fault", vcpu, faults)
        self._record(owner, self.rec.work, "userspace_touch", vcpu, float(pages * PAGE_SIZE))
        return got

    def _hotplug_task(self, w: Workload):  # noqa: ANN202
        """The ACPI hot-add at ``w.start`` and ``online_pages()``, by a kernel worker on vCPU 0:
        struct pages initialised for the new memory, then freed to the allocator (guest/hotplug.py),
        and the watermarks recomputed (online_pages() calls init_per_zone_wmark_min())."""

        def task(t: float) -> None:
            self._record(w.name, self.rec.wait_until, 0, t, w.name)
            self._record(w.name, self.rec.work, "struct_page_init", 0, w.size // PAGE_SIZE)
            self._record(w.name, hot_add, self.alloc, self.device_memory, w.size, self.config.vm.tee,
                         actor=f"workload:{w.name}", vcpu=0)
            self.alloc.setup_watermarks()
            if self.config.vm.kconfig.transparent_hugepage is not ThpMode.NEVER:
                self.alloc.raise_min_free_kbytes_for_thp()  # khugepaged_min_free_kbytes_update()

        return task

    def _kexec_task(self, w: Workload):  # noqa: ANN202
        """``kexec -l`` then ``kexec -e`` on vCPU 0 (guest/kexec.py): segments placed (and accepted
        from v6.15), shared memory converted back to private (v6.11), segments copied by
        relocate_kernel, the next kernel reading the inherited table.  The first kernel ends there:
        the queue is emptied."""

        def task(t: float) -> None:
            assert self.boot is not None
            state, platform, rules = self.boot.kernel, self.alloc.platform, self.alloc.rules
            self._record(w.name, self.rec.wait_until, 0, t, w.name)
            segments = self._record(w.name, kexec.kexec_load, state, rules, rec=self.rec)
            shared = [(e.start, e.end) for p in self.boot.phases for e in p.events
                      if isinstance(e, AcceptEvent) and e.reason == "swiotlb"]
            self._record(w.name, kexec.kexec_unshare, platform, rules, shared, self.rec)
            # relocate_kernel copies every segment to its destination: memory traffic of its size
            copied = float(sum(s.end - s.start for s in segments))
            self._record(w.name, self.rec.work, "userspace_touch", 0, copied)
            try:
                kexec.kexec_reboot(state, platform, segments)
            except SafetyViolation as err:
                if rules.kexec_accepts_segments:
                    raise
                raise SafetyViolation(err.rule, err.actor, err.vcpu, err.address,
                                      f"{err.detail}: kexec placed the segment in free memory without accepting "
                                      "it (kexec_core accepts the destinations since v6.15)") from None
            kexec.check_next_kernel_private(rules, shared)
            self.queue.clear()

        return task

    def _drain_task(self, w: Workload, vcpu: int):  # noqa: ANN202
        batch = max(CHUNK_SIZE, align_up(self.alloc.nr_unaccepted() * PAGE_SIZE // MAX_BATCHES, CHUNK_SIZE))

        def task(t: float) -> None:
            # A worker allocates while anything is unaccepted, and while memory is left to take.
            if self.alloc.nr_unaccepted() == 0 or self.alloc.allocatable_pages() * PAGE_SIZE < batch:
                return
            if w.start > 0 and t == w.start:  # the first batch waits for the workload's start
                self._record(w.name, self.rec.wait_until, vcpu, w.start, w.name)
            self._touch(w.name, vcpu, batch)
            self._push(t + self.last_batch_s, task)

        return task

    # -- policies ----------------------------------------------------------------------------
    def _plan_policy(self) -> None:
        p = self.config.policy
        if p.kind not in (PolicyKind.BACKGROUND, PolicyKind.USERSPACE_DRAIN) or p.rate <= 0:
            return
        threads = p.threads if p.kind is PolicyKind.BACKGROUND else 1
        chunks_left = self.alloc.nr_unaccepted() // (CHUNK_SIZE // PAGE_SIZE)
        per_wake = max(1, math.ceil(chunks_left / MAX_BATCHES / threads))
        # A thread cannot go faster than it can accept, whatever rate it is asked for.
        period = per_wake * CHUNK_SIZE / min(p.rate / threads, self.pace.accept_bps)
        # The policy's threads run on the highest vCPUs, away from the shell on vCPU 0.
        for j in range(threads):
            v = (self.vcpus - 1 - j) % self.vcpus
            self._push(0.0, self._policy_task(p, v, per_wake, period))

    def _policy_task(self, p: Policy, vcpu: int, per_wake: int, period: float):  # noqa: ANN202
        owner = "kaccept" if p.kind is PolicyKind.BACKGROUND else "userspace-drain"
        held: list[tuple[int, int]] = []

        def task(t: float) -> None:
            if self.alloc.nr_unaccepted() == 0:
                self.alloc.release(held)  # the drain is done: give everything back
                held.clear()
                return
            self._record(owner, self.rec.wait_until, vcpu, t, owner)
            if p.kind is PolicyKind.BACKGROUND:
                left = per_wake
                for zone in reversed(self.alloc.zones):
                    if left:
                        left -= self._record(owner, self.alloc.accept_chunks, zone, left, actor=owner, vcpu=vcpu,
                                             reason="background")
            else:
                # Touch and hold per_wake chunks' worth, so the allocator must accept more; when
                # memory runs low, free what is held (it goes back accepted) and go on.
                if self.alloc.allocatable_pages() * PAGE_SIZE < 2 * per_wake * CHUNK_SIZE:
                    self.alloc.release(held)
                    held.clear()
                try:
                    held.extend(self._touch(owner, vcpu, per_wake * CHUNK_SIZE, actor=owner))
                except BootFailure:
                    self.alloc.release(held)
                    held.clear()
                    return
            self._push(t + period, task)

        return task
