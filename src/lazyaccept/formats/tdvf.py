"""TDVF metadata in an OVMF/TDVF firmware image (Intel TDX).

Reference: firmware-and-platform.md §2.1; read in QEMU ``hw/i386/pc_sysfw_ovmf.c`` (GUIDed table
walk), ``hw/i386/tdvf.c`` + ``include/hw/i386/tdvf.h`` (descriptor checks, attribute bits),
``target/i386/kvm/tdx.c`` (what the host loads), and EDK2 ``OvmfPkg/ResetVector/Ia16/
ResetVectorVtf0.asm``, ``OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm`` and the TDVF
``ValidateTdxMetadata`` rules.

How the host finds the metadata (all offsets in the *file*, integers little-endian)::

    end - 0x30   footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d (16 bytes)
    end - 0x32   u16 length of the whole GUIDed table, footer length + GUID included
    below that  entries, walked backwards from the footer: each one *ends* with
                {u16 entry length (data + 18), 16-byte GUID}; its data sits just before.
                The entry e47a6535-984a-4798-865e-4685a7bf8ec2 holds a u32 counted from the
                END of the image: descriptor offset = image size - value.
    descriptor  "TDVF", u32 Length (= 16 + 32 * n), u32 Version (1), u32 n,
                then n sections of 32 bytes (``_SECTION`` below).

The section ``DataOffset`` counts from the start of the *whole* flash image.  Distributions
ship OVMF split in a CODE and a VARS file (Debian: ``OVMF_CODE.fd`` is the last 0x1e0000 bytes
of the 2 MiB ``OVMF.fd``; the first 0x20000 bytes are ``OVMF_VARS.fd``).  Since the GUIDed table
and the descriptor offset count from the end, a CODE-only file still parses; its raw data
offsets then run past the file by exactly the size of the missing VARS part.  The parser
accepts that, and only that: the file must be the tail of the flash, the descriptor must lie in
a BFV section's raw data, and every raw data range must be wholly inside the file or wholly
inside the missing head (``TdvfMetadata.image_base`` records the head's size).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from enum import IntEnum

from ..base.errors import FormatError
from ..base.units import PAGE_SIZE

__all__ = [
    "FOOTER_GUID",
    "TDX_METADATA_OFFSET_GUID",
    "TDX_METADATA_GUID",
    "ATTR_MR_EXTEND",
    "ATTR_PAGE_AUG",
    "TdvfSectionType",
    "TdvfSection",
    "TdvfMetadata",
    "OvmfTableEntry",
    "parse_ovmf_table",
    "parse_tdvf",
    "parse_tdvf_descriptor",
    "build_tdvf_descriptor",
    "build_tdvf_image",
    "tdvf_problems",
    "validate_tdvf",
    "host_added_ranges",
    "looks_like_ovmf",
]

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
#: GUID that OVMF places right before the descriptor (IntelTdxMetadata.asm ``TdxMetadataGuid``).
TDX_METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")

# -- layout declarations: used by the parser and the builders alike ---------------------------
#: Descriptor header: Signature, Length, Version, NumberOfSectionEntries.
_HEADER = struct.Struct("<4sIII")
#: Section: DataOffset, RawDataSize, MemoryAddress, MemoryDataSize, Type, Attributes.
_SECTION = struct.Struct("<IIQQII")
#: What ends every GUIDed-table entry (and the footer): u16 length, 16-byte GUID.
_ENTRY_TAIL = struct.Struct("<H16s")
_U32 = struct.Struct("<I")
_SIGNATURE = b"TDVF"
_VERSION = 1
#: The footer GUID starts this many bytes before the end of the image (QEMU: "48 bytes").
_FOOTER_FROM_END = 0x30

#: Attribute bit 0: the host measures the section into MRTD (TDH.MR.EXTEND).
ATTR_MR_EXTEND = 1 << 0
#: Attribute bit 1 (newer spec, named in QEMU's tdvf.h): add the pages with TDH.MEM.PAGE.AUG.
#: QEMU (target/i386/kvm/tdx.c) does not act on it: it loads every section the same way.
ATTR_PAGE_AUG = 1 << 1
_ATTRIBUTE_NAMES = ((ATTR_MR_EXTEND, "MR.EXTEND"), (ATTR_PAGE_AUG, "PAGE.AUG"))


class TdvfSectionType(IntEnum):
    """Section types; 0-3 are TDVF's (EDK2, QEMU), 4-7 appear only in td-shim images."""

    BFV = 0
    CFV = 1
    TD_HOB = 2
    TEMP_MEM = 3
    PERM_MEM = 4
    PAYLOAD = 5
    PAYLOAD_PARAM = 6
    TD_INFO = 7


#: The types TDVF (EDK2 ValidateTdxMetadata) and QEMU accept.
_TDVF_TYPES = {TdvfSectionType.BFV, TdvfSectionType.CFV, TdvfSectionType.TD_HOB, TdvfSectionType.TEMP_MEM}


@dataclass(frozen=True)
class TdvfSection:
    """One 32-byte section entry; names follow the TDVF design guide."""

    type: int
    data_offset: int
    raw_data_size: int
    memory_address: int
    memory_size: int
    attributes: int

    @property
    def type_name(self) -> str:
        try:
            return TdvfSectionType(self.type).name
        except ValueError:
            return f"UNKNOWN({self.type})"

    @property
    def memory_end(self) -> int:
        """Exclusive end of the guest-physical range."""
        return self.memory_address + self.memory_size

    @property
    def attribute_names(self) -> list[str]:
        names = [name for bit, name in _ATTRIBUTE_NAMES if self.attributes & bit]
        rest = self.attributes & ~(ATTR_MR_EXTEND | ATTR_PAGE_AUG)
        if rest:
            names.append(f"{rest:#x}")
        return names


@dataclass
class TdvfMetadata:
    """A parsed descriptor.

    ``descriptor_offset`` is the file offset of the "TDVF" signature; ``image_size`` the length
    of the parsed file (0 for a bare descriptor); ``image_base`` the offset in the whole flash
    image at which the file starts (0 for a whole image, the VARS size for a CODE-only file).
    """

    version: int
    sections: list[TdvfSection]
    descriptor_offset: int = 0
    image_size: int = 0
    image_base: int = 0
    table_guids: list[uuid.UUID] = field(default_factory=list)

    def raw_data_file_offset(self, section: TdvfSection) -> int | None:
        """Where the section's raw data starts in the parsed file; None if none or not in it."""
        if section.raw_data_size == 0 or section.data_offset < self.image_base:
            return None
        return section.data_offset - self.image_base


@dataclass(frozen=True)
class OvmfTableEntry:
    """One entry of OVMF's GUIDed table: its GUID, its data and the data's file offset."""

    guid: uuid.UUID
    data: bytes
    offset: int


# -- the GUIDed table -------------------------------------------------------------------------


def looks_like_ovmf(image: bytes) -> bool:
    """True when the GUIDed-table footer GUID sits 0x30 bytes before the end."""
    if len(image) < _FOOTER_FROM_END + _ENTRY_TAIL.size:
        return False
    at = len(image) - _FOOTER_FROM_END
    return image[at : at + 16] == FOOTER_GUID.bytes_le


def parse_ovmf_table(image: bytes) -> list[OvmfTableEntry]:
    """The entries of the reset-vector GUIDed table, nearest to the footer first."""
    size = len(image)
    if size < _FOOTER_FROM_END + _ENTRY_TAIL.size:
        raise FormatError(f"{size} bytes is too small to be an OVMF/TDVF firmware image")
    if not looks_like_ovmf(image):
        raise FormatError(
            f"no OVMF GUIDed table footer ({FOOTER_GUID}) 0x30 bytes before the end: "
            "not an OVMF/TDVF firmware image"
        )
    # The u16 right before the footer GUID is the length of the whole table, footer included.
    foot = size - _FOOTER_FROM_END - 2
    (table_len,) = struct.unpack_from("<H", image, foot)
    entries_len = table_len - _ENTRY_TAIL.size
    if entries_len < 0 or entries_len > foot:
        raise FormatError(f"OVMF GUIDed table length {table_len} is impossible (image of {size} bytes)")
    entries = []
    end = foot  # end (exclusive) of the entry being read
    remaining = entries_len
    while remaining >= _ENTRY_TAIL.size:
        length, raw_guid = _ENTRY_TAIL.unpack_from(image, end - _ENTRY_TAIL.size)
        guid = uuid.UUID(bytes_le=raw_guid)
        if length < _ENTRY_TAIL.size or length > remaining:
            raise FormatError(
                f"OVMF GUIDed table entry {guid} at {end - _ENTRY_TAIL.size:#x} has length {length}, "
                f"outside [{_ENTRY_TAIL.size}, {remaining}]: corrupt table"
            )
        start = end - length
        entries.append(OvmfTableEntry(guid, bytes(image[start : end - _ENTRY_TAIL.size]), start))
        end = start
        remaining -= length
    if remaining:
        raise FormatError(f"OVMF GUIDed table has {remaining} stray bytes after its last entry")
    return entries


# -- the descriptor ---------------------------------------------------------------------------


def _check_section_fields(s: TdvfSection, where: str) -> None:
    """What QEMU's parser refuses (hw/i386/tdvf.c): field widths, raw > memory, alignment."""
    for name, value, bits in (
        ("DataOffset", s.data_offset, 32),
        ("RawDataSize", s.raw_data_size, 32),
        ("MemoryAddress", s.memory_address, 64),
        ("MemoryDataSize", s.memory_size, 64),
        ("Type", s.type, 32),
        ("Attributes", s.attributes, 32),
    ):
        if not 0 <= value < (1 << bits):
            raise FormatError(f"{where}: {name} {value:#x} does not fit in {bits} bits")
    if s.raw_data_size > s.memory_size:
        raise FormatError(
            f"{where}: RawDataSize {s.raw_data_size:#x} is larger than MemoryDataSize {s.memory_size:#x}"
        )
    if s.memory_address % PAGE_SIZE:
        raise FormatError(f"{where}: MemoryAddress {s.memory_address:#x} is not 4 KiB aligned")
    if s.memory_size % PAGE_SIZE:
        raise FormatError(f"{where}: MemoryDataSize {s.memory_size:#x} is not a multiple of 4 KiB")
    if s.memory_end > 1 << 64:
        raise FormatError(f"{where}: memory range runs past the 64-bit address space")


def parse_tdvf_descriptor(data: bytes, offset: int = 0) -> TdvfMetadata:
    """Parse a bare descriptor ("TDVF" header + sections) starting at ``offset`` of ``data``."""
    if offset < 0 or offset + _HEADER.size > len(data):
        raise FormatError(f"TDVF descriptor at {offset:#x} does not fit in {len(data)} bytes")
    sig, length, version, count = _HEADER.unpack_from(data, offset)
    if sig != _SIGNATURE:
        raise FormatError(f"bad TDVF descriptor signature {sig!r} at {offset:#x} (expected b'TDVF')")
    if version != _VERSION:
        raise FormatError(f"TDVF descriptor version {version} is not supported (only 1 is defined)")
    if count == 0:
        raise FormatError("TDVF descriptor has 0 sections")
    if length != _HEADER.size + count * _SECTION.size:
        raise FormatError(
            f"TDVF descriptor length {length} does not match its {count} sections "
            f"(expected {_HEADER.size + count * _SECTION.size})"
        )
    if offset + length > len(data):
        raise FormatError(
            f"TDVF descriptor at {offset:#x} with {count} sections runs past the end of the data "
            f"({offset + length:#x} > {len(data):#x})"
        )
    sections = []
    for i in range(count):
        fields = _SECTION.unpack_from(data, offset + _HEADER.size + i * _SECTION.size)
        data_offset, raw_size, address, mem_size, typ, attrs = fields
        s = TdvfSection(typ, data_offset, raw_size, address, mem_size, attrs)
        _check_section_fields(s, f"TDVF section {i} ({s.type_name})")
        sections.append(s)
    return TdvfMetadata(version=version, sections=sections, descriptor_offset=offset)


def build_tdvf_descriptor(meta: TdvfMetadata) -> bytes:
    """Encode the descriptor (header + sections); refuses what :func:`parse_tdvf_descriptor` refuses."""
    if not meta.sections:
        raise FormatError("a TDVF descriptor needs at least one section")
    for i, s in enumerate(meta.sections):
        _check_section_fields(s, f"TDVF section {i} ({s.type_name})")
    n = len(meta.sections)
    out = bytearray(_HEADER.pack(_SIGNATURE, _HEADER.size + n * _SECTION.size, meta.version, n))
    for s in meta.sections:
        out += _SECTION.pack(
            s.data_offset, s.raw_data_size, s.memory_address, s.memory_size, s.type, s.attributes
        )
    return bytes(out)


def build_tdvf_image(meta: TdvfMetadata, image_size: int) -> bytes:
    """A minimal firmware image of ``image_size`` bytes that :func:`parse_tdvf` reads back.

    Layout from the end: 0x20 bytes of (zero) reset vector, the footer GUID, the table length,
    one TDX metadata offset entry, and below it ``TDX_METADATA_GUID`` + the descriptor.  The
    rest is zero.  Section data offsets are written as given.
    """
    desc = build_tdvf_descriptor(meta)
    entry_len = _U32.size + _ENTRY_TAIL.size
    table_len = entry_len + _ENTRY_TAIL.size
    table_start = image_size - _FOOTER_FROM_END - 2 - entry_len
    desc_off = (table_start - len(desc)) & ~0xF
    if desc_off - 16 < 0:
        raise FormatError(f"image of {image_size} bytes is too small for the descriptor and table")
    img = bytearray(image_size)
    img[desc_off - 16 : desc_off] = TDX_METADATA_GUID.bytes_le
    img[desc_off : desc_off + len(desc)] = desc
    _U32.pack_into(img, table_start, image_size - desc_off)
    _ENTRY_TAIL.pack_into(img, table_start + _U32.size, entry_len, TDX_METADATA_OFFSET_GUID.bytes_le)
    _ENTRY_TAIL.pack_into(img, image_size - _FOOTER_FROM_END - 2, table_len, FOOTER_GUID.bytes_le)
    return bytes(img)


# -- the whole image --------------------------------------------------------------------------


def _locate_raw_data(meta: TdvfMetadata, image_size: int) -> int:
    """Work out ``image_base`` (see module docstring) and check every raw data range against it."""
    with_data = [(i, s) for i, s in enumerate(meta.sections) if s.raw_data_size]
    flash_size = max((s.data_offset + s.raw_data_size for _, s in with_data), default=image_size)
    base = max(0, flash_size - image_size)
    if base == 0:
        return 0
    # The file would be the tail of a bigger flash.  Accept only if the descriptor lies inside
    # a BFV's raw data (where OVMF keeps it) and no range straddles the missing head.
    desc_in_flash = base + meta.descriptor_offset
    in_bfv = any(
        s.type == TdvfSectionType.BFV and s.data_offset <= desc_in_flash < s.data_offset + s.raw_data_size
        for _, s in with_data
    )
    for i, s in with_data:
        start, end = s.data_offset, s.data_offset + s.raw_data_size
        if (not in_bfv and end > image_size) or start < base < end:
            raise FormatError(
                f"TDVF section {i} ({s.type_name}) raw data [{start:#x}, {end:#x}) runs past the end of "
                f"the {image_size:#x}-byte image"
            )
    return base


def parse_tdvf(image: bytes) -> TdvfMetadata:
    """Find and parse the TDVF descriptor of a firmware image (see the module docstring)."""
    image = bytes(image)
    entries = parse_ovmf_table(image)
    found = [e for e in entries if e.guid == TDX_METADATA_OFFSET_GUID]
    if not found:
        raise FormatError(
            f"OVMF image has no TDX metadata offset entry ({TDX_METADATA_OFFSET_GUID}): "
            "not a TDVF (TDX-capable) build"
        )
    if len(found[0].data) < _U32.size:
        raise FormatError(f"TDX metadata offset entry holds {len(found[0].data)} bytes, needs 4")
    (from_end,) = _U32.unpack_from(found[0].data)
    offset = len(image) - from_end
    if from_end == 0 or offset < 0 or offset + _HEADER.size > len(image):
        raise FormatError(
            f"TDX metadata offset {from_end:#x} (from the end) points outside the {len(image):#x}-byte image"
        )
    meta = parse_tdvf_descriptor(image, offset)
    meta.image_size = len(image)
    meta.table_guids = [e.guid for e in entries]
    meta.image_base = _locate_raw_data(meta, len(image))
    return meta


# -- TDVF's rules and what the host does ------------------------------------------------------


def tdvf_problems(meta: TdvfMetadata) -> list[str]:
    """Every way ``meta`` breaks TDVF's rules (EDK2 ValidateTdxMetadata, QEMU tdvf.c); [] if none.

    Per section: MemoryDataSize non-zero and >= RawDataSize, address and size 4 KiB aligned,
    type one of BFV/CFV/TD_HOB/TEMP_MEM; BFV has MR.EXTEND and raw data; CFV has raw data and no
    MR.EXTEND; TD_HOB and TEMP_MEM have neither raw data nor a data offset nor MR.EXTEND.
    Whole descriptor: version 1, at least 2 sections, at least one BFV, exactly one TD_HOB, and
    no two memory ranges overlap (the host cannot add the same page twice).
    """
    problems: list[str] = []
    if meta.version != _VERSION:
        problems.append(f"version is {meta.version}, must be 1")
    if len(meta.sections) < 2:
        problems.append(f"{len(meta.sections)} section(s); TDVF needs at least a BFV and a TD_HOB")
    for i, s in enumerate(meta.sections):
        where = f"section {i} ({s.type_name})"
        if s.memory_size == 0:
            problems.append(f"{where}: MemoryDataSize is 0")
        if s.memory_size < s.raw_data_size:
            problems.append(f"{where}: MemoryDataSize is smaller than RawDataSize")
        if s.memory_address % PAGE_SIZE or s.memory_size % PAGE_SIZE:
            problems.append(f"{where}: MemoryAddress and MemoryDataSize must be 4 KiB aligned")
        if s.type not in _TDVF_TYPES:
            problems.append(f"{where}: type {s.type} is not a TDVF section type (BFV, CFV, TD_HOB, TEMP_MEM)")
            continue
        extend = bool(s.attributes & ATTR_MR_EXTEND)
        if s.type == TdvfSectionType.BFV:
            if not extend:
                problems.append(f"{where}: a BFV must have MR.EXTEND (attribute bit 0)")
            if s.raw_data_size == 0:
                problems.append(f"{where}: a BFV must have raw data")
        elif extend:
            problems.append(f"{where}: only a BFV may have MR.EXTEND (attribute bit 0)")
        if s.type == TdvfSectionType.CFV and s.raw_data_size == 0:
            problems.append(f"{where}: a CFV must have raw data")
        no_data = (TdvfSectionType.TD_HOB, TdvfSectionType.TEMP_MEM)
        if s.type in no_data and (s.raw_data_size or s.data_offset):
            problems.append(f"{where}: DataOffset and RawDataSize must be 0")
    types = [s.type for s in meta.sections]
    if TdvfSectionType.BFV not in types:
        problems.append("no BFV section")
    if types.count(TdvfSectionType.TD_HOB) != 1:
        problems.append(f"{types.count(TdvfSectionType.TD_HOB)} TD_HOB sections; exactly one is required")
    ordered = sorted(enumerate(meta.sections), key=lambda p: p[1].memory_address)
    for (i, a), (j, b) in zip(ordered, ordered[1:], strict=False):
        if b.memory_address < a.memory_end:
            problems.append(
                f"sections {i} ({a.type_name}) and {j} ({b.type_name}) overlap in guest memory "
                f"at {b.memory_address:#x}"
            )
    return problems


def validate_tdvf(meta: TdvfMetadata) -> None:
    """Raise :class:`FormatError` listing every broken TDVF rule (see :func:`tdvf_problems`)."""
    problems = tdvf_problems(meta)
    if problems:
        raise FormatError("TDVF metadata breaks TDVF's rules: " + "; ".join(problems))


def host_added_ranges(meta: TdvfMetadata) -> list[tuple[int, int]]:
    """Guest-physical ranges ``[start, end)`` the host adds at build time, sorted by address.

    QEMU (target/i386/kvm/tdx.c, ``tdx_init_fw_mem_region``) issues KVM_TDX_INIT_MEM_REGION for
    every section, whatever its type or PAGE.AUG bit, so those pages are added with
    TDH.MEM.PAGE.ADD and need no accept.  One range per section, not merged.
    """
    return sorted((s.memory_address, s.memory_end) for s in meta.sections)
