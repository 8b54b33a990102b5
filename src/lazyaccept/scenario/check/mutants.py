"""The historic bugs of Linux's unaccepted-memory support, each re-introduced as one named rule
change to today's kernel (``KernelRules.with_rule``, in the style of a kernel release), with the
smallest scenario that triggers it and the detector that must catch it (each cites its commit or report).

A mutant is *caught* when its trigger, run with the mutant's rules, gives a finding of the
expected detector, and the same trigger run with the correct kernel's rules gives none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ...guest.rules import KernelRules, kernel_rules
from . import triggers_boot as boot
from . import triggers_mini as mini
from .cases import ADJACENT_2, DISJOINT_2, IRQ_REENTRY_2
from .findings import Detector, Observation
from .interleave import Case, explore_all

#: The kernel the catalogue calls correct: today's rules (every known fix in).
CORRECT_KERNEL = "mainline"


def correct_rules() -> KernelRules:
    return kernel_rules(CORRECT_KERNEL)


@dataclass(frozen=True)
class Mutant:
    """One historic bug: its name, where it was reported and fixed, the rule change that brings
    it back, the detector that must catch it, and the scenario that triggers it."""

    name: str
    source: str
    bug: str
    changes: Mapping[str, object]
    detector: Detector
    trigger: Callable[[KernelRules], Observation]
    scenario: str
    extra: bool = field(default=False, compare=False)

    def rules(self) -> KernelRules:
        r = correct_rules().with_rule(**self.changes)
        return KernelRules(**{**r.__dict__, "name": f"{CORRECT_KERNEL}+{self.name}"})


def _explore(case: Case) -> Callable[[KernelRules], Observation]:
    """A trigger that explores every interleaving of ``case``."""

    def trigger(rules: KernelRules) -> Observation:
        exp = explore_all(case, rules)
        found = [exp.finding] if exp.finding is not None else []
        return Observation(found, f"{exp.schedules} interleavings of {case.what} explored", exp.schedules)

    return trigger


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "no-guard-unit", '"efi/unaccepted: Avoid load_unaligned_zeropad() stepping into unaccepted memory" (v6.5)',
        "accept_memory() of a range ending on a unit boundary does not accept the next unit, so a "
        "word-at-a-time read past the range's last page steps into unaccepted memory",
        {"guard_unit": False}, Detector.SAFETY, mini.no_guard_unit,
        "4 unaccepted units; memblock_alloc(2 MiB) ends on a unit boundary; a word read past its end",
    ),
    Mutant(
        "global-accept-lock", '50e782a86c98 "efi/unaccepted: Fix soft lockups caused by parallel memory acceptance"',
        "one spinlock held across the architecture accept serialises all acceptance: vCPUs spin with "
        "IRQs off while another accepts unrelated memory (soft lockups)",
        {"global_accept_lock": True}, Detector.LATENCY, _explore(DISJOINT_2),
        "2 vCPUs accepting disjoint chunks, every interleaving",
    ),
    Mutant(
        "overlap-off-by-one", '"efi/unaccepted: Fix off-by-one when checking for overlapping ranges" (v6.7)',
        "the accepting-list test entry.end < start calls adjacent requests overlapping: they wait "
        "for each other for nothing",
        {"overlap_off_by_one": True}, Detector.LATENCY, _explore(ADJACENT_2),
        "2 vCPUs accepting adjacent unit ranges, every interleaving",
    ),
    Mutant(
        "table-loader-data", 'e7761d827e99 "efi/unaccepted: Use ACPI reclaim memory for unaccepted memory table"',
        "the table is EfiLoaderData: first-kernel RAM, which a crash kernel does not map",
        {"table_in_acpi_reclaim": False}, Detector.SAFETY, boot.table_loader_data,
        "4 GiB TDX boot, then kdump: the crash kernel reads the table",
    ),
    Mutant(
        "table-unmapped", '8dbe33956d96 "efi/unaccepted: Make sure unaccepted table is mapped"',
        "the ACPI-reclaim table is only reserved, not memblock_add()ed: it is not in the direct map",
        {"table_memblock_add": False}, Detector.SAFETY, boot.table_unmapped,
        "4 GiB TDX boot",
    ),
    Mutant(
        "table-reservation", '"[PATCH 1/2] efi: Fix reservation of unaccepted memory table" (Feb 2026; report '
        '"[BUG] Fault during memory acceptance for TDX VMs with certain memory sizes")',
        "reserve_unaccepted() adds PAGE_ALIGN(24 + size) to the aligned-down address: a table that "
        "straddles a page loses its last page (the 67000M fault)",
        {"table_reserve_fixed": False}, Detector.SAFETY, boot.table_reservation,
        "67000M TDX boot (table at page offset 0x30, 0xfdc bytes of bitmap)",
    ),
    Mutant(
        "unaligned-request", '"[PATCH 2/2] efi: Align unaccepted memory range to page boundary" (Feb 2026)',
        "the guard test looks at the raw end of a sub-page request: an object in the last page of a "
        "unit gets no guard unit",
        {"page_align_request": False}, Detector.SAFETY, mini.unaligned_request,
        "2 unaccepted units; a 0x83-byte memblock object in the last page of unit 0",
    ),
    Mutant(
        "vmcore-reads-unaccepted", '"efi/unaccepted: do not let /proc/vmcore try to access unaccepted memory" (v6.7)',
        "the crash kernel's /proc/vmcore reads the crashed kernel's unaccepted pages",
        {"vmcore_skips_unaccepted": False}, Detector.SAFETY, boot.vmcore_reads_unaccepted,
        "4 GiB TDX boot, then kdump saves /proc/vmcore",
    ),
    Mutant(
        "unaccepted-counted-unusable", '807174a93d24 "mm: fix endless reclaim on machines with unaccepted memory"',
        "unaccepted pages count as unusable in the watermark check: kswapd finds the zone below high, "
        "reclaims, cannot accept, and loops",
        {"proactive_accept": False}, Detector.LIVENESS, mini.unaccepted_counted_unusable,
        "64 MiB zone, 16 MiB accepted; kswapd woken at the low watermark with 16 reclaimable pages",
    ),
    Mutant(
        "bulk-alloc-no-accept", '"mm: Accept memory in __alloc_pages_bulk()" (v6.12, "mm: Fix several issues '
        'with unaccepted memory")',
        "__alloc_pages_bulk() passes its watermark check on unaccepted memory and drains accepted "
        "memory: requests come back short",
        {"bulk_alloc_accepts": False}, Detector.LIVENESS, mini.bulk_alloc_no_accept,
        "64 MiB zone, 16 MiB accepted; vmalloc of 16 MiB in bulk requests of 100 pages",
    ),
    Mutant(
        "zero-wmark-no-accept", '800f1059c99e "mm/page_alloc: fix memory accept before watermarks gets initialized"',
        "before the watermarks are set they are 0, always met, so nothing is accepted: premature OOM",
        {"zero_wmark_accepts_one": False}, Detector.LIVENESS, mini.zero_wmark_no_accept,
        "one unaccepted chunk, no accepted free memory; one allocation before the watermarks",
    ),
    Mutant(
        "memblock-double-array", 'da8bf5daa5e5 "memblock: Accept allocated memory before use in '
        'memblock_double_array()"',
        "memblock doubles its region array into memory it found, not allocated, so never accepted "
        "(SEV-SNP boot crash)",
        {"memblock_double_array_accepts": False}, Detector.SAFETY, mini.memblock_double_array,
        "SEV-SNP, 8 units, 4 validated; 129 separate reservations",
    ),
    Mutant(
        "kexec-segments-unaccepted", '"kexec_core: accept unaccepted kexec segments\' destination addresses" '
        "(Yan Zhao, 2024)",
        "kexec picks segment destinations in free RAM without accepting them; relocate_kernel copies "
        "into unaccepted memory",
        {"kexec_accepts_segments": False}, Detector.SAFETY, boot.kexec_segments_unaccepted,
        "4 GiB TDX boot, then kexec -l / kexec -e of a kernel and initrd",
    ),
    # -- further bugs of the same history the model expresses ---------------------------------
    Mutant(
        "kcore-reads-unaccepted", '"proc/kcore: do not try to access unaccepted memory" (Adrian Hunter, 2023)',
        "/proc/kcore reads unaccepted pages",
        {"kcore_skips_unaccepted": False}, Detector.SAFETY, boot.kcore_reads_unaccepted,
        "4 GiB TDX boot, then all of /proc/kcore's RAM read", extra=True,
    ),
    Mutant(
        "irqs-on-during-accept", '50e782a86c98 "efi/unaccepted: Fix soft lockups caused by parallel memory '
        'acceptance" (v1 dropped the lock for the accept; the fix keeps IRQs disabled)',
        "IRQs enabled across the architecture accept: an interrupt handler asking for the same memory "
        "spins for ever with IRQs off on the CPU whose accept it waits for",
        {"accept_irqs_off": False}, Detector.LIVENESS, _explore(IRQ_REENTRY_2),
        "a chunk accept and an interrupt on the same CPU asking for part of it, every interleaving", extra=True,
    ),
    Mutant(
        "kdump-table-above-max-pfn", '"x86/mm: Make e820__end_ram_pfn() cover E820_TYPE_ACPI ranges" (v6.11)',
        "the crash kernel's direct map ends at its last RAM page; the table above it is not mapped",
        {"e820_end_ram_covers_acpi": False}, Detector.SAFETY, boot.table_loader_data,
        "4 GiB TDX boot, then kdump: the crash kernel reads the table", extra=True,
    ),
    Mutant(
        "kdump-zaps-table", '"x86/mm: Do not zap page table entries mapping unaccepted memory table during kdump" '
        "(Ashish Kalra, v6.11)",
        "mapping the crash kernel's RAM clears the 2 MiB entry that maps the table above it",
        {"kdump_keeps_acpi_pmd": False}, Detector.SAFETY, boot.table_loader_data,
        "4 GiB TDX boot, then kdump: the crash kernel reads the table", extra=True,
    ),
)
