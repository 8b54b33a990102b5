"""UEFI PI firmware volumes: volumes, FFS files and their sections, compressed sections opened.

Layouts from the UEFI Platform Initialization specification, volume 3 (Shared Architectural
Elements), chapter 3 "Firmware Storage Code Definitions": ``EFI_FIRMWARE_VOLUME_HEADER`` (3.2.1),
``EFI_FFS_FILE_HEADER`` / ``EFI_FFS_FILE_HEADER2`` (3.2.3), ``EFI_COMMON_SECTION_HEADER`` /
``..._HEADER2`` and the section types (3.2.4, 3.2.5).  EDK2 implements them in
``MdePkg/Include/Pi/PiFirmwareVolume.h`` and ``MdePkg/Include/Pi/PiFirmwareFile.h``.

What OVMF needs opened: its DXE and PEI volumes sit inside an FV-image file whose one section is
GUID-defined with EDK2's LZMA GUID (``BaseTools/Conf/tools_def.template``: ``LZMA_GUID``,
decompressed by ``MdeModulePkg/Library/LzmaCustomDecompressLib``).  That stream is the classic
"LZMA alone" format (5 property bytes, a u64 uncompressed size, the data), which Python's
``lzma`` module reads as ``FORMAT_ALONE``; the LZMA-F86 variant adds the x86 branch filter
(``lzma.FILTER_X86``).  Other encodings (Tiano/EFI compression, Brotli) are reported, not opened.

Why not the ``uefi-firmware`` package: it parses these volumes well (the tests use it as an
oracle for the file list), but it is a C extension whose API prints rather than returns; this
module is small, pure Python, bounded (nesting depth, total decompressed size) and fuzzed.
"""

from __future__ import annotations

import lzma
import struct
import uuid
from dataclasses import dataclass, field
from enum import IntEnum

from ..base.errors import FormatError

__all__ = [
    "FFS2_GUID",
    "FFS3_GUID",
    "LZMA_GUID",
    "LZMA_F86_GUID",
    "FileType",
    "SectionType",
    "FfsSection",
    "FfsFile",
    "FirmwareVolume",
    "find_volumes",
    "parse_volume",
    "walk_files",
    "build_volume",
    "build_file",
    "build_section",
    "build_lzma_section",
]

#: ``EFI_FIRMWARE_FILE_SYSTEM2_GUID`` and ``..._SYSTEM3_GUID`` (PI vol. 3, 3.2.2).
FFS2_GUID = uuid.UUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
FFS3_GUID = uuid.UUID("5473c07a-3dcb-4dca-bd6f-1e9689e7349a")
#: EDK2's LZMA and LZMA-F86 custom-decompress GUIDs (BaseTools tools_def.template).
LZMA_GUID = uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf")
LZMA_F86_GUID = uuid.UUID("d42ae6bd-1352-4bfb-909a-ca72a6eae889")

# EFI_FIRMWARE_VOLUME_HEADER up to the block map: ZeroVector[16], FileSystemGuid, FvLength,
# Signature, Attributes, HeaderLength, Checksum, ExtHeaderOffset, Reserved, Revision.
_FV_HEADER = struct.Struct("<16s16sQ4sIHHHBB")
_FV_SIGNATURE = b"_FVH"
_BLOCK = struct.Struct("<II")
_FV_EXT_HEADER = struct.Struct("<16sI")  # FvName, ExtHeaderSize
# EFI_FFS_FILE_HEADER: Name, IntegrityCheck, Type, Attributes, Size[3], State.
_FFS_HEADER = struct.Struct("<16sHBB3sB")
_FFS_ATTRIB_LARGE_FILE = 0x01
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_GUID_SECTION = struct.Struct("<16sHH")  # SectionDefinitionGuid, DataOffset, Attributes
_COMPRESSION_SECTION = struct.Struct("<IB")  # UncompressedLength, CompressionType
_FREEFORM_SUBTYPE = struct.Struct("<16s")

#: Nesting of volumes in sections in files in volumes; OVMF uses 2.
MAX_DEPTH = 8
#: Total bytes all compressed sections of one image may expand to (OVMF's: about 12 MiB).
MAX_DECOMPRESSED = 256 * 1024 * 1024


class FileType(IntEnum):
    """``EFI_FV_FILETYPE_*`` (PI vol. 3, 3.2.3.1)."""

    RAW = 0x01
    FREEFORM = 0x02
    SECURITY_CORE = 0x03
    PEI_CORE = 0x04
    DXE_CORE = 0x05
    PEIM = 0x06
    DRIVER = 0x07
    COMBINED_PEIM_DRIVER = 0x08
    APPLICATION = 0x09
    MM = 0x0A
    FIRMWARE_VOLUME_IMAGE = 0x0B
    COMBINED_MM_DXE = 0x0C
    MM_CORE = 0x0D
    MM_STANDALONE = 0x0E
    MM_CORE_STANDALONE = 0x0F
    FFS_PAD = 0xF0


class SectionType(IntEnum):
    """``EFI_SECTION_*`` (PI vol. 3, 3.2.5)."""

    COMPRESSION = 0x01
    GUID_DEFINED = 0x02
    DISPOSABLE = 0x03
    PE32 = 0x10
    PIC = 0x11
    TE = 0x12
    DXE_DEPEX = 0x13
    VERSION = 0x14
    USER_INTERFACE = 0x15
    COMPATIBILITY16 = 0x16
    FIRMWARE_VOLUME_IMAGE = 0x17
    FREEFORM_SUBTYPE_GUID = 0x18
    RAW = 0x19
    PEI_DEPEX = 0x1B
    MM_DEPEX = 0x1C


_ENCAPSULATING = {SectionType.COMPRESSION, SectionType.GUID_DEFINED}
#: Sections that hold executable images (where a module's GUID references live).
IMAGE_SECTIONS = frozenset({SectionType.PE32, SectionType.PIC, SectionType.TE})


def _enum_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:02x}"


@dataclass
class FfsSection:
    """A leaf section (encapsulating ones are opened and replaced by what they hold)."""

    type: int
    data: bytes
    #: GUIDs of the GUID-defined sections this one was found in, outermost first.
    encapsulation: tuple[uuid.UUID, ...] = ()

    @property
    def type_name(self) -> str:
        return _enum_name(SectionType, self.type)


@dataclass
class FfsFile:
    """One FFS file: its name GUID, type, leaf sections and the volumes nested in it."""

    name: uuid.UUID
    type: int
    attributes: int
    offset: int
    size: int
    sections: list[FfsSection] = field(default_factory=list)
    volumes: list[FirmwareVolume] = field(default_factory=list)
    #: Encapsulations that could not be opened, e.g. "GUID-defined <guid>" or "Tiano compression".
    unopened: list[str] = field(default_factory=list)

    @property
    def type_name(self) -> str:
        return _enum_name(FileType, self.type)

    @property
    def ui_name(self) -> str | None:
        """The USER_INTERFACE section's name (EDK2 writes the module's BASE_NAME there)."""
        for s in self.sections:
            if s.type == SectionType.USER_INTERFACE:
                return s.data.decode("utf-16-le", "replace").split("\x00", 1)[0]
        return None

    @property
    def image(self) -> bytes:
        """The executable sections' bytes concatenated (empty for a file without code)."""
        return b"".join(s.data for s in self.sections if s.type in IMAGE_SECTIONS)


@dataclass
class FirmwareVolume:
    """A firmware volume and its files, with where it was found."""

    offset: int
    length: int
    file_system: uuid.UUID
    name: uuid.UUID | None
    files: list[FfsFile] = field(default_factory=list)
    #: Where the volume sits: "" for the image itself, else "in <file guid>".
    parent: str = ""


class _Budget:
    """Bounds the work one image may cause: nesting depth and bytes decompressed."""

    def __init__(self) -> None:
        self.decompressed = 0

    def charge(self, size: int) -> None:
        self.decompressed += size
        if self.decompressed > MAX_DECOMPRESSED:
            raise FormatError(f"compressed sections expand to more than {MAX_DECOMPRESSED} bytes")


def _align(value: int, to: int) -> int:
    return (value + to - 1) & ~(to - 1)


def _u24(raw: bytes) -> int:
    return raw[0] | raw[1] << 8 | raw[2] << 16


# -- sections -----------------------------------------------------------------------------------


def _lzma1_filter(props: bytes) -> dict[str, int]:
    """The LZMA1 filter of a 5-byte property header: (pb * 5 + lp) * 9 + lc, then the dictionary size."""
    if props[0] >= 9 * 5 * 5:
        raise FormatError(f"LZMA properties byte {props[0]:#x} is invalid")
    lc, rest = props[0] % 9, props[0] // 9
    return {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": rest % 5, "pb": rest // 5,
            "dict_size": max(_U32.unpack_from(props, 1)[0], 4096)}


def _lzma1_props(lc: int, lp: int, pb: int, dict_size: int) -> bytes:
    return bytes([(pb * 5 + lp) * 9 + lc]) + _U32.pack(dict_size)


def _decompress_lzma(data: bytes, f86: bool, budget: _Budget) -> bytes:
    """EDK2's LZMA stream: 5 property bytes, u64 uncompressed size, the compressed data."""
    if len(data) < 13:
        raise FormatError("LZMA section shorter than its 13-byte header")
    (size,) = _U64.unpack_from(data, 5)
    if size > MAX_DECOMPRESSED:
        raise FormatError(f"LZMA section claims {size} uncompressed bytes")
    budget.charge(size)
    try:
        if f86:
            filters = [{"id": lzma.FILTER_X86}, _lzma1_filter(data[:5])]
            out = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters).decompress(data[13:], max_length=size)
        else:
            out = lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data, max_length=size)
    except (lzma.LZMAError, ValueError) as exc:
        raise FormatError(f"LZMA section does not decompress: {exc}") from None
    if len(out) != size:
        raise FormatError(f"LZMA section gave {len(out)} bytes, its header says {size}")
    return out


def _parse_sections(
    data: bytes, owner: FfsFile, depth: int, budget: _Budget, encapsulation: tuple[uuid.UUID, ...] = ()
) -> None:
    """Read the sections of ``data`` (4-byte aligned, PI vol. 3, 3.2.4) into ``owner``."""
    if depth > MAX_DEPTH:
        raise FormatError(f"sections nested deeper than {MAX_DEPTH} levels")
    at = 0
    while at + 4 <= len(data):
        size, typ = _u24(data[at : at + 3]), data[at + 3]
        head = 4
        if size == 0xFFFFFF:  # EFI_COMMON_SECTION_HEADER2: the real size follows
            if at + 8 > len(data):
                raise FormatError(f"section at {at:#x} of file {owner.name} is cut short")
            (size,) = _U32.unpack_from(data, at + 4)
            head = 8
        if size < head or at + size > len(data):
            raise FormatError(
                f"section at {at:#x} of file {owner.name} has size {size:#x}, outside its {len(data):#x}-byte file"
            )
        body = data[at + head : at + size]
        _section(typ, head, body, owner, depth, budget, encapsulation)
        at = _align(at + size, 4)


def _section(
    typ: int, head: int, body: bytes, owner: FfsFile, depth: int, budget: _Budget, encapsulation: tuple[uuid.UUID, ...]
) -> None:
    if typ == SectionType.GUID_DEFINED:
        if len(body) < _GUID_SECTION.size:
            raise FormatError(f"GUID-defined section of file {owner.name} is cut short")
        raw_guid, data_offset, _attrs = _GUID_SECTION.unpack_from(body)
        guid = uuid.UUID(bytes_le=raw_guid)
        start = data_offset - head  # DataOffset counts from the start of the section header
        if not _GUID_SECTION.size <= start <= len(body):
            raise FormatError(f"GUID-defined section of file {owner.name} has DataOffset {data_offset}")
        payload = body[start:]
        if guid in (LZMA_GUID, LZMA_F86_GUID):
            inner = _decompress_lzma(payload, guid == LZMA_F86_GUID, budget)
            _parse_sections(inner, owner, depth + 1, budget, (*encapsulation, guid))
        elif _attrs & 0x01:  # EFI_GUIDED_SECTION_PROCESSING_REQUIRED: an encoding we cannot undo
            owner.unopened.append(f"GUID-defined section {guid}")
        else:
            _parse_sections(payload, owner, depth + 1, budget, (*encapsulation, guid))
    elif typ == SectionType.COMPRESSION:
        if len(body) < _COMPRESSION_SECTION.size:
            raise FormatError(f"compression section of file {owner.name} is cut short")
        _length, kind = _COMPRESSION_SECTION.unpack_from(body)
        if kind == 0:  # EFI_NOT_COMPRESSED
            _parse_sections(body[_COMPRESSION_SECTION.size :], owner, depth + 1, budget, encapsulation)
        else:
            owner.unopened.append("EFI (Tiano) compressed section")
    elif typ == SectionType.FIRMWARE_VOLUME_IMAGE:
        owner.volumes.append(parse_volume(body, 0, depth=depth + 1, budget=budget, parent=f"in {owner.name}"))
    else:
        owner.sections.append(FfsSection(typ, bytes(body), encapsulation))


# -- files and volumes ---------------------------------------------------------------------------


def _parse_files(data: bytes, start: int, end: int, fv_offset: int, depth: int, budget: _Budget) -> list[FfsFile]:
    files = []
    at = _align(start, 8)
    while at + _FFS_HEADER.size <= end:
        raw_name, _check, typ, attrs, raw_size, _state = _FFS_HEADER.unpack_from(data, at)
        if raw_name == b"\xff" * 16 and raw_size == b"\xff\xff\xff":
            break  # free space: no file starts here or after
        size, head = _u24(raw_size), _FFS_HEADER.size
        if attrs & _FFS_ATTRIB_LARGE_FILE:
            if at + head + 8 > end:
                raise FormatError(f"FFS file at {fv_offset + at:#x} is cut short")
            (size,) = _U64.unpack_from(data, at + head)
            head += 8
        name = uuid.UUID(bytes_le=raw_name)
        if size < head or at + size > end:
            raise FormatError(
                f"FFS file {name} at {fv_offset + at:#x} has size {size:#x}, past the end of its volume"
            )
        f = FfsFile(name, typ, attrs, fv_offset + at, size)
        # RAW and pad files hold bytes, not sections (PI vol. 3, 3.2.3.1).
        if typ not in (FileType.RAW, FileType.FFS_PAD):
            _parse_sections(data[at + head : at + size], f, depth, budget)
        files.append(f)
        at = _align(at + size, 8)
    return files


def _volume_header(data: bytes, offset: int, strict: bool = False) -> tuple[uuid.UUID, int, int, int] | None:
    """(file system GUID, length, header length, ext header offset) if a volume starts here.

    ``strict`` (when scanning a flash image for volumes): also the 16 zero bytes of ZeroVector
    and Revision 2 (EFI_FVH_REVISION), so that "_FVH" inside other data is not taken for one.
    """
    if offset < 0 or offset + _FV_HEADER.size > len(data):
        return None
    zero, fs, length, sig, _attrs, hlen, _cksum, ext, _res, rev = _FV_HEADER.unpack_from(data, offset)
    if sig != _FV_SIGNATURE or (strict and (zero != bytes(16) or rev != 2)):
        return None
    return uuid.UUID(bytes_le=fs), length, hlen, ext


def parse_volume(
    data: bytes, offset: int = 0, *, depth: int = 0, budget: _Budget | None = None, parent: str = ""
) -> FirmwareVolume:
    """Parse the firmware volume starting at ``offset`` of ``data`` (nested volumes too)."""
    budget = budget or _Budget()
    if depth > MAX_DEPTH:
        raise FormatError(f"firmware volumes nested deeper than {MAX_DEPTH} levels")
    head = _volume_header(data, offset)
    if head is None:
        raise FormatError(f"no firmware volume header ('_FVH' signature) at {offset:#x}")
    fs, length, hlen, ext = head
    if length < _FV_HEADER.size or offset + length > len(data):
        raise FormatError(f"firmware volume at {offset:#x} has length {length:#x}, past the end of the data")
    if hlen < _FV_HEADER.size + _BLOCK.size or hlen > length:
        raise FormatError(f"firmware volume at {offset:#x} has header length {hlen}")
    name = None
    files_start = hlen
    if ext:
        if ext + _FV_EXT_HEADER.size > length:
            raise FormatError(f"firmware volume at {offset:#x} has its extended header outside it")
        raw_name, ext_size = _FV_EXT_HEADER.unpack_from(data, offset + ext)
        name = uuid.UUID(bytes_le=raw_name)
        files_start = max(hlen, ext + ext_size)
    fv = FirmwareVolume(offset, length, fs, name, parent=parent)
    if fs in (FFS2_GUID, FFS3_GUID):
        body = data[offset : offset + length]
        fv.files = _parse_files(body, files_start, length, offset, depth, budget)
    return fv


def find_volumes(image: bytes) -> list[FirmwareVolume]:
    """Every top-level volume of a flash image, found by its header on 16-byte boundaries.

    Volumes with another file system (EDK2's NV variable store) are listed without files.
    """
    image = bytes(image)
    budget = _Budget()
    volumes = []
    at = 0
    while True:
        sig = image.find(_FV_SIGNATURE, at + 40)
        if sig < 0:
            break
        start = sig - 40  # Signature sits 40 bytes into the header
        head = _volume_header(image, start, strict=True) if start % 16 == 0 else None
        if head is None or not (_FV_HEADER.size <= head[1] <= len(image) - start):
            at = start + 1
            continue
        volumes.append(parse_volume(image, start, budget=budget))
        at = start + head[1]
    return volumes


def walk_files(volumes: list[FirmwareVolume]) -> list[tuple[FirmwareVolume, FfsFile]]:
    """Every file of the volumes and of the volumes nested in their files, depth first."""
    out: list[tuple[FirmwareVolume, FfsFile]] = []
    for fv in volumes:
        for f in fv.files:
            out.append((fv, f))
            out.extend(walk_files(f.volumes))
    return out


# -- builders (tests, fuzzing) --------------------------------------------------------------------


def build_section(typ: int, body: bytes) -> bytes:
    """One section with a 4-byte common header."""
    size = 4 + len(body)
    if size >= 0xFFFFFF:
        raise FormatError("section too large for a 24-bit size")
    return size.to_bytes(3, "little") + bytes([typ]) + body


def build_lzma_section(sections: bytes, *, f86: bool = False) -> bytes:
    """A GUID-defined section holding ``sections`` compressed the way EDK2's LzmaCompress does."""
    if f86:
        lzma1 = {"id": lzma.FILTER_LZMA1, "lc": 3, "lp": 0, "pb": 2, "dict_size": 1 << 22}
        packed = lzma.compress(sections, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_X86}, lzma1])
        payload = _lzma1_props(3, 0, 2, 1 << 22) + _U64.pack(len(sections)) + packed
    else:
        payload = lzma.compress(sections, format=lzma.FORMAT_ALONE)
        payload = payload[:5] + _U64.pack(len(sections)) + payload[13:]
    guid = LZMA_F86_GUID if f86 else LZMA_GUID
    header = _GUID_SECTION.pack(guid.bytes_le, 4 + _GUID_SECTION.size, 0x01)
    return build_section(SectionType.GUID_DEFINED, header + payload)


def build_file(name: uuid.UUID, typ: int, sections: list[bytes]) -> bytes:
    """An FFS file (24-byte header) of the given sections, each 4-byte aligned."""
    body = b""
    for s in sections:
        body += b"\x00" * (_align(len(body), 4) - len(body)) + s
    size = _FFS_HEADER.size + len(body)
    if size >= 0xFFFFFF:
        raise FormatError("file too large for a 24-bit size")
    return _FFS_HEADER.pack(name.bytes_le, 0xAA00, typ, 0, size.to_bytes(3, "little"), 0x07) + body


def build_volume(files: list[bytes], *, name: uuid.UUID | None = None, length: int | None = None) -> bytes:
    """An FFS2 volume holding ``files`` (8-byte aligned), padded with 0xff to ``length``."""
    hlen = _FV_HEADER.size + 2 * _BLOCK.size
    body = b""
    ext = 0
    if name is not None:
        ext = hlen
        body += _FV_EXT_HEADER.pack(name.bytes_le, _FV_EXT_HEADER.size)
    for f in files:
        body += b"\xff" * (_align(hlen + len(body), 8) - hlen - len(body)) + f
    total = hlen + len(body)
    length = _align(total, 8) if length is None else length
    if length < total:
        raise FormatError(f"volume of {length} bytes cannot hold {total} bytes")
    header = _FV_HEADER.pack(b"\x00" * 16, FFS2_GUID.bytes_le, length, _FV_SIGNATURE, 0x0004FEFF, hlen, 0, ext, 0, 2)
    header += _BLOCK.pack(length // 8 if length % 8 == 0 else 1, 8 if length % 8 == 0 else length) + _BLOCK.pack(0, 0)
    return (header + body).ljust(length, b"\xff")
