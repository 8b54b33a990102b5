"""memblock's region arrays and ``memblock_double_array()`` (mm/memblock.c).

memblock keeps its memory and reserved regions in static arrays of INIT_MEMBLOCK_REGIONS (128)
entries.  When a reservation needs one more entry than the array holds, memblock doubles it:
before the slab allocator exists it *finds* room with ``memblock_find_in_range()`` (top down,
below ``memblock.current_limit``), copies the old array there and reserves the new one.  Finding
is not allocating, so the found range never went through ``memblock_alloc_range_nid()``'s
``accept_memory()``: on a lazily accepted guest it may be unaccepted, and the copy touches it
(the SEV-SNP boot crash fixed by da8bf5daa5e5, "memblock: Accept allocated memory before use in
memblock_double_array()", Tom Lendacky, v6.15, stable 6.6+).

Regions are counted as memblock merges them: adjacent reservations are one region (the model's
:class:`~lazyaccept.guest.memblock.Memblock` keeps them as coalesced ranges).
"""

from __future__ import annotations

from ..base.units import PAGE_SIZE, align_down, align_up
from ..platform.base import Platform
from .memblock import Memblock, MemblockError
from .rules import KernelRules
from .unaccepted import UnacceptedMemory

#: include/linux/memblock.h: static entries of each region array.
INIT_MEMBLOCK_REGIONS = 128
#: sizeof(struct memblock_region) on x86-64 with NUMA: base, size (8 each), flags, nid (4 each).
MEMBLOCK_REGION_SIZE = 24


class RegionArrays:
    """The reserved-regions array of one memblock, doubled as the kernel does."""

    def __init__(self, mb: Memblock, mem: UnacceptedMemory, platform: Platform, rules: KernelRules) -> None:
        self.mb = mb
        self.mem = mem
        self.platform = platform
        self.rules = rules
        self.max_reserved = INIT_MEMBLOCK_REGIONS
        #: Where each doubled array went: (start, end) of the copy.
        self.doubled: list[tuple[int, int]] = []

    def reserve(self, start: int, end: int) -> None:
        """``memblock_reserve()``: doubles the array first when the new region does not fit."""
        probe = self.mb.reserved.copy()
        probe.add(start, end)
        if len(probe) > self.max_reserved:
            self._double()
        self.mb.reserve(start, end)

    def _double(self) -> None:
        old_size = self.max_reserved * MEMBLOCK_REGION_SIZE
        new_size = 2 * old_size
        new_alloc_size = align_up(new_size, PAGE_SIZE)
        addr = self._find_in_range(new_alloc_size)
        if self.rules.memblock_double_array_accepts:
            # da8bf5daa5e5: accept what was found before copying into it.
            self.mem.accept_memory(addr, new_alloc_size, actor="memblock_double_array")
        # memcpy() of the old array, memset() of the new half.
        self.platform.touch(addr, addr + new_size, actor="memblock_double_array", vcpu=0)
        self.doubled.append((addr, addr + new_size))
        self.max_reserved *= 2
        self.mb.reserve(addr, addr + new_alloc_size)

    def _find_in_range(self, size: int) -> int:
        """``memblock_find_in_range()``: the highest free, page-aligned range of ``size`` bytes."""
        for s, e in reversed(self.mb.free_ranges()):
            start = align_down(e - size, PAGE_SIZE)
            if start >= s:
                return start
        raise MemblockError(f"memblock: no room to double the region array ({size:#x} bytes)")
