"""Memory hot-add in a confidential guest (``--workload hotplug:SIZE@T``): ACPI DIMM hot-add, then
``add_memory()`` and ``online_pages()`` (mm/memory_hotplug.c).

Where the memory lands: QEMU's device-memory region starts at the 1 GiB-aligned end of RAM above
4 GiB (hw/i386/pc.c), and DIMMs follow each other there (each aligned to Linux's 128 MiB memory
block).  The host backs none of it as private memory: on TDX its Secure-EPT entries are FREE until
the guest accepts (TDG.MEM.PAGE.ACCEPT, the host AUGs on the fault), on SEV-SNP its RMP entries are
not validated.

What released kernels do (every release up to 7.0): the unaccepted bitmap is sized once, by the
EFI stub, from the boot memory map, and ``online_pages()`` -> ``generic_online_page()`` ->
``__free_pages_core()`` asks ``page_contains_unaccepted()``, which says no outside the bitmap, so
the new memory goes to the buddy lists as if accepted.  Onlining itself touches only struct pages
(in memory already accepted), so nothing fails then; the first allocation that uses the memory is
a private access to unaccepted memory: an EPT violation on a FREE/PENDING page that kills a TD, or
a #VC PAGE_NOT_VALIDATED on SEV-SNP.  The model stops the guest at the hot-add with that reason
(exit 3): from then on every page the hot-add freed is one the guest cannot use.

What the published proposals do (``hotplug_in_bitmap``, set by guest patches): the bitmap covers
the hot-plug window from boot, the hot-added range is recorded there as unaccepted when it is
onlined, and the page allocator parks it in 4 MiB chunks and accepts it on demand like boot memory
(see guest/patches.py for which proposal says what).
"""

from __future__ import annotations

import numpy as np

from ..base.choices import Tee
from ..base.errors import ConfigError, SafetyViolation
from ..base.units import GiB, MiB, align_up, format_size
from .page_alloc import PageAllocator, Zone
from .unaccepted import UnacceptedMemory

#: Linux's memory block on x86-64 (memory_block_size_bytes(): 128 MiB below 64 GiB of RAM).
MEMORY_BLOCK = 128 * MiB
#: QEMU aligns the device-memory region to 1 GiB (hw/i386/pc.c).
DEVICE_MEMORY_ALIGN = 1 * GiB
#: Start of RAM above 4 GiB on q35.
ABOVE_4G = 4 * GiB


class DeviceMemory:
    """QEMU's device-memory region of one guest: where the next DIMM lands."""

    def __init__(self, ram_end: int) -> None:
        self.next = max(ABOVE_4G, align_up(ram_end, DEVICE_MEMORY_ALIGN))
        self.added: list[tuple[int, int]] = []

    def place(self, size: int) -> tuple[int, int]:
        start = self.next
        self.next = start + size
        self.added.append((start, start + size))
        return start, start + size


def _normal_zone(alloc: PageAllocator, start: int, end: int) -> Zone:
    """ZONE_NORMAL, grown to span the new memory (resize_zone_range()); created if the guest had
    no memory above 4 GiB at boot."""
    zone = next((z for z in alloc.zones if z.name == "Normal"), None)
    if zone is None:
        zone = Zone("Normal", start, end)
        alloc.zones.append(zone)
    zone.end = max(zone.end, end)
    return zone


def _record_in_bitmap(mem: UnacceptedMemory, start: int, end: int) -> None:
    """The proposals' bitmap covers the hot-plug window from boot: grow the model's bitmap to
    reach ``end`` (as if sized so at boot) and mark the new units unaccepted."""
    table = mem.table
    if table is None:
        raise ConfigError("hot-added memory cannot be recorded: this guest has no unaccepted table")
    unit = table.unit_size
    need = -(-(end - table.phys_base) // unit)
    need = -(-need // 8) * 8
    if need > table.bits.size:
        table.bits = np.concatenate([table.bits, np.zeros(need - table.bits.size, dtype=bool)])
    table.bits[(start - table.phys_base) // unit:(end - table.phys_base) // unit] = True


def hot_add(alloc: PageAllocator, window: DeviceMemory, size: int, tee: Tee, *, actor: str = "online_pages",
            vcpu: int = 0) -> tuple[int, int]:
    """Hot-add and online ``size`` bytes at the next place of ``window``; returns the range.
    Raises the guest's failure when the kernel's rules leave the memory out of the bitmap."""
    check_size(size)
    start, end = window.place(size)
    if tee.value not in alloc.rules.hotplug_in_bitmap:
        raise SafetyViolation(
            "hotplug-unaccepted", actor, vcpu, start,
            f"{format_size(size)} hot-added at [{start:#x}, {end:#x}) is not in the unaccepted bitmap, which "
            "the EFI stub sized at boot: online_pages() freed it to the buddy lists as accepted memory, and "
            + ("the first allocation of it is a private access to a FREE Secure-EPT page, fatal to the TD"
               if tee is Tee.TDX else "the first allocation of it takes a #VC PAGE_NOT_VALIDATED, fatal to the guest"),
        )
    _record_in_bitmap(alloc.mem, start, end)
    _normal_zone(alloc, start, end)
    alloc.ram.add(start, end)
    alloc.free_range(start, end, actor=actor, vcpu=vcpu)
    return start, end


def check_size(size: int) -> None:
    """A DIMM is a whole number of Linux memory blocks (what add_memory() can online)."""
    if size <= 0 or size % MEMORY_BLOCK or size > 64 << 40:
        raise ConfigError(f"hot-added memory must be a whole number of 128 MiB memory blocks up to 64 TiB, "
                          f"not {format_size(size)}")
