"""Page isolation over unaccepted memory (contiguous allocations: CMA, gigantic pages, offlining).

Expected behaviour from the kernel source: "mm: page_isolation: Handle unaccepted memory isolation"
(Kirill A. Shutemov, PATCHv2 7/8 of "mm: Fix several issues with unaccepted memory", merged for
v6.12) adds to mm/page_isolation.c set_migratetype_isolate() ``if (PageUnaccepted(page))
accept_page(page);`` and to isolate_single_pageblock() a step over a PageUnaccepted() block; its
message: "Page isolation machinery doesn't know anything about unaccepted memory and considers it
non-free. It leads to alloc_contig_pages() failure."  accept_page() accepts the whole MAX_ORDER
chunk (PAGE_SIZE << MAX_PAGE_ORDER = 4 MiB) and frees it to the buddy lists.
"""

from __future__ import annotations

import pytest

from conftest import G4
from lazyaccept.base.units import MiB
from lazyaccept.guest.isolation import alloc_contig_pages, alloc_contig_range
from lazyaccept.guest.rules import kernel_rules
from test_guest_page_alloc import allocator


@pytest.mark.parametrize(("kernel", "works"), [("6.11", False), ("6.12", True), ("mainline", True)])
def test_a_contiguous_allocation_over_unaccepted_memory(kernel: str, works: bool) -> None:
    a = allocator(kernel, accepted_mib=0, total_mib=64)  # every chunk parked
    before = a.zones[-1].chunks_on_list()
    got = alloc_contig_pages(a, 8 * MiB // 4096)
    if works:
        # the first 8 MiB-aligned range, its two chunks accepted by set_migratetype_isolate()
        assert got.range == (G4, G4 + 8 * MiB) and got.chunks_accepted == 2
        assert a.zones[-1].chunks_on_list() == before - 2
        assert a.platform.is_accepted(G4, G4 + 8 * MiB)
    else:
        # each of the 8 candidate ranges holds unaccepted memory: all refused, nothing accepted
        assert got.range is None and got.refused_unaccepted == 8
        assert a.zones[-1].chunks_on_list() == before
    assert kernel_rules(kernel).isolation_accepts is works


def test_accepted_memory_needs_no_acceptance_in_any_release() -> None:
    a = allocator("6.5", accepted_mib=16, total_mib=64)
    got = alloc_contig_pages(a, 8 * MiB // 4096)
    assert got.range == (G4, G4 + 8 * MiB) and got.chunks_accepted == 0


def test_a_chunk_whose_head_is_outside_the_isolated_range_is_stepped_over() -> None:
    """isolate_single_pageblock() skips a PageUnaccepted() block; only the pageblock heads of the
    range are checked, so the second pageblock of a chunk alone cannot be isolated."""
    a = allocator("mainline", accepted_mib=0, total_mib=64)
    z = a.zones[-1]
    ok, accepted = alloc_contig_range(a, z, G4 + 2 * MiB, G4 + 4 * MiB, actor="t")
    assert (ok, accepted) == (False, 0)
    ok, accepted = alloc_contig_range(a, z, G4, G4 + 2 * MiB, actor="t")  # the head: the whole chunk
    assert (ok, accepted) == (True, 1) and z.free_accepted.contains(G4 + 2 * MiB, G4 + 4 * MiB)
