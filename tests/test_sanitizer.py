"""The sanitizer's checks (scenario/sanitizer.py), each on its own: it passes on a correct boot and
fires on the one corruption it guards against, naming the rule and the first address concerned.

Every expected address is where the test corrupted the state (a unit it flipped, a page the host
took back, a chunk it moved, a zone it miscounted), never one read from the violation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from conftest import config_for
from lazyaccept.base.choices import AcceptRoutine
from lazyaccept.base.errors import SafetyViolation
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptEvent
from lazyaccept.base.units import CHUNK_SIZE, MAX_ORDER_NR_PAGES, PAGE_SIZE, GiB, MiB
from lazyaccept.formats.unaccepted import UnacceptedTable
from lazyaccept.guest.page_alloc import Zone
from lazyaccept.platform.base import Platform
from lazyaccept.platform.tdx import TdxPlatform
from lazyaccept.scenario.boot_record import BootRecord
from lazyaccept.scenario.build import build_record
from lazyaccept.scenario.sanitizer import (
    check_allocator,
    check_bitmap,
    check_boot,
    check_host_took_nothing,
    check_no_memory_lost,
)

G4 = 4 * GiB
MEMORY = 16 * GiB  # 2 GiB below 4 GiB (accepted by firmware), 14 GiB above (left to the kernel)
PLATFORMS = ["tdx", "snp"]


def boot(platform: str, policy: str = "lazy", memory: int = MEMORY, **kw: object) -> BootRecord:
    """A sanitized boot (build_record runs check_boot): the state every test starts from is correct."""
    kw.setdefault("vcpus", 2)
    return build_record(config_for(memory, platform, policy=policy, kernel="mainline", **kw))


def table_of(rec: BootRecord) -> UnacceptedTable:
    table = rec.kernel.table
    assert table is not None
    return table


def normal_zone(rec: BootRecord) -> Zone:
    zone = rec.kernel.allocator.zones[-1]
    assert zone.name == "Normal" and zone.start == G4  # the zone above 4 GiB, where q35 puts high RAM
    return zone


def memmap_page(rec: BootRecord) -> int:
    """The first page of the memmap: memblock accepted and wrote it during early init."""
    (ev,) = [e for p in rec.phases for e in p.events if isinstance(e, AcceptEvent) and e.reason == "memmap"]
    assert ev.start % PAGE_SIZE == 0 and ev.start >= G4
    return ev.start


def host_takes_back(p: Platform, start: int, end: int) -> None:
    """A hostile host takes ``[start, end)`` back: TDH.MEM.PAGE.REMOVE on TDX, RMPUPDATE on SNP."""
    if isinstance(p, TdxPlatform):
        p.host_remove(start, end)
    else:
        p.host_rmpupdate(start, end)  # type: ignore[attr-defined]


def guest_accepts(p: Platform, start: int, end: int) -> None:
    p.accept(start, end, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)


def violation(check: Callable[..., None], *args: object) -> SafetyViolation:
    """The violation ``check(*args)`` raises (the test fails if it raises none)."""
    with pytest.raises(SafetyViolation) as e:
        check(*args)
    return e.value


# -- check_bitmap ------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_check_bitmap_passes_on_a_correct_boot(platform, policy):
    rec = boot(platform, policy)
    check_bitmap(rec)
    # Something to check: lazy leaves units unaccepted above 4 GiB, eager none.
    assert table_of(rec).bits.any() == (policy == "lazy")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_bitmap_fires_on_a_bit_set_over_accepted_memory(platform):
    rec = boot(platform)
    table = table_of(rec)
    page = memmap_page(rec)
    i = (page - table.phys_base) // table.unit_size
    assert not table.bits[i]
    table.bits[i] = True  # the unit holding the memmap's first page claims to be unaccepted
    v = violation(check_bitmap, rec)
    assert (v.rule, v.actor, v.address) == ("bitmap", "kernel", table.phys_base + i * table.unit_size)
    assert "bit set" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_bitmap_fires_on_a_bit_cleared_over_unaccepted_ram(platform):
    rec = boot(platform)
    table = table_of(rec)
    j = int(np.flatnonzero(table.bits)[-1])
    table.bits[j] = False  # the last unaccepted unit now claims to be accepted
    v = violation(check_bitmap, rec)
    assert (v.rule, v.actor, v.address) == ("bitmap", "kernel", table.phys_base + j * table.unit_size)
    assert "bit clear" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_bitmap_fires_on_unaccepted_ram_below_the_bitmap(platform):
    rec = boot(platform)
    page = 2 * MiB  # RAM the firmware accepted, far below phys_base
    assert page + PAGE_SIZE <= table_of(rec).phys_base and rec.kernel.ram.contains(page, page + PAGE_SIZE)
    host_takes_back(rec.platform, page, page + PAGE_SIZE)
    v = violation(check_bitmap, rec)
    assert (v.rule, v.address) == ("bitmap", page)
    assert "outside the bitmap" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_bitmap_fires_when_no_bitmap_records_unaccepted_ram(platform):
    rec = boot(platform)
    table = table_of(rec)
    first_unaccepted = table.phys_base + int(np.flatnonzero(table.bits)[0]) * table.unit_size
    rec.kernel.mem.table = None  # the kernel lost its table: nothing records that unit any more
    v = violation(check_bitmap, rec)
    assert (v.rule, v.address) == ("bitmap", first_unaccepted)
    assert "no bitmap" in v.detail


def test_check_bitmap_without_a_table():
    # SEV-SNP firmware without the OS opt-in accepts everything: no table, and nothing to record.
    rec = boot("snp", snp_os_opt_in=False)
    assert rec.kernel.table is None
    check_bitmap(rec)
    page = memmap_page(rec)
    host_takes_back(rec.platform, page, page + PAGE_SIZE)
    v = violation(check_bitmap, rec)
    assert (v.rule, v.address) == ("bitmap", page)


# -- check_allocator --------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_check_allocator_passes_on_a_correct_boot(platform, policy):
    rec = boot(platform, policy)
    check_allocator(rec)
    zone = normal_zone(rec)
    # Something to check: lazy keeps chunks parked on the list, eager none.
    assert (zone.chunks_on_list() > 0) == (policy == "lazy")


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("delta", [-MAX_ORDER_NR_PAGES, 1])
def test_check_allocator_fires_when_nr_unaccepted_disagrees_with_the_chunk_list(platform, delta):
    rec = boot(platform)
    zone = normal_zone(rec)
    zone.nr_unaccepted += delta
    v = violation(check_allocator, rec)
    assert (v.rule, v.actor, v.address) == ("counters", "page_alloc", G4)
    assert "NR_UNACCEPTED" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_allocator_fires_when_fewer_free_than_unaccepted_pages(platform):
    rec = boot(platform)
    zone = normal_zone(rec)
    zone.free_pages = zone.nr_unaccepted - 1
    v = violation(check_allocator, rec)
    assert (v.rule, v.address) == ("counters", G4)
    assert "free < unaccepted" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("zone_index", [0, -1])
def test_check_allocator_fires_when_free_pages_disagree_with_the_free_lists(platform, zone_index):
    rec = boot(platform)
    zone = rec.kernel.allocator.zones[zone_index]
    zone.free_pages += 1
    v = violation(check_allocator, rec)
    # DMA starts at 0, Normal at 4 GiB.
    assert (v.rule, v.address) == ("counters", {0: 0, -1: G4}[zone_index])
    assert "free lists disagree" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_allocator_fires_on_unaccepted_memory_on_a_free_list(platform):
    rec = boot(platform)
    zone = normal_zone(rec)
    table = table_of(rec)
    # Move the last parked chunk to the buddy free lists without accepting it, keeping every
    # counter consistent (a parked chunk already counts as free).
    run = zone.unaccepted[-1]
    chunk = run[1] - CHUNK_SIZE
    run[1] = chunk
    if run[0] == run[1]:
        zone.unaccepted.pop()
    zone.nr_unaccepted -= MAX_ORDER_NR_PAGES
    zone.free_accepted.add(chunk, chunk + CHUNK_SIZE)
    # Its first unaccepted address: the first of its units with a set bit.
    base, unit = table.phys_base, table.unit_size
    units = range((chunk - base) // unit, (chunk + CHUNK_SIZE - base) // unit)
    first = next(base + u * unit for u in units if table.bits[u])
    v = violation(check_allocator, rec)
    assert (v.rule, v.actor, v.address) == ("touch-unaccepted", "page_alloc", first)
    assert first >= chunk and "free list" in v.detail


# -- check_host_took_nothing --------------------------------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_host_took_nothing_passes_on_a_correct_boot(platform):
    rec = boot(platform)
    check_host_took_nothing(rec)
    # The host acting on memory the guest never accepted takes nothing from it.
    table = table_of(rec)
    j = int(np.flatnonzero(table.bits)[-1])
    unit = table.phys_base + j * table.unit_size
    host_takes_back(rec.platform, unit, unit + table.unit_size)
    check_host_took_nothing(rec)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_host_took_nothing_fires_on_an_accepted_page_taken_back(platform):
    rec = boot(platform)
    page = memmap_page(rec)
    host_takes_back(rec.platform, page, page + PAGE_SIZE)
    v = violation(check_host_took_nothing, rec)
    assert (v.rule, v.actor, v.address) == ("memory-lost", "host", page)
    assert v.detail.startswith(f"{PAGE_SIZE} bytes")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_host_took_nothing_fires_on_a_page_accepted_again(platform):
    rec = boot(platform)
    page = memmap_page(rec)
    host_takes_back(rec.platform, page, page + PAGE_SIZE)
    guest_accepts(rec.platform, page, page + PAGE_SIZE)  # the hardware allows it; the data is gone
    v = violation(check_host_took_nothing, rec)
    assert (v.rule, v.actor, v.address) == ("silent-data-loss", "host", page)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_host_took_nothing_reports_silent_data_loss_before_memory_lost(platform):
    rec = boot(platform)
    lost, again = memmap_page(rec), memmap_page(rec) + 16 * PAGE_SIZE
    host_takes_back(rec.platform, lost, lost + PAGE_SIZE)
    host_takes_back(rec.platform, again, again + PAGE_SIZE)
    guest_accepts(rec.platform, again, again + PAGE_SIZE)
    v = violation(check_host_took_nothing, rec)
    assert (v.rule, v.address) == ("silent-data-loss", again)


# -- check_boot -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_check_boot_passes_on_a_correct_boot(platform, policy):
    rec = build_record(config_for(MEMORY, platform, policy=policy, kernel="mainline", vcpus=2), sanitize=False)
    check_boot(rec)
    assert rec.platform.lost() == rec.platform.reaccepted() == RangeSet()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_boot_runs_the_bitmap_check(platform):
    rec = boot(platform)
    table = table_of(rec)
    j = int(np.flatnonzero(table.bits)[-1])
    table.bits[j] = False
    v = violation(check_boot, rec)
    assert (v.rule, v.address) == ("bitmap", table.phys_base + j * table.unit_size)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_boot_runs_the_allocator_check(platform):
    rec = boot(platform)
    normal_zone(rec).free_pages += 1
    v = violation(check_boot, rec)
    assert (v.rule, v.address) == ("counters", G4)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_boot_runs_the_host_check(platform):
    rec = boot(platform)
    page = memmap_page(rec)
    host_takes_back(rec.platform, page, page + PAGE_SIZE)
    guest_accepts(rec.platform, page, page + PAGE_SIZE)
    v = violation(check_boot, rec)
    assert (v.rule, v.address) == ("silent-data-loss", page)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_boot_blames_the_host_for_ram_it_took_back(platform):
    # Accepted RAM the host took back also leaves a clear bit over unaccepted memory; the
    # violation must name the host, which did it, not the kernel's bitmap.
    rec = boot(platform)
    page = memmap_page(rec)
    host_takes_back(rec.platform, page, page + PAGE_SIZE)
    v = violation(check_boot, rec)
    assert (v.rule, v.actor, v.address) == ("memory-lost", "host", page)


# -- check_no_memory_lost -------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_no_memory_lost_passes_for_lazy_and_eager(platform):
    lazy, eager = boot(platform, "lazy"), boot(platform, "eager")
    assert lazy.kernel.allocator.nr_unaccepted() > 0
    check_no_memory_lost(lazy, eager)
    # The lazy guest was drained: nothing parked, nothing left in the bitmap, and the bitmap and
    # allocator still tell the truth.
    assert lazy.kernel.allocator.nr_unaccepted() == 0
    assert not table_of(lazy).bits.any()
    check_bitmap(lazy)
    check_allocator(lazy)
    assert lazy.kernel.allocator.managed_pages() == eager.kernel.allocator.managed_pages()


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("corrupt", ["lazy", "eager"])
def test_check_no_memory_lost_fires_on_unaccepted_memory_left_after_the_drain(platform, corrupt):
    lazy, eager = boot(platform, "lazy"), boot(platform, "eager")
    # A chunk counted as unaccepted that is on no list: the drain cannot accept it.
    normal_zone({"lazy": lazy, "eager": eager}[corrupt]).nr_unaccepted += MAX_ORDER_NR_PAGES
    v = violation(check_no_memory_lost, lazy, eager)
    assert (v.rule, v.address) == ("memory-lost", 0)
    assert "left after drain" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_no_memory_lost_fires_when_managed_memory_differs(platform):
    lazy, eager = boot(platform, "lazy"), boot(platform, "eager", memory=MEMORY - 1 * GiB)
    v = violation(check_no_memory_lost, lazy, eager)
    assert (v.rule, v.address) == ("memory-lost", 0)
    assert "managed pages differ" in v.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_check_no_memory_lost_fires_when_accepted_ram_differs(platform):
    lazy, eager = boot(platform, "lazy"), boot(platform, "eager")
    page = memmap_page(lazy)
    host_takes_back(lazy.platform, page, page + PAGE_SIZE)  # in use by the kernel: no drain gives it back
    ram = eager.kernel.ram.total()  # eager accepted all the RAM the kernel knows
    v = violation(check_no_memory_lost, lazy, eager)
    assert (v.rule, v.address) == ("memory-lost", 0)
    assert v.detail == f"accepted RAM differs: {ram - PAGE_SIZE} vs {ram}"
