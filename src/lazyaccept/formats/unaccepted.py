"""The Linux unaccepted-memory EFI configuration table (``struct efi_unaccepted_memory``).

Reference: linux-kernel.md §1.1 (layout), §1.2 (GUID), §1.4 (geometry the EFI stub picks).

Layout (24-byte header, then the bitmap)::

    u32 version (= 1) | u32 unit_size | u64 phys_base | u64 size (bitmap length in BYTES) | bitmap[size]

Bit ``i`` set means ``[phys_base + i*unit_size, phys_base + (i+1)*unit_size)`` is unaccepted.
The bitmap is an array of little-endian ``unsigned long`` words with bit ``i`` in word ``i // 64``
at position ``i % 64``; byte for byte that is bit ``i % 8`` of byte ``i // 8``, i.e. numpy's
``packbits(bitorder="little")``.

Trailing bytes after ``24 + size`` are allowed and ignored: the stub allocates the table with
``allocate_pool``, so a dump of the pool allocation may run past the bitmap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..base.errors import FormatError
from ..base.ranges import true_runs
from ..base.units import UNIT_SIZE, align_down, align_up
from .efi_memmap import EfiMemoryDescriptor, MemoryType
from .unaccepted_bitmap import HEADER, HEADER_SIZE, TABLE_VERSION, check_geometry, parse_header

__all__ = ["HEADER_SIZE", "TABLE_VERSION", "UNACCEPTED_TABLE_GUID", "UnacceptedTable", "parse_unaccepted_table",
           "build_unaccepted_table", "stub_geometry", "new_table"]

#: LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID (include/linux/efi.h).
UNACCEPTED_TABLE_GUID = uuid.UUID("d5d1de3c-105c-44f9-9ea9-bcef98120031")


@dataclass(eq=False)
class UnacceptedTable:
    """A decoded table; ``bits`` is a 1-D bool array of ``size * 8`` entries, one per unit."""

    version: int
    unit_size: int
    phys_base: int
    bits: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        self.bits = np.asarray(self.bits, dtype=bool).reshape(-1)
        if self.bits.size % 8:
            raise FormatError(f"bitmap has {self.bits.size} bits, not a whole number of bytes")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnacceptedTable):
            return NotImplemented
        mine = (self.version, self.unit_size, self.phys_base)
        theirs = (other.version, other.unit_size, other.phys_base)
        return mine == theirs and np.array_equal(self.bits, other.bits)

    def __repr__(self) -> str:
        return (
            f"UnacceptedTable(version={self.version}, unit_size={self.unit_size:#x}, "
            f"phys_base={self.phys_base:#x}, size={self.size}, set_bits={int(np.count_nonzero(self.bits))})"
        )

    @property
    def size(self) -> int:
        """Bitmap length in bytes (the header's ``size`` field)."""
        return self.bits.size // 8

    @property
    def max_addr(self) -> int:
        """First address the bitmap does not describe; everything from here up counts as accepted."""
        return self.phys_base + self.size * 8 * self.unit_size

    def unit_index(self, addr: int) -> int:
        """Bit number of the unit that holds ``addr`` (which must lie in ``[phys_base, max_addr)``)."""
        if not self.phys_base <= addr < self.max_addr:
            raise ValueError(
                f"address {addr:#x} is outside the bitmap [{self.phys_base:#x}, {self.max_addr:#x})"
            )
        return (addr - self.phys_base) // self.unit_size

    def unaccepted_ranges(self) -> list[tuple[int, int]]:
        """Maximal runs of set bits as ``[start, end)`` address ranges, lowest first."""
        base, unit = self.phys_base, self.unit_size
        return [(base + s * unit, base + e * unit) for s, e in true_runs(self.bits)]

    def unaccepted_bytes(self) -> int:
        """Bytes still marked unaccepted."""
        return int(np.count_nonzero(self.bits)) * self.unit_size


def parse_unaccepted_table(data: bytes) -> UnacceptedTable:
    """Decode a table (header + bitmap); bytes after the bitmap are ignored."""
    data = bytes(data)
    h = parse_header(data)
    raw = np.frombuffer(data, dtype=np.uint8, count=h.size, offset=HEADER_SIZE)
    bits = np.unpackbits(raw, bitorder="little").astype(bool)
    return UnacceptedTable(h.version, h.unit_size, h.phys_base, bits)


def build_unaccepted_table(t: UnacceptedTable) -> bytes:
    """Encode a table: header, then exactly ``t.size`` bytes of bitmap."""
    check_geometry(t.version, t.unit_size, t.phys_base, t.size)
    bitmap = np.packbits(np.asarray(t.bits, dtype=bool), bitorder="little")
    return HEADER.pack(t.version, t.unit_size, t.phys_base, t.size) + bitmap.tobytes()


def stub_geometry(
    descriptors: Iterable[EfiMemoryDescriptor], unit_size: int = UNIT_SIZE
) -> tuple[int, int] | None:
    """``(phys_base, size_bytes)`` exactly as the EFI stub's allocate_unaccepted_bitmap() picks them.

    Over the type-15 descriptors: lo = lowest start, hi = highest end; phys_base = lo rounded down
    to a unit; size_bytes = ceil((hi rounded up to a unit - phys_base) / (unit * 8)).  ``None``
    when the map has no unaccepted memory (the stub then installs no table).  linux-kernel.md §1.4.
    """
    lo: int | None = None
    hi = 0
    for d in descriptors:
        if d.type != MemoryType.EfiUnacceptedMemoryType:
            continue
        lo = d.physical_start if lo is None else min(lo, d.physical_start)
        hi = max(hi, d.end)
    if lo is None:
        return None
    phys_base = align_down(lo, unit_size)
    end = align_up(hi, unit_size)
    size_bytes = -(-(end - phys_base) // (unit_size * 8))
    return phys_base, size_bytes


def new_table(phys_base: int, size_bytes: int, unit_size: int = UNIT_SIZE) -> UnacceptedTable:
    """A version-1 table with every bit clear, as the stub creates it before setup_e820()."""
    check_geometry(TABLE_VERSION, unit_size, phys_base, size_bytes)
    return UnacceptedTable(TABLE_VERSION, unit_size, phys_base, np.zeros(size_bytes * 8, dtype=bool))
