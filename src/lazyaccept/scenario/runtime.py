"""After the shell: the record of a boot followed by workloads, on the same model.

The guest that booted keeps running: the same page allocator (its watermarks, its FIFO lists
of unaccepted chunks, ``cond_accept_memory()`` by kernel release), the same ``accept_memory()``
and the same platform and host.  Each workload thread allocates and touches memory in batches
(the user fault path: fault, order-0 or THP allocation, acceptance of 4 MiB chunks up to the
watermark target when the allocator needs it, zeroing); a policy's own threads accept beside
them.  Everything is recorded in one ``workload`` phase, each event on its thread's vCPU.

This module keeps no time.  The simulator's engine runs the phase and, whenever a vCPU is free,
asks :class:`RunThreads` what it does next; the batch is recorded then, against the allocator as
it is at that moment.  So which thread takes which chunk, and when memory runs out, follow the
one clock, and threads that run together share the host path, bandwidth and host CPUs.

Batches keep a run at chunk granularity without one event per chunk: a batch accepts the chunks
its pages need in one request (``AcceptEvent.requests`` chunks), and the stall of each first
touch that waited is that request's time per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..base.choices import BootPhase
from ..base.errors import ConfigError, SafetyViolation
from ..base.record import CPU_SECONDS, AcceptEvent, WaitEvent
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
from .stages import Stage, StageKind
from .stages import costs as stage_costs
from .workloads import Workload, WorkloadKind

#: Batches per workload at most: bounds the events of a run whatever its size.
MAX_BATCHES = 4096
#: Batches per workload of a coarse run (advise's first screen of many candidates).
COARSE_BATCHES = 128
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
    #: Stages from the shell to ready, in order (scenario/stages.py).
    stages: tuple[Stage, ...] = ()
    #: A coarse run, to screen many candidates fast: :data:`COARSE_BATCHES` batches per workload,
    #: and each batch's ``accept_memory()`` calls timed together even when several CPUs draw on
    #: one FIFO list (their spinning on each other's neighbouring chunks is then not seen).
    #: Whatever it ranks is timed again in full.
    coarse: bool = False

    @property
    def batches(self) -> int:
        return COARSE_BATCHES if self.coarse else MAX_BATCHES

    def as_dict(self) -> dict[str, object]:
        return self.vm.as_dict() | {
            "policy": str(self.policy),
            "workloads": [w.name for w in self.workloads],
            "thp": "always" if self.thp else "never",
            "host_cpus": self.host_cpus,
            "watchdog_thresh_s": self.watchdog_thresh,
            "stages": [st.name for st in self.stages],
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
    #: Per stage, the seconds into the workload phase at which its first thread first ran.
    stage_starts: dict[str, float] = field(default_factory=dict)


#: A thread's step yields when it is next ready: ``None``, as soon as its vCPU is free again;
#: a time (seconds into the workload phase), not before then.
Ready = float | None
Steps = Iterator[Ready]


@dataclass
class _Thread:
    """One thread of the run on its vCPU: ``steps`` records one batch per ``next()``, and yields
    once more after its last, so that it is finished only when its vCPU has done that batch."""

    owner: str
    vcpu: int
    steps: Steps
    ready_at: Ready = None
    #: When it last ran on its vCPU, as a turn number: the vCPU runs the runnable thread that has
    #: waited longest.
    turn: int = -1
    #: Threads that must all have finished before this one starts (a stage's, the stage before).
    after: tuple[_Thread, ...] = ()
    done: bool = False

    @property
    def blocked(self) -> bool:
        return any(not th.done for th in self.after)


class RunThreads:
    """The workloads' and the policy's threads on a booted guest, recording what they do when asked.

    There is no clock here.  The caller (the simulator's engine) says when a vCPU is free:
    :meth:`next_work` then records, at that moment, that vCPU's next batch: its thread's fault,
    allocation and acceptance against the allocator as it is then.  So the order in which
    threads take chunks off the FIFO lists and memory runs out is the order the clock says.
    """

    def __init__(self, config: RunConfig, boot: BootRecord) -> None:
        if config.vm.policy is not config.policy.accept_memory:
            raise ConfigError(f"policy {config.policy} boots with accept_memory={config.policy.accept_memory}")
        self.config = config
        self.boot = boot
        self.alloc: PageAllocator = boot.kernel.allocator
        self.rec = self.alloc.rec
        self.vcpus = config.vm.vcpus
        tick = 0 if config.vm.kconfig.no_hz_idle else config.vm.kconfig.hz
        self.phase = self.rec.begin(BootPhase.WORKLOAD, "workload", online_vcpus=self.vcpus, tick_hz=tick)
        p = config.policy
        self.alloc.accept_ahead_chunks = p.chunks if p.kind is PolicyKind.ACCEPT_AHEAD else 0
        #: Per event of the phase, whose it is (a workload's name or the policy's actor).
        self.owners: list[str] = []
        self.next_vcpu = 0
        self.turns = 0
        self.stopped = False  # kexec -e: the first kernel is gone
        self.device_memory = DeviceMemory(self.alloc.ram.last() or 0)
        self.threads: dict[int, list[_Thread]] = {}
        #: The seconds into the phase at which the vCPU now asking is free.
        self.now = 0.0
        self.stage_names = {st.name for st in config.stages}
        self.stage_starts: dict[str, float] = {}
        for w in config.workloads:
            self._start_workload(w)
        self._start_policy()
        self._start_stages()
        allocating = {v for v, ths in self.threads.items() for th in ths}
        #: FIFO lists more than one vCPU may draw chunks from (each zone's), else none.
        several = len(allocating) > 1 and not config.coarse
        self.shared_fifos = frozenset(z.fifo_name for z in self.alloc.zones) if several else frozenset()

    @property
    def busy_vcpus(self) -> tuple[int, ...]:
        """The vCPUs with a thread of the run."""
        return tuple(sorted(self.threads))

    # -- what a vCPU does next ---------------------------------------------------------------
    def next_work(self, vcpu: int, t: float) -> int | None:
        """vCPU ``vcpu`` is free ``t`` seconds into the phase: record what it does next (the batch
        of its runnable thread that has waited longest, or a wait for its next thread's time) and
        return how many events that was (0: nothing more to do; ``None``: its threads wait for
        threads elsewhere to finish)."""
        before = len(self.phase.events)
        self.now = t
        threads = self.threads.get(vcpu, [])
        while threads and not self.stopped:
            free = [th for th in threads if not th.blocked]
            if not free:
                return None
            runnable = [th for th in free if th.ready_at is None or th.ready_at <= t + 1e-12]
            if not runnable:
                th = min(free, key=lambda th: th.ready_at or 0.0)
                assert th.ready_at is not None
                self._record(th.owner, self.rec.wait_until, vcpu, th.ready_at, th.owner)
                return len(self.phase.events) - before
            th = min(runnable, key=lambda th: th.turn)
            if th.owner in self.stage_names:
                self.stage_starts.setdefault(th.owner, t)
            th.turn = self.turns
            self.turns += 1
            try:
                th.ready_at = next(th.steps)
            except StopIteration:
                th.done = True
                threads.remove(th)
            if len(self.phase.events) > before:
                return len(self.phase.events) - before
        return 0

    def finish(self, *, sanitize: bool = True) -> RunRecord:
        """The record of the run, once every vCPU has nothing more to do."""
        if sanitize:
            check_boot(self.boot)
        left = self.alloc.nr_unaccepted()
        return RunRecord(self.config, self.boot, self.owners, left * PAGE_SIZE, left == 0, dict(self.stage_starts))

    # -- threads -------------------------------------------------------------------------------
    def _add(self, owner: str, vcpu: int, steps: Steps, after: tuple[_Thread, ...] = ()) -> _Thread:
        th = _Thread(owner, vcpu, steps, after=after)
        if not after:  # a thread's first yield says when it starts; it records nothing
            try:
                th.ready_at = next(steps)
            except StopIteration:
                th.done = True
                return th
        self.threads.setdefault(vcpu, []).append(th)
        return th

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

    def _start_workload(self, w: Workload) -> None:
        if w.kind is WorkloadKind.TRACE:
            rows: dict[int, list[tuple[float, int]]] = {}
            for t, nbytes, thread in w.trace:
                rows.setdefault(thread, []).append((t, nbytes))
            for thread, v in zip(sorted(rows), self._vcpus_for(len(rows)), strict=True):
                self._add(w.name, v, self._paced(w, v, [(w.start + t, n) for t, n in sorted(rows[thread])]))
            return
        if w.kind is WorkloadKind.STEADY:
            (v,) = self._vcpus_for(1)
            if w.rate * w.duration <= 0:
                return
            window = max(1.0, w.duration / self.config.batches)
            steps = math.ceil(w.duration / window)
            batches = [(w.start + k * window, int(w.rate * min(window, w.duration - k * window))) for k in range(steps)]
            self._add(w.name, v, self._paced(w, v, batches))
            return
        if w.kind is WorkloadKind.HOTPLUG:
            self._add(w.name, 0, self._hotplug(w))
            return
        if w.kind is WorkloadKind.KEXEC:
            self._add(w.name, 0, self._kexec(w))
            return
        if w.kind is WorkloadKind.DRAIN:
            batch = max(CHUNK_SIZE, align_up(self.alloc.nr_unaccepted() * PAGE_SIZE // self.config.batches, CHUNK_SIZE))
            for v in self._vcpus_for(w.threads):
                self._add(w.name, v, self._drain(w, v, batch))
            return
        threads = w.threads or self.vcpus  # pretouch: one thread per vCPU
        batch = max(CHUNK_SIZE, align_up(max(1, w.size // self.config.batches), CHUNK_SIZE))
        for v in self._vcpus_for(threads):
            self._add(w.name, v, self._sequence(w, v, w.size // threads, batch))

    def _sequence(self, w: Workload, vcpu: int, left: int, batch: int) -> Steps:
        """A thread touching ``left`` bytes batch after batch, each as soon as the last is done."""
        yield w.start
        while left > 0:
            n = min(batch, left)
            self._touch(w.name, vcpu, n)
            left -= n
            yield None

    def _paced(self, w: Workload, vcpu: int, batches: list[tuple[float, int]]) -> Steps:
        """A thread touching each batch's bytes at its time (or when it can, if behind)."""
        for at, nbytes in batches:
            yield at
            self._touch(w.name, vcpu, nbytes)
        yield None

    def _drain(self, w: Workload, vcpu: int, batch: int) -> Steps:
        """A worker that allocates while anything is unaccepted and memory is left to take."""
        yield w.start
        while self.alloc.nr_unaccepted() and self.alloc.allocatable_pages() * PAGE_SIZE >= batch:
            self._touch(w.name, vcpu, batch)
            yield None

    def _touch(self, owner: str, vcpu: int, nbytes: int, actor: str | None = None) -> list[tuple[int, int]]:
        pages = -(-nbytes // PAGE_SIZE)
        if self.config.thp:
            pages = align_up(pages, THP_PAGES)
        got = self._record(owner, self.alloc.alloc, pages, actor=actor or f"workload:{owner}", vcpu=vcpu,
                           order=THP_ORDER if self.config.thp else 0)
        faults = pages // THP_PAGES if self.config.thp else pages
        self._record(owner, self.rec.work, "user_fault", vcpu, faults)
        self._record(owner, self.rec.work, "userspace_touch", vcpu, float(pages * PAGE_SIZE))
        return got

    def _hotplug(self, w: Workload) -> Steps:
        """The ACPI hot-add at ``w.start`` and ``online_pages()``, by a kernel worker on vCPU 0:
        struct pages initialised for the new memory, then freed to the allocator (guest/hotplug.py),
        and the watermarks recomputed (online_pages() calls init_per_zone_wmark_min())."""
        yield w.start
        self._record(w.name, self.rec.work, "struct_page_init", 0, w.size // PAGE_SIZE)
        self._record(w.name, hot_add, self.alloc, self.device_memory, w.size, self.config.vm.tee,
                     actor=f"workload:{w.name}", vcpu=0)
        self.alloc.setup_watermarks()
        if self.config.vm.kconfig.transparent_hugepage is not ThpMode.NEVER:
            self.alloc.raise_min_free_kbytes_for_thp()  # khugepaged_min_free_kbytes_update()

    def _kexec(self, w: Workload) -> Steps:
        """``kexec -l`` then ``kexec -e`` on vCPU 0 (guest/kexec.py): segments placed (and accepted
        from v6.15), shared memory converted back to private (v6.11), segments copied by
        relocate_kernel, the next kernel reading the inherited table.  The first kernel ends there:
        no thread runs after it."""
        yield w.start
        state, platform, rules = self.boot.kernel, self.alloc.platform, self.alloc.rules
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
        self.stopped = True

    # -- stages ------------------------------------------------------------------------------
    def _start_stages(self) -> None:
        """Each stage's threads start when every thread of the stage before has finished."""
        before: tuple[_Thread, ...] = ()
        tee = self.config.vm.tee
        for st in self.config.stages:
            c = stage_costs(st.kind, tee)
            if st.kind is StageKind.AGENT:
                cpu = c.cpu_s if st.seconds is None else st.seconds
                before = (self._add(st.name, 0, self._agent(st, cpu, c.memory), before),)
            elif st.kind is StageKind.ATTEST:
                host = c.host_s if st.seconds is None else st.seconds
                before = (self._add(st.name, 0, self._attest(st, c.cpu_s, host), before),)
            else:
                share = st.size // st.threads
                batch = max(CHUNK_SIZE, align_up(max(1, share // (self.config.batches // st.threads or 1)), CHUNK_SIZE))
                before = tuple(self._add(st.name, v, self._modelload(st, v, share, batch, c.copy_bps), before)
                               for v in self._vcpus_for(st.threads))

    def _agent(self, st: Stage, cpu_s: float, memory: int) -> Steps:
        """The agent's start: its CPU time, then its memory touched."""
        yield None
        self._record(st.name, self.rec.work, CPU_SECONDS, 0, cpu_s)
        yield None
        if memory:
            self._touch(st.name, 0, memory)
        yield None  # done once its vCPU comes back from the last of it

    def _attest(self, st: Stage, guest_s: float, host_s: float) -> Steps:
        """The guest's request, then idle until the host's service has answered."""
        yield None
        self._record(st.name, self.rec.work, CPU_SECONDS, 0, guest_s)
        yield None
        self._record(st.name, self.rec.wait_until, 0, self.now + host_s, st.name)
        yield None  # done once the answer is in

    def _modelload(self, st: Stage, vcpu: int, left: int, batch: int, copy_bps: float) -> Steps:
        """A loader thread: batch k's data has arrived ``(k + 1) * batch / rate`` after the stage
        began (its share of the storage rate); it copies each into fresh memory once it has."""
        yield None
        began = self.now
        per_thread = st.rate / st.threads
        k = 0
        while left > 0:
            n = min(batch, left)
            k += 1
            yield began + k * batch / per_thread
            self._touch(st.name, vcpu, n)
            # the copy out of the page cache, beyond the first touch's zeroing
            self._record(st.name, self.rec.work, CPU_SECONDS, vcpu, n / copy_bps)
            left -= n
        yield None  # done once its vCPU comes back from the last batch

    # -- policies ----------------------------------------------------------------------------
    def _start_policy(self) -> None:
        p = self.config.policy
        if p.kind not in (PolicyKind.BACKGROUND, PolicyKind.USERSPACE_DRAIN) or p.rate <= 0:
            return
        threads = p.threads if p.kind is PolicyKind.BACKGROUND else 1
        chunks_left = self.alloc.nr_unaccepted() // (CHUNK_SIZE // PAGE_SIZE)
        per_wake = max(1, math.ceil(chunks_left / self.config.batches / threads))
        # Each thread wakes at its share of the rate; one that accepts slower than that finds its
        # next wake-up already past and goes on at once: it cannot go faster than it can accept.
        period = per_wake * CHUNK_SIZE / (p.rate / threads)
        owner = "kaccept" if p.kind is PolicyKind.BACKGROUND else "userspace-drain"
        # The policy's threads run on the highest vCPUs, away from the shell on vCPU 0.
        for j in range(threads):
            v = (self.vcpus - 1 - j) % self.vcpus
            self._add(owner, v, self._policy(p, owner, v, per_wake, period))

    def _policy(self, p: Policy, owner: str, vcpu: int, per_wake: int, period: float) -> Steps:
        held: list[tuple[int, int]] = []
        k = 0
        while True:
            yield k * period
            k += 1
            if self.alloc.nr_unaccepted() == 0:
                self.alloc.release(held)  # the drain is done: give everything back
                return
            if p.kind is PolicyKind.BACKGROUND:
                left = per_wake
                for zone in reversed(self.alloc.zones):
                    if left:
                        left -= self._record(owner, self.alloc.accept_chunks, zone, left, actor=owner, vcpu=vcpu,
                                             reason="background")
                continue
            # Touch and hold per_wake chunks' worth, so the allocator must accept more; when
            # memory runs low, free what is held (it goes back accepted) and go on.
            if self.alloc.allocatable_pages() * PAGE_SIZE < 2 * per_wake * CHUNK_SIZE:
                self.alloc.release(held)
                held.clear()
            try:
                held.extend(self._touch(owner, vcpu, per_wake * CHUNK_SIZE, actor=owner))
            except BootFailure:
                self.alloc.release(held)
                return


def record_run(config: RunConfig, *, boot: BootRecord | None = None, sanitize: bool = True) -> RunRecord:
    """Boot ``config.vm`` (or continue ``boot``, a record of it) and record its run without a
    clock, for what does not depend on time (the safety rules, what is accepted in the end): every
    batch is taken to last no time, so each vCPU in turn runs its next batch, and a thread
    waiting for a time runs once every vCPU has caught up with it.  Times come only from the
    simulator (:func:`lazyaccept.sim.runtime.simulate_run`), which asks :class:`RunThreads` for
    each vCPU's next work when its clock says the vCPU is free."""
    boot = boot if boot is not None else build_record(config.vm, sanitize=sanitize)
    threads = RunThreads(config, boot)
    now = dict.fromkeys(threads.busy_vcpus, 0.0)
    served = dict.fromkeys(now, 0)
    blocked: set[int] = set()  # vCPUs whose threads wait for others, until something moves
    while now:
        free = [u for u in now if u not in blocked]
        if not free:
            raise RuntimeError(f"vCPUs {sorted(blocked)} wait for threads that never finish")
        v = min(free, key=lambda u: (now[u], served[u], u))
        served[v] += 1
        events = threads.phase.events
        before = len(events)
        n = threads.next_work(v, now[v])
        if n is None:
            blocked.add(v)
            continue
        blocked.clear()
        if n == 0:
            del now[v]
            continue
        last = events[-1]
        if len(events) == before + 1 and isinstance(last, WaitEvent):
            now[v] = last.at_s
    return threads.finish(sanitize=sanitize)
