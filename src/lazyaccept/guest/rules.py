"""Kernel versions as sets of named rules (linux-kernel.md §4.6 and §6).

Each behaviour that changed across kernel releases is one named field, so a model of a given
kernel is a choice of rules, and a historic bug can be re-introduced one rule at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from ..base.errors import ConfigError
from .backports import apply_backports

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
    #: The 6%-of-RAM SWIOTLB sizing lives in sev_setup_arch() (arch/x86/mm/mem_encrypt_amd.c), so
    #: a TDX guest gets it only with CONFIG_AMD_MEM_ENCRYPT=y; v6.7 moved it to
    #: mem_encrypt_setup_arch() (6e74b125155d, "x86/sev: Move sev_setup_arch() to mem_encrypt.c").
    swiotlb_sizing_in_sev_setup_arch: bool = False
    #: Guest patch ``accepted-reserve`` (Dstack 0009): before the watermarks exist, keep at least
    #: 2 x MAX_ORDER_NR_PAGES of accepted free memory and accept only on a forced retry.
    accepted_reserve_before_wmarks: bool = False
    #: Guest patch ``late-swiotlb-convert`` (Dstack 0010): a TDX guest converts its SWIOTLB buffer
    #: to shared at fs_initcall_sync, after SMP bring-up, instead of in mem_encrypt_init().
    swiotlb_convert_late: bool = False
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
    #: accept_memory() calls touch_softlockup_watchdog() after list_del(&range.list), just before
    #: spin_unlock_irqrestore() (1c5a1627f481, "efi/unaccepted: touch soft lockup during memory
    #: accept", v6.9): once per call, at its end, so the soft-lockup watchdog's timer, which runs
    #: when IRQs come back on, finds the CPU touched.  Before, a long accept_memory() call (with
    #: its spinning) reached the watchdog as one stretch without a touch.
    touch_softlockup_after_accept: bool = True
    #: Page isolation accepts the parked chunk it meets: set_migratetype_isolate() calls
    #: accept_page() on a PageUnaccepted() pageblock head (mm/page_isolation.c, "mm: page_isolation:
    #: Handle unaccepted memory isolation", v6.12).  Before, isolation took unaccepted memory for
    #: non-free and alloc_contig_pages() (CMA, gigantic pages, offlining) failed on it.
    isolation_accepts: bool = True
    #: Platforms ("tdx", "snp") on which hot-added memory enters the unaccepted bitmap and is
    #: accepted on demand.  No release does it (up to 7.0 the bitmap is sized at boot from the EFI
    #: memory map and online_pages() frees hot-added memory as accepted); the guest patches of
    #: guest/patches.py that propose it set it.
    hotplug_in_bitmap: tuple[str, ...] = ()
    #: Before kexec jumps, the first kernel converts every shared page back to private:
    #: tdx_kexec_finish() walks the direct map and for each decrypted PTE runs
    #: tdx_enc_status_changed(addr, pages, true) -- MapGPA to private, then tdx_accept_memory()
    #: (arch/x86/coco/tdx/tdx.c, the TDX kexec series of v6.11); snp_kexec_finish() makes them
    #: private and validated again (arch/x86/coco/sev).  Before, the SWIOTLB buffer stayed shared
    #: and the next kernel's private access to it was fatal.
    kexec_unshares_memory: bool = True

    @property
    def accept_lock(self) -> str | None:
        """The lock held across the architecture accept: v6.5's global ``unaccepted_memory_lock``,
        which serialised every acceptance in the guest; from v6.6 the lock is dropped around the
        architecture call and requests wait only on the accepting list (:attr:`accepting_list`)."""
        return GLOBAL_ACCEPT_LOCK if self.global_accept_lock else None

    @property
    def accepting_list(self) -> bool:
        """v6.6+: each in-flight request holds its unit range on ``accepting_list``, and a request
        that intersects one spins (IRQs off, ``goto retry``) until it is gone.  The allocator's
        4 MiB chunk requests end on a unit boundary and so carry the guard unit: neighbouring
        chunks ``[2k, 2k+3)`` and ``[2k+2, 2k+5)`` share a unit and wait for each other under the
        v6.6 test and the fixed one alike (the off-by-one only adds ranges that merely touch)."""
        return not self.global_accept_lock

    def with_rule(self, **changes: object) -> KernelRules:
        """A copy with some rules changed (for mutants and what-if runs)."""
        return replace(self, name=f"{self.name}+mutant", **changes)  # type: ignore[arg-type]


# Each release is the one before it plus what changed (torvalds/linux history; each commit is
# cited by the release that first carried it, see _RELEASES below).
_V6_5 = KernelRules(
    name="6.5", global_accept_lock=True, overlap_off_by_one=False, page_align_request=False, guard_unit=True,
    proactive_accept=False, accept_target="high", zero_wmark_accepts_one=False, snp_stub_msr_protocol=False,
    # The v6.5 table is loader data: RAM, mapped, reserved exactly.
    table_in_acpi_reclaim=False, table_reserve_fixed=True, swiotlb_sizing_in_sev_setup_arch=True,
    # None of the later fixes the check catalogue re-introduces as mutants is in 6.5.
    table_memblock_add=False, vmcore_skips_unaccepted=False, kcore_skips_unaccepted=False,
    bulk_alloc_accepts=False, memblock_double_array_accepts=False, kexec_accepts_segments=False,
    e820_end_ram_covers_acpi=False, kdump_keeps_acpi_pmd=False, touch_softlockup_after_accept=False,
    isolation_accepts=False, kexec_unshares_memory=False,
)
# Oct 2023: accepting list instead of holding the lock (with the off-by-one overlap test);
# Aug/Sep 2023: table in ACPI reclaim memory, memblock_add()ed with the flawed reservation.
_V6_6 = replace(_V6_5, name="6.6", global_accept_lock=False, overlap_off_by_one=True,
                table_in_acpi_reclaim=True, table_reserve_fixed=False, table_memblock_add=True)
# Nov 2023: off-by-one fixed; SWIOTLB sizing moved to mem_encrypt_setup_arch() for every CoCo guest;
# /proc/vmcore and /proc/kcore skip unaccepted memory (Adrian Hunter's series, 7cd34dd3c9bf and its
# kcore companion).
_V6_7 = replace(_V6_6, name="6.7", overlap_off_by_one=False, swiotlb_sizing_in_sev_setup_arch=False,
                vmcore_skips_unaccepted=True, kcore_skips_unaccepted=True)
# Apr 2024 (v6.9-rc6): touch_softlockup_watchdog() at the end of accept_memory() (1c5a1627f481).
_V6_9 = replace(_V6_7, name="6.9", touch_softlockup_after_accept=True)
# Aug 2024: unaccepted memory counts as free; proactive cond_accept_memory() (807174a93d24).  The
# TDX kexec series of the same merge window (x86/cc) brings the two kdump mapping fixes.
_V6_11 = replace(_V6_9, name="6.11", proactive_accept=True, e820_end_ram_covers_acpi=True,
                 kdump_keeps_acpi_pmd=True, kexec_unshares_memory=True)
# v6.12: accept up to the promo watermark; __alloc_pages_bulk() accepts.
_V6_12 = replace(_V6_11, name="6.12", accept_target="promo", bulk_alloc_accepts=True, isolation_accepts=True)
# v6.14: "mm/page_alloc: fix memory accept before watermarks gets initialized" (800f1059c99e).
_V6_14 = replace(_V6_12, name="6.14", zero_wmark_accepts_one=True)
# v6.15: "x86/boot/sev: Avoid shared GHCB page for early memory acceptance" (d54d610243a4, x86/urgent
# of 18 Apr 2025), memblock_double_array() accepts (da8bf5daa5e5) and kexec accepts its segments'
# destinations (Yan Zhao, PATCHv3 of Mar 2025).
_V6_15 = replace(_V6_14, name="6.15", snp_stub_msr_protocol=True, memblock_double_array_accepts=True,
                 kexec_accepts_segments=True)
# 2026: the table reservation fix and page-aligned requests.
_MAINLINE = replace(_V6_15, name="mainline", page_align_request=True, table_reserve_fixed=True)

KERNELS: dict[str, KernelRules] = {
    k.name: k for k in (_V6_5, _V6_6, _V6_7, _V6_9, _V6_11, _V6_12, _V6_14, _V6_15, _MAINLINE)
}
KERNEL_ALIASES = {"6.5-6.10": "6.7", "latest": "mainline"}

#: Rule sets by the first mainline release (major, minor) that runs them; a release runs the
#: newest set at or below it.  The changes, by the release that first carried them (torvalds/linux):
#:
#: * 6.5: "efi: Add unaccepted memory support" (2053bc57f367), "mm: Add support for unaccepted
#:   memory" (dcdfdd40fa82): one global accept lock, acceptance on watermark failure, high watermark.
#: * 6.6: "efi/unaccepted: Fix soft lockups caused by parallel memory acceptance" (50e782a86c98,
#:   the accepting list); the table in ACPI reclaim memory (e7761d827e99), memblock_add()ed
#:   (8dbe33956d96).
#: * 6.7, 6.8: "efi/unaccepted: Fix off-by-one when checking for overlapping ranges" (01b1e3ca0e5c);
#:   "efi/unaccepted: do not let /proc/vmcore try to access unaccepted memory" (7cd34dd3c9bf) and
#:   "proc/kcore: Do not try to access unaccepted memory" (one series, Adrian Hunter).
#: * 6.9, 6.10: "efi/unaccepted: touch soft lockup during memory accept" (1c5a1627f481, efi urgent,
#:   merged after v6.9-rc5).
#: * 6.11: "mm: fix endless reclaim on machines with unaccepted memory" (807174a93d24: proactive
#:   acceptance, unaccepted memory counted as free); from the TDX kexec series (x86/cc, PATCHv12 of
#:   Jun 2024): tdx_kexec_finish(), "x86/mm: Make e820__end_ram_pfn() cover E820_TYPE_ACPI ranges"
#:   and "x86/mm: Do not zap page table entries mapping unaccepted memory table during kdump";
#:   snp_kexec_finish() (SEV-SNP kexec, assumed the same release).
#: * 6.12, 6.13: "mm: Fix several issues with unaccepted memory" (promo watermark, "mm: Accept memory
#:   in __alloc_pages_bulk()", "mm: page_isolation: Handle unaccepted memory isolation").
#: * 6.14: 800f1059c99e (zero-watermark fix; its stable backports to 6.12.y and 6.13.y were reviewed
#:   on 25 Mar 2025, the day after v6.14, so it is a v6.14 commit).
#: * 6.15 to 6.19: d54d610243a4 (SNP stub MSR protocol, x86-urgent-2025-04-18, v6.15-rc),
#:   "memblock: Accept allocated memory before use in memblock_double_array()" (da8bf5daa5e5; in
#:   stable 6.14.7, so a v6.15-rc fix), "kexec_core: Accept unaccepted kexec segments' destination
#:   addresses" (assumed v6.15: its PATCHv3 is of 7 Mar 2025; the merge release is not verified).
#: * 7.0 and later: the mainline rules, which add "efi: Fix reservation of unaccepted memory
#:   table" and "efi: Align unaccepted memory range to page boundary" (patches of February 2026).
#:   Which release first carries them is not verified; 7.0, the first after them, is assumed.
_RELEASES: tuple[tuple[tuple[int, int], str], ...] = (
    ((6, 5), "6.5"),
    ((6, 6), "6.6"),
    ((6, 7), "6.7"),
    ((6, 9), "6.9"),
    ((6, 11), "6.11"),
    ((6, 12), "6.12"),
    ((6, 14), "6.14"),
    ((6, 15), "6.15"),
    ((7, 0), "mainline"),
)
#: ``6.8``, ``v6.8``, ``6.8.0-45-generic``, ``6.15-rc1``, ``linux-6.8.12``: major and minor first,
#: then the stable sublevel if there is one (``6.6.50``; a distribution's ``6.8.0-45`` has 0).
_RELEASE = re.compile(r"^(?:v|linux-)?([0-9]{1,6})\.([0-9]{1,6})(?:\.([0-9]{1,6}))?(?:[+~_-].*)?$", re.ASCII)


def resolve_kernel(name: str) -> tuple[KernelRules, str]:
    """The rules a kernel called ``name`` runs, and one line saying which modelled set that is.

    ``name`` is a rule-set name (``6.5``, ``6.6``, ``6.7``, ``6.9``, ``6.11``, ``6.12``, ``6.14``,
    ``6.15``, ``mainline``), an alias (``latest``, ``6.5-6.10``) or any release string (``6.8``,
    ``6.8.0-45-generic``, ``6.6.50``, ``7.0``), in any case.  A release runs the newest rule set
    at or below its major.minor (see ``_RELEASES`` for the mapping and the dates behind it); a
    release candidate counts as its release.  A stable sublevel (``6.6.50``) adds the fixes its
    stable line had taken by then (``guest/backports.py``); the line says which.  Distribution
    patches are not read.  Releases before 6.5 are refused: they cannot accept memory lazily.
    """
    text = str(name).strip()
    if len(text) > 64:
        raise ConfigError(f"unknown kernel {text[:40]!r}... (a release such as 6.8 or 6.8.0-45-generic)")
    key = text.lower()
    key = KERNEL_ALIASES.get(key, key)
    if key in KERNELS:
        rules = KERNELS[key]
        if key == text.lower():
            return rules, f"{text}: the modelled {rules.name} rules"
        return rules, f"{text}: the modelled {rules.name} rules ({text} is another name for them)"
    m = _RELEASE.match(key)
    if not m:
        raise ConfigError(
            f"unknown kernel {text!r} (a release such as 6.8 or 6.8.0-45-generic, or one of: "
            f"{', '.join(list(KERNELS) + list(KERNEL_ALIASES))})"
        )
    release = (int(m[1]), int(m[2]))
    if release < _RELEASES[0][0]:
        raise ConfigError(f"kernel {text!r} cannot be modelled: unaccepted memory support arrived in Linux 6.5")
    applied = [set_name for first, set_name in _RELEASES if first <= release][-1]
    rules = KERNELS[applied]
    why = f"{text}: Linux {release[0]}.{release[1]} runs the modelled {rules.name} rules"
    if applied == "mainline":
        why += " (assuming the Feb 2026 table fixes, whose merge release is unverified, are in 7.0)"
    sublevel = int(m[3]) if m[3] is not None else 0
    if sublevel:
        rules, taken = apply_backports(rules, release, sublevel)
        why += "; " + (f"stable {release[0]}.{release[1]}.{sublevel} backports: {taken}" if taken
                       else f"no modelled fix was backported to {release[0]}.{release[1]}.y by .{sublevel}")
    return rules, why


def kernel_rules(name: str) -> KernelRules:
    """Rules of the kernel called ``name``; see :func:`resolve_kernel` for the names understood."""
    return resolve_kernel(name)[0]
