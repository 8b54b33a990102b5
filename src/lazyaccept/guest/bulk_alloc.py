"""``__alloc_pages_bulk()`` (mm/page_alloc.c), as far as acceptance goes (the v6.12 series
"mm: Fix several issues with unaccepted memory").

The bulk allocator fills an array with order-0 pages taken straight from the per-CPU free lists
after one watermark check of the preferred zone for the whole request (the low watermark plus
the number of pages asked for).  When the lists run dry it returns what it has, or, with nothing,
one page from the normal allocator.  Since the endless-reclaim fix (v6.11) that watermark check
counts unaccepted memory as free, so before "mm: Accept memory in __alloc_pages_bulk()" (v6.12,
in "mm: Fix several issues with unaccepted memory") the check passed on a zone whose accepted
memory was nearly gone: the bulk allocator drained accepted memory and came back short.  v6.12
calls ``cond_accept_memory()`` before the check, and again when the check fails.

vmalloc asks in batches of at most 100 pages (``vm_area_alloc_pages()``); callers that get a
short array fall back to single pages or retry.
"""

from __future__ import annotations

from .page_alloc import PageAllocator

#: mm/vmalloc.c vm_area_alloc_pages(): bulk requests of at most this many pages.
VMALLOC_BULK_BATCH = 100


def alloc_pages_bulk(allocator: PageAllocator, nr_pages: int, *, actor: str, vcpu: int = 0) -> list[tuple[int, int]]:
    """One ``alloc_pages_bulk(GFP_KERNEL, nr_pages)`` call: the pages it returns (maybe fewer)."""
    rules = allocator.rules
    zone = allocator.zonelist(vcpu)[0]  # the preferred zone of a GFP_KERNEL request: the local node's highest
    if rules.bulk_alloc_accepts:
        allocator.cond_accept(zone, actor=actor, vcpu=vcpu)
    while True:
        mark = zone.wmark_low + nr_pages
        # Unaccepted memory counts as free in the check since v6.11, unusable before.
        free = zone.free_pages if rules.proactive_accept else zone.accepted_free_pages
        if free > mark:
            break
        if rules.bulk_alloc_accepts and allocator.cond_accept(zone, actor=actor, vcpu=vcpu):
            continue
        return allocator.alloc(1, actor=actor, vcpu=vcpu)  # failed: one page the normal way
    take = min(nr_pages, zone.accepted_free_pages)
    if take == 0:
        return allocator.alloc(1, actor=actor, vcpu=vcpu)
    # The per-CPU lists are refilled from the buddy free lists, which hold accepted memory only.
    got = allocator._take(zone, take)  # the allocator's own bookkeeping of a take
    for s, e in got:
        allocator.platform.touch(s, e, actor=actor, vcpu=vcpu)
    return got
