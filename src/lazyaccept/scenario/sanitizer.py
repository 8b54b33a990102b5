"""The sanitizer's invariants (linux-kernel.md §8).

The platform raises at once on a touch of unaccepted memory or a second acceptance.  These
checks cover the rest, against the platform's true state: what the bitmap says must be true of
every unit; the allocator's counters must agree with its lists; every page on a free list must
be accepted; no page the guest accepted was taken back by the host (TDX REMOVE, SNP RMPUPDATE)
and none was accepted again after that; a page the guest *wrote* that was accepted again has lost
its contents behind the guest's back (a silent data loss, its own violation, told apart by the
platform's record of the pages the guest wrote); and lazy and eager must end, once drained, with
the same usable memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..base.errors import SafetyViolation
from ..base.ranges import RangeSet
from ..base.units import MAX_ORDER_NR_PAGES, PAGE_SIZE
from ..platform.base import Platform
from .boot_record import BootRecord


def accepted_ram(ram: RangeSet, accepted: RangeSet) -> RangeSet:
    out = RangeSet()
    for s, e in ram:
        out.update(accepted.intersection(s, e))
    return out


def check_bitmap(rec: BootRecord) -> None:
    """A set bit means the whole unit is unaccepted; a clear bit (and anything outside the
    bitmap) means every RAM page of it is accepted."""
    table = rec.kernel.table
    ram = rec.kernel.ram
    acc = accepted_ram(ram, rec.platform.accepted())
    if table is None:
        missing = ram.total() - acc.total()
        if missing:
            gap = next(g for s, e in ram for g in acc.gaps(s, e))
            raise SafetyViolation("bitmap", "kernel", None, gap[0], "RAM not accepted and no bitmap records it")
        return
    u, base, n = table.unit_size, table.phys_base, table.bits.size
    # Per range, not per unit: the units an accepted range reaches must have their bits clear,
    # and those a piece of unaccepted RAM reaches must have them set.  Ranges come lowest first
    # and their units in order, so the first unit found wrong is the lowest one.
    i = _first_unit(table.bits, base, u, acc, want=True)
    if i is not None:
        raise SafetyViolation("bitmap", "kernel", None, base + i * u, "bit set but part of the unit is accepted")
    unaccepted = [g for s, e in ram for g in acc.gaps(s, e)]
    i = _first_unit(table.bits, base, u, unaccepted, want=False)
    if i is not None:
        raise SafetyViolation("bitmap", "kernel", None, base + i * u, "bit clear but RAM in the unit is unaccepted")
    for lo, hi in ((0, base), (base + n * u, 1 << 62)):
        for s, e in ram.intersection(lo, hi):
            gaps = acc.gaps(s, e)
            if gaps:
                raise SafetyViolation("bitmap", "kernel", None, gaps[0][0], "RAM outside the bitmap is unaccepted")


def _first_unit(bits: np.ndarray, base: int, unit: int, ranges: Iterable[tuple[int, int]], want: bool) -> int | None:
    """The lowest unit of the bitmap that one of ``ranges`` (in address order) reaches and whose
    bit is ``want``; None when there is none."""
    n = bits.size
    for s, e in ranges:
        a, b = max(0, (s - base) // unit), min(n, -(-(e - base) // unit))
        if a >= b:
            continue
        seg = bits[a:b]
        k = int(np.argmax(seg) if want else np.argmin(seg))  # the first True (False), or 0 when none
        if bool(seg[k]) is want:
            return a + k
    return None


def check_allocator(rec: BootRecord) -> None:
    """Counters match the lists; free lists hold only accepted memory."""
    acc = rec.platform.accepted()
    for z in rec.kernel.allocator.zones:
        chunks = z.chunks_on_list()
        if z.nr_unaccepted != MAX_ORDER_NR_PAGES * chunks:
            raise SafetyViolation(
                "counters", "page_alloc", None, z.start,
                f"zone {z.fifo_name}: NR_UNACCEPTED {z.nr_unaccepted} != 1024 x {chunks} chunks on the list",
            )
        if z.free_pages < z.nr_unaccepted:
            raise SafetyViolation("counters", "page_alloc", None, z.start, f"zone {z.fifo_name}: free < unaccepted")
        if z.free_pages - z.nr_unaccepted != z.free_accepted.total() // PAGE_SIZE:
            raise SafetyViolation("counters", "page_alloc", None, z.start, f"zone {z.fifo_name}: free lists disagree")
        for s, e in z.free_accepted:
            if not acc.contains(s, e):
                gap = acc.gaps(s, e)[0][0]
                raise SafetyViolation("touch-unaccepted", "page_alloc", None, gap, f"zone {z.fifo_name} free list")


def silent_data_losses(platform: Platform) -> RangeSet:
    """Pages the guest wrote that were zeroed or replaced behind its back while it went on: the
    host took them (TDX REMOVE, SNP RMPUPDATE) and the guest accepted them again, which the
    hardware allows (the TDX module zeroes a re-AUGed page on accept; PVALIDATE takes whatever
    page the host mapped)."""
    out = RangeSet()
    written = platform.written()
    for s, e in platform.reaccepted():
        out.update(written.intersection(s, e))
    return out


def check_guest_data(platform: Platform) -> None:
    """The guest's data is where it left it: no page it wrote was silently zeroed, no page it
    accepted was accepted again after the host took it, none is still missing."""
    lost_data = silent_data_losses(platform)
    if lost_data:
        raise SafetyViolation(
            "silent-data-loss", "host", None, next(iter(lost_data))[0],
            f"{lost_data.total()} bytes the guest wrote were zeroed behind its back (taken by the host, "
            "accepted again by the guest)",
        )
    again = platform.reaccepted()
    if again:
        raise SafetyViolation(
            "double-accept", "host", None, next(iter(again))[0],
            f"{again.total()} bytes accepted again after the host took them back",
        )
    lost = platform.lost()
    if lost:
        raise SafetyViolation(
            "memory-lost", "host", None, next(iter(lost))[0], f"{lost.total()} bytes the guest accepted were taken back"
        )


def check_host_took_nothing(rec: BootRecord) -> None:
    """Memory the guest accepted stays accepted and its data intact (see :func:`check_guest_data`)."""
    check_guest_data(rec.platform)


def check_boot(rec: BootRecord) -> None:
    # The host's check first: memory the host took back also breaks the bitmap's promise, and the
    # violation must name the host that did it, not the kernel.
    check_host_took_nothing(rec)
    check_bitmap(rec)
    check_allocator(rec)


def check_no_memory_lost(lazy: BootRecord, eager: BootRecord) -> None:
    """After draining the lazy guest, it has the same usable memory as the eager one."""
    lazy.kernel.allocator.drain()
    la, ea = lazy.kernel.allocator, eager.kernel.allocator
    if la.nr_unaccepted() or ea.nr_unaccepted():
        raise SafetyViolation("memory-lost", "page_alloc", None, 0, "unaccepted memory left after drain")
    if la.managed_pages() != ea.managed_pages():
        raise SafetyViolation(
            "memory-lost", "page_alloc", None, 0,
            f"managed pages differ: lazy {la.managed_pages()} vs eager {ea.managed_pages()}",
        )
    lacc = accepted_ram(lazy.kernel.ram, lazy.platform.accepted()).total()
    eacc = accepted_ram(eager.kernel.ram, eager.platform.accepted()).total()
    if lacc != eacc:
        raise SafetyViolation("memory-lost", "page_alloc", None, 0, f"accepted RAM differs: {lacc} vs {eacc}")
