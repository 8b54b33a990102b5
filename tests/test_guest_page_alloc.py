"""Page allocator rules (linux-kernel.md §4), on allocators built by hand."""

from __future__ import annotations

import pytest

from conftest import G4, config_for, tdx, unaccepted_memory
from lazyaccept.base.errors import SafetyViolation
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import Recorder
from lazyaccept.base.units import GiB, MiB
from lazyaccept.guest.page_alloc import BootFailure, PageAllocator
from lazyaccept.guest.rules import kernel_rules


def allocator(kernel: str = "mainline", *, accepted_mib: int = 0, total_mib: int = 64, lazy: bool = True,
              rules=None) -> PageAllocator:
    """RAM [4G, 4G+total) whose first ``accepted_mib`` were accepted by firmware, rest unaccepted."""
    p = tdx()
    if accepted_mib:
        p.add_at_build(G4, G4 + accepted_mib * MiB)
    mem = unaccepted_memory(total_mib // 2, kernel=kernel, platform=p, set_bits=False)
    mem.table.bits[accepted_mib // 2 : total_mib // 2] = True
    if rules is not None:
        mem.rules = rules
    rec = Recorder()
    rec.begin("test", "kernel")
    ram = RangeSet([(G4, G4 + total_mib * MiB)])
    a = PageAllocator(ram, mem, p, rules or kernel_rules(kernel), rec, lazy=lazy)
    a.free_range(G4, G4 + total_mib * MiB, actor="test")
    return a


def test_lazy_free_parks_chunks_and_counts_them_as_free():
    # 16 MiB accepted then 48 MiB unaccepted: chunks 0-2 fully accepted; chunk 3 = [12M,16M) is
    # accepted but its guard unit [16M,18M) is not, so it is parked too: 13 chunks parked.
    a = allocator(accepted_mib=16)
    z = a.zones[-1]
    assert z.name == "Normal"
    assert z.chunks_on_list() == 13
    assert z.nr_unaccepted == 13 * 1024
    assert z.free_pages == 64 * MiB // 4096
    assert z.free_accepted.total() == 12 * MiB


def test_eager_leaves_no_chunk_parked():
    a = allocator(accepted_mib=16, lazy=False)
    z = a.zones[-1]
    assert z.chunks_on_list() == 0 and z.nr_unaccepted == 0
    assert a.platform.accepted().contains(G4, G4 + 64 * MiB)
    assert not a.mem.table.bits.any()


def test_zero_watermark_accepts_exactly_one_chunk():
    a = allocator("mainline", accepted_mib=16)
    before = a.zones[-1].chunks_on_list()
    a.alloc(1, actor="t")
    assert a.zones[-1].chunks_on_list() == before - 1
    a.alloc(1, actor="t")
    assert a.zones[-1].chunks_on_list() == before - 2  # one per allocation


def test_before_the_fix_zero_watermark_accepts_nothing_and_boot_runs_out_of_memory():
    # v6.12 rules: with watermarks 0 nothing is accepted; once the 12 MiB of accepted free
    # memory is gone the allocation fails although 52 MiB sit on the list (the premature OOM).
    a = allocator("6.12", accepted_mib=16)
    a.alloc(12 * MiB // 4096, actor="t")
    assert a.zones[-1].chunks_on_list() == 13
    with pytest.raises(BootFailure, match="premature out-of-memory"):
        a.alloc(1, actor="t")


def test_v6_5_accepts_one_chunk_only_when_accepted_memory_runs_out():
    a = allocator("6.5", accepted_mib=16)
    a.alloc(12 * MiB // 4096, actor="t")
    assert a.zones[-1].chunks_on_list() == 13
    a.alloc(1, actor="t")
    assert a.zones[-1].chunks_on_list() == 12


def test_watermarks_follow_the_kernel_formulas():
    # 64 MiB zone, all managed: lowmem_kbytes = 65536; min_free_kbytes = isqrt(65536*16) = 1024
    # -> 256 pages; tmp = max(256/4, 16384*10/10000 = 16) = 64: low 320, high 384, promo 448.
    a = allocator(accepted_mib=16)
    a.setup_watermarks()
    z = a.zones[-1]
    assert a.min_free_kbytes == 1024
    assert (z.wmark_min, z.wmark_low, z.wmark_high, z.wmark_promo) == (256, 320, 384, 448)


def test_after_watermarks_mainline_tops_up_to_promo():
    # Accepted free 3072 pages (12 MiB) is above promo (448): a 1-page allocation in mainline
    # accepts nothing.  An allocation of 3000 pages must leave >= 448 accepted free pages:
    # to_accept = 448 + 3000 - 3072 = 376 pages -> one chunk.
    a = allocator(accepted_mib=16)
    a.setup_watermarks()
    a.alloc(1, actor="t")
    assert a.zones[-1].chunks_on_list() == 13
    a.alloc(3000, actor="t")
    assert a.zones[-1].chunks_on_list() == 12


def test_unaccepted_kb_is_four_times_nr_unaccepted():
    # The texts the guest prints, read back, against the chunk lists counted directly: every
    # listed chunk is 4 MiB = 1024 pages = 4096 kB.
    from lazyaccept.formats.kernel_text import format_meminfo, format_vmstat, parse_meminfo, parse_vmstat
    from lazyaccept.scenario.artefacts import meminfo_fields, vmstat_fields
    from lazyaccept.scenario.build import build_record

    rec = build_record(config_for(64 * GiB, kernel="mainline", vcpus=2))
    listed_bytes = sum(e - s for z in rec.kernel.allocator.zones for s, e in z.unaccepted)
    meminfo = parse_meminfo(format_meminfo(meminfo_fields(rec)))
    vmstat = parse_vmstat(format_vmstat(vmstat_fields(rec)))
    assert listed_bytes > 0
    assert meminfo["Unaccepted"] == listed_bytes // 1024
    assert vmstat["nr_unaccepted"] == listed_bytes // 4096
    assert meminfo["Unaccepted"] == 4 * vmstat["nr_unaccepted"]


@pytest.mark.parametrize("guard", [True, False])
def test_missing_guard_unit_is_caught_by_the_zeropad_read(guard):
    # Mutant: no guard unit.  Chunk 3 = [12M, 16M) (accepted, followed by unaccepted unit 8) is
    # not parked, reaches the free lists, and once its last page is handed out the
    # load_unaligned_zeropad() read past it lands in unaccepted memory at 4G+16M.  With the
    # guard the chunk is parked, and taking it off the list accepts unit 8 first.
    rules = kernel_rules("6.5").with_rule(guard_unit=guard)
    a = allocator("6.5", accepted_mib=16, rules=rules)
    assert a.zones[-1].chunks_on_list() == (13 if guard else 12)
    if guard:
        a.alloc(16 * MiB // 4096, actor="t")
        assert a.platform.accepted().contains(G4, G4 + 18 * MiB)
        return
    with pytest.raises(SafetyViolation) as e:
        a.alloc(16 * MiB // 4096, actor="t")
    assert e.value.rule == "touch-unaccepted" and e.value.address == G4 + 16 * MiB


@pytest.mark.parametrize("kernel", ["6.7", "6.12"])
def test_thp_order_counts_511_pages_unusable_in_the_accept_target(kernel):
    """v6.5 try_to_accept_memory() and v6.12 cond_accept_memory() (mm/page_alloc.c) compute
    ``to_accept = wmark - (NR_FREE_PAGES - __zone_watermark_unusable_free(zone, order, 0) -
    NR_UNACCEPTED)`` (6.5 counts NR_UNACCEPTED inside the unusable part); unusable is
    ``(1 << order) - 1``.  With accepted free memory exactly at the target for an order-0
    request, an order-9 (THP) request still lacks 511 pages: one more chunk.  6.7 accepts at
    least one chunk whenever it is called (do-while), so there order 0 takes one and order 9
    takes one too; 6.12 accepts nothing at order 0."""
    def chunks(order: int) -> int:
        a = allocator(kernel, accepted_mib=64, total_mib=256)
        a.setup_watermarks()
        z = a.zones[-1]
        extra = z.accepted_free_pages - z.target_wmark(a.rules)  # to_accept at order 0: exactly 0
        return a.cond_accept(z, actor="t", vcpu=0, extra_pages=extra, order=order)

    assert chunks(9) == 1
    assert chunks(0) == (1 if kernel == "6.7" else 0)


def test_thp_watermark_check_leaves_511_more_pages():
    """__zone_watermark_ok(): ``free_pages -= __zone_watermark_unusable_free(z, order, ...)``, then
    fails when ``free_pages <= min + lowmem_reserve``: an order-9 episode stops 511 pages earlier."""
    def served(order: int) -> int:
        a = allocator("6.7", accepted_mib=64, total_mib=256)
        a.setup_watermarks()
        z = a.zones[-1]
        return a._episode(z, 1 << 30, "t", 0, order)

    assert served(0) - served(9) == 511
