"""memblock: the boot-time allocator (mm/memblock.c; linux-kernel.md §4.1).

Allocations go top-down (memblock's default) within a limit, and every successful allocation
is accepted before use (``memblock_alloc_range_nid()`` calls ``accept_memory()``).
"""

from __future__ import annotations

from ..base.errors import GuestFailure
from ..base.ranges import RangeSet
from ..base.units import PAGE_SIZE, align_down, align_up


class MemblockError(GuestFailure):
    """memblock found no free range for an allocation (the guest fails to boot)."""

    kind = "out-of-memory"
    rule = "memblock-alloc"


class Memblock:
    def __init__(self, memory: RangeSet) -> None:
        self.memory = memory.copy()
        self.reserved = RangeSet()

    def reserve(self, start: int, end: int) -> None:
        self.reserved.add(start, end)

    def free_ranges(self, lo: int = 0, hi: int = 1 << 64) -> list[tuple[int, int]]:
        """Memory not reserved, in address order."""
        out: list[tuple[int, int]] = []
        for s, e in self.memory.intersection(lo, hi):
            out.extend(self.reserved.gaps(s, e))
        return out

    def alloc(self, size: int, *, align: int = PAGE_SIZE, limit: int | None = None, lo: int = 0) -> tuple[int, int]:
        """Find and reserve ``size`` bytes, top-down below ``limit``; returns ``(start, end)``."""
        size = align_up(size, PAGE_SIZE)
        hi = limit if limit is not None else (self.memory.last() or 0)
        for s, e in reversed(self.free_ranges(lo, hi)):
            start = align_down(e - size, align)
            if start >= s:
                self.reserve(start, start + size)
                return start, start + size
        raise MemblockError(f"memblock: cannot allocate {size:#x} bytes below {hi:#x} (out of memory at boot)")
