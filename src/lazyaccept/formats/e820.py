"""e820 tables: type codes, the binary ``struct boot_e820_entry``, the EFI-stub conversion
from an EFI memory map, and the ``BIOS-e820:`` dmesg line.

References: linux-kernel.md §2.3; Linux ``arch/x86/include/asm/e820/types.h``,
``arch/x86/kernel/e820.c`` (``e820_print_type``, ``e820__print_table``) and
``drivers/firmware/efi/libstub/x86-stub.c`` (``setup_e820``).

Binary layout of one entry (packed, 20 bytes): ``u64 addr | u64 size | u32 type``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..base.errors import FormatError
from .efi_memmap import EFI_MEMORY_SP, EfiMemoryDescriptor, MemoryType

E820_TYPE_RAM = 1
E820_TYPE_RESERVED = 2
E820_TYPE_ACPI = 3
E820_TYPE_NVS = 4
E820_TYPE_UNUSABLE = 5
E820_TYPE_PMEM = 7
#: Legacy persistent memory (pre-ACPI 6 NVDIMMs).
E820_TYPE_PRAM = 12
#: EFI_MEMORY_SP ("specific purpose") memory, when the kernel soft-reserves it.
E820_TYPE_SOFT_RESERVED = 0xEFFFFFFF

#: The one layout declaration: packed u64 addr, u64 size, u32 type.
_ENTRY = struct.Struct("<QQI")
E820_ENTRY_SIZE = _ENTRY.size  # 20

_U32 = 1 << 32
_U64 = 1 << 64

#: What e820_print_type() prints; PMEM and PRAM print "persistent (type N)", others "type N".
_PRINT_NAMES = {
    E820_TYPE_RAM: "usable",
    E820_TYPE_RESERVED: "reserved",
    E820_TYPE_SOFT_RESERVED: "soft reserved",
    E820_TYPE_ACPI: "ACPI data",
    E820_TYPE_NVS: "ACPI NVS",
    E820_TYPE_UNUSABLE: "unusable",
}


def e820_type_name(t: int) -> str:
    """The text Linux's e820_print_type() prints for a type (``7 -> "persistent (type 7)"``)."""
    if t in _PRINT_NAMES:
        return _PRINT_NAMES[t]
    if t in (E820_TYPE_PMEM, E820_TYPE_PRAM):
        return f"persistent (type {t})"
    return f"type {t}"


@dataclass(frozen=True)
class E820Entry:
    """One e820 range: ``size`` bytes at ``addr`` of e820 ``type``."""

    addr: int
    size: int
    type: int

    @property
    def end(self) -> int:
        """Exclusive end address."""
        return self.addr + self.size

    @property
    def type_name(self) -> str:
        return e820_type_name(self.type)


def _check_entry(e: E820Entry, where: str) -> None:
    if not 0 <= e.addr < _U64 or not 0 <= e.size < _U64:
        raise FormatError(f"{where}: addr {e.addr:#x} / size {e.size:#x} do not fit in 64 bits")
    if not 0 <= e.type < _U32:
        raise FormatError(f"{where}: type {e.type:#x} does not fit in 32 bits")
    if e.end > _U64:
        raise FormatError(f"{where}: [{e.addr:#x}, +{e.size:#x}) runs past the 64-bit address space")


#: Types a binary table may hold: Linux's E820_TYPE_* values and the ACPI "address range"
#: types up to 12 (6 disabled, 8-11 reserved by ACPI); anything else means the bytes are not
#: an e820 table.
KNOWN_TYPES = frozenset(range(1, 13)) | {E820_TYPE_SOFT_RESERVED}


def parse_e820_table(data: bytes) -> list[E820Entry]:
    """Decode an array of ``struct boot_e820_entry``.

    Zero-size entries are kept (Linux's sanitizer drops them later).  A type outside
    :data:`KNOWN_TYPES` or an entry wrapping past 2^64 is an error: such bytes are not an e820
    table (a file of random bytes is often a multiple of 20 bytes long).
    """
    data = bytes(data)
    if len(data) % E820_ENTRY_SIZE:
        raise FormatError(
            f"e820 table of {len(data)} bytes is not a whole number of {E820_ENTRY_SIZE}-byte entries"
        )
    entries = []
    for i, (addr, size, etype) in enumerate(_ENTRY.iter_unpack(data)):
        e = E820Entry(addr, size, etype)
        _check_entry(e, f"e820 entry {i}")
        if etype not in KNOWN_TYPES:
            raise FormatError(f"e820 entry {i}: unknown type {etype}: not an e820 table")
        entries.append(e)
    return entries


def build_e820_table(entries: Iterable[E820Entry]) -> bytes:
    """Encode entries as packed ``struct boot_e820_entry`` records."""
    out = []
    for i, e in enumerate(entries):
        _check_entry(e, f"e820 entry {i}")
        out.append(_ENTRY.pack(e.addr, e.size, e.type))
    return b"".join(out)


def efi_type_to_e820(
    desc_type: int,
    unaccepted_supported: bool = True,
    *,
    attribute: int = 0,
    soft_reserve: bool = False,
) -> int | None:
    """The e820 type setup_e820() gives an EFI descriptor, or ``None`` when it skips it.

    ``unaccepted_supported`` is CONFIG_UNACCEPTED_MEMORY: without it type-15 memory is skipped
    (lost to the OS).  ``soft_reserve`` is efi_soft_reserve_enabled() (CONFIG_EFI_SOFT_RESERVE
    and no ``efi=nosoftreserve``); only then does EFI_MEMORY_SP in ``attribute`` turn loader,
    boot-services and conventional memory into soft-reserved.  Off by default here: the model's
    guests have no specific-purpose memory.
    """
    match desc_type:
        case (
            MemoryType.EfiReservedMemoryType
            | MemoryType.EfiRuntimeServicesCode
            | MemoryType.EfiRuntimeServicesData
            | MemoryType.EfiMemoryMappedIO
            | MemoryType.EfiMemoryMappedIOPortSpace
            | MemoryType.EfiPalCode
        ):
            return E820_TYPE_RESERVED
        case MemoryType.EfiUnusableMemory:
            return E820_TYPE_UNUSABLE
        case MemoryType.EfiACPIReclaimMemory:
            return E820_TYPE_ACPI
        case (
            MemoryType.EfiLoaderCode
            | MemoryType.EfiLoaderData
            | MemoryType.EfiBootServicesCode
            | MemoryType.EfiBootServicesData
            | MemoryType.EfiConventionalMemory
        ):
            if soft_reserve and attribute & EFI_MEMORY_SP:
                return E820_TYPE_SOFT_RESERVED
            return E820_TYPE_RAM
        case MemoryType.EfiACPIMemoryNVS:
            return E820_TYPE_NVS
        case MemoryType.EfiPersistentMemory:
            return E820_TYPE_PMEM
        case MemoryType.EfiUnacceptedMemoryType:
            # Recorded in the bitmap by process_unaccepted_memory(); to e820 it is plain RAM.
            return E820_TYPE_RAM if unaccepted_supported else None
        case _:
            # OEM, OS-loader and unknown types: setup_e820() skips them.
            return None


def efi_to_e820(
    descs: Iterable[EfiMemoryDescriptor],
    unaccepted_supported: bool = True,
    *,
    soft_reserve: bool = False,
) -> list[E820Entry]:
    """Convert an EFI memory map to e820 the way setup_e820() does.

    Descriptors are taken in map order (no sorting).  A descriptor is merged into the entry
    emitted just before it when both have the same e820 type and it starts exactly where that
    entry ends; skipped descriptors do not break the chain, since ``prev`` stays unchanged.
    """
    entries: list[E820Entry] = []
    for d in descs:
        etype = efi_type_to_e820(
            d.type, unaccepted_supported, attribute=d.attribute, soft_reserve=soft_reserve
        )
        if etype is None:
            continue
        # Merge adjacent mappings.
        if entries and entries[-1].type == etype and entries[-1].end == d.physical_start:
            prev = entries[-1]
            entries[-1] = E820Entry(prev.addr, prev.size + d.size, etype)
            continue
        entries.append(E820Entry(d.physical_start, d.size, etype))
    return entries


def format_e820_line(entry: E820Entry, who: str = "BIOS-e820") -> str:
    """The dmesg text of e820__print_table(): ``BIOS-e820: [mem 0x...-0x...] usable``.

    The end printed is inclusive (``addr + size - 1``, wrapping as the kernel's u64 does) and
    both addresses are ``%#018Lx``, which the kernel prints as ``0x`` plus 16 digits even for 0.
    """
    return format_e820_range(entry.addr, entry.addr + entry.size, e820_type_name(entry.type), who)


def format_e820_range(start: int, end: int, name: str, who: str = "BIOS-e820") -> str:
    """One ``BIOS-e820:`` line for ``[start, end)`` of the type printed as ``name``."""
    last = (end - 1) % _U64
    return f"{who}: [mem 0x{start:016x}-0x{last:016x}] {name}"
