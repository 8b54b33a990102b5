"""The page allocator's side of unaccepted memory (mm/page_alloc.c, mm/mm_init.c;
linux-kernel.md §4).

Zones hold accepted free memory as ranges (the buddy free lists) and unaccepted memory as a
FIFO of 4 MiB chunks (``zone->unaccepted_pages``), kept as runs of consecutive chunks so a
multi-TiB guest costs a handful of objects.  Counters follow the kernel: parked chunks count in
``NR_FREE_PAGES`` (MemFree), in ``NR_UNACCEPTED`` and in ``managed_pages``.

Allocation is modelled in bulk: an allocation of N pages gives the same acceptance as N order-0
allocations would (to within one chunk of overshoot), computed per "episode" between two
acceptances, never per page.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..base.errors import GuestFailure
from ..base.ranges import RangeSet, true_runs
from ..base.record import AcceptStats, Recorder
from ..base.units import CHUNK_SIZE, MAX_ORDER_NR_PAGES, PAGE_SIZE, GiB, MiB, align_down, align_up
from ..platform.base import Platform
from .numa import NumaLayout
from .rules import KernelRules
from .unaccepted import UnacceptedMemory

ZONE_BOUNDS = (("DMA", 0, 16 * MiB), ("DMA32", 16 * MiB, 4 * GiB), ("Normal", 4 * GiB, 1 << 62))
#: vm.watermark_scale_factor default (in units of 1/10000 of the zone).
WATERMARK_SCALE_FACTOR = 10
#: sysctl_lowmem_reserve_ratio defaults for DMA, DMA32, Normal (mm/page_alloc.c; "256 256 32").
LOWMEM_RESERVE_RATIO = {"DMA": 256, "DMA32": 256, "Normal": 32}
#: pageblock_nr_pages on x86-64 (pageblock_order = HPAGE_PMD_ORDER = 9).
PAGEBLOCK_NR_PAGES = 512
#: set_recommended_min_free_kbytes(): 2 free pageblocks plus MIGRATE_PCPTYPES^2 (3 x 3) per zone.
THP_PAGEBLOCKS_PER_ZONE = 2 + 3 * 3


def unusable_free(order: int) -> int:
    """``__zone_watermark_unusable_free()`` without reserves or CMA: the ``(1 << order) - 1``
    pages an order-``order`` allocation cannot count (mm/page_alloc.c)."""
    return (1 << order) - 1


class BootFailure(GuestFailure):
    """The modelled kernel cannot boot (for example a premature out-of-memory)."""

    kind = "out-of-memory"
    rule = "page-alloc"


@dataclass
class Zone:
    name: str
    start: int
    end: int
    managed_pages: int = 0
    free_pages: int = 0  # NR_FREE_PAGES, parked chunks included
    nr_unaccepted: int = 0  # NR_UNACCEPTED
    free_accepted: RangeSet = field(default_factory=RangeSet)
    unaccepted: deque[list[int]] = field(default_factory=deque)  # FIFO runs [start, end) of chunks
    wmark_min: int = 0
    wmark_low: int = 0
    wmark_high: int = 0
    wmark_promo: int = 0
    #: Pages an allocation that could use a higher zone must leave here (lowmem_reserve[Normal]).
    lowmem_reserve: int = 0
    #: The NUMA node whose zone this is (each node has its own zones and lists, ``pgdat->node_zones``).
    node: int = 0

    @property
    def fifo_name(self) -> str:
        """The name of the zone's list of unaccepted chunks: the zone's name on node 0 (the only
        node of a guest without NUMA), the node added on the others."""
        return self.name if self.node == 0 else f"{self.name}@node{self.node}"

    @property
    def accepted_free_pages(self) -> int:
        return self.free_pages - self.nr_unaccepted

    def chunks_on_list(self) -> int:
        return sum((e - s) // CHUNK_SIZE for s, e in self.unaccepted)

    def target_wmark(self, rules: KernelRules) -> int:
        return self.wmark_promo if rules.accept_target == "promo" else self.wmark_high


class PageAllocator:
    """Zones, watermarks and the unaccepted chunk lists of one guest."""

    def __init__(
        self,
        ram: RangeSet,
        mem: UnacceptedMemory,
        platform: Platform,
        rules: KernelRules,
        recorder: Recorder,
        lazy: bool = True,
        numa: NumaLayout | None = None,
    ) -> None:
        self.ram = ram
        self.mem = mem
        self.platform = platform
        self.rules = rules
        self.rec = recorder
        self.lazy = lazy
        self.numa = numa if numa is not None else NumaLayout.single(1)
        #: Every node's zones, node by node, each node's from the lowest.
        self.zones: list[Zone] = []
        for node in range(self.numa.nodes):
            node_ram = self.numa.node_ram(node, ram)
            for name, lo, hi in ZONE_BOUNDS:
                pieces = node_ram.intersection(lo, hi)
                if pieces:
                    self.zones.append(Zone(name, pieces[0][0], pieces[-1][1], node=node))
        self._zonelists: list[list[Zone]] = []
        self._zonelists_of = -1  # the zone count they were built for (hot-plug may add a zone)
        self.min_free_kbytes = 0
        self.watermarks_ready = False
        #: Grows a zone's deferred struct pages by one section (``_deferred_grow_zone()``); set by
        #: the kernel while deferred pages remain.  Returns False when there is nothing to grow.
        self.deferred_grow: Callable[[Zone], bool] | None = None
        #: Chunks every watermark-driven acceptance takes past its target (the accept-ahead policy).
        self.accept_ahead_chunks = 0

    def zonelist(self, vcpu: int) -> list[Zone]:
        """The zones an allocation on ``vcpu`` tries, in order: its node's first (``numa_node_id()``)."""
        if self._zonelists_of != len(self.zones):
            # Per node: the local node's zones from the highest down, then each other node's in
            # fallback order (node-ordered zonelists, the only order since v4.14).
            self._zonelists = [
                [z for n in self.numa.fallback(node) for z in reversed(self.zones) if z.node == n]
                for node in range(self.numa.nodes)
            ]
            self._zonelists_of = len(self.zones)
        return self._zonelists[self.numa.node_of_cpu(vcpu)]

    def node_zones(self, node: int) -> list[Zone]:
        return [z for z in self.zones if z.node == node]

    # -- accounting ------------------------------------------------------------------------
    def managed_pages(self) -> int:
        return sum(z.managed_pages for z in self.zones)

    def free_pages(self) -> int:
        return sum(z.free_pages for z in self.zones)

    def nr_unaccepted(self) -> int:
        return sum(z.nr_unaccepted for z in self.zones)

    # -- acceptance --------------------------------------------------------------------------
    def _accept(self, start: int, size: int, actor: str, vcpu: int, reason: str, requests: int = 1,
                fifo: str | None = None) -> AcceptStats:
        """``requests`` back-to-back ``accept_memory()`` calls over ``[start, start + size)``;
        ``fifo`` names the zone list their chunks came off, if they did."""
        entry = self.mem.entry(start, size, requests, fifo)
        stats = self.mem.accept_memory(start, size, actor=actor, vcpu=vcpu)
        self.rec.accept(actor, vcpu, start, start + size, stats, reason, requests, self.rules.accept_lock, entry)
        return stats

    # -- freeing memory into the allocator (memblock_free_all, deferred init) -------------------
    def free_range(self, start: int, end: int, *, actor: str, vcpu: int = 0) -> None:
        """Release ``[start, end)`` to the buddy allocator, as ``__free_pages_memory()`` does.

        Naturally aligned 4 MiB chunks go through ``__free_pages_core()`` at MAX_PAGE_ORDER and
        are parked when they contain unaccepted memory (guard unit included) and the kernel is
        lazy; smaller blocks are accepted on the spot.
        """
        for zone in self.zones:
            lo, hi = max(start, zone.start), min(end, zone.end)
            if lo < hi:
                self._free_in_zone(zone, lo, hi, actor, vcpu)

    def _free_in_zone(self, zone: Zone, start: int, end: int, actor: str, vcpu: int) -> None:
        cs, ce = align_up(start, CHUNK_SIZE), align_down(end, CHUNK_SIZE)
        if cs >= ce:
            cs = ce = end  # no whole chunk: everything is head
        # Blocks are freed in ascending order: the head, the chunks, then the tail.
        self._free_small(start, cs, actor, vcpu)
        parked = np.zeros(0, dtype=bool)
        if cs < ce:
            parked = self._chunks_with_unaccepted(cs, ce)
            if not self.lazy and parked.any():
                for a, b in true_runs(parked):
                    self._accept(cs + a * CHUNK_SIZE, (b - a) * CHUNK_SIZE, actor, vcpu, "eager", requests=b - a)
                parked[:] = False
        self._free_small(ce, end, actor, vcpu)
        npages = (end - start) // PAGE_SIZE
        zone.managed_pages += npages
        zone.free_pages += npages
        nparked = int(parked.sum())
        zone.nr_unaccepted += nparked * MAX_ORDER_NR_PAGES
        free_start = start
        for a, b in true_runs(parked):
            ra, rb = cs + a * CHUNK_SIZE, cs + b * CHUNK_SIZE
            zone.free_accepted.add(free_start, ra)
            free_start = rb
            if zone.unaccepted and zone.unaccepted[-1][1] == ra:
                zone.unaccepted[-1][1] = rb
            else:
                zone.unaccepted.append([ra, rb])
        zone.free_accepted.add(free_start, end)

    def _free_small(self, s: int, e: int, actor: str, vcpu: int) -> None:
        """Blocks smaller than a chunk cannot be parked: accepted now if they reach unaccepted
        memory (each block's own check; one request over the piece accepts the same units)."""
        if s < e and self.mem.range_contains_unaccepted(s, e - s):
            self._accept(s, e - s, actor, vcpu, "sub-chunk")

    def _chunks_with_unaccepted(self, cs: int, ce: int) -> np.ndarray:
        """For each chunk in ``[cs, ce)``: would ``range_contains_unaccepted_memory()`` say yes?

        Vectorised over the bitmap: a chunk covers two units, and its end is unit-aligned, so
        the guard unit after it counts too.
        """
        n = (ce - cs) // CHUNK_SIZE
        table = self.mem.table
        if table is None:
            return np.zeros(n, dtype=bool)
        unit = table.unit_size
        # A chunk answers like range_contains_unaccepted() on exactly its bytes.
        if unit != CHUNK_SIZE // 2 or (cs - table.phys_base) % unit:
            return np.array(
                [self.mem.range_contains_unaccepted(cs + i * CHUNK_SIZE, CHUNK_SIZE) for i in range(n)], dtype=bool
            )
        bits = table.bits
        nbits = bits.size
        first = (cs - table.phys_base) // unit  # may be negative: below phys_base
        idx = first + 2 * np.arange(n, dtype=np.int64)
        extra = 3 if self.rules.guard_unit else 2
        out = np.zeros(n, dtype=bool)
        for k in range(extra):
            j = idx + k
            ok = (j >= 0) & (j < nbits)
            out[ok] |= bits[j[ok]]
        return out

    # -- watermarks ---------------------------------------------------------------------------
    def setup_watermarks(self) -> None:
        """``init_per_zone_wmark_min()`` (a postcore initcall): min_free_kbytes from
        ``int_sqrt(lowmem_kbytes * 16)`` clamped to [128, 262144] kB, then the per-zone
        watermarks and lowmem reserves."""
        lowmem_kbytes = self.managed_pages() * (PAGE_SIZE // 1024)
        self.min_free_kbytes = max(128, min(262144, math.isqrt(lowmem_kbytes * 16)))
        self._setup_per_zone_wmarks()
        self.watermarks_ready = True

    def raise_min_free_kbytes_for_thp(self) -> None:
        """``set_recommended_min_free_kbytes()`` (mm/khugepaged.c), run by ``hugepage_init()`` (a
        subsys initcall) when THP is ``always`` or ``madvise``: 11 pageblocks per populated zone,
        at most 5% of ``nr_free_buffer_pages()``, replaces min_free_kbytes when larger."""
        nr_zones = sum(1 for z in self.zones if z.managed_pages)
        recommended = PAGEBLOCK_NR_PAGES * nr_zones * THP_PAGEBLOCKS_PER_ZONE
        free_buffer = sum(max(0, z.managed_pages - z.wmark_high) for z in self.zones)
        recommended_kb = min(recommended, free_buffer // 20) * (PAGE_SIZE // 1024)
        if recommended_kb > self.min_free_kbytes:
            self.min_free_kbytes = recommended_kb
            self._setup_per_zone_wmarks()

    def _setup_per_zone_wmarks(self) -> None:
        """``__setup_per_zone_wmarks()`` and ``setup_per_zone_lowmem_reserve()``."""
        lowmem_pages = self.managed_pages()
        pages_min = self.min_free_kbytes // (PAGE_SIZE // 1024)
        for z in self.zones:
            if lowmem_pages == 0:
                continue
            wmin = pages_min * z.managed_pages // lowmem_pages
            tmp = max(wmin >> 2, z.managed_pages * WATERMARK_SCALE_FACTOR // 10000)
            z.wmark_min = wmin
            z.wmark_low = wmin + tmp
            z.wmark_high = wmin + 2 * tmp
            z.wmark_promo = wmin + 3 * tmp
        # What a zone keeps back from allocations that could have used the zones above it: the
        # managed pages above on the same node, divided by this zone's ratio (the allocations
        # modelled here are GFP_KERNEL / movable, whose highest usable zone is Normal).
        for i, z in enumerate(self.zones):
            above = sum(u.managed_pages for u in self.zones[i + 1 :] if u.node == z.node)
            z.lowmem_reserve = above // LOWMEM_RESERVE_RATIO[z.name] if above else 0

    # -- taking chunks off the list -----------------------------------------------------------
    def accept_chunks(self, zone: Zone, n: int, *, actor: str, vcpu: int, reason: str) -> int:
        """Take up to ``n`` chunks from the head of the zone's list (FIFO), accept them and free
        them to the buddy lists (``try_to_accept_memory_one()`` n times).  Returns the count."""
        done = 0
        while done < n and zone.unaccepted:
            run = zone.unaccepted[0]
            take = min(n - done, (run[1] - run[0]) // CHUNK_SIZE)
            a = run[0]
            b = a + take * CHUNK_SIZE
            if b == run[1]:
                zone.unaccepted.popleft()
            else:
                run[0] = b
            zone.nr_unaccepted -= take * MAX_ORDER_NR_PAGES
            # Consecutive chunks accepted back to back accept their union and the last guard.
            self._accept(a, b - a, actor, vcpu, reason, requests=take, fifo=zone.fifo_name)
            zone.free_accepted.add(a, b)
            done += take
        return done

    def cond_accept(self, zone: Zone, *, actor: str, vcpu: int, extra_pages: int = 0, force: bool = True,
                    order: int = 0) -> int:
        """``cond_accept_memory()`` (v6.11+) / ``try_to_accept_memory()`` (v6.5-v6.10).

        Returns the number of chunks accepted.  ``extra_pages`` lets a bulk allocation ask for the
        chunks that its following allocations would have triggered one by one.  ``force`` is false
        for the proactive call before the watermark check (the ``accepted-reserve`` patch tells the
        two apart).  ``order``: both count ``__zone_watermark_unusable_free(zone, order, 0)``,
        ``(1 << order) - 1`` pages, as not free, so an order-9 (THP) request tops up further.
        """
        if not zone.unaccepted:
            return 0
        wmark = zone.target_wmark(self.rules) if self.watermarks_ready else 0
        if wmark == 0:
            if self.rules.zero_wmark_accepts_one:
                reserve = 2 * MAX_ORDER_NR_PAGES
                if self.rules.accepted_reserve_before_wmarks and not force and zone.accepted_free_pages >= reserve:
                    return 0
                return self.accept_chunks(zone, 1, actor=actor, vcpu=vcpu, reason="zero-watermark")
            if not self.rules.proactive_accept:
                # v6.5-v6.10 accept at least one chunk when called (do-while).
                return self.accept_chunks(zone, 1, actor=actor, vcpu=vcpu, reason="watermark")
            return 0
        to_accept = wmark + extra_pages + unusable_free(order) - zone.accepted_free_pages
        if to_accept <= 0 and self.rules.proactive_accept:
            return 0
        n = max(1, -(-to_accept // MAX_ORDER_NR_PAGES)) + self.accept_ahead_chunks
        return self.accept_chunks(zone, n, actor=actor, vcpu=vcpu, reason="watermark")

    # -- allocation ---------------------------------------------------------------------------
    def _take(self, zone: Zone, npages: int) -> list[tuple[int, int]]:
        """Remove ``npages`` of accepted free memory from the zone (lowest addresses first)."""
        want = npages * PAGE_SIZE
        out: list[tuple[int, int]] = []
        for s, e in list(zone.free_accepted):
            if want == 0:
                break
            n = min(want, e - s)
            out.append((s, s + n))
            want -= n
        for s, e in out:
            zone.free_accepted.remove(s, e)
        zone.free_pages -= npages
        return out

    def _touch(self, ranges: list[tuple[int, int]], actor: str, vcpu: int) -> None:
        for s, e in ranges:
            self.platform.touch(s, e, actor=actor, vcpu=vcpu)
            # load_unaligned_zeropad() may read the first word of the next page.
            if self.ram.contains(e, e + 1):
                self.platform.touch(e, e + 8, actor=f"{actor}:zeropad", vcpu=vcpu)

    def alloc(self, npages: int, *, actor: str, vcpu: int = 0, order: int = 0) -> list[tuple[int, int]]:
        """Allocate ``npages`` pages for a GFP_KERNEL/movable request, in ``2**order``-page
        allocations (order 9: THP faults), and touch them.

        Zones are tried from the highest (Normal) down, as the zonelist does.  With watermarks
        not yet set, every single allocation goes through the per-allocation rules; afterwards
        allocation proceeds in episodes between acceptances.
        """
        got: list[tuple[int, int]] = []
        remaining = npages
        if not self.watermarks_ready:
            while remaining > 0:
                n = self._alloc_early_batch(remaining, got, actor, vcpu)
                if n == 0:  # no batch applies: the next allocation goes through every rule
                    got.extend(self._alloc_one_early(actor, vcpu))
                    n = 1
                remaining -= n
            self._touch(got, actor, vcpu)
            return got
        for zone in self.zonelist(vcpu):
            while remaining > 0:
                n = self._episode(zone, remaining, actor, vcpu, order)
                if n == 0:
                    break
                got.extend(self._take(zone, n))
                remaining -= n
            if remaining == 0:
                break
        if remaining:
            raise BootFailure(f"out of memory: {remaining} pages of a {npages}-page allocation could not be served")
        self._touch(got, actor, vcpu)
        return got

    def _episode(self, zone: Zone, want: int, actor: str, vcpu: int, order: int = 0) -> int:
        """How many of ``want`` pages the zone serves before its next acceptance (accepting first
        what the rules make it accept).  ``__zone_watermark_ok()`` at ``order`` takes the
        ``(1 << order) - 1`` unusable pages off free memory first (the free-block-of-that-order
        test that follows is not modelled: parked chunks are accepted whole, as order-10 blocks)."""
        # ALLOC_WMARK_LOW for ordinary allocations, plus what the order makes unusable.
        mark = zone.wmark_low + zone.lowmem_reserve + unusable_free(order)
        if self.rules.proactive_accept:
            # cond_accept_memory() runs before every watermark check and tops accepted free
            # memory up to the target; for a bulk request, top up for the whole request.
            self.cond_accept(zone, actor=actor, vcpu=vcpu, extra_pages=want, force=False, order=order)
            usable = zone.free_pages  # unaccepted counts as free (v6.11+)
            # __zone_watermark_ok(): an order-0 allocation passes while free > mark + lowmem_reserve.
            if usable <= mark:
                return 0
            return min(want, zone.accepted_free_pages, usable - mark)
        # v6.5-v6.10: unaccepted memory is unusable in the watermark check; accept on failure.
        ok = zone.accepted_free_pages - mark
        if ok <= 0:
            if self.cond_accept(zone, actor=actor, vcpu=vcpu, order=order) == 0:
                return 0
            ok = zone.accepted_free_pages - mark
            if ok <= 0:
                return 0
        return min(want, ok)

    def _alloc_early_batch(self, want: int, got: list[tuple[int, int]], actor: str, vcpu: int) -> int:
        """Up to ``want`` consecutive early allocations done at once, where each would be served
        by the highest zone the same way :meth:`_alloc_one_early` serves it; the pages taken are
        added to ``got``.  Returns how many were done: 0 when the next allocation must go
        through :meth:`_alloc_one_early` (a zone to grow or to fall back from, or an order of
        pages a batch would change).

        Two kinds of batch: allocations that accept nothing take the lowest accepted free pages
        (what one allocation after the other takes); and, with the v6.11+ rules at watermark 0,
        ``n`` allocations that each accept the chunk at the head of the list and then take the
        lowest free page are ``n`` acceptances of one chunk (recorded one by one, as the
        allocations make them) and then ``n`` pages taken at once, when those pages lie below
        every chunk after the first (so no allocation could have taken a page of a chunk
        accepted after it).
        """
        if not self.zones:
            return 0
        zone = self.zonelist(vcpu)[0]
        rules = self.rules
        free = zone.accepted_free_pages
        accepts = rules.proactive_accept and rules.zero_wmark_accepts_one and bool(zone.unaccepted)
        if accepts and rules.accepted_reserve_before_wmarks:
            # The proactive accept stands aside while the reserve is accepted and free.
            n = min(want, free - 2 * MAX_ORDER_NR_PAGES + 1)
        elif not accepts:
            n = min(want, free)
        else:
            n = min(want, zone.chunks_on_list())
            if not self._early_pages_before_later_chunks(zone, n):
                return 0
            done = 0
            try:
                for _ in range(n):  # one acceptance each, recorded as the allocations make them
                    self.accept_chunks(zone, 1, actor=actor, vcpu=vcpu, reason="zero-watermark")
                    done += 1
            finally:  # an acceptance that fails leaves the pages of the allocations before it taken
                if done < n:
                    self._take(zone, done)
        if n <= 0:
            return 0
        got.extend(self._take(zone, n))
        return n

    @staticmethod
    def _early_pages_before_later_chunks(zone: Zone, n: int) -> bool:
        """Do ``n`` accepted free pages of the zone, the head chunk counted, lie below every one
        of the next ``n - 1`` chunks on its list?"""
        first = zone.unaccepted[0][0]
        limit = 1 << 64  # the lowest of chunks 2..n
        left = n - 1
        for s, e in zone.unaccepted:
            if left <= 0:
                break
            if s == first:
                s += CHUNK_SIZE
            k = min(left, (e - s) // CHUNK_SIZE)
            if k > 0:
                limit = min(limit, s)
                left -= k
        count = max(0, min(first + CHUNK_SIZE, limit) - first) // PAGE_SIZE
        for s, e in zone.free_accepted:
            if s >= limit or count >= n:
                break
            count += (min(e, limit) - s) // PAGE_SIZE
        return count >= n

    def _alloc_one_early(self, actor: str, vcpu: int) -> list[tuple[int, int]]:
        """One order-0 allocation before the zone watermarks exist (they are all 0), as
        ``get_page_from_freelist()`` does it: per zone, the proactive ``cond_accept_memory()``
        (v6.11+), the watermark check (passes while any usable page is free), ``rmqueue()``
        (needs an accepted page), and on failure a forced accept, then ``_deferred_grow_zone()``
        by one section, then the next zone down.

        With the v6.11 / v6.12.0 rules and no accepted page left, the proactive and the forced
        accept both do nothing at watermark 0, so the zone grows one section after the other on
        this CPU until its deferred memory is exhausted (each section freed parked, unaccepted).
        """
        for zone in self.zonelist(vcpu):
            while True:
                if self.rules.proactive_accept:
                    self.cond_accept(zone, actor=actor, vcpu=vcpu, force=False)
                if zone.accepted_free_pages > 0:
                    return self._take(zone, 1)
                if self.cond_accept(zone, actor=actor, vcpu=vcpu) > 0:
                    continue
                if self.deferred_grow is not None and self.deferred_grow(zone):
                    continue
                break
        raise BootFailure(
            "premature out-of-memory before zone watermarks were initialised: accepted memory ran out "
            "and the kernel's rules accept nothing while watermarks are 0"
        )

    def release(self, ranges: list[tuple[int, int]]) -> None:
        """Free pages an earlier :meth:`alloc` returned (accepted memory back on the free lists)."""
        for s, e in ranges:
            zone = next(z for z in self.zones if z.start <= s < z.end)
            zone.free_accepted.add(s, e)
            zone.free_pages += (e - s) // PAGE_SIZE

    def allocatable_pages(self) -> int:
        """Free pages an allocation may still take (accepted or not) above the zones' min watermarks."""
        return sum(max(0, z.free_pages - z.wmark_min - z.lowmem_reserve) for z in self.zones)

    def drain(self, *, actor: str = "drain", vcpu: int = 0) -> None:
        """Accept every parked chunk (what a workload touching all memory eventually causes)."""
        for zone in self.zones:
            self.accept_chunks(zone, zone.chunks_on_list(), actor=actor, vcpu=vcpu, reason="drain")
