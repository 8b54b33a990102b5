"""Kernel versions as sets of named rules (linux-kernel.md §4.6 and §6).

Each behaviour that changed across kernel releases is one named field, so a model of a given
kernel is a choice of rules, and a historic bug can be re-introduced one rule at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..base.errors import ConfigError

Wmark = Literal["high", "promo"]
#: The spinlock v6.5's accept_memory() held across the architecture accept
#: (drivers/firmware/efi/unaccepted_memory.c, ``unaccepted_memory_lock``).
GLOBAL_ACCEPT_LOCK = "unaccepted_memory_lock"


@dataclass(frozen=True)
class KernelRules:
    """What one kernel version does with unaccepted memory."""

    name: str
    #: v6.5 held one global spinlock across the architecture accept, so all acceptance in the
    #: guest was serialised (fixed by 50e782a86c98, "Fix soft lockups caused by parallel memory
    #: acceptance", which added the accepting list).
    global_accept_lock: bool
    #: The accepting list's overlap test: ``entry.end <= start`` (fixed, v6.7) or the original
    #: ``entry.end < start``, which made adjacent requests wait for each other.
    overlap_off_by_one: bool
    #: ``accept_memory()`` widens the request to whole pages before the guard check (2026 fix,
    #: "efi: Align unaccepted memory range to page boundary", corrected form).
    page_align_request: bool
    #: ``accept_memory()`` and ``range_contains_unaccepted_memory()`` add the next unit when the
    #: request ends on a unit boundary (load_unaligned_zeropad guard; in every release).
    guard_unit: bool
    #: v6.5-v6.10: accept only when the watermark check or rmqueue fails ("on failure"), accept
    #: at least one chunk, and count unaccepted pages as unusable.  v6.11+: a proactive
    #: ``cond_accept_memory()`` before every watermark check; unaccepted counts as free.
    proactive_accept: bool
    #: Watermark that acceptance tops free memory up to (v6.12: promo; before: high).
    accept_target: Wmark
    #: March 2025 fix: with zone watermarks still 0, accept exactly one chunk per allocation.
    zero_wmark_accepts_one: bool
    #: SEV-SNP EFI stub and decompressor accept through the GHCB MSR protocol, one 4 KiB page per
    #: request (d54d610243a4, 2025); before, through a GHCB page-state-change request.
    snp_stub_msr_protocol: bool
    #: The stub allocates the table as EfiACPIReclaimMemory (v6.6, e7761d827e99, so crash
    #: kernels see it) rather than EfiLoaderData; the kernel then memblock_add()s and reserves it.
    table_in_acpi_reclaim: bool
    #: The unaccepted table is reserved with ``end = PAGE_ALIGN(addr + 24 + size)`` (2026 fix);
    #: before, the aligned-down start plus ``PAGE_ALIGN(24 + size)``, which can drop a page.
    table_reserve_fixed: bool
    # -- Rules added for the check catalogue (lazyaccept check).  Each default is today's correct
    # behaviour; the releases below do not set them (older kernels lacked some fixes), so a historic
    # bug they describe is re-introduced with ``with_rule`` (scenario/check/mutants.py).
    #: The kernel memblock_add()s the ACPI-reclaim table so the direct map covers it
    #: (8dbe33956d96, "efi/unaccepted: Make sure unaccepted table is mapped"); without it the
    #: first access to the table faults.
    table_memblock_add: bool = True
    #: /proc/vmcore reads unaccepted pages of the crashed kernel as zeros (vmcore_cb pfn_is_ram;
    #: "efi/unaccepted: do not let /proc/vmcore try to access unaccepted memory", v6.7).
    vmcore_skips_unaccepted: bool = True
    #: /proc/kcore skips unaccepted pages ("proc/kcore: do not try to access unaccepted memory").
    kcore_skips_unaccepted: bool = True
    #: __alloc_pages_bulk() calls cond_accept_memory() like get_page_from_freelist() (v6.12,
    #: "mm: Accept memory in __alloc_pages_bulk()"); before, it could drain accepted memory.
    bulk_alloc_accepts: bool = True
    #: memblock_double_array() accepts the range it found before copying the region array into
    #: it (da8bf5daa5e5, "memblock: Accept allocated memory before use in memblock_double_array()").
    memblock_double_array_accepts: bool = True
    #: kexec accepts the destination ranges of its segments when they are loaded ("kexec_core:
    #: accept unaccepted kexec segments' destination addresses", Yan Zhao, 2024).
    kexec_accepts_segments: bool = True
    #: max_pfn, where the direct map ends, covers E820_TYPE_ACPI ranges too ("x86/mm: Make
    #: e820__end_ram_pfn() cover E820_TYPE_ACPI ranges", v6.11): a crash kernel's only RAM is its
    #: crashkernel= region, and a table above it was left out of the direct map.
    e820_end_ram_covers_acpi: bool = True
    #: phys_pmd_init() keeps the 2 MiB entries of E820_TYPE_ACPI ranges past the end of the range it
    #: maps ("x86/mm: Do not zap page table entries mapping unaccepted memory table during kdump",
    #: v6.11); before, it zapped the entry mapping the table above the crash kernel's RAM.
    kdump_keeps_acpi_pmd: bool = True
    #: accept_memory() keeps IRQs disabled from taking the lock until it returns, across the
    #: architecture accept (50e782a86c98: "Keep interrupts disabled until the accept operation is
    #: complete in order to prevent deadlocks": an interrupt handler asking for the same memory
    #: would spin for ever on the CPU it interrupted).  Read by the interleaving explorer, which
    #: decides when an interrupt may run (scenario/check/interleave.py).
    accept_irqs_off: bool = True

    @property
    def accept_lock(self) -> str | None:
        """The lock every acceptance holds across the architecture call, if the release has one."""
        return GLOBAL_ACCEPT_LOCK if self.global_accept_lock else None

    def with_rule(self, **changes: object) -> KernelRules:
        """A copy with some rules changed (for mutants and what-if runs)."""
        return replace(self, name=f"{self.name}+mutant", **changes)  # type: ignore[arg-type]


# Each release is the one before it plus what changed (linux-kernel.md §4.6 and §6).
_V6_5 = KernelRules(
    name="6.5", global_accept_lock=True, overlap_off_by_one=False, page_align_request=False, guard_unit=True,
    proactive_accept=False, accept_target="high", zero_wmark_accepts_one=False, snp_stub_msr_protocol=False,
    # The v6.5 table is loader data: RAM, mapped, reserved exactly.
    table_in_acpi_reclaim=False, table_reserve_fixed=True,
)
# Oct 2023: accepting list instead of holding the lock (with the off-by-one overlap test);
# Aug/Sep 2023: table in ACPI reclaim memory, memblock_add()ed with the flawed reservation.
_V6_6 = replace(_V6_5, name="6.6", global_accept_lock=False, overlap_off_by_one=True,
                table_in_acpi_reclaim=True, table_reserve_fixed=False)
# Nov 2023: off-by-one fixed.
_V6_7 = replace(_V6_6, name="6.7", overlap_off_by_one=False)
# Aug 2024: unaccepted memory counts as free; proactive cond_accept_memory().
_V6_11 = replace(_V6_7, name="6.11", proactive_accept=True)
# v6.12: accept up to the promo watermark.
_V6_12 = replace(_V6_11, name="6.12", accept_target="promo")
# 2025-2026: zero-watermark fix, SNP stub via the MSR protocol, page-aligned requests, table
# reservation fix.
_MAINLINE = replace(_V6_12, name="mainline", zero_wmark_accepts_one=True, snp_stub_msr_protocol=True,
                    page_align_request=True, table_reserve_fixed=True)

KERNELS: dict[str, KernelRules] = {k.name: k for k in (_V6_5, _V6_6, _V6_7, _V6_11, _V6_12, _MAINLINE)}
KERNEL_ALIASES = {"6.5-6.10": "6.7", "6.15": "mainline", "latest": "mainline"}


def kernel_rules(name: str) -> KernelRules:
    """Rules of the kernel called ``name`` (``6.5``, ``6.6``, ``6.7``, ``6.11``, ``6.12``, ``mainline``)."""
    key = KERNEL_ALIASES.get(name, name)
    if key not in KERNELS:
        known = ", ".join(list(KERNELS) + list(KERNEL_ALIASES))
        raise ConfigError(f"unknown kernel {name!r} (known: {known})")
    return KERNELS[key]
