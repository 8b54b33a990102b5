"""The kernel's unaccepted-memory core: ``accept_memory()`` and
``range_contains_unaccepted_memory()`` (drivers/firmware/efi/unaccepted_memory.c;
linux-kernel.md §3).

No acceptance is needed when: there is no table; the range lies below ``phys_base``; or it lies
at or beyond the end of the bitmap; or every unit it covers has a clear bit.  Otherwise the
request is translated to bitmap units, extended by one guard unit when it ends on a unit
boundary, clamped to the bitmap, registered on the accepting list (which serialises concurrent
requests that share a unit), and every run of set bits in it is accepted and cleared.

One lock protects the bitmap and the accepting list.  Concurrency is modelled by
:class:`AcceptTask`, a state machine that yields at every point where another vCPU could run,
so tests can explore interleavings; :meth:`UnacceptedMemory.accept_memory` runs one task to
completion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ..base.choices import AcceptRoutine
from ..base.record import AcceptingEntry, AcceptStats
from ..base.units import PAGE_SIZE, align_down, align_up
from ..formats.unaccepted import UnacceptedTable
from ..platform.base import Platform
from .rules import KernelRules


@dataclass
class UnitRange:
    """Half-open range of bitmap unit indices ``[start, end)``."""

    start: int
    end: int


def _bitmap_offsets(table: UnacceptedTable, rules: KernelRules, start: int, size: int) -> tuple[int, int] | None:
    """The request as byte offsets into the bitmap's span, as both kernel functions compute them:
    widened to pages (2026 fix), clamped to ``phys_base``, extended by the guard unit when it ends
    on a unit boundary, clamped to the bitmap.  None when nothing of it can be unaccepted."""
    unit = table.unit_size
    end = start + size
    if rules.page_align_request:
        # 2026 fix, corrected form (Tom Lendacky's review): widen to whole pages first.
        end = align_up(end, PAGE_SIZE)
        start = align_down(start, PAGE_SIZE)
    # Memory below phys_base is accepted by definition.
    if start < table.phys_base:
        start = table.phys_base
    if end < table.phys_base:
        return None
    # Translate to offsets from the beginning of the bitmap.
    start -= table.phys_base
    end -= table.phys_base
    # load_unaligned_zeropad() can read one word past the end of the range: if the range ends
    # on a unit boundary, the next unit must be accepted too.
    if rules.guard_unit and end % unit == 0:
        end += unit
    # Make sure not to overrun the bitmap.
    end = min(end, table.size * 8 * unit)
    if start >= end:
        return None
    return start, end


def request_units(table: UnacceptedTable, rules: KernelRules, start: int, size: int) -> UnitRange | None:
    """Translate an ``accept_memory(start, size)`` request to bitmap units, as the kernel does.

    Returns None when nothing in the request can be unaccepted.
    """
    offsets = _bitmap_offsets(table, rules, start, size)
    if offsets is None:
        return None
    unit = table.unit_size
    return UnitRange(offsets[0] // unit, -(-offsets[1] // unit))


def range_contains_unaccepted(table: UnacceptedTable | None, rules: KernelRules, start: int, size: int) -> bool:
    """``range_contains_unaccepted_memory()``: any set bit among the units the range reaches.

    The kernel steps by one unit from the (possibly unaligned) start offset; this reproduces
    exactly which units that loop tests.
    """
    if table is None:
        return False
    offsets = _bitmap_offsets(table, rules, start, size)
    if offsets is None:
        return False
    unit = table.unit_size
    first = offsets[0] // unit
    count = -(-(offsets[1] - offsets[0]) // unit)
    return bool(table.bits[first : first + count].any())


def _first_run(bits: np.ndarray, lo: int, hi: int) -> tuple[int, int] | None:
    """The first run of set bits in ``bits[lo:hi]`` as absolute indices, or None."""
    if lo >= hi:
        return None
    seg = bits[lo:hi]
    nz = np.flatnonzero(seg)
    if nz.size == 0:
        return None
    a = int(nz[0])
    clear_after = np.flatnonzero(~seg[a:])
    b = a + int(clear_after[0]) if clear_after.size else hi - lo
    return lo + a, lo + b


class TaskState(Enum):
    """Where an :class:`AcceptTask` stands."""

    LOCK = "lock"  # trying to take the lock
    ARCH = "arch"  # lock dropped, IRQs off, about to run the architecture accept of ``run``
    RELOCK = "relock"  # retaking the lock to clear the bits of ``run``
    DONE = "done"


@dataclass
class AcceptTask:
    """One ``accept_memory()`` call on one vCPU, as a state machine.

    :meth:`step` advances to the next point where another vCPU may run (see :class:`TaskState`)
    and returns False once the call has returned.
    """

    mem: UnacceptedMemory
    units: UnitRange | None
    actor: str
    vcpu: int
    stats: AcceptStats = field(default_factory=AcceptStats)
    state: TaskState = TaskState.LOCK
    run: tuple[int, int] | None = None
    cursor: int = 0
    spins: int = 0

    def step(self) -> bool:
        m = self.mem
        if self.state is TaskState.DONE:
            return False
        if self.units is None:
            self.state = TaskState.DONE
            return False
        if self.state in (TaskState.LOCK, TaskState.RELOCK):
            if m.lock_holder is not None and m.lock_holder != self.vcpu:
                self.spins += 1  # spinning with IRQs off
                return True
            m.lock_holder = self.vcpu
            if self.state is TaskState.LOCK:
                # Another request on an overlapping unit range: drop the lock and retry.
                if any(m.overlaps(e, self.units) for e in m.accepting if e is not self.units):
                    m.lock_holder = None
                    self.spins += 1
                    return True
                if m.use_accepting_list:
                    m.accepting.append(self.units)
                self.cursor = self.units.start
            else:
                assert self.run is not None
                m.table.bits[self.run[0] : self.run[1]] = False
                self.cursor = self.run[1]
            self.run = _first_run(m.table.bits, self.cursor, self.units.end)
            if self.run is None:
                if m.use_accepting_list:
                    m.accepting.remove(self.units)
                m.lock_holder = None
                self.state = TaskState.DONE
                return False
            if not m.rules.global_accept_lock:
                m.lock_holder = None  # the lock is dropped, IRQs stay disabled
            self.state = TaskState.ARCH
            return True
        if self.state is TaskState.ARCH:
            assert self.run is not None
            base, unit = m.table.phys_base, m.table.unit_size
            self.stats += m.arch_accept(base + self.run[0] * unit, base + self.run[1] * unit, self.actor, self.vcpu)
            self.state = TaskState.RELOCK
            return True
        raise AssertionError(f"bad state {self.state}")

    def blocked_on(self) -> Wait | None:
        """What :meth:`step` would spin on if called now, without stepping: the lock held by
        another vCPU, or (taking the lock) an accepting-list entry that overlaps this request.
        None when the step would make progress (or the task is done)."""
        m = self.mem
        if self.state is TaskState.DONE or self.units is None or self.state is TaskState.ARCH:
            return None
        if m.lock_holder is not None and m.lock_holder != self.vcpu:
            return Wait(lock_holder=m.lock_holder)
        if self.state is TaskState.LOCK:
            for e in m.accepting:
                if e is not self.units and m.overlaps(e, self.units):
                    return Wait(entry=e)
        return None


@dataclass(frozen=True)
class Wait:
    """Why an :class:`AcceptTask` spins: ``lock_holder`` (the vCPU holding the lock) or ``entry``
    (the accepting-list range its request overlaps)."""

    lock_holder: int | None = None
    entry: UnitRange | None = None


class UnacceptedMemory:
    """The kernel's view of unaccepted memory: the table, its lock and the accepting list."""

    def __init__(
        self,
        table: UnacceptedTable | None,
        platform: Platform,
        rules: KernelRules,
        routine: AcceptRoutine = AcceptRoutine.LINUX,
        use_accepting_list: bool = True,
    ) -> None:
        self.table = table
        self.platform = platform
        self.rules = rules
        self.routine = routine
        self.use_accepting_list = use_accepting_list
        self.accepting: list[UnitRange] = []
        self.lock_holder: int | None = None

    def overlaps(self, entry: UnitRange, r: UnitRange) -> bool:
        """Accepting-list overlap test, at unit granularity."""
        if self.rules.overlap_off_by_one:
            # The original test treated adjacent ranges as overlapping (fixed in v6.7).
            return not (entry.end < r.start or entry.start >= r.end)
        return not (entry.end <= r.start or entry.start >= r.end)

    def arch_accept(self, start: int, end: int, actor: str, vcpu: int) -> AcceptStats:
        return self.platform.accept(start, end, routine=self.routine, actor=actor, vcpu=vcpu)

    def task(self, start: int, size: int, actor: str, vcpu: int) -> AcceptTask:
        units = None if self.table is None else request_units(self.table, self.rules, start, size)
        return AcceptTask(self, units, actor, vcpu)

    def entry(self, start: int, size: int, requests: int = 1, fifo: str | None = None) -> AcceptingEntry | None:
        """What ``requests`` consecutive requests of ``size / requests`` bytes each, from
        ``start``, hold on the accepting list (None: the release has no list, or the request
        reaches no bitmap unit).  The requests' sizes are whole units, as the allocator's chunks
        and eagerly accepted runs of chunks are."""
        if self.table is None or not self.rules.accepting_list or requests < 1:
            return None
        each = size // requests
        units = request_units(self.table, self.rules, start, each)
        if units is None:
            return None
        return AcceptingEntry(units.start, units.end, each // self.table.unit_size, fifo,
                              self.rules.overlap_off_by_one)

    def accept_memory(self, start: int, size: int, *, actor: str, vcpu: int = 0) -> AcceptStats:
        """``accept_memory(start, size)`` run to completion on one vCPU."""
        t = self.task(start, size, actor, vcpu)
        while t.step():
            pass
        return t.stats

    def range_contains_unaccepted(self, start: int, size: int) -> bool:
        return range_contains_unaccepted(self.table, self.rules, start, size)

    def unaccepted_bytes(self) -> int:
        return 0 if self.table is None else int(self.table.bits.sum()) * self.table.unit_size
