"""Page isolation and contiguous allocations (mm/page_isolation.c, mm/page_alloc.c): CMA, gigantic
hugetlb pages, memory offlining all isolate whole pageblocks and take a free physical range.

``alloc_contig_pages(nr_pages)`` tries, zone by zone, each ``nr_pages``-aligned range and runs
``alloc_contig_range()`` on the first that works.  That isolates every pageblock of the range
(``start_isolate_page_range()`` -> ``set_migratetype_isolate()``).  Parked unaccepted chunks are
neither allocated nor on the buddy lists:

* before v6.12 isolation takes them for non-free memory and the range fails (-EBUSY), so a
  contiguous allocation never succeeds over memory that is still unaccepted;
* since "mm: page_isolation: Handle unaccepted memory isolation" (v6.12), set_migratetype_isolate()
  calls ``accept_page()`` when the pageblock's first page is ``PageUnaccepted()`` (the head of a
  parked MAX_ORDER chunk): the chunk is taken off the zone's list, accepted and freed to the buddy
  lists, and isolation goes on.  A chunk whose head lies outside the isolated range is not
  accepted (isolate_single_pageblock() steps over it), and the range fails.

Not modelled: migrating movable pages out of the range (the model does not know which allocated
pages are movable), so only ranges with no allocated page are candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.units import CHUNK_SIZE, MAX_ORDER_NR_PAGES, PAGE_SIZE
from .page_alloc import PageAllocator, Zone

#: pageblock_nr_pages on x86-64 (pageblock_order = 9): the unit isolation works in.
PAGEBLOCK = 512 * PAGE_SIZE


@dataclass(frozen=True)
class ContigResult:
    """What one alloc_contig_pages() call did."""

    #: The range allocated, or None when every candidate failed.
    range: tuple[int, int] | None
    #: Parked chunks accepted on the way (v6.12+).
    chunks_accepted: int
    #: Candidate ranges that failed because they held unaccepted memory isolation would not take.
    refused_unaccepted: int


def _parked(zone: Zone, start: int, end: int) -> list[int]:
    """Start addresses of the zone's parked chunks that overlap ``[start, end)``."""
    out: list[int] = []
    for s, e in zone.unaccepted:
        lo, hi = max(s, start), min(e, end)
        if lo < hi:
            first = s + (lo - s) // CHUNK_SIZE * CHUNK_SIZE
            out.extend(range(first, hi, CHUNK_SIZE))
    return out


def _unpark(zone: Zone, chunk: int) -> None:
    """Take one chunk off the zone's list (``list_del(&page->lru)`` in __accept_page())."""
    for i, run in enumerate(zone.unaccepted):
        s, e = run
        if s <= chunk < e:
            del zone.unaccepted[i]
            if chunk + CHUNK_SIZE < e:
                zone.unaccepted.insert(i, [chunk + CHUNK_SIZE, e])
            if s < chunk:
                zone.unaccepted.insert(i, [s, chunk])
            zone.nr_unaccepted -= MAX_ORDER_NR_PAGES
            return
    raise ValueError(f"chunk {chunk:#x} is not parked")


def _all_free(alloc: PageAllocator, zone: Zone, start: int, end: int) -> bool:
    """Every page of the range is free: on the buddy lists or in a parked chunk."""
    free = zone.free_accepted.copy()
    for s, e in zone.unaccepted:
        free.add(s, e)
    return free.contains(start, end)


def alloc_contig_range(alloc: PageAllocator, zone: Zone, start: int, end: int, *, actor: str,
                       vcpu: int = 0) -> tuple[bool, int]:
    """Isolate ``[start, end)`` pageblock by pageblock and take it; returns (taken, chunks
    accepted).  Fails with nothing changed when isolation meets unaccepted memory it cannot take."""
    lo, hi = start // PAGEBLOCK * PAGEBLOCK, -(-end // PAGEBLOCK) * PAGEBLOCK
    chunks = _parked(zone, lo, hi)
    if chunks and not alloc.rules.isolation_accepts:
        return False, 0  # has_unmovable_pages(): unaccepted memory is not PageBuddy()
    # set_migratetype_isolate() runs on the first page of each pageblock: only a chunk whose
    # head is one of them is accepted; a chunk straddling the range's start is stepped over.
    if any(not lo <= c < hi for c in chunks):
        return False, 0
    for c in chunks:
        _unpark(zone, c)
        alloc._accept(c, CHUNK_SIZE, actor, vcpu, "isolation")  # accept_page(): the whole chunk
        zone.free_accepted.add(c, c + CHUNK_SIZE)
    zone.free_accepted.remove(start, end)
    zone.free_pages -= (end - start) // PAGE_SIZE
    alloc.platform.touch(start, end, actor=actor, vcpu=vcpu)  # the caller clears or uses it
    return True, len(chunks)


def alloc_contig_pages(alloc: PageAllocator, nr_pages: int, *, actor: str = "alloc_contig",
                       vcpu: int = 0) -> ContigResult:
    """``alloc_contig_pages()``: the first ``nr_pages``-aligned free range, zones from the highest."""
    size = nr_pages * PAGE_SIZE
    refused = 0
    for zone in reversed(alloc.zones):
        start = -(-zone.start // size) * size
        while start + size <= zone.end:
            if _all_free(alloc, zone, start, start + size):
                ok, accepted = alloc_contig_range(alloc, zone, start, start + size, actor=actor, vcpu=vcpu)
                if ok:
                    return ContigResult((start, start + size), accepted, refused)
                refused += 1
            start += size
    return ContigResult(None, 0, refused)
