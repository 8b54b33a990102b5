"""The guest models the check catalogue added: kswapd's balance check, the bulk allocator,
memblock's region arrays, dumps and the crash kernel's view of the table."""

from __future__ import annotations

from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.units import PAGE_SIZE, KiB
from lazyaccept.guest import kexec
from lazyaccept.guest.bulk_alloc import alloc_pages_bulk
from lazyaccept.guest.memblock import Memblock
from lazyaccept.guest.memblock_regions import INIT_MEMBLOCK_REGIONS, RegionArrays
from lazyaccept.guest.reclaim import MAX_RECLAIM_RETRIES, kswapd
from lazyaccept.scenario.check import detectors, triggers_boot
from lazyaccept.scenario.check.mini import BASE, UNIT, mini_guest
from lazyaccept.scenario.check.mutants import correct_rules

MAINLINE = correct_rules()
UNUSABLE = MAINLINE.with_rule(proactive_accept=False)


def _low_zone(rules):
    g = mini_guest(rules, units=32, accepted_units=8)
    g.allocator.setup_watermarks()
    z = g.allocator.zones[-1]
    return g, z


def test_kswapd_is_balanced_at_once_when_unaccepted_counts_as_free():
    g, z = _low_zone(MAINLINE)
    run = kswapd(g.allocator, {z.name: 0})
    assert run.balanced and run.rounds == 0 and not run.looping
    assert detectors.reclaim_loop(run, g.unaccepted_bytes()) is None


def test_kswapd_that_can_reclaim_enough_does_not_loop_even_before_the_fix():
    # Accepted free 3072 pages > high 384: balanced without reclaiming, whatever the rule.
    g, z = _low_zone(UNUSABLE)
    assert kswapd(g.allocator, {z.name: 0}).balanced
    # At low + 1 (321) with 100 reclaimable pages: one round reaches 421 > 384.
    g.allocator.alloc(z.accepted_free_pages - z.wmark_low - 1, actor="t")
    run = kswapd(g.allocator, {z.name: 100})
    assert run.balanced and run.rounds == 1 and run.reclaimed_pages == 100


def test_kswapd_gives_up_after_max_reclaim_retries_rounds_without_progress():
    g, z = _low_zone(UNUSABLE)
    g.allocator.alloc(z.accepted_free_pages - z.wmark_low - 1, actor="t")
    run = kswapd(g.allocator, {z.name: 16})
    assert not run.balanced and run.looping
    assert run.rounds == 1 + MAX_RECLAIM_RETRIES and run.failed_rounds == MAX_RECLAIM_RETRIES
    # Without unaccepted memory the same loop is plain memory pressure, not this bug.
    assert detectors.reclaim_loop(run, 0) is None


def test_bulk_allocation_with_acceptance_is_served_in_full():
    g, z = _low_zone(MAINLINE)
    before = z.accepted_free_pages
    got = alloc_pages_bulk(g.allocator, 100, actor="t")
    assert sum((e - s) // PAGE_SIZE for s, e in got) == 100
    assert z.accepted_free_pages == before - 100


def test_bulk_allocation_before_v6_11_falls_back_to_one_page_when_the_check_fails():
    # v6.5-v6.10 count unaccepted as unusable: at low + 1 accepted pages the bulk check fails, and
    # without acceptance in the bulk path the call returns the one page of the normal allocator.
    rules = UNUSABLE.with_rule(bulk_alloc_accepts=False)
    g, z = _low_zone(rules)
    g.allocator.alloc(z.accepted_free_pages - z.wmark_low - 1, actor="t")
    got = alloc_pages_bulk(g.allocator, 50, actor="t")
    assert sum((e - s) // PAGE_SIZE for s, e in got) == 1


def test_memblock_doubles_its_array_at_the_129th_region():
    g = mini_guest(MAINLINE, units=8, accepted_units=8)
    mb = Memblock(g.ram)
    arrays = RegionArrays(mb, g.mem, g.platform, MAINLINE)
    for i in range(INIT_MEMBLOCK_REGIONS):
        arrays.reserve(BASE + 2 * i * PAGE_SIZE, BASE + (2 * i + 1) * PAGE_SIZE)
    assert arrays.doubled == [] and len(mb.reserved) == INIT_MEMBLOCK_REGIONS
    # The page between the first two regions joins them into one: 127 regions, no doubling.
    arrays.reserve(BASE + PAGE_SIZE, BASE + 2 * PAGE_SIZE)
    assert arrays.doubled == [] and len(mb.reserved) == INIT_MEMBLOCK_REGIONS - 1
    arrays.reserve(BASE + 600 * PAGE_SIZE, BASE + 601 * PAGE_SIZE)  # 128
    assert arrays.doubled == []
    arrays.reserve(BASE + 700 * PAGE_SIZE, BASE + 701 * PAGE_SIZE)  # 129: double first
    assert arrays.doubled == [(BASE + 8 * UNIT - 8 * KiB, BASE + 8 * UNIT - 8 * KiB + 6 * KiB)]
    assert arrays.max_reserved == 2 * INIT_MEMBLOCK_REGIONS


def test_dump_skips_set_units_and_the_page_before_them():
    # pfn_is_unaccepted_memory() of the last page of unit 1 pulls in guard unit 2 (set): skipped.
    g = mini_guest(MAINLINE, units=6, accepted_units=6)
    g.mem.table.bits[2:4] = True
    read = kexec.dump_read_ranges(g.ram, g.mem, skip_unaccepted=True)
    assert read == RangeSet([(BASE, BASE + 2 * UNIT - PAGE_SIZE), (BASE + 4 * UNIT, BASE + 6 * UNIT)])
    assert kexec.dump_read_ranges(g.ram, g.mem, skip_unaccepted=False) == g.ram


def test_crash_kernel_sees_the_table_only_when_every_fix_is_in():
    rec = triggers_boot.boot(MAINLINE)
    region = kexec.crash_region(rec.kernel)
    assert region[1] <= 4 << 30 and region[1] - region[0] == 256 << 20
    assert rec.platform.accepted().contains(*region)  # memblock accepted crashkernel=
    assert kexec.crash_table_problem(rec.kernel, MAINLINE, region) is None
    table = kexec.table_range(rec.kernel)
    assert table[0] >= region[1]  # above the crash kernel's RAM: the v6.11 fixes matter
    for rule in ("e820_end_ram_covers_acpi", "kdump_keeps_acpi_pmd", "table_memblock_add"):
        assert kexec.crash_table_problem(rec.kernel, MAINLINE.with_rule(**{rule: False}), region), rule


def test_kexec_segments_land_top_down_in_free_memory_and_are_accepted():
    rec = triggers_boot.boot(MAINLINE)
    free = kexec.free_ram(rec.kernel)
    segs = kexec.kexec_load(rec.kernel, MAINLINE)
    assert [s.name for s in segs] == ["kernel", "initrd", "boot-params", "purgatory"]
    assert segs[0].end == max(e for s, e in free if e - s >= 16 << 20)
    assert all(free.contains(s.start, s.end) for s in segs)
    assert all(rec.platform.accepted().contains(s.start, s.end) for s in segs)
