"""UEFI memory map: ``EFI_MEMORY_DESCRIPTOR`` arrays, memory types and attribute bits.

Reference: firmware-and-platform.md §1.1-§1.3 (UEFI 2.9+ §7.2, EDK2 ``CoreGetMemoryMap``).

Layout of one descriptor on x86-64 (40 bytes)::

    u32 Type | 4 bytes padding | u64 PhysicalStart | u64 VirtualStart | u64 NumberOfPages | u64 Attribute

A map is an array of descriptors walked with the *reported* descriptor size, which is 48 on
EDK2 (so that callers cannot get away with ``sizeof``).  Decision on the bytes that are not
fields (the 4 bytes of padding after ``Type`` and the ``stride - 40`` bytes at the end of each
stride): the parser ignores them and the builder writes zeros.  So ``build -> parse -> build``
is the identity, while ``parse -> build`` of a foreign map normalises those bytes to zero.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ..base.errors import FormatError
from ..base.units import PAGE_SIZE

#: The one layout declaration: Type, padding, PhysicalStart, VirtualStart, NumberOfPages, Attribute.
_DESC = struct.Struct("<I4xQQQQ")
DESCRIPTOR_SIZE_MIN = _DESC.size  # 40 == sizeof(EFI_MEMORY_DESCRIPTOR)
#: What EDK2's GetMemoryMap reports: 40 + 8 - (40 % 8), deliberately != sizeof.
DESCRIPTOR_SIZE_EDK2 = 48

_U32 = 1 << 32
_U64 = 1 << 64
_PAGE_SHIFT = 12


class MemoryType(IntEnum):
    """``EFI_MEMORY_TYPE`` values 0..15 with their UEFI names."""

    EfiReservedMemoryType = 0
    EfiLoaderCode = 1
    EfiLoaderData = 2
    EfiBootServicesCode = 3
    EfiBootServicesData = 4
    EfiRuntimeServicesCode = 5
    EfiRuntimeServicesData = 6
    EfiConventionalMemory = 7
    EfiUnusableMemory = 8
    EfiACPIReclaimMemory = 9
    EfiACPIMemoryNVS = 10
    EfiMemoryMappedIO = 11
    EfiMemoryMappedIOPortSpace = 12
    EfiPalCode = 13
    EfiPersistentMemory = 14
    EfiUnacceptedMemoryType = 15


#: First value of the OEM range (0x70000000..0x7FFFFFFF) and of the OS-loader range (0x80000000..).
OEM_TYPE_FIRST = 0x70000000
OS_LOADER_TYPE_FIRST = 0x80000000

# -- attribute bits (firmware-and-platform.md §1.3) ------------------------------------------
EFI_MEMORY_UC = 0x1
EFI_MEMORY_WC = 0x2
EFI_MEMORY_WT = 0x4
EFI_MEMORY_WB = 0x8
EFI_MEMORY_UCE = 0x10
EFI_MEMORY_WP = 0x1000
EFI_MEMORY_RP = 0x2000
EFI_MEMORY_XP = 0x4000
EFI_MEMORY_NV = 0x8000
EFI_MEMORY_MORE_RELIABLE = 0x10000
EFI_MEMORY_RO = 0x20000
EFI_MEMORY_SP = 0x40000
EFI_MEMORY_CPU_CRYPTO = 0x80000
EFI_MEMORY_HOT_PLUGGABLE = 0x100000
EFI_MEMORY_ISA_MASK = 0x0FFFF00000000000
EFI_MEMORY_ISA_VALID = 1 << 62
EFI_MEMORY_RUNTIME = 1 << 63

#: Single attribute bits in ascending order, named without the ``EFI_MEMORY_`` prefix.
_ATTRIBUTE_BITS: tuple[tuple[int, str], ...] = (
    (EFI_MEMORY_UC, "UC"),
    (EFI_MEMORY_WC, "WC"),
    (EFI_MEMORY_WT, "WT"),
    (EFI_MEMORY_WB, "WB"),
    (EFI_MEMORY_UCE, "UCE"),
    (EFI_MEMORY_WP, "WP"),
    (EFI_MEMORY_RP, "RP"),
    (EFI_MEMORY_XP, "XP"),
    (EFI_MEMORY_NV, "NV"),
    (EFI_MEMORY_MORE_RELIABLE, "MORE_RELIABLE"),
    (EFI_MEMORY_RO, "RO"),
    (EFI_MEMORY_SP, "SP"),
    (EFI_MEMORY_CPU_CRYPTO, "CPU_CRYPTO"),
    (EFI_MEMORY_HOT_PLUGGABLE, "HOT_PLUGGABLE"),
    (EFI_MEMORY_ISA_VALID, "ISA_VALID"),
    (EFI_MEMORY_RUNTIME, "RUNTIME"),
)


def attribute_names(attr: int) -> list[str]:
    """Names of the bits set in ``attr``, lowest bit first (``0x8000000000000008 -> ["WB", "RUNTIME"]``).

    ISA-specific bits appear as one ``"ISA_MASK(0x...)"`` item; bits no spec defines appear as
    one ``"0x..."`` item, so that nothing set is silently dropped.
    """
    names = [name for bit, name in _ATTRIBUTE_BITS if attr & bit]
    if attr & EFI_MEMORY_ISA_MASK:
        names.append(f"ISA_MASK({attr & EFI_MEMORY_ISA_MASK:#x})")
    known = EFI_MEMORY_ISA_MASK
    for bit, _ in _ATTRIBUTE_BITS:
        known |= bit
    if attr & ~known:
        names.append(f"{attr & ~known:#x}")
    return names


def is_legal_type(t: int) -> bool:
    """True for the UEFI types 0..15 and the OEM / OS-loader ranges; 16..0x6FFFFFFF are reserved."""
    return 0 <= t < len(MemoryType) or OEM_TYPE_FIRST <= t < _U32


def memory_type_name(t: int) -> str:
    """UEFI name of a memory type, or a description of the OEM / OS-loader / reserved value."""
    if 0 <= t < len(MemoryType):
        return MemoryType(t).name
    if OEM_TYPE_FIRST <= t < OS_LOADER_TYPE_FIRST:
        return f"OEM({t:#010x})"
    if OS_LOADER_TYPE_FIRST <= t < _U32:
        return f"OSLoader({t:#010x})"
    return f"Reserved({t:#x})"


@dataclass(frozen=True)
class EfiMemoryDescriptor:
    """One ``EFI_MEMORY_DESCRIPTOR``; ``type`` stays a raw int so OEM / OS-loader types survive."""

    type: int
    physical_start: int
    number_of_pages: int
    attribute: int = 0
    virtual_start: int = 0

    @property
    def size(self) -> int:
        """Length in bytes (NumberOfPages is always in 4 KiB pages)."""
        return self.number_of_pages << _PAGE_SHIFT

    @property
    def end(self) -> int:
        """Exclusive end address."""
        return self.physical_start + self.size

    @property
    def type_name(self) -> str:
        return memory_type_name(self.type)


def _check_descriptor(d: EfiMemoryDescriptor, where: str) -> None:
    """Field-level rules for one descriptor; raises FormatError naming ``where``."""
    if not is_legal_type(d.type):
        raise FormatError(f"{where}: memory type {d.type:#x} is in the reserved range 16..0x6fffffff")
    for name, value, limit in (
        ("PhysicalStart", d.physical_start, _U64),
        ("VirtualStart", d.virtual_start, _U64),
        ("NumberOfPages", d.number_of_pages, _U64),
        ("Attribute", d.attribute, _U64),
    ):
        if not 0 <= value < limit:
            raise FormatError(f"{where}: {name} {value:#x} does not fit in 64 bits")
    if d.number_of_pages == 0:
        raise FormatError(f"{where}: NumberOfPages is 0")
    if d.physical_start % PAGE_SIZE:
        raise FormatError(f"{where}: PhysicalStart {d.physical_start:#x} is not 4 KiB aligned")
    if d.end > _U64:
        raise FormatError(
            f"{where}: {d.physical_start:#x} + {d.number_of_pages:#x} pages runs past the 64-bit "
            "address space"
        )


def validate_descriptors(descs: Iterable[EfiMemoryDescriptor]) -> None:
    """Check every descriptor and that no two overlap (order in the map does not matter)."""
    items = list(descs)
    for i, d in enumerate(items):
        _check_descriptor(d, f"descriptor {i}")
    # Sorting by start makes an overlap show up between neighbours.
    order = sorted(range(len(items)), key=lambda i: items[i].physical_start)
    for a, b in zip(order, order[1:], strict=False):
        if items[b].physical_start < items[a].end:
            raise FormatError(
                f"descriptors {a} [{items[a].physical_start:#x}, {items[a].end:#x}) and "
                f"{b} [{items[b].physical_start:#x}, {items[b].end:#x}) overlap"
            )


def _parse_with_stride(data: bytes, stride: int) -> list[EfiMemoryDescriptor]:
    if stride < DESCRIPTOR_SIZE_MIN:
        raise FormatError(
            f"descriptor size {stride} is smaller than sizeof(EFI_MEMORY_DESCRIPTOR) = {DESCRIPTOR_SIZE_MIN}"
        )
    if len(data) % stride:
        raise FormatError(
            f"memory map of {len(data)} bytes is not a whole number of {stride}-byte descriptors "
            f"(truncated or wrong descriptor size)"
        )
    descs = []
    for off in range(0, len(data), stride):
        t, start, virt, pages, attr = _DESC.unpack_from(data, off)
        descs.append(EfiMemoryDescriptor(t, start, pages, attr, virt))
    validate_descriptors(descs)
    return descs


def parse_memory_map(data: bytes, descriptor_size: int | None = None) -> list[EfiMemoryDescriptor]:
    """Parse a raw memory map.

    ``descriptor_size`` is the stride GetMemoryMap reported.  ``None`` detects it: 48 (EDK2) is
    tried first, then 40, and the first stride under which every descriptor is valid wins.
    """
    data = bytes(data)
    if descriptor_size is not None:
        return _parse_with_stride(data, descriptor_size)
    problems = []
    for stride in (DESCRIPTOR_SIZE_EDK2, DESCRIPTOR_SIZE_MIN):
        try:
            return _parse_with_stride(data, stride)
        except FormatError as exc:
            problems.append(f"as {stride}-byte descriptors: {exc}")
    raise FormatError("not an EFI memory map; " + "; ".join(problems))


def build_memory_map(
    descs: Iterable[EfiMemoryDescriptor], descriptor_size: int = DESCRIPTOR_SIZE_EDK2
) -> bytes:
    """Encode descriptors with the given stride; padding and the stride's tail are zero."""
    items = list(descs)
    if descriptor_size < DESCRIPTOR_SIZE_MIN:
        raise FormatError(
            f"descriptor size {descriptor_size} is smaller than sizeof(EFI_MEMORY_DESCRIPTOR) = "
            f"{DESCRIPTOR_SIZE_MIN}"
        )
    # Refuse what the parser would refuse, so that build -> parse always succeeds.
    validate_descriptors(items)
    out = bytearray(descriptor_size * len(items))
    for i, d in enumerate(items):
        _DESC.pack_into(out, i * descriptor_size, d.type, d.physical_start, d.virtual_start,
                        d.number_of_pages, d.attribute)
    return bytes(out)
