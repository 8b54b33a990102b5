"""Where a guest's memory goes before its workload gets any: from the VM's size to ``MemTotal``
to ``MemAvailable``, each step read from the modelled boot (the kernel's memblock reservations,
the allocator's counters), each with where the kernel does it.

The steps add up exactly: VM size = not RAM in the e820 map + every memblock reservation in RAM
+ MemTotal; MemTotal = allocated by the end of the boot + the watermark reserve + MemAvailable.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.units import KiB
from .artefacts import meminfo_fields
from .boot_record import BootRecord


@dataclass(frozen=True)
class Item:
    """One use of memory: ``name``, ``bytes``, and where the kernel does it (or ``assumed: why``)."""

    name: str
    bytes: int
    source: str


#: Per memblock reservation: what it is and where the kernel makes it.
RESERVATION_SOURCES: dict[str, tuple[str, str]] = {
    "first-mib": ("first MiB (real-mode and BIOS area)",
                  "arch/x86/realmode/init.c, reserve_real_mode(): the whole first MiB is reserved"),
    "kernel-image": ("kernel image (text, data, bss, init)",
                     "arch/x86/kernel/setup.c, early_reserve_memory(); assumed: 64 MiB, a distribution kernel "
                     "decompressed is 40-70 MiB"),
    "unaccepted-table": ("unaccepted-memory bitmap", "drivers/firmware/efi/efi.c, reserve_unaccepted()"),
    "page-tables": ("direct-map page tables", "arch/x86/mm/init.c; assumed: 4 KiB per GiB mapped"),
    "memmap": ("memmap (struct page, 64 B per 4 KiB page of each present 128 MiB section)",
               "mm/sparse.c, sparse_init(); mm/sparse-vmemmap.c; sizeof(struct page) = 64 on x86-64 "
               "(include/linux/mm_types.h)"),
    "dentry-hash": ("dentry hash table", "fs/dcache.c, dcache_init_early(); mm/mm_init.c, alloc_large_system_hash()"),
    "inode-hash": ("inode hash table", "fs/inode.c, inode_init_early(); mm/mm_init.c, alloc_large_system_hash()"),
    "percpu": ("per-CPU areas (one unit per possible CPU)", "mm/percpu.c, pcpu_embed_first_chunk()"),
    "swiotlb": ("SWIOTLB bounce buffer (shared with the host)",
                "kernel/dma/swiotlb.c, swiotlb_init_remap(); sized in arch/x86/mm/mem_encrypt.c, "
                "mem_encrypt_setup_arch(): 6% of memory clamped to [64 MiB, 1 GiB], slabs rounded up to a power "
                "of two"),
}

NOT_RAM_SOURCE = ("QEMU hw/i386/pc_q35.c (the legacy VGA/BIOS hole) and edk2 OvmfPkg (the firmware's reserved "
                  "work area, ACPI tables, runtime services), typed reserved or ACPI in e820; assumed: their sizes, "
                  "as a real TDX guest's e820 shows them")
CRASH_KERNEL_SOURCE = "kernel/crash_reserve.c, reserve_crashkernel_generic(): only with crashkernel= (not given)"


@dataclass(frozen=True)
class MemoryBudget:
    """A booted guest's memory from its size down to what a workload can have."""

    vm_bytes: int
    #: VM size -> MemTotal: not RAM, then each reservation in RAM (crash kernel last).
    to_mem_total: tuple[Item, ...]
    mem_total: int
    #: MemTotal -> MemAvailable: allocated by the end of the boot, the watermark reserve.
    to_available: tuple[Item, ...]
    mem_available: int


def memory_budget(rec: BootRecord) -> MemoryBudget:
    """The budget of the booted guest ``rec``."""
    ram = rec.kernel.ram
    items = [Item("not RAM in the e820 map", rec.config.memory - ram.total(), NOT_RAM_SOURCE)]
    for key, (start, end) in rec.kernel.reservations.items():
        name, source = RESERVATION_SOURCES.get(key, (key, "assumed: a reservation of the model"))
        items.append(Item(name, sum(e - s for s, e in ram.intersection(start, end)), source))
    items.append(Item("crash kernel", 0, CRASH_KERNEL_SOURCE))
    mi = meminfo_fields(rec)
    total, free, available = (mi[k] * KiB for k in ("MemTotal", "MemFree", "MemAvailable"))
    after = (
        Item("allocated by the end of the boot (kernel, user space to a shell)", total - free,
             "mm/page_alloc.c; assumed: the shell's footprint, 256 MiB"),
        Item("reserve (each zone's high watermark and lowmem reserve)", free - available,
             "mm/page_alloc.c, calculate_totalreserve_pages(); mm/show_mem.c, si_mem_available()"),
    )
    return MemoryBudget(rec.config.memory, tuple(items), total, after, available)
