"""The historic bugs as mutants (lazyaccept check, kind "mutant"): each is caught by the detector
that fits it, with the rule and address the bug's mechanism predicts, and the same scenario on the
correct kernel finds nothing."""

from __future__ import annotations

import pytest

from lazyaccept.base.units import KiB, MiB
from lazyaccept.guest.rules import kernel_rules
from lazyaccept.scenario.check import triggers_boot, triggers_mini
from lazyaccept.scenario.check.catalogue import run_mutant
from lazyaccept.scenario.check.findings import Detector
from lazyaccept.scenario.check.mini import BASE, UNIT
from lazyaccept.scenario.check.mutants import MUTANTS, Mutant, correct_rules

BY_NAME = {m.name: m for m in MUTANTS}
REQUIRED = (
    "no-guard-unit", "global-accept-lock", "overlap-off-by-one", "table-loader-data", "table-unmapped",
    "table-reservation", "unaligned-request", "vmcore-reads-unaccepted", "unaccepted-counted-unusable",
    "bulk-alloc-no-accept", "zero-wmark-no-accept", "memblock-double-array", "kexec-segments-unaccepted",
)


def test_the_catalogue_has_every_required_mutant_by_name():
    assert set(REQUIRED) <= set(BY_NAME)
    assert len(MUTANTS) >= 13
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)


def test_every_mutant_is_one_rule_change_from_the_correct_kernel():
    correct = correct_rules()
    for m in MUTANTS:
        changed = {k for k, v in m.rules().__dict__.items() if k != "name" and getattr(correct, k) != v}
        assert changed == set(m.changes), m.name
        assert m.source and m.bug and m.scenario


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught_by_its_detector_and_the_correct_kernel_is_clean(mutant: Mutant):
    seen = mutant.trigger(mutant.rules())
    assert any(f.detector is mutant.detector for f in seen.findings), (mutant.name, seen.findings, seen.note)
    control = mutant.trigger(correct_rules())
    assert control.clean, (mutant.name, control.findings)
    result = run_mutant(mutant)
    assert result.ok and result.caught and result.correct_violations == 0


def _only(observation):
    assert len(observation.findings) == 1, observation.findings
    return observation.findings[0]


# -- where each bug shows, from its mechanism --------------------------------------------------
def test_no_guard_unit_reads_the_first_word_of_the_next_unit():
    # memblock takes [BASE+2M, BASE+4M) top down below BASE+4M; the read past its end is unit 2.
    f = _only(triggers_mini.no_guard_unit(BY_NAME["no-guard-unit"].rules()))
    assert (f.rule, f.address) == ("touch-unaccepted", BASE + 2 * UNIT)


def test_unaligned_request_reads_into_the_unit_after_the_objects_page():
    f = _only(triggers_mini.unaligned_request(BY_NAME["unaligned-request"].rules()))
    assert (f.rule, f.address) == ("touch-unaccepted", BASE + UNIT)


def test_guard_unit_and_page_alignment_are_both_needed_for_sub_page_requests():
    # The unaligned request is caught with the guard on (the 2026 fix is the page alignment),
    # and 6.12 (before that fix) shows the same fault.
    f = _only(triggers_mini.unaligned_request(kernel_rules("6.12")))
    assert f.address == BASE + UNIT


def test_zero_watermark_without_acceptance_fails_with_the_chunk_still_unaccepted():
    f = _only(triggers_mini.zero_wmark_no_accept(BY_NAME["zero-wmark-no-accept"].rules()))
    assert f.detector is Detector.LIVENESS and f.rule == "allocation-failed"
    assert "4 MiB was unaccepted" in f.detail  # the one chunk of the guest


def test_endless_reclaim_counts_only_accepted_pages_against_high():
    # 64 MiB zone: low 320, high 384 (test_guest_page_alloc's formula).  Init leaves low + 1
    # accepted free pages; kswapd reclaims 16, so the check sees 337 <= 384 and loops.
    f = _only(triggers_mini.unaccepted_counted_unusable(BY_NAME["unaccepted-counted-unusable"].rules()))
    assert f.rule == "reclaim-loop"
    assert "Normal: 337 pages counted free <= high 384, 13312 unaccepted" in f.detail


def test_bulk_allocator_drains_accepted_memory_and_comes_back_short():
    # 12 MiB = 3072 accepted free pages: 30 requests of 100 are served, the 31st gets 72.
    f = _only(triggers_mini.bulk_alloc_no_accept(BY_NAME["bulk-alloc-no-accept"].rules()))
    assert f.rule == "allocation-failed" and f.detail.startswith("alloc_pages_bulk() got 72 of 100 pages")


def test_memblock_double_array_copies_into_the_top_of_ram():
    # 2 x 128 x 24 bytes = 6 KiB, page aligned to 8 KiB, found top down: the last two pages.
    f = _only(triggers_mini.memblock_double_array(BY_NAME["memblock-double-array"].rules()))
    assert (f.rule, f.address) == ("touch-unaccepted", BASE + 8 * UNIT - 8 * KiB)
    assert "#VC 0x404" in f.detail


def _table_addr() -> int:
    rec = triggers_boot.boot(correct_rules())
    return rec.kernel.stub.table_addr


def test_table_mutants_fault_at_the_table():
    addr = _table_addr()
    assert addr % 4096 == 0x30  # allocate_pool: not page aligned
    for name, words in (("table-unmapped", "never memblock_add()ed"),
                        ("table-loader-data", "EfiLoaderData"),
                        ("kdump-table-above-max-pfn", "above max_pfn"),
                        ("kdump-zaps-table", "phys_pmd_init() cleared")):
        m = BY_NAME[name]
        f = _only(m.trigger(m.rules()))
        assert (f.rule, f.address) == ("table-unmapped", addr), name
        assert words in f.detail, name


def test_table_reservation_faults_on_the_tables_second_page():
    # 67000M: bitmap 0xfdc bytes at page offset 0x30 ends at 0x1024: the reservation of one page
    # from the aligned-down start leaves the second page out.
    m = BY_NAME["table-reservation"]
    f = _only(m.trigger(m.rules()))
    assert f.rule == "table-reservation" and f.address % 4096 == 0
    rec = triggers_boot.boot(correct_rules(), 67000 * MiB)
    assert f.address == rec.kernel.stub.table_addr - 0x30 + 4096


@pytest.mark.parametrize("name", ["vmcore-reads-unaccepted", "kcore-reads-unaccepted"])
def test_dumps_fault_on_a_page_the_bitmap_records_as_unaccepted(name):
    m = BY_NAME[name]
    f = _only(m.trigger(m.rules()))
    assert f.rule == "touch-unaccepted"
    table = triggers_boot.boot(correct_rules()).kernel.table
    assert table.bits[(f.address - table.phys_base) // table.unit_size]


def test_kexec_faults_in_the_kernel_segments_destination():
    from lazyaccept.guest import kexec

    m = BY_NAME["kexec-segments-unaccepted"]
    f = _only(m.trigger(m.rules()))
    rec = triggers_boot.boot(m.rules())
    kernel_seg = kexec.kexec_load(rec.kernel, m.rules())[0]
    assert kernel_seg.name == "kernel" and kernel_seg.start <= f.address < kernel_seg.end
    assert f.detail.startswith("relocate_kernel:kernel")


@pytest.mark.parametrize("name,own,held", [("global-accept-lock", "[4, 7)", "[0, 3)"),
                                           ("overlap-off-by-one", "[3, 5)", "[0, 3)")])
def test_lock_mutants_make_a_vcpu_wait_for_work_outside_its_range(name, own, held):
    m = BY_NAME[name]
    seen = m.trigger(m.rules())
    f = _only(seen)
    assert f.detector is Detector.LATENCY
    assert f"works on units {held}" in f.detail and f"its own units {own}" in f.detail
    assert len(f.schedule) == 2  # cpu0 registers; cpu1 would spin at once
    assert seen.explored > 0


def test_a_mutant_that_changes_nothing_is_reported_as_not_caught():
    fake = Mutant("no-op", "none", "nothing", {}, Detector.SAFETY, triggers_mini.no_guard_unit, "4 units")
    result = run_mutant(fake)
    assert not result.ok and result.caught is False
    assert result.observed.startswith("not caught")
