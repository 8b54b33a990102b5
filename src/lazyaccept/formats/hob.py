"""PI Hand-Off Block (HOB) lists, as the VMM hands them to TDVF in the TD_HOB section.

References: firmware-and-platform.md §1.5 (resource types, attributes), §2.1 (QEMU's TD HOB),
§2.2 (TDVF's ValidateHobList); PI spec vol. 3 / EDK2 ``MdePkg/Include/Pi/PiHob.h``.

Every HOB starts with the generic header ``u16 HobType | u16 HobLength | u32 Reserved (= 0)``.
The list must start with the PHIT (hand-off information table, type 0x0001) and ends with the
END_OF_HOB_LIST HOB (type 0xFFFF).  Resource descriptors (type 0x0003) are decoded; every other
HOB is kept as raw bytes so a list round-trips unchanged.

Validation is TDVF's (SecTdxHelper.c ValidateHobList) plus the PI rule that HobLength is a
multiple of 8: reserved field zero, HobLength non-zero (a zero length would make the walk loop
forever), known fixed-size HOB types have exactly their size, resource type <= 7, resource
attributes within the known mask, BootMode one of the PI boot modes, EfiFreeMemoryTop 4 KiB
aligned, and no HOB runs past the end of the data.  Bytes after the END HOB are allowed and
ignored: the TD_HOB section the VMM fills is larger than the list it writes.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field, replace
from enum import IntEnum

from ..base.errors import FormatError
from ..base.units import PAGE_SIZE

# -- HOB types (PiHob.h) ----------------------------------------------------------------------
HOB_TYPE_HANDOFF = 0x0001
HOB_TYPE_MEMORY_ALLOCATION = 0x0002
HOB_TYPE_RESOURCE_DESCRIPTOR = 0x0003
HOB_TYPE_GUID_EXTENSION = 0x0004
HOB_TYPE_FV = 0x0005
HOB_TYPE_CPU = 0x0006
HOB_TYPE_MEMORY_POOL = 0x0007
HOB_TYPE_FV2 = 0x0009
HOB_TYPE_LOAD_PEIM_UNUSED = 0x000A
HOB_TYPE_UEFI_CAPSULE = 0x000B
HOB_TYPE_FV3 = 0x000C
HOB_TYPE_UNUSED = 0xFFFE
HOB_TYPE_END_OF_HOB_LIST = 0xFFFF

# -- layouts: one declaration per structure, used by parser and builder ------------------------
#: EFI_HOB_GENERIC_HEADER: HobType, HobLength, Reserved.
_GENERIC = struct.Struct("<HHI")
#: EFI_HOB_HANDOFF_INFO_TABLE: header, Version, BootMode, EfiMemoryTop, EfiMemoryBottom,
#: EfiFreeMemoryTop, EfiFreeMemoryBottom, EfiEndOfHobList.
_HANDOFF = struct.Struct("<HHIIIQQQQQ")
#: EFI_HOB_RESOURCE_DESCRIPTOR: header, Owner GUID, ResourceType, ResourceAttribute,
#: PhysicalStart, ResourceLength.
_RESOURCE = struct.Struct("<HHI16sIIQQ")
#: EFI_HOB_CPU after the header: SizeOfMemorySpace, SizeOfIoSpace, Reserved[6].
_CPU_BODY = struct.Struct("<BB6s")

#: Types whose structure has one fixed size (TDVF rejects any other HobLength for them).
#: FV3 is header 8 + 2*u64 + u32 + BOOLEAN (+3 padding) + 2 GUIDs = 64.
_EXACT_SIZE = {
    HOB_TYPE_HANDOFF: _HANDOFF.size,  # 56
    HOB_TYPE_RESOURCE_DESCRIPTOR: _RESOURCE.size,  # 48
    HOB_TYPE_FV: 24,
    HOB_TYPE_CPU: _GENERIC.size + _CPU_BODY.size,  # 16
    HOB_TYPE_FV2: 56,
    HOB_TYPE_UEFI_CAPSULE: 24,
    HOB_TYPE_FV3: 64,
    HOB_TYPE_END_OF_HOB_LIST: _GENERIC.size,  # 8
}
#: Variable-length types with a fixed leading structure.
_MIN_SIZE = {
    HOB_TYPE_MEMORY_ALLOCATION: 48,  # header + EFI_HOB_MEMORY_ALLOCATION_HEADER (40)
    HOB_TYPE_GUID_EXTENSION: 24,  # header + Name GUID
}
_HOB_TYPE_NAMES = {
    HOB_TYPE_HANDOFF: "HANDOFF",
    HOB_TYPE_MEMORY_ALLOCATION: "MEMORY_ALLOCATION",
    HOB_TYPE_RESOURCE_DESCRIPTOR: "RESOURCE_DESCRIPTOR",
    HOB_TYPE_GUID_EXTENSION: "GUID_EXTENSION",
    HOB_TYPE_FV: "FV",
    HOB_TYPE_CPU: "CPU",
    HOB_TYPE_MEMORY_POOL: "MEMORY_POOL",
    HOB_TYPE_FV2: "FV2",
    HOB_TYPE_LOAD_PEIM_UNUSED: "LOAD_PEIM_UNUSED",
    HOB_TYPE_UEFI_CAPSULE: "UEFI_CAPSULE",
    HOB_TYPE_FV3: "FV3",
    HOB_TYPE_UNUSED: "UNUSED",
    HOB_TYPE_END_OF_HOB_LIST: "END_OF_HOB_LIST",
}

# -- PHIT ------------------------------------------------------------------------------------
EFI_HOB_HANDOFF_TABLE_VERSION = 0x0009
BOOT_WITH_FULL_CONFIGURATION = 0x00
#: PI boot modes (PiBootMode.h); TDVF rejects any other BootMode.
BOOT_MODES = frozenset({0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x20})


# -- resource descriptors ----------------------------------------------------------------------
class ResourceType(IntEnum):
    """``EFI_RESOURCE_TYPE``; 7 is the unaccepted-memory type added for TDX / SEV-SNP."""

    EFI_RESOURCE_SYSTEM_MEMORY = 0
    EFI_RESOURCE_MEMORY_MAPPED_IO = 1
    EFI_RESOURCE_IO = 2
    EFI_RESOURCE_FIRMWARE_DEVICE = 3
    EFI_RESOURCE_MEMORY_MAPPED_IO_PORT = 4
    EFI_RESOURCE_MEMORY_RESERVED = 5
    EFI_RESOURCE_IO_RESERVED = 6
    EFI_RESOURCE_MEMORY_UNACCEPTED = 7


RESOURCE_SYSTEM_MEMORY = ResourceType.EFI_RESOURCE_SYSTEM_MEMORY.value
RESOURCE_MEMORY_MAPPED_IO = ResourceType.EFI_RESOURCE_MEMORY_MAPPED_IO.value
RESOURCE_IO = ResourceType.EFI_RESOURCE_IO.value
RESOURCE_FIRMWARE_DEVICE = ResourceType.EFI_RESOURCE_FIRMWARE_DEVICE.value
RESOURCE_MEMORY_MAPPED_IO_PORT = ResourceType.EFI_RESOURCE_MEMORY_MAPPED_IO_PORT.value
RESOURCE_MEMORY_RESERVED = ResourceType.EFI_RESOURCE_MEMORY_RESERVED.value
RESOURCE_IO_RESERVED = ResourceType.EFI_RESOURCE_IO_RESERVED.value
RESOURCE_MEMORY_UNACCEPTED = ResourceType.EFI_RESOURCE_MEMORY_UNACCEPTED.value

# EFI_RESOURCE_ATTRIBUTE_* (PiHob.h; ENCRYPTED and SPECIAL_PURPOSE are PI 1.8, accepted by
# TDVF since edk2 PR #5644).
EFI_RESOURCE_ATTRIBUTE_PRESENT = 0x00000001
EFI_RESOURCE_ATTRIBUTE_INITIALIZED = 0x00000002
EFI_RESOURCE_ATTRIBUTE_TESTED = 0x00000004
EFI_RESOURCE_ATTRIBUTE_SINGLE_BIT_ECC = 0x00000008
EFI_RESOURCE_ATTRIBUTE_MULTIPLE_BIT_ECC = 0x00000010
EFI_RESOURCE_ATTRIBUTE_ECC_RESERVED_1 = 0x00000020
EFI_RESOURCE_ATTRIBUTE_ECC_RESERVED_2 = 0x00000040
EFI_RESOURCE_ATTRIBUTE_READ_PROTECTED = 0x00000080
EFI_RESOURCE_ATTRIBUTE_WRITE_PROTECTED = 0x00000100
EFI_RESOURCE_ATTRIBUTE_EXECUTION_PROTECTED = 0x00000200
EFI_RESOURCE_ATTRIBUTE_UNCACHEABLE = 0x00000400
EFI_RESOURCE_ATTRIBUTE_WRITE_COMBINEABLE = 0x00000800
EFI_RESOURCE_ATTRIBUTE_WRITE_THROUGH_CACHEABLE = 0x00001000
EFI_RESOURCE_ATTRIBUTE_WRITE_BACK_CACHEABLE = 0x00002000
EFI_RESOURCE_ATTRIBUTE_16_BIT_IO = 0x00004000
EFI_RESOURCE_ATTRIBUTE_32_BIT_IO = 0x00008000
EFI_RESOURCE_ATTRIBUTE_64_BIT_IO = 0x00010000
EFI_RESOURCE_ATTRIBUTE_UNCACHED_EXPORTED = 0x00020000
EFI_RESOURCE_ATTRIBUTE_READ_ONLY_PROTECTED = 0x00040000
EFI_RESOURCE_ATTRIBUTE_READ_ONLY_PROTECTABLE = 0x00080000
EFI_RESOURCE_ATTRIBUTE_READ_PROTECTABLE = 0x00100000
EFI_RESOURCE_ATTRIBUTE_WRITE_PROTECTABLE = 0x00200000
EFI_RESOURCE_ATTRIBUTE_EXECUTION_PROTECTABLE = 0x00400000
EFI_RESOURCE_ATTRIBUTE_PERSISTENT = 0x00800000
EFI_RESOURCE_ATTRIBUTE_PERSISTABLE = 0x01000000
EFI_RESOURCE_ATTRIBUTE_MORE_RELIABLE = 0x02000000
EFI_RESOURCE_ATTRIBUTE_ENCRYPTED = 0x04000000
EFI_RESOURCE_ATTRIBUTE_SPECIAL_PURPOSE = 0x08000000

#: (bit, name) pairs in bit order; names drop the ``EFI_RESOURCE_ATTRIBUTE_`` prefix.
_RESOURCE_ATTRIBUTE_BITS: tuple[tuple[int, str], ...] = (
    (EFI_RESOURCE_ATTRIBUTE_PRESENT, "PRESENT"),
    (EFI_RESOURCE_ATTRIBUTE_INITIALIZED, "INITIALIZED"),
    (EFI_RESOURCE_ATTRIBUTE_TESTED, "TESTED"),
    (EFI_RESOURCE_ATTRIBUTE_SINGLE_BIT_ECC, "SINGLE_BIT_ECC"),
    (EFI_RESOURCE_ATTRIBUTE_MULTIPLE_BIT_ECC, "MULTIPLE_BIT_ECC"),
    (EFI_RESOURCE_ATTRIBUTE_ECC_RESERVED_1, "ECC_RESERVED_1"),
    (EFI_RESOURCE_ATTRIBUTE_ECC_RESERVED_2, "ECC_RESERVED_2"),
    (EFI_RESOURCE_ATTRIBUTE_READ_PROTECTED, "READ_PROTECTED"),
    (EFI_RESOURCE_ATTRIBUTE_WRITE_PROTECTED, "WRITE_PROTECTED"),
    (EFI_RESOURCE_ATTRIBUTE_EXECUTION_PROTECTED, "EXECUTION_PROTECTED"),
    (EFI_RESOURCE_ATTRIBUTE_UNCACHEABLE, "UNCACHEABLE"),
    (EFI_RESOURCE_ATTRIBUTE_WRITE_COMBINEABLE, "WRITE_COMBINEABLE"),
    (EFI_RESOURCE_ATTRIBUTE_WRITE_THROUGH_CACHEABLE, "WRITE_THROUGH_CACHEABLE"),
    (EFI_RESOURCE_ATTRIBUTE_WRITE_BACK_CACHEABLE, "WRITE_BACK_CACHEABLE"),
    (EFI_RESOURCE_ATTRIBUTE_16_BIT_IO, "16_BIT_IO"),
    (EFI_RESOURCE_ATTRIBUTE_32_BIT_IO, "32_BIT_IO"),
    (EFI_RESOURCE_ATTRIBUTE_64_BIT_IO, "64_BIT_IO"),
    (EFI_RESOURCE_ATTRIBUTE_UNCACHED_EXPORTED, "UNCACHED_EXPORTED"),
    (EFI_RESOURCE_ATTRIBUTE_READ_ONLY_PROTECTED, "READ_ONLY_PROTECTED"),
    (EFI_RESOURCE_ATTRIBUTE_READ_ONLY_PROTECTABLE, "READ_ONLY_PROTECTABLE"),
    (EFI_RESOURCE_ATTRIBUTE_READ_PROTECTABLE, "READ_PROTECTABLE"),
    (EFI_RESOURCE_ATTRIBUTE_WRITE_PROTECTABLE, "WRITE_PROTECTABLE"),
    (EFI_RESOURCE_ATTRIBUTE_EXECUTION_PROTECTABLE, "EXECUTION_PROTECTABLE"),
    (EFI_RESOURCE_ATTRIBUTE_PERSISTENT, "PERSISTENT"),
    (EFI_RESOURCE_ATTRIBUTE_PERSISTABLE, "PERSISTABLE"),
    (EFI_RESOURCE_ATTRIBUTE_MORE_RELIABLE, "MORE_RELIABLE"),
    (EFI_RESOURCE_ATTRIBUTE_ENCRYPTED, "ENCRYPTED"),
    (EFI_RESOURCE_ATTRIBUTE_SPECIAL_PURPOSE, "SPECIAL_PURPOSE"),
)
#: Every attribute bit TDVF accepts (bits 0..27 = 0x0FFFFFFF); anything else is a malformed HOB.
RESOURCE_ATTRIBUTE_KNOWN_MASK = sum(bit for bit, _ in _RESOURCE_ATTRIBUTE_BITS)

#: PRESENT | INITIALIZED | TESTED: what QEMU puts on both added and unaccepted TD RAM (§1.5).
TDX_RESOURCE_ATTRIBUTES = (
    EFI_RESOURCE_ATTRIBUTE_PRESENT | EFI_RESOURCE_ATTRIBUTE_INITIALIZED | EFI_RESOURCE_ATTRIBUTE_TESTED
)

_U16 = 1 << 16
_U32 = 1 << 32
_U64 = 1 << 64


def resource_type_name(t: int) -> str:
    """PI name of a resource type (``7 -> "EFI_RESOURCE_MEMORY_UNACCEPTED"``)."""
    try:
        return ResourceType(t).name
    except ValueError:
        return f"UNKNOWN_RESOURCE_TYPE({t:#x})"


def resource_attribute_names(attr: int) -> list[str]:
    """Names (without the ``EFI_RESOURCE_ATTRIBUTE_`` prefix) of the bits set, lowest first."""
    names = [name for bit, name in _RESOURCE_ATTRIBUTE_BITS if attr & bit]
    if attr & ~RESOURCE_ATTRIBUTE_KNOWN_MASK:
        names.append(f"{attr & ~RESOURCE_ATTRIBUTE_KNOWN_MASK:#x}")
    return names


def hob_type_name(t: int) -> str:
    """Short PI name of a HOB type (``3 -> "RESOURCE_DESCRIPTOR"``), hex for unknown ones."""
    return _HOB_TYPE_NAMES.get(t, f"{t:#06x}")


# -- the decoded structures -------------------------------------------------------------------
@dataclass
class Handoff:
    """The PHIT HOB's fields (EFI_HOB_HANDOFF_INFO_TABLE without its header)."""

    version: int = EFI_HOB_HANDOFF_TABLE_VERSION
    boot_mode: int = BOOT_WITH_FULL_CONFIGURATION
    efi_memory_top: int = 0
    efi_memory_bottom: int = 0
    efi_free_memory_top: int = 0
    efi_free_memory_bottom: int = 0
    #: Address of the END_OF_HOB_LIST HOB (where the next HOB would be created).
    efi_end_of_hob_list: int = 0


@dataclass
class ResourceDescriptor:
    """A resource descriptor HOB: ``length`` bytes at ``start`` of type ``resource_type``."""

    resource_type: int
    attribute: int
    start: int
    length: int
    owner: uuid.UUID = uuid.UUID(int=0)

    @property
    def end(self) -> int:
        """Exclusive end address."""
        return self.start + self.length

    @property
    def type_name(self) -> str:
        return resource_type_name(self.resource_type)


@dataclass
class RawHob:
    """Any other HOB, kept byte for byte: its type and the bytes after the generic header."""

    hob_type: int
    body: bytes = b""

    @property
    def length(self) -> int:
        """HobLength: header plus body."""
        return _GENERIC.size + len(self.body)


@dataclass
class HobList:
    """A whole list: the PHIT, then the HOBs in order (the END HOB is implicit)."""

    handoff: Handoff = field(default_factory=Handoff)
    hobs: list[ResourceDescriptor | RawHob] = field(default_factory=list)

    def resources(self) -> list[ResourceDescriptor]:
        """The resource descriptor HOBs, in list order."""
        return [h for h in self.hobs if isinstance(h, ResourceDescriptor)]


# -- rules shared by parser and builder ---------------------------------------------------------
def _check_length(hob_type: int, length: int, where: str) -> None:
    if length == 0:
        raise FormatError(f"{where}: HobLength is 0 (the walk would never advance)")
    if length % 8:
        raise FormatError(f"{where}: HobLength {length} is not a multiple of 8")
    exact = _EXACT_SIZE.get(hob_type)
    if exact is not None and length != exact:
        raise FormatError(
            f"{where}: {hob_type_name(hob_type)} HOB has HobLength {length}, its structure is {exact} bytes"
        )
    minimum = _MIN_SIZE.get(hob_type)
    if minimum is not None and length < minimum:
        raise FormatError(
            f"{where}: {hob_type_name(hob_type)} HOB has HobLength {length}, at least {minimum} needed"
        )


def _check_handoff(h: Handoff, where: str) -> None:
    for name, value, limit in (
        ("Version", h.version, _U32),
        ("BootMode", h.boot_mode, _U32),
        ("EfiMemoryTop", h.efi_memory_top, _U64),
        ("EfiMemoryBottom", h.efi_memory_bottom, _U64),
        ("EfiFreeMemoryTop", h.efi_free_memory_top, _U64),
        ("EfiFreeMemoryBottom", h.efi_free_memory_bottom, _U64),
        ("EfiEndOfHobList", h.efi_end_of_hob_list, _U64),
    ):
        if not 0 <= value < limit:
            raise FormatError(f"{where}: PHIT {name} {value:#x} is out of range")
    if h.boot_mode not in BOOT_MODES:
        raise FormatError(f"{where}: PHIT BootMode {h.boot_mode:#x} is not a PI boot mode")
    if h.efi_free_memory_top % PAGE_SIZE:
        raise FormatError(f"{where}: PHIT EfiFreeMemoryTop {h.efi_free_memory_top:#x} is not 4 KiB aligned")


def _check_resource(r: ResourceDescriptor, where: str) -> None:
    if not 0 <= r.resource_type < _U32 or r.resource_type > RESOURCE_MEMORY_UNACCEPTED:
        raise FormatError(f"{where}: resource type {r.resource_type:#x} is not one of 0..7")
    if not 0 <= r.attribute < _U32 or r.attribute & ~RESOURCE_ATTRIBUTE_KNOWN_MASK:
        raise FormatError(
            f"{where}: resource attribute {r.attribute:#x} has bits outside the known mask "
            f"{RESOURCE_ATTRIBUTE_KNOWN_MASK:#x}"
        )
    if not 0 <= r.start < _U64 or not 0 <= r.length < _U64:
        raise FormatError(f"{where}: resource start {r.start:#x} / length {r.length:#x} out of range")
    if r.start + r.length > _U64:
        raise FormatError(f"{where}: resource [{r.start:#x}, +{r.length:#x}) runs past 2^64")


def _check_cpu_body(body: bytes, where: str) -> None:
    _, _, reserved = _CPU_BODY.unpack_from(body, 0)
    if any(reserved):
        raise FormatError(f"{where}: CPU HOB Reserved bytes are not zero")


# -- parse / build ---------------------------------------------------------------------------
def parse_hob_list(data: bytes) -> HobList:
    """Walk and validate a HOB list; see the module docstring for the rules."""
    data = bytes(data)
    total = len(data)
    handoff: Handoff | None = None
    hobs: list[ResourceDescriptor | RawHob] = []
    off = 0
    while True:
        where = f"HOB at offset {off:#x}"
        if off + _GENERIC.size > total:
            raise FormatError(f"{where}: data ends ({total} bytes) before the END_OF_HOB_LIST HOB")
        hob_type, length, reserved = _GENERIC.unpack_from(data, off)
        if reserved != 0:
            raise FormatError(f"{where}: Reserved header field is {reserved:#x}, must be 0")
        _check_length(hob_type, length, where)
        if off + length > total:
            raise FormatError(f"{where}: HobLength {length} runs past the end of the data ({total} bytes)")
        if handoff is None and hob_type != HOB_TYPE_HANDOFF:
            raise FormatError(f"{where}: list starts with a {hob_type_name(hob_type)} HOB, not the PHIT")

        if hob_type == HOB_TYPE_HANDOFF:
            if handoff is not None:
                raise FormatError(f"{where}: second PHIT; the PHIT must be the first and only one")
            handoff = Handoff(*_HANDOFF.unpack_from(data, off)[3:])
            _check_handoff(handoff, where)
        elif hob_type == HOB_TYPE_RESOURCE_DESCRIPTOR:
            _, _, _, owner, rtype, attr, start, rlen = _RESOURCE.unpack_from(data, off)
            res = ResourceDescriptor(rtype, attr, start, rlen, uuid.UUID(bytes_le=owner))
            _check_resource(res, where)
            hobs.append(res)
        elif hob_type == HOB_TYPE_END_OF_HOB_LIST:
            assert handoff is not None
            return HobList(handoff, hobs)
        else:
            body = data[off + _GENERIC.size : off + length]
            if hob_type == HOB_TYPE_CPU:
                _check_cpu_body(body, where)
            hobs.append(RawHob(hob_type, body))
        off += length


def build_hob_list(hl: HobList, base_address: int | None = None) -> bytes:
    """Encode a list: PHIT, the HOBs, END_OF_HOB_LIST.

    With ``base_address`` (the guest-physical address the list is placed at) the PHIT's
    EfiEndOfHobList is set to the END HOB's address, as QEMU and EDK2 do; without it the value
    in ``hl.handoff`` is written unchanged.
    """
    parts: list[bytes] = []
    for i, h in enumerate(hl.hobs):
        where = f"hobs[{i}]"
        if isinstance(h, ResourceDescriptor):
            _check_resource(h, where)
            parts.append(
                _RESOURCE.pack(HOB_TYPE_RESOURCE_DESCRIPTOR, _RESOURCE.size, 0, h.owner.bytes_le,
                               h.resource_type, h.attribute, h.start, h.length)
            )
        elif isinstance(h, RawHob):
            if h.hob_type in (HOB_TYPE_HANDOFF, HOB_TYPE_RESOURCE_DESCRIPTOR, HOB_TYPE_END_OF_HOB_LIST):
                # These have their own representation; as raw bytes they would not round-trip.
                raise FormatError(f"{where}: a {hob_type_name(h.hob_type)} HOB cannot be given as RawHob")
            if not 0 <= h.hob_type < _U16 or h.length >= _U16:
                raise FormatError(
                    f"{where}: HOB type {h.hob_type:#x} / length {h.length} do not fit in 16 bits"
                )
            _check_length(h.hob_type, h.length, where)
            if h.hob_type == HOB_TYPE_CPU:
                _check_cpu_body(h.body, where)
            parts.append(_GENERIC.pack(h.hob_type, h.length, 0) + bytes(h.body))
        else:
            raise FormatError(f"{where}: {type(h).__name__} is not a HOB")
    body = b"".join(parts)
    handoff = hl.handoff
    if base_address is not None:
        end_addr = base_address + _HANDOFF.size + len(body)
        handoff = replace(handoff, efi_end_of_hob_list=end_addr)
    _check_handoff(handoff, "PHIT")
    phit = _HANDOFF.pack(
        HOB_TYPE_HANDOFF, _HANDOFF.size, 0, handoff.version, handoff.boot_mode, handoff.efi_memory_top,
        handoff.efi_memory_bottom, handoff.efi_free_memory_top, handoff.efi_free_memory_bottom,
        handoff.efi_end_of_hob_list,
    )
    return phit + body + _GENERIC.pack(HOB_TYPE_END_OF_HOB_LIST, _GENERIC.size, 0)
