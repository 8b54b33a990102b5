"""How much memory a booting guest uses, and where (the boot-time consumers of memory).

These are counts of *what* the kernel does, not costs.  Each default says where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.units import GiB, KiB, MiB

#: A SWIOTLB slab (1 << IO_TLB_SHIFT) and a segment of slabs (include/linux/swiotlb.h).
IO_TLB_SIZE = 2 * KiB
IO_TLB_SEGSIZE = 128
#: IO_TLB_DEFAULT_SIZE (64 MiB) in slabs: swiotlb_adjust_size() sizes the buffer by RAM only while
#: ``default_nslabs`` still equals it, i.e. no ``swiotlb=`` changed it (kernel/dma/swiotlb.c).
IO_TLB_DEFAULT_SLABS = 64 * MiB // IO_TLB_SIZE
#: IO_TLB_MIN_SLABS (1 MiB): swiotlb_init_remap() halves a buffer it cannot allocate down to this.
SWIOTLB_MIN = 1 * MiB


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
    #: Page allocations per secondary vCPU brought up, on the boot CPU before the watermarks
    #: exist (idle task, vmalloc'ed stacks, IRQ stacks, per-CPU slab pages).  Dstack measured the
    #: boot CPU accepting ~13 GiB while it brought up 247 APs with every allocation accepting a
    #: 4 MiB chunk (Dstack-TEE/dstack PR 1220): 13 GiB / 4 MiB / 247 = 13.5 allocations per AP.
    page_allocs_per_ap: int = 13
    #: Page allocations between deferred init and the watermarks (kthreads, driver_init(), the
    #: pure, core and early postcore initcalls; assumed, like early_page_allocs).
    pre_watermark_allocs: int = 256
    #: Exits of the boot CPU in driver_init() and the pure to subsys initcalls (with the APs
    #: online and, until the fs initcalls, taking the tick), and in the device and late
    #: initcalls: every port or MMIO access to an emulated device is a #VE and a TDVMCALL on TDX
    #: (arch/x86/coco/tdx/tdx.c, handle_io() and handle_mmio()) or a #VC and a VMGEXIT on SNP
    #: (arch/x86/coco/sev/vc-handle.c), as are MSRs the TDX module does not virtualise and
    #: hypercalls.  Assumed counts: PCI enumeration of a q35 machine through ECAM (a config read
    #: per function probed, the BARs of a dozen devices) and ACPI AML port I/O in the subsys
    #: initcalls; virtio probes (feature negotiation, queue set-up per device) and the 8250
    #: console (a port write and a status read per character printed) in the device initcalls.
    #: No published count; a serial console at a verbose log level can add tens of thousands.
    early_initcall_exits: int = 10_000
    initcall_exits: int = 10_000
    #: Memory touched from the first user-space process to a shell prompt (assumed: a small
    #: distribution user space; page cache and anonymous memory).
    shell_footprint: int = 256 * MiB
    #: The kernel's ``swiotlb=`` parameter, in 2 KiB slabs (0: not given): a guest whose devices
    #: bounce more than the default (a GPU in confidential-computing mode) asks for a bigger
    #: buffer; ``setup_io_tlb_npages()`` aligns it up to a 128-slab segment.
    swiotlb_slabs: int = 0

    def swiotlb_size(self, total_ram: int, vcpus: int, sized_by_ram: bool = True) -> int:
        """The SWIOTLB buffer: ``swiotlb=`` slabs when given, else 6% of RAM clamped to [64 MiB,
        1 GiB] when the kernel sizes it by RAM (mem_encrypt_setup_arch()), else the 64 MiB
        default; then, as swiotlb_adjust_nareas() / round_up_default_nslabs() do
        (kernel/dma/swiotlb.c), its 2 KiB slabs are rounded up to a power of two and to at least
        128 slabs per area, with one area per possible CPU rounded up to a power of two."""
        given = -(-self.swiotlb_slabs // IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE  # setup_io_tlb_npages()
        if given and given != IO_TLB_DEFAULT_SLABS:
            nslabs = given  # swiotlb= given: swiotlb_adjust_size() leaves it as it is
        else:
            size = max(self.swiotlb_min, min(self.swiotlb_max, int(total_ram * self.swiotlb_fraction)))
            size = size if sized_by_ram else self.swiotlb_min
            nslabs = -(-size // IO_TLB_SIZE)
            nslabs = -(-nslabs // IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE
        nareas = 1 << (max(1, vcpus) - 1).bit_length()
        nslabs = max(nslabs, IO_TLB_SEGSIZE * nareas)
        nslabs = 1 << (nslabs - 1).bit_length()
        return nslabs * IO_TLB_SIZE
