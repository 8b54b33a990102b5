"""The header of the Linux unaccepted-memory table, and its bitmap read as runs, without numpy.

The layout is described in :mod:`lazyaccept.formats.unaccepted` (which builds and decodes whole
tables for the model); this module holds the one declaration of the header and reads a table's
bitmap in pieces, so that reading a table costs time linear in its size and memory bounded by
one piece: ``inspect`` counts the units and the runs of a bitmap of any size and lists its runs
one at a time.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..base.errors import FormatError
from ..base.units import PAGE_SIZE

#: The one layout declaration of the header: version, unit_size, phys_base, size.
HEADER = struct.Struct("<IIQQ")
HEADER_SIZE = HEADER.size  # 24
#: The only version mainline Linux accepts (stub, decompressor and efi.c all check == 1).
TABLE_VERSION = 1
#: Bytes of bitmap read at a time.
PIECE_BYTES = 1 << 16

_U32 = 1 << 32
_U64 = 1 << 64
_ONES = re.compile("1+")


def check_geometry(version: int, unit_size: int, phys_base: int, size: int) -> None:
    """Header rules shared by the parsers and the builder."""
    if version != TABLE_VERSION:
        raise FormatError(f"unaccepted table version is {version}, only version {TABLE_VERSION} exists")
    if not 0 < unit_size < _U32 or unit_size & (unit_size - 1):
        raise FormatError(f"unit_size {unit_size:#x} is not a non-zero power of two that fits in 32 bits")
    if unit_size % PAGE_SIZE:
        raise FormatError(f"unit_size {unit_size:#x} is not a multiple of 4 KiB")
    if not 0 <= phys_base < _U64:
        raise FormatError(f"phys_base {phys_base:#x} does not fit in 64 bits")
    if phys_base % unit_size:
        raise FormatError(f"phys_base {phys_base:#x} is not aligned to unit_size {unit_size:#x}")
    if not 0 <= size < _U64:
        raise FormatError(f"bitmap size {size:#x} does not fit in 64 bits")
    if phys_base + size * 8 * unit_size > _U64:
        raise FormatError(
            f"bitmap of {size} bytes at phys_base {phys_base:#x} would describe memory past 2^64"
        )


@dataclass(frozen=True)
class TableHeader:
    """A checked header; ``size`` is the bitmap's length in bytes."""

    version: int
    unit_size: int
    phys_base: int
    size: int

    @property
    def max_addr(self) -> int:
        """First address the bitmap does not describe."""
        return self.phys_base + self.size * 8 * self.unit_size


def parse_header(data: bytes | memoryview) -> TableHeader:
    """The header of a table, checked, and checked against the bytes that follow it."""
    if len(data) < HEADER_SIZE:
        raise FormatError(
            f"unaccepted table is {len(data)} bytes, shorter than its {HEADER_SIZE}-byte header"
        )
    version, unit_size, phys_base, size = HEADER.unpack_from(data, 0)
    if version != TABLE_VERSION:
        raise FormatError(f"unaccepted table version is {version}, only version {TABLE_VERSION} exists")
    # Check the length before the geometry: a huge size is more likely truncation than nonsense.
    if size > len(data) - HEADER_SIZE:
        raise FormatError(
            f"bitmap size field says {size} bytes but only {len(data) - HEADER_SIZE} follow the header"
        )
    check_geometry(version, unit_size, phys_base, size)
    return TableHeader(version, unit_size, phys_base, size)


def _pieces(bitmap: bytes | memoryview) -> Iterator[tuple[int, int, int]]:
    """``(first bit, number of bits, the bits as an integer, bit i = unit first + i)`` per piece."""
    view = memoryview(bitmap)
    for off in range(0, len(view), PIECE_BYTES):
        piece = view[off : off + PIECE_BYTES]
        yield off * 8, len(piece) * 8, int.from_bytes(piece, "little")


def count_bits_and_runs(bitmap: bytes | memoryview) -> tuple[int, int]:
    """Set bits and maximal runs of set bits in a bitmap (bit ``i`` is bit ``i % 8`` of byte ``i // 8``)."""
    bits = runs = 0
    carry = 0  # the last bit of the piece before
    for _, n, x in _pieces(bitmap):
        bits += x.bit_count()
        runs += (x & ~((x << 1) | carry)).bit_count()  # set bits whose lower neighbour is clear
        carry = x >> (n - 1)
    return bits, runs


def bitmap_runs(bitmap: bytes | memoryview) -> Iterator[tuple[int, int]]:
    """Maximal runs of set bits as ``[first, end)`` bit numbers, lowest first, one at a time."""
    open_start: int | None = None  # a run reaching the end of the piece before
    total = 0
    for first, n, x in _pieces(bitmap):
        total = first + n
        if x == 0:
            if open_start is not None:
                yield open_start, first
                open_start = None
            continue
        if x == (1 << n) - 1:
            if open_start is None:
                open_start = first
            continue
        for m in _ONES.finditer(format(x, f"0{n}b")[::-1]):
            a, b = m.span()
            start = first + a
            if open_start is not None:
                if a == 0:
                    start = open_start
                else:
                    yield open_start, first
                open_start = None
            if b == n:
                open_start = start
            else:
                yield start, first + b
    if open_start is not None:
        yield open_start, total
