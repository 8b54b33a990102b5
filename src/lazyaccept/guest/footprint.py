"""How much memory a booting guest uses, and where (the boot-time consumers of memory).

These are counts of *what* the kernel does, not costs.  Each default says where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.units import GiB, KiB, MiB


@dataclass(frozen=True)
class BootFootprint:
    #: Decompressed kernel image, bss and init sections, loaded as EFI loader data (assumed:
    #: a distribution kernel is 40-70 MiB once decompressed).
    kernel_image: int = 64 * MiB
    #: Bytes of struct page per 4 KiB page (sizeof(struct page) on x86-64).
    memmap_per_page: int = 64
    #: Per-CPU area unit per vCPU: the real TDX guest log prints "percpu: Embedded 63 pages/cpu
    #: ... u524288" (tdx_guest_nosave_intel_tdx-linux_issue1.txt).
    percpu_unit: int = 512 * KiB
    #: Pages of that unit the first chunk uses ("Embedded 63 pages/cpu" in the same log).
    percpu_embedded_pages: int = 63
    #: SWIOTLB bounce buffer of a confidential guest: 6% of memory clamped to [64 MiB, 1 GiB]
    #: (arch/x86/mm/mem_encrypt.c, mem_encrypt_setup_arch()); allocated below 4 GiB by memblock.
    swiotlb_fraction: float = 0.06
    swiotlb_min: int = 64 * MiB
    swiotlb_max: int = 1 * GiB
    #: Confidential guests set SWIOTLB_FORCE but not SWIOTLB_ANY (arch/x86/kernel/pci-dma.c,
    #: pci_swiotlb_detect()), so the buffer comes from memblock_alloc_low(): below 4 GiB.
    swiotlb_anywhere: bool = False
    #: Page allocations between mm_core_init() and the initialisation of zone watermarks
    #: (postcore initcall), on the boot CPU (assumed: slab pages, early kmem caches, ...).
    early_page_allocs: int = 256
    #: Page allocations per secondary vCPU brought up (assumed: idle task, vmalloc'ed 16 KiB
    #: stack page by page, IRQ stacks, per-CPU slab pages).
    page_allocs_per_ap: int = 16
    #: Memory touched from the first user-space process to a shell prompt (assumed: a small
    #: distribution user space; page cache and anonymous memory).
    shell_footprint: int = 256 * MiB

    def swiotlb_size(self, total_ram: int) -> int:
        size = int(total_ram * self.swiotlb_fraction)
        return max(self.swiotlb_min, min(self.swiotlb_max, size))
