"""kswapd's balance check, as far as unaccepted memory changes it (mm/vmscan.c balance_pgdat(),
pgdat_balanced(); mm/page_alloc.c __zone_watermark_unusable_free()).

kswapd, once woken, reclaims until the node is balanced: some zone passes its watermark check at
the high watermark.  Before "mm: fix endless reclaim on machines with unaccepted memory"
(807174a93d24, Aug 2024, stable 6.5+) ``__zone_watermark_unusable_free()`` counted NR_UNACCEPTED
as unusable, so a zone whose free memory was mostly unaccepted failed the check, and reclaim never
accepts memory: with little to reclaim -- early after init starts, when the only reclaimable
memory is the page cache of init and its libraries (the commit's words) -- kswapd made no progress
and went on reclaiming.  Since the fix unaccepted memory counts as free and never triggers reclaim.
The rule ``proactive_accept`` carries both halves of that commit (counted as free, accepted
proactively), so the same rule decides what this check counts.

Model: each round kswapd reclaims whatever is still reclaimable (the best case for it); a round
that frees nothing is a failed round.  The kernel's kswapd gives up after MAX_RECLAIM_RETRIES
failed runs and is woken again by the next allocation that dips below the low watermark, so "16
failed rounds in a row while unbalanced" stands for the endless loop.  Reclaimed pages are
credited to the zone they came from without changing the allocator (the check is a read-only
probe).  ``lowmem_reserve`` is left out, as in the allocator model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .page_alloc import PageAllocator, Zone

#: mm/internal.h: kswapd stops after this many balance_pgdat() runs that reclaimed nothing.
MAX_RECLAIM_RETRIES = 16


@dataclass
class ReclaimRun:
    """What kswapd did after one wake-up."""

    rounds: int
    reclaimed_pages: int
    failed_rounds: int
    balanced: bool
    #: Per zone at the end: (name, free pages the watermark check counted, high watermark,
    #: unaccepted pages).
    zones: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def looping(self) -> bool:
        """kswapd gave up unbalanced after rounds that freed nothing (the endless-reclaim loop)."""
        return not self.balanced and self.failed_rounds >= MAX_RECLAIM_RETRIES


def watermark_free_pages(zone: Zone, proactive_accept: bool) -> int:
    """Free pages ``zone_watermark_ok()`` counts: unaccepted pages were unusable before the fix."""
    return zone.free_pages if proactive_accept else zone.free_pages - zone.nr_unaccepted


def kswapd(allocator: PageAllocator, reclaimable_pages: dict[str, int]) -> ReclaimRun:
    """Run kswapd's balance loop once (woken by an allocation below the low watermark).

    ``reclaimable_pages`` maps a zone name to the pages reclaim can free there.
    """
    rules = allocator.rules
    left = dict(reclaimable_pages)
    credit = {z.fifo_name: 0 for z in allocator.zones}  # per zone of every node
    rounds = failed = reclaimed = 0

    def counted(z: Zone) -> int:
        return watermark_free_pages(z, rules.proactive_accept) + credit[z.fifo_name]

    while True:
        # pgdat_balanced(): the node is balanced when any eligible zone passes at high.
        if any(counted(z) > z.wmark_high for z in allocator.zones if z.managed_pages):
            balanced = True
            break
        if failed >= MAX_RECLAIM_RETRIES:
            balanced = False
            break
        rounds += 1
        freed = 0
        for z in allocator.zones:
            n = left.get(z.name, 0)
            credit[z.fifo_name] += n
            freed += n
            left[z.name] = 0
        reclaimed += freed
        failed = 0 if freed else failed + 1
    zones = [(z.name, counted(z), z.wmark_high, z.nr_unaccepted) for z in allocator.zones]
    return ReclaimRun(rounds, reclaimed, failed, balanced, zones)
