"""The Linux EFI stub's part (drivers/firmware/efi/libstub/unaccepted_memory.c and x86-stub.c;
linux-kernel.md §2).

Before ExitBootServices the stub sizes the unaccepted bitmap from the type-15 descriptors and
installs it as an EFI configuration table (or reuses one firmware installed); after it, it walks
the final memory map to build e820, turning unaccepted memory into RAM and recording whole
units in the bitmap while accepting unaligned heads and tails at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base.choices import AcceptRoutine
from ..base.errors import GuestFailure
from ..base.record import AcceptStats, Recorder
from ..base.units import PAGE_SIZE, GiB, align_down, align_up
from ..formats.e820 import E820Entry, efi_to_e820
from ..formats.efi_memmap import EfiMemoryDescriptor, MemoryType
from ..formats.unaccepted import HEADER_SIZE, UnacceptedTable, new_table, stub_geometry
from ..platform.base import Platform

#: EDK2 pool allocations are not page aligned; the 2026 bug report shows the table at a page
#: offset of 0x30, which is what this model reproduces.
POOL_OFFSET = 0x30


class StubError(GuestFailure):
    """The EFI stub refused to boot (e.g. an installed table of an unknown version)."""

    kind = "boot-refused"
    rule = "efi-stub"


@dataclass
class StubResult:
    memory_map: list[EfiMemoryDescriptor]
    e820: list[E820Entry]
    table: UnacceptedTable | None
    table_addr: int | None
    accepted: AcceptStats = field(default_factory=AcceptStats)
    accepted_bytes: int = 0


def allocate_unaccepted_bitmap(
    memmap: list[EfiMemoryDescriptor],
    installed: UnacceptedTable | None,
    table_type: int = MemoryType.EfiACPIReclaimMemory,
) -> tuple[list[EfiMemoryDescriptor], UnacceptedTable | None, int | None]:
    """``allocate_unaccepted_bitmap()``: reuse a table firmware installed (version must be 1) or
    allocate one of the stub's geometry with allocate_pool (EfiACPIReclaimMemory since v6.6,
    EfiLoaderData before)."""
    if installed is not None:
        if installed.version != 1:
            raise StubError(f"Unknown version of unaccepted memory table: {installed.version}")
        return memmap, installed, None
    geometry = stub_geometry(memmap)
    if geometry is None:
        return memmap, None, None
    phys_base, size_bytes = geometry
    nbytes = POOL_OFFSET + HEADER_SIZE + size_bytes
    npages = -(-nbytes // PAGE_SIZE)
    # allocate_pool takes conventional memory from the top below 4 GiB, as EDK2 does by default.
    out = list(memmap)
    for i in sorted(range(len(out)), key=lambda k: -out[k].physical_start):
        d = out[i]
        if d.type == MemoryType.EfiConventionalMemory and d.end <= 4 * GiB and d.number_of_pages >= npages:
            top = d.end - npages * PAGE_SIZE
            pieces = []
            if d.number_of_pages > npages:
                pieces.append(EfiMemoryDescriptor(d.type, d.physical_start, d.number_of_pages - npages, d.attribute))
            pieces.append(EfiMemoryDescriptor(table_type, top, npages, d.attribute))
            out[i : i + 1] = pieces
            return out, new_table(phys_base, size_bytes), top + POOL_OFFSET
    raise StubError("no conventional memory below 4 GiB for the unaccepted memory table")


class EfiStub:
    """Runs the stub's unaccepted-memory work on the boot vCPU."""

    def __init__(self, platform: Platform, routine: AcceptRoutine, recorder: Recorder,
                 table_type: int = MemoryType.EfiACPIReclaimMemory) -> None:
        self.table_type = table_type
        self.platform = platform
        self.routine = routine
        self.rec = recorder
        self.stats = AcceptStats()

    def arch_accept(self, start: int, end: int, reason: str) -> None:
        """``arch_accept_memory()`` from the stub: no bitmap check, straight to the platform."""
        if start >= end:
            return
        stats = self.platform.accept(start, end, routine=self.routine, actor="efistub", vcpu=0)
        self.stats += stats
        self.rec.accept("efistub", 0, start, end, stats, reason)

    def process_unaccepted_memory(self, table: UnacceptedTable, start: int, end: int) -> None:
        """Record whole units of ``[start, end)`` in the bitmap; accept what cannot be recorded."""
        u = table.unit_size
        # Ranges shorter than two units are accepted whole: this guarantees that at least one
        # bit is set once head and tail are trimmed (simplicity over precision).
        if end - start < 2 * u:
            self.arch_accept(start, end, "small-range")
            return
        # Unaligned head and tail are accepted now, so a bit always means a whole unit.
        if start % u:
            self.arch_accept(start, align_up(start, u), "head")
            start = align_up(start, u)
        if end % u:
            self.arch_accept(align_down(end, u), end, "tail")
            end = align_down(end, u)
        # Memory below phys_base cannot be recorded (a firmware-installed table may start higher).
        if start < table.phys_base:
            self.arch_accept(start, min(table.phys_base, end), "below-bitmap")
            start = table.phys_base
        if end < table.phys_base:
            return
        start -= table.phys_base
        end -= table.phys_base
        limit = table.size * 8 * u
        # Nor can memory beyond the bitmap.
        if end > limit:
            self.arch_accept(table.phys_base + limit, table.phys_base + end, "beyond-bitmap")
            end = limit
        if start < end:
            table.bits[start // u : end // u] = True

    def run(self, memmap: list[EfiMemoryDescriptor], installed: UnacceptedTable | None = None) -> StubResult:
        memmap, table, table_addr = allocate_unaccepted_bitmap(memmap, installed, self.table_type)
        # ExitBootServices; then setup_e820() walks the final map, descriptor by descriptor.
        for d in sorted(memmap, key=lambda d: d.physical_start):
            if d.type == MemoryType.EfiUnacceptedMemoryType:
                if table is None:
                    raise StubError("unaccepted memory without a bitmap table")
                self.process_unaccepted_memory(table, d.physical_start, d.end)
        e820 = efi_to_e820(sorted(memmap, key=lambda d: d.physical_start))
        return StubResult(memmap, e820, table, table_addr, self.stats, self.stats.bytes_accepted)
