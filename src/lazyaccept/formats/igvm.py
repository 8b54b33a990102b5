"""IGVM (Independent Guest Virtual Machine) files: parser and builder, byte-exact.

Layout from the published definition, microsoft/igvm ``igvm_defs/src/lib.rs`` (format version
1; the loader side in ``igvm/src/lib.rs``), all integers little-endian::

    fixed header (24 bytes)  magic "IGVM", format_version, variable_header_offset,
                             variable_header_size, total_file_size, checksum
                             (version 2 adds architecture and page_size: 32 bytes)
    variable headers         each {u32 type, u32 length} then ``length`` bytes, padded with
                             zeros to 8 bytes; platform (0x1..0x100), then initialization
                             (0x101..0x200), then directive (0x301..0x400) headers; bit 31
                             of the type marks a header a loader may ignore
    file data                what PAGE_DATA, PARAMETER_AREA and VP_CONTEXT point at
                             (``file_offset`` counts from the start of the file; 0 = zeros)

``checksum`` is the CRC-32 (IEEE, as ``crc32fast``/zlib compute it) of the fixed header, with
the checksum field zero, followed by the variable headers; the file data is not covered.

Structures read field by field (names as in igvm_defs); any other header is kept as raw bytes,
so a file of a newer revision still parses and round-trips.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from ..base.errors import FormatError

__all__ = [
    "MAGIC",
    "HeaderType",
    "PlatformType",
    "PageDataType",
    "PageDataFlags",
    "MemoryMapEntryType",
    "SupportedPlatform",
    "GuestPolicy",
    "ParameterArea",
    "PageData",
    "ParameterInsert",
    "VpContext",
    "RequiredMemory",
    "Parameter",
    "RawHeader",
    "IgvmFile",
    "parse_igvm",
    "build_igvm",
    "looks_like_igvm",
    "MEMORY_MAP_ENTRY",
    "Architecture",
    "OPTIONAL_BIT",
    "enum_name",
    "header_type",
    "data_start",
]

MAGIC = b"IGVM"
_FIXED_V1 = struct.Struct("<4sIIIII")
_FIXED_V2_EXTRA = struct.Struct("<II")  # architecture, page_size
_VAR_HEADER = struct.Struct("<II")
#: The optional bit of a header type (IGVM_VHT_OPTIONAL_BIT).
OPTIONAL_BIT = 1 << 31
PAGE_SIZE_4K = 4096
PAGE_SIZE_2M = 2 * 1024 * 1024
#: IGVM_VHS_MEMORY_MAP_ENTRY, what a loader writes for the MEMORY_MAP parameter:
#: starting_gpa_page_number, number_of_pages, entry_type, flags, reserved.
MEMORY_MAP_ENTRY = struct.Struct("<QQHHI")


class Architecture(IntEnum):
    """IgvmArchitecture (version 2 fixed header)."""

    X64 = 0x0
    AARCH64 = 0x1


class HeaderType(IntEnum):
    """IgvmVariableHeaderType."""

    SUPPORTED_PLATFORM = 0x1
    GUEST_POLICY = 0x101
    RELOCATABLE_REGION = 0x102
    PAGE_TABLE_RELOCATION_REGION = 0x103
    CORIM_DOCUMENT = 0x104
    CORIM_SIGNATURE = 0x105
    CCA_POLICY = 0x106
    PARAMETER_AREA = 0x301
    PAGE_DATA = 0x302
    PARAMETER_INSERT = 0x303
    VP_CONTEXT = 0x304
    REQUIRED_MEMORY = 0x305
    VP_COUNT_PARAMETER = 0x307
    SRAT = 0x308
    MADT = 0x309
    MMIO_RANGES = 0x30A
    SNP_ID_BLOCK = 0x30B
    MEMORY_MAP = 0x30C
    ERROR_RANGE = 0x30D
    COMMAND_LINE = 0x30E
    SLIT = 0x30F
    PPTT = 0x310
    VBS_MEASUREMENT = 0x311
    DEVICE_TREE = 0x312
    ENVIRONMENT_INFO_PARAMETER = 0x313


class PlatformType(IntEnum):
    """IgvmPlatformType."""

    NATIVE = 0x00
    VSM_ISOLATION = 0x01
    SEV_SNP = 0x02
    TDX = 0x03
    SEV = 0x04
    SEV_ES = 0x05
    CCA = 0x06


class PageDataType(IntEnum):
    """IgvmPageDataType."""

    NORMAL = 0x0
    SECRETS = 0x1
    CPUID_DATA = 0x2
    CPUID_XF = 0x3


class PageDataFlags(IntFlag):
    """IgvmPageDataFlags."""

    IS_2MB_PAGE = 1 << 0
    UNMEASURED = 1 << 1
    SHARED = 1 << 2


class MemoryMapEntryType(IntEnum):
    """MemoryMapEntryType."""

    MEMORY = 0x0
    PLATFORM_RESERVED = 0x1
    PERSISTENT = 0x2
    VTL2_PROTECTABLE = 0x3
    SPECIFIC_PURPOSE = 0x4
    HIDDEN = 0x5


def enum_name(enum: type[IntEnum], value: int) -> str:
    """The member's name, or the value in hex for one the definition does not name."""
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:x}"


# -- the structures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupportedPlatform:
    """IGVM_VHS_SUPPORTED_PLATFORM."""

    compatibility_mask: int
    highest_vtl: int
    platform_type: int
    platform_version: int
    shared_gpa_boundary: int
    LAYOUT = struct.Struct("<IBBHQ")
    TYPE = HeaderType.SUPPORTED_PLATFORM


@dataclass(frozen=True)
class GuestPolicy:
    """IGVM_VHS_GUEST_POLICY."""

    policy: int
    compatibility_mask: int
    reserved: int = 0
    LAYOUT = struct.Struct("<QII")
    TYPE = HeaderType.GUEST_POLICY


@dataclass(frozen=True)
class ParameterArea:
    """IGVM_VHS_PARAMETER_AREA: a loader-filled area; ``file_offset`` 0 = starts zeroed."""

    number_of_bytes: int
    parameter_area_index: int
    file_offset: int
    LAYOUT = struct.Struct("<QII")
    TYPE = HeaderType.PARAMETER_AREA


@dataclass(frozen=True)
class PageData:
    """IGVM_VHS_PAGE_DATA: one page imported into the guest."""

    gpa: int
    compatibility_mask: int
    file_offset: int
    flags: int
    data_type: int
    reserved: int = 0
    LAYOUT = struct.Struct("<QIIIHH")
    TYPE = HeaderType.PAGE_DATA

    @property
    def size(self) -> int:
        return PAGE_SIZE_2M if self.flags & PageDataFlags.IS_2MB_PAGE else PAGE_SIZE_4K


@dataclass(frozen=True)
class ParameterInsert:
    """IGVM_VHS_PARAMETER_INSERT: where a parameter area is imported (unmeasured)."""

    gpa: int
    compatibility_mask: int
    parameter_area_index: int
    LAYOUT = struct.Struct("<QII")
    TYPE = HeaderType.PARAMETER_INSERT


@dataclass(frozen=True)
class VpContext:
    """IGVM_VHS_VP_CONTEXT (20 bytes, padded to 24 in the file)."""

    gpa: int
    compatibility_mask: int
    file_offset: int
    vp_index: int
    reserved: int = 0
    LAYOUT = struct.Struct("<QIIHH")
    TYPE = HeaderType.VP_CONTEXT


@dataclass(frozen=True)
class RequiredMemory:
    """IGVM_VHS_REQUIRED_MEMORY: memory the guest needs present (flags bit 0: VTL2 protectable)."""

    gpa: int
    compatibility_mask: int
    number_of_bytes: int
    flags: int
    reserved: int = 0
    LAYOUT = struct.Struct("<QIIII")
    TYPE = HeaderType.REQUIRED_MEMORY


@dataclass(frozen=True)
class Parameter:
    """IGVM_VHS_PARAMETER: where in which area the loader writes a value (memory map, vCPU count ...)."""

    type: int
    parameter_area_index: int
    byte_offset: int
    LAYOUT = struct.Struct("<II")


@dataclass(frozen=True)
class RawHeader:
    """A header this module does not read field by field, kept as its bytes."""

    type: int
    data: bytes


#: Headers that are an IGVM_VHS_PARAMETER.
PARAMETER_TYPES = frozenset({
    HeaderType.VP_COUNT_PARAMETER, HeaderType.SRAT, HeaderType.MADT, HeaderType.MMIO_RANGES,
    HeaderType.MEMORY_MAP, HeaderType.COMMAND_LINE, HeaderType.SLIT, HeaderType.PPTT,
    HeaderType.DEVICE_TREE, HeaderType.ENVIRONMENT_INFO_PARAMETER,
})
_FIXED_STRUCTS: dict[int, type] = {
    cls.TYPE: cls
    for cls in (SupportedPlatform, GuestPolicy, ParameterArea, PageData, ParameterInsert, VpContext, RequiredMemory)
}

Header = SupportedPlatform | GuestPolicy | ParameterArea | PageData | ParameterInsert | VpContext | RequiredMemory \
    | Parameter | RawHeader


@dataclass
class IgvmFile:
    """A parsed IGVM file: its headers in file order and the whole file (for file data)."""

    format_version: int
    headers: list[Header]
    data: bytes = b""
    architecture: int | None = None
    page_size: int | None = None
    #: Whether the header section's CRC-32 matched ``checksum``.
    checksum_ok: bool = True

    def of(self, cls: type) -> list:  # type: ignore[type-arg]
        return [h for h in self.headers if isinstance(h, cls)]

    def file_data(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` (0: zeros), zero-filled past the end of the file."""
        if offset == 0:
            return bytes(size)
        return self.data[offset : offset + size].ljust(size, b"\x00")


def header_type(h: Header) -> int:
    """The variable header type ``h`` is written with (optional bit included)."""
    if isinstance(h, Parameter | RawHeader):
        return h.type
    return int(h.TYPE)  # type: ignore[union-attr]


# -- parse ---------------------------------------------------------------------------------------


def looks_like_igvm(data: bytes) -> bool:
    return data[:4] == MAGIC


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _one_header(typ: int, body: bytes, at: int) -> Header:
    base = typ & ~OPTIONAL_BIT
    cls = _FIXED_STRUCTS.get(base)
    if cls is not None and len(body) == cls.LAYOUT.size and not typ & OPTIONAL_BIT:  # type: ignore[attr-defined]
        return cls(*cls.LAYOUT.unpack(body))  # type: ignore[attr-defined]
    if base in PARAMETER_TYPES and len(body) == Parameter.LAYOUT.size and not typ & OPTIONAL_BIT:
        return Parameter(base, *Parameter.LAYOUT.unpack(body))
    if cls is not None or base in PARAMETER_TYPES:
        if not typ & OPTIONAL_BIT:
            raise FormatError(f"IGVM header {enum_name(HeaderType, base)} at {at:#x} has length {len(body)}")
    return RawHeader(typ, bytes(body))


def _section_of(typ: int) -> int:
    base = typ & ~OPTIONAL_BIT
    if 0x1 <= base <= 0x100:
        return 0
    if 0x101 <= base <= 0x200:
        return 1
    if 0x301 <= base <= 0x400:
        return 2
    raise FormatError(f"IGVM header type {base:#x} is in no section (platform, initialization or directive)")


def parse_igvm(data: bytes) -> IgvmFile:
    """Parse an IGVM file; raises :class:`FormatError` on anything the definition forbids."""
    data = bytes(data)
    if len(data) < _FIXED_V1.size:
        raise FormatError(f"{len(data)} bytes is too small for an IGVM fixed header")
    magic, version, vh_off, vh_size, total, checksum = _FIXED_V1.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"bad IGVM magic {magic!r} (expected b'IGVM')")
    if version not in (1, 2):
        raise FormatError(f"IGVM format version {version} is not supported (1 and 2 are)")
    fixed_size = _FIXED_V1.size + (_FIXED_V2_EXTRA.size if version == 2 else 0)
    architecture = page_size = None
    if version == 2:
        if len(data) < fixed_size:
            raise FormatError("IGVM version 2 fixed header is cut short")
        architecture, page_size = _FIXED_V2_EXTRA.unpack_from(data, _FIXED_V1.size)
    if total != len(data):
        raise FormatError(f"IGVM total_file_size is {total}, the file has {len(data)} bytes")
    if vh_off < fixed_size or vh_off % 8 or vh_off + vh_size > len(data):
        raise FormatError(f"IGVM variable headers at {vh_off:#x} ({vh_size} bytes) do not fit the file")
    covered = bytearray(data[:fixed_size])
    covered[20:24] = b"\x00\x00\x00\x00"
    crc = zlib.crc32(bytes(covered) + data[vh_off : vh_off + vh_size])
    headers: list[Header] = []
    at, end, section = vh_off, vh_off + vh_size, 0
    while at < end:
        if at + _VAR_HEADER.size > end:
            raise FormatError(f"IGVM variable header at {at:#x} is cut short")
        typ, length = _VAR_HEADER.unpack_from(data, at)
        body_end = at + _VAR_HEADER.size + length
        if body_end > end:
            raise FormatError(f"IGVM variable header at {at:#x} of length {length} runs past the header section")
        this = _section_of(typ)
        if this < section:
            raise FormatError(f"IGVM header {enum_name(HeaderType, typ & ~OPTIONAL_BIT)} at {at:#x} is out of order")
        section = this
        headers.append(_one_header(typ, data[at + _VAR_HEADER.size : body_end], at))
        at = min(_align8(body_end), end)
    igvm = IgvmFile(version, headers, data, architecture, page_size, crc == checksum)
    _check_offsets(igvm)
    return igvm


def _check_offsets(igvm: IgvmFile) -> None:
    """File data must start inside the file; a parameter area's initial data must fit in it.

    Page data may end past the file: the loader fills the rest of the page with zeros.
    """
    for h in igvm.headers:
        if isinstance(h, PageData | ParameterArea | VpContext) and h.file_offset:
            if h.file_offset >= len(igvm.data):
                raise FormatError(f"IGVM {type(h).__name__} file_offset {h.file_offset:#x} is past the file")
            if isinstance(h, ParameterArea) and h.file_offset + h.number_of_bytes > len(igvm.data):
                raise FormatError(f"IGVM parameter area {h.parameter_area_index} data runs past the file")


# -- build ---------------------------------------------------------------------------------------


def _encode(h: Header) -> tuple[int, bytes]:
    if isinstance(h, RawHeader):
        return h.type, h.data
    if isinstance(h, Parameter):
        return h.type, Parameter.LAYOUT.pack(h.parameter_area_index, h.byte_offset)
    values = [getattr(h, f) for f in h.__dataclass_fields__]  # type: ignore[union-attr]
    try:
        return int(h.TYPE), h.LAYOUT.pack(*values)  # type: ignore[union-attr]
    except struct.error as exc:
        raise FormatError(f"IGVM {type(h).__name__}: {exc}") from None


def build_igvm(headers: list[Header], file_data: bytes = b"", *, data_offset: int | None = None) -> bytes:
    """An IGVM version-1 file: the fixed header, ``headers`` in the order given, then ``file_data``.

    Offsets in the headers count from the start of the file: put ``file_data`` where they
    expect it with ``data_offset`` (default: right after the headers, 8-byte aligned; the
    returned layout is what :func:`data_start` gives for the same headers).
    """
    body = bytearray()
    for h in headers:
        typ, raw = _encode(h)
        body += _VAR_HEADER.pack(typ, len(raw)) + raw
        body += bytes(_align8(len(body)) - len(body))
    start = _FIXED_V1.size + 0  # 24, already 8-aligned
    after = start + len(body)
    offset = after if data_offset is None else data_offset
    if offset < after:
        raise FormatError(f"file data at {offset:#x} would overlap the headers (they end at {after:#x})")
    total = offset + len(file_data)
    fixed = bytearray(_FIXED_V1.pack(MAGIC, 1, start, len(body), total, 0))
    crc = zlib.crc32(bytes(fixed) + bytes(body))
    struct.pack_into("<I", fixed, 20, crc)
    return bytes(fixed) + bytes(body) + bytes(offset - after) + file_data


def data_start(headers: list[Header]) -> int:
    """Where :func:`build_igvm` puts the file data by default for these headers."""
    size = 0
    for h in headers:
        size = _align8(size + _VAR_HEADER.size + len(_encode(h)[1]))
    return _FIXED_V1.size + size
