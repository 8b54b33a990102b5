"""Early allocations (before the watermarks) done in batches give what one allocation after the
other gives: the same pages, the same record of acceptances, the same zone state."""

from __future__ import annotations

import pytest

from conftest import G4, tdx, unaccepted_memory
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import Recorder
from lazyaccept.base.units import PAGE_SIZE, MiB
from lazyaccept.guest.page_alloc import BootFailure, PageAllocator
from lazyaccept.guest.rules import kernel_rules


def _allocator(kernel: str, accepted_mib: int, total_mib: int, holes: tuple[int, ...]) -> PageAllocator:
    p = tdx()
    if accepted_mib:
        p.add_at_build(G4, G4 + accepted_mib * MiB)
    for h in holes:  # accepted islands above the unaccepted chunks' start
        p.add_at_build(G4 + h * MiB, G4 + (h + 2) * MiB)
    mem = unaccepted_memory(total_mib // 2, kernel=kernel, platform=p, set_bits=False)
    mem.table.bits[accepted_mib // 2 : total_mib // 2] = True
    for h in holes:
        mem.table.bits[h // 2] = False
    rec = Recorder()
    rec.begin("test", "kernel")
    ram = RangeSet([(G4, G4 + total_mib * MiB)])
    a = PageAllocator(ram, mem, p, kernel_rules(kernel), rec, lazy=True)
    a.free_range(G4, G4 + total_mib * MiB, actor="test")
    return a


def _state(a: PageAllocator, got: list[tuple[int, int]]) -> tuple[object, ...]:
    pages = sorted(p for s, e in got for p in range(s, e, PAGE_SIZE))
    zones = [(z.free_pages, z.nr_unaccepted, list(z.free_accepted), [tuple(r) for r in z.unaccepted])
             for z in a.zones]
    events = [(e.actor, e.start, e.end, e.requests, e.reason, e.stats.as_dict())
              for ph in a.rec.phases for e in ph.events]
    return pages, zones, events, list(a.platform.accepted())


@pytest.mark.parametrize("kernel", ["6.5", "6.8", "6.11", "6.12", "mainline"])
@pytest.mark.parametrize(("accepted_mib", "holes"), [(0, ()), (2, ()), (16, ()), (4, (40,)), (10, (30, 50))])
@pytest.mark.parametrize("allocs", [(1,), (7,), (300,), (5, 900, 3), (2000,)])
def test_batches_give_what_one_allocation_after_the_other_gives(
    monkeypatch: pytest.MonkeyPatch, kernel: str, accepted_mib: int, holes: tuple[int, ...], allocs: tuple[int, ...]
) -> None:
    def outcome(a: PageAllocator) -> tuple[object, ...]:
        got: list[tuple[int, int]] = []
        failure = None
        try:
            for n in allocs:
                got += a.alloc(n, actor="t")
        except BootFailure as exc:  # the 6.11 / 6.12.0 rules run out of accepted memory at watermark 0
            failure = str(exc)
        return failure, _state(a, got)

    one_by_one = _allocator(kernel, accepted_mib, 64, holes)
    monkeypatch.setattr(one_by_one, "_alloc_early_batch", lambda *args: 0)
    assert outcome(_allocator(kernel, accepted_mib, 64, holes)) == outcome(one_by_one)


def test_more_allocations_than_a_chunk_has_pages_still_match(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,100 allocations accepting a chunk each: past the 1,024 pages of the first chunk, a later
    # chunk's pages would be taken before all of them were accepted: done one by one there.
    def outcome(a: PageAllocator) -> tuple[object, ...]:
        return _state(a, a.alloc(1100, actor="t"))

    one_by_one = _allocator("mainline", 0, 6000, ())
    monkeypatch.setattr(one_by_one, "_alloc_early_batch", lambda *args: 0)
    batched = _allocator("mainline", 0, 6000, ())
    calls = []
    real = batched._alloc_one_early
    monkeypatch.setattr(batched, "_alloc_one_early", lambda *a: calls.append(1) or real(*a))
    assert outcome(batched) == outcome(one_by_one)
    assert 0 < len(calls) < 1100  # some in batches, the rest one by one
