"""Byte-exact tests of the binary formats: hand-built encodings, spec values, round trips, errors.

Every expected value here was worked out by hand from the references (firmware-and-platform.md
§1, linux-kernel.md §1-§2, PI spec PiHob.h, Linux x86-stub.c / e820.c), never pasted from the
code's own output.  Byte strings are written as hex so they do not depend on ``struct``.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyaccept.base.errors import FormatError
from lazyaccept.formats import e820, hob
from lazyaccept.formats.e820 import (
    KNOWN_TYPES,
    E820Entry,
    build_e820_table,
    efi_to_e820,
    efi_type_to_e820,
    format_e820_line,
    parse_e820_table,
)
from lazyaccept.formats.efi_memmap import (
    DESCRIPTOR_SIZE_EDK2,
    DESCRIPTOR_SIZE_MIN,
    EFI_MEMORY_CPU_CRYPTO,
    EFI_MEMORY_RUNTIME,
    EFI_MEMORY_SP,
    EFI_MEMORY_UC,
    EFI_MEMORY_WB,
    EfiMemoryDescriptor,
    MemoryType,
    attribute_names,
    build_memory_map,
    parse_memory_map,
)
from lazyaccept.formats.hob import (
    RESOURCE_MEMORY_UNACCEPTED,
    RESOURCE_SYSTEM_MEMORY,
    TDX_RESOURCE_ATTRIBUTES,
    Handoff,
    HobList,
    RawHob,
    ResourceDescriptor,
    build_hob_list,
    parse_hob_list,
)
from lazyaccept.formats.unaccepted import (
    HEADER_SIZE,
    UNACCEPTED_TABLE_GUID,
    UnacceptedTable,
    build_unaccepted_table,
    new_table,
    parse_unaccepted_table,
    stub_geometry,
)

K = 1 << 10
M = 1 << 20
G = 1 << 30


def h(text: str) -> bytes:
    """Hex with spaces allowed, for readable hand-built byte strings."""
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# =============================================================================================
# EFI memory map
# =============================================================================================

# Two EDK2-style 48-byte descriptors, written field by field:
#   Type u32 | pad 4 | PhysicalStart u64 | VirtualStart u64 | NumberOfPages u64 | Attribute u64 | 8 pad
# 0: EfiConventionalMemory (7) at 0, 0x9f pages, attribute UC|WC|WT|WB = 0xf
# 1: EfiUnacceptedMemoryType (15) at 0x1_0000_0000, 0x40000 pages, attribute WB = 0x8
MAP48 = h(
    "07000000 00000000 0000000000000000 0000000000000000 9f00000000000000 0f00000000000000 0000000000000000"
    "0f000000 00000000 0000000001000000 0000000000000000 0000040000000000 0800000000000000 0000000000000000"
)


def test_memory_type_numbers_are_uefi():
    assert len(MemoryType) == 16
    assert MemoryType.EfiReservedMemoryType == 0
    assert MemoryType.EfiConventionalMemory == 7
    assert MemoryType.EfiACPIReclaimMemory == 9
    assert MemoryType.EfiPersistentMemory == 14
    assert MemoryType.EfiUnacceptedMemoryType == 15
    assert MemoryType(12).name == "EfiMemoryMappedIOPortSpace"
    assert MemoryType(13).name == "EfiPalCode"


def test_attribute_bits_match_spec_values():
    # firmware-and-platform.md §1.3
    assert EFI_MEMORY_UC == 0x1
    assert EFI_MEMORY_WB == 0x8
    assert EFI_MEMORY_SP == 0x40000
    assert EFI_MEMORY_CPU_CRYPTO == 0x80000
    assert EFI_MEMORY_RUNTIME == 0x8000000000000000
    assert attribute_names(0x800000000000000F) == ["UC", "WC", "WT", "WB", "RUNTIME"]
    assert attribute_names(0) == []
    # An undefined bit (bit 20+1 = 0x200000) is reported, not dropped.
    assert attribute_names(0x8 | 0x200000) == ["WB", "0x200000"]


def test_parse_edk2_map_by_hand():
    assert len(MAP48) == 96
    descs = parse_memory_map(MAP48, 48)
    assert descs == [
        EfiMemoryDescriptor(7, 0, 0x9F, 0xF),
        EfiMemoryDescriptor(15, 0x100000000, 0x40000, 0x8),
    ]
    second = descs[1]
    assert second.type_name == "EfiUnacceptedMemoryType"
    assert second.size == 1 * G  # 0x40000 pages * 4 KiB
    assert second.end == 0x140000000
    assert descs[0].end == 0x9F000


def test_build_edk2_map_is_byte_exact():
    descs = [EfiMemoryDescriptor(7, 0, 0x9F, 0xF), EfiMemoryDescriptor(15, 0x100000000, 0x40000, 0x8)]
    assert build_memory_map(descs) == MAP48
    assert DESCRIPTOR_SIZE_EDK2 == 48 and DESCRIPTOR_SIZE_MIN == 40


def test_descriptor_size_is_detected():
    assert parse_memory_map(MAP48) == parse_memory_map(MAP48, 48)
    # The same two descriptors at stride 40: 80 bytes is not a multiple of 48, so only 40 fits.
    map40 = MAP48[0:40] + MAP48[48:88]
    assert parse_memory_map(map40) == parse_memory_map(MAP48, 48)


def test_detection_falls_back_to_40_when_48_reads_garbage():
    # Six 40-byte descriptors = 240 bytes = five 48-byte strides.  Read at stride 48, the second
    # "descriptor" starts 8 bytes into the real second one, so its Type is the low half of
    # PhysicalStart 0x100000 = 0x100000: a reserved type.  Detection must settle on 40.
    descs = [EfiMemoryDescriptor(7, 0x100000 * (i + 1), 1) for i in range(6)]
    raw = build_memory_map(descs, 40)
    assert len(raw) == 240
    with pytest.raises(FormatError):
        parse_memory_map(raw, 48)
    assert parse_memory_map(raw) == descs


def test_detection_prefers_48_when_both_strides_are_valid():
    # 240 bytes = 30 u64 words, chosen by hand so that they read as 5 valid 48-byte descriptors
    # AND as 6 valid 40-byte ones.  Word roles (48 stride | 40 stride), T=type S=start P=pages:
    words = [
        7, 0, 0, 1, 0,  # T0=t0=7, S0=s0=0, P0=p0=1
        7,  # 48: padding           | 40: t1 = 7
        1 << 32,  # 48: T1 = low half 0  | 40: s1 = 4 GiB
        0x100000,  # 48: S1 = 1 MiB       | 40: v1
        1,  # 48: V1               | 40: p1 = 1
        1,  # 48: P1 = 1           | 40: a1
        0,  # 48: A1               | 40: t2 = 0
        0x200000,  # 48: padding          | 40: s2 = 2 MiB
        7,  # 48: T2 = 7           | 40: v2
        0x1000,  # 48: S2 = 4 KiB       | 40: p2 = 0x1000 pages (16 MiB)
        0,  # 48: V2               | 40: a2
        7,  # 48: P2 = 7           | 40: t3 = 7
        0x2000000,  # 48: A2               | 40: s3 = 32 MiB
        0,  # 48: padding          | 40: v3
        7,  # 48: T3 = 7           | 40: p3 = 7
        0x4000000,  # 48: S3 = 64 MiB      | 40: a3
        7,  # 48: V3               | 40: t4 = 7
        0x8000000,  # 48: P3 = 2^27 pages  | 40: s4 = 128 MiB
        0,  # 48: A3               | 40: v4
        1,  # 48: padding          | 40: p4 = 1
        7,  # 48: T4 = 7           | 40: a4
        1 << 40,  # 48: S4 = 1 TiB       | 40: t5 = low half 0
        0x200000000,  # 48: V4               | 40: s5 = 8 GiB
        1,  # 48: P4 = 1           | 40: v5
        1,  # 48: A4               | 40: p5 = 1
        0,  # 48: padding          | 40: a5
    ]
    raw = b"".join(w.to_bytes(8, "little") for w in words)
    as40 = parse_memory_map(raw, 40)
    assert [(d.type, d.physical_start, d.number_of_pages) for d in as40] == [
        (7, 0, 1), (7, 4 * G, 1), (0, 2 * M, 0x1000), (7, 32 * M, 7), (7, 128 * M, 1), (0, 8 * G, 1)
    ]
    expected48 = [(7, 0, 1), (0, 1 * M, 1), (7, 4 * K, 7), (7, 64 * M, 1 << 27), (7, 1 << 40, 1)]
    assert [(d.type, d.physical_start, d.number_of_pages) for d in parse_memory_map(raw, 48)] == expected48
    assert [(d.type, d.physical_start, d.number_of_pages) for d in parse_memory_map(raw)] == expected48


def test_padding_bytes_are_ignored_on_parse():
    dirty = bytearray(MAP48)
    dirty[4:8] = b"\xaa" * 4  # implicit padding after Type
    dirty[40:48] = b"\xbb" * 8  # EDK2's extra 8 bytes
    assert parse_memory_map(bytes(dirty), 48) == parse_memory_map(MAP48, 48)


def test_oem_and_os_loader_types_are_kept_raw():
    descs = [EfiMemoryDescriptor(0x70000001, 0, 1), EfiMemoryDescriptor(0x80000005, 0x1000, 1)]
    back = parse_memory_map(build_memory_map(descs))
    assert [d.type for d in back] == [0x70000001, 0x80000005]
    assert back[0].type_name.startswith("OEM")
    assert back[1].type_name.startswith("OSLoader")


def test_other_strides_round_trip():
    descs = [EfiMemoryDescriptor(4, 0x200000, 16, EFI_MEMORY_WB, 0xFFFF800000200000)]
    for stride in (40, 41, 48, 64, 4096):
        raw = build_memory_map(descs, stride)
        assert len(raw) == stride
        assert parse_memory_map(raw, stride) == descs


def test_empty_map_is_empty():
    assert parse_memory_map(b"", 48) == []
    assert build_memory_map([]) == b""


@pytest.mark.parametrize(
    "data, size, needle",
    [
        (MAP48, 32, "smaller than"),  # descriptor size < 40
        (MAP48, 39, "smaller than"),
        (MAP48[:-1], 48, "whole number"),  # truncated
        (MAP48[:50], 48, "whole number"),
        (MAP48[:47], None, "not an EFI memory map"),
    ],
)
def test_memory_map_shape_errors(data, size, needle):
    with pytest.raises(FormatError, match=needle):
        parse_memory_map(data, size)


@pytest.mark.parametrize(
    "desc, needle",
    [
        (EfiMemoryDescriptor(7, 0x1001, 1), "not 4 KiB aligned"),
        (EfiMemoryDescriptor(7, 0x1000, 0), "NumberOfPages is 0"),
        # 0xffff_ffff_ffff_f000 + 2 pages wraps past 2^64.
        (EfiMemoryDescriptor(7, 0xFFFFFFFFFFFFF000, 2), "64-bit address space"),
        (EfiMemoryDescriptor(16, 0, 1), "reserved range"),
        (EfiMemoryDescriptor(0x6FFFFFFF, 0, 1), "reserved range"),
    ],
)
def test_bad_descriptor_is_rejected_by_parser_and_builder(desc, needle):
    # Build the bytes by hand so the builder's own checks cannot hide the parser's.
    raw = (
        desc.type.to_bytes(4, "little")
        + bytes(4)
        + desc.physical_start.to_bytes(8, "little")
        + bytes(8)
        + desc.number_of_pages.to_bytes(8, "little")
        + bytes(16)
    )
    with pytest.raises(FormatError, match=needle):
        parse_memory_map(raw, 48)
    with pytest.raises(FormatError, match=needle):
        build_memory_map([desc])


def test_last_page_of_address_space_is_fine():
    d = EfiMemoryDescriptor(7, 0xFFFFFFFFFFFFF000, 1)
    assert d.end == 1 << 64
    assert parse_memory_map(build_memory_map([d])) == [d]


def test_overlapping_descriptors_are_an_error():
    # [1 MiB, 1 MiB + 2 pages) and [1 MiB + 1 page, +1 page) share one page; map order reversed.
    descs = [EfiMemoryDescriptor(7, 0x101000, 1), EfiMemoryDescriptor(4, 0x100000, 2)]
    raw = b"".join(build_memory_map([d]) for d in descs)
    with pytest.raises(FormatError, match="overlap"):
        parse_memory_map(raw, 48)
    with pytest.raises(FormatError, match="overlap"):
        build_memory_map(descs)
    # Touching is not overlapping.
    assert len(parse_memory_map(build_memory_map([descs[0], EfiMemoryDescriptor(4, 0x100000, 1)]))) == 2


# =============================================================================================
# Unaccepted-memory table
# =============================================================================================

# version 1 | unit_size 0x200000 | phys_base 0x1_0000_0000 | size 2 | bitmap 0x05 0xf0
TABLE = h("01000000 00002000 0000000001000000 0200000000000000 05 f0")


def test_guid_and_header_size():
    assert UNACCEPTED_TABLE_GUID == uuid.UUID("d5d1de3c-105c-44f9-9ea9-bcef98120031")
    assert HEADER_SIZE == 24


def test_parse_table_by_hand():
    t = parse_unaccepted_table(TABLE)
    assert (t.version, t.unit_size, t.phys_base, t.size) == (1, 2 * M, 4 * G, 2)
    # 0x05 = bits 0 and 2; 0xf0 = bits 4..7 of byte 1 = bits 12..15.
    assert np.flatnonzero(t.bits).tolist() == [0, 2, 12, 13, 14, 15]
    assert t.unaccepted_ranges() == [
        (4 * G, 4 * G + 2 * M),
        (4 * G + 4 * M, 4 * G + 6 * M),
        (4 * G + 24 * M, 4 * G + 32 * M),
    ]
    assert t.unaccepted_bytes() == 6 * 2 * M
    assert t.max_addr == 4 * G + 2 * 8 * 2 * M  # 16 units of 2 MiB
    assert t.unit_index(4 * G) == 0
    assert t.unit_index(4 * G + 5 * M) == 2
    assert t.unit_index(4 * G + 32 * M - 1) == 15


def test_alternating_bitmap_by_hand():
    # 0xaa = 0b10101010: bits 1, 3, 5, 7 -> the odd 2 MiB units above 4 GiB.
    t = parse_unaccepted_table(h("01000000 00002000 0000000001000000 0100000000000000 aa"))
    assert t.unaccepted_ranges() == [
        (4 * G + 2 * M, 4 * G + 4 * M),
        (4 * G + 6 * M, 4 * G + 8 * M),
        (4 * G + 10 * M, 4 * G + 12 * M),
        (4 * G + 14 * M, 4 * G + 16 * M),
    ]


def test_bitmap_is_little_endian_64_bit_words():
    # One unsigned long with only bit 63 set is stored as bytes 00 .. 00 80.
    word = (1 << 63).to_bytes(8, "little")
    t = parse_unaccepted_table(h("01000000 00002000 0000000000000000 0800000000000000") + word)
    assert np.flatnonzero(t.bits).tolist() == [63]
    assert t.unaccepted_ranges() == [(63 * 2 * M, 64 * 2 * M)]


def test_build_table_is_byte_exact():
    bits = np.zeros(16, dtype=bool)
    bits[[0, 2, 12, 13, 14, 15]] = True
    assert build_unaccepted_table(UnacceptedTable(1, 2 * M, 4 * G, bits)) == TABLE


def test_runs_spanning_bytes_are_coalesced():
    t = new_table(0, 4)
    t.bits[5:27] = True  # one run across bytes 0..3
    assert t.unaccepted_ranges() == [(5 * 2 * M, 27 * 2 * M)]
    t.bits[:] = True
    assert t.unaccepted_ranges() == [(0, 32 * 2 * M)]


def test_four_kib_bitmap_covers_64_gib():
    t = new_table(0, 4096)
    assert t.max_addr == 64 * G
    assert not t.bits.any() and t.version == 1
    whole = [EfiMemoryDescriptor(15, 0, 64 * G // 4096)]
    assert stub_geometry(whole) == (0, 4096)


def test_trailing_bytes_after_bitmap_are_ignored():
    assert parse_unaccepted_table(TABLE + b"\xff" * 7) == parse_unaccepted_table(TABLE)


def test_stub_geometry_by_hand():
    # Type-15 [4G, 6G) and [6G+4K, 8G): lo = 4G, hi = 8G, both 2 MiB aligned;
    # (8G - 4G) / (2 MiB * 8 bits) = 4G / 16M = 256 bytes.
    descs = [
        EfiMemoryDescriptor(7, 0, 0x9F),
        EfiMemoryDescriptor(15, 6 * G + 4 * K, (2 * G - 4 * K) // 4096),
        EfiMemoryDescriptor(15, 4 * G, 2 * G // 4096),
    ]
    assert stub_geometry(descs) == (4 * G, 256)


def test_stub_geometry_rounds_out_to_units_and_up_to_bytes():
    # [4G+4K, 5G+4K): phys_base = 4G, end = round_up(5G+4K, 2M) = 5G+2M, span 1026 MiB,
    # 1026 MiB / 16 MiB = 64.125 -> 65 bytes.
    descs = [EfiMemoryDescriptor(15, 4 * G + 4 * K, G // 4096)]
    assert stub_geometry(descs) == (4 * G, 65)
    # A different unit: 1 GiB units, 8 GiB per byte: [4G+4K, 5G+4K) -> base 4G, end 6G -> 1 byte.
    assert stub_geometry(descs, unit_size=G) == (4 * G, 1)


def test_stub_geometry_none_without_unaccepted_memory():
    assert stub_geometry([EfiMemoryDescriptor(7, 0, 16)]) is None
    assert stub_geometry([]) is None


def test_unit_index_outside_bitmap():
    t = parse_unaccepted_table(TABLE)
    with pytest.raises(ValueError):
        t.unit_index(4 * G - 1)
    with pytest.raises(ValueError):
        t.unit_index(t.max_addr)


@pytest.mark.parametrize(
    "data, needle",
    [
        (TABLE[:23], "shorter than"),
        (b"", "shorter than"),
        (h("02000000") + TABLE[4:], "version"),
        (h("00000000") + TABLE[4:], "version"),
        (TABLE[:4] + h("00000000") + TABLE[8:], "power of two"),  # unit 0
        (TABLE[:4] + h("00300000") + TABLE[8:], "power of two"),  # unit 12 KiB
        (TABLE[:4] + h("00080000") + TABLE[8:], "multiple of 4 KiB"),  # unit 2 KiB
        (TABLE[:8] + h("0010000001000000") + TABLE[16:], "not aligned"),  # 4G + 4K
        (TABLE[:16] + h("0300000000000000") + TABLE[24:], "only 2 follow"),  # size past end
        (TABLE[:16] + h("ffffffffffffffff") + TABLE[24:], "follow the header"),
        (TABLE[:-1], "follow the header"),  # truncated bitmap
    ],
)
def test_unaccepted_table_errors(data, needle):
    with pytest.raises(FormatError, match=needle):
        parse_unaccepted_table(data)


def test_table_covering_past_2_64_is_an_error():
    # phys_base = 2^64 - 2 MiB, one bitmap byte = 8 units: runs 14 MiB past 2^64.
    data = h("01000000 00002000") + ((1 << 64) - 2 * M).to_bytes(8, "little") + h("0100000000000000 00")
    with pytest.raises(FormatError, match="2\\^64"):
        parse_unaccepted_table(data)


def test_builder_rejects_what_parser_rejects():
    with pytest.raises(FormatError):
        build_unaccepted_table(UnacceptedTable(2, 2 * M, 0, np.zeros(8, bool)))
    with pytest.raises(FormatError):
        build_unaccepted_table(UnacceptedTable(1, 2 * M, 4 * K, np.zeros(8, bool)))
    with pytest.raises(FormatError):
        UnacceptedTable(1, 2 * M, 0, np.zeros(7, bool))  # not whole bytes
    with pytest.raises(FormatError):
        new_table(1 * M, 1)


# =============================================================================================
# HOB list
# =============================================================================================

# PHIT: type 1, length 56, reserved 0 | Version 9 | BootMode 0 | EfiMemoryTop, EfiMemoryBottom,
#       EfiFreeMemoryTop, EfiFreeMemoryBottom = 0 | EfiEndOfHobList = 0x809000 + 56 + 48 = 0x809068
# Resource: type 3, length 48, reserved 0 | Owner = 0 | ResourceType 7 | attribute 7 |
#           PhysicalStart 0x1_0000_0000 | ResourceLength 0x1_8000_0000 (6 GiB)
# END: type 0xffff, length 8, reserved 0
PHIT = h(
    "0100 3800 00000000 09000000 00000000"
    "0000000000000000 0000000000000000 0000000000000000 0000000000000000 6890800000000000"
)
RES_UNACCEPTED = h(
    "0300 3000 00000000 00000000000000000000000000000000 07000000 07000000"
    "0000000001000000 0000008001000000"
)
END = h("ffff 0800 00000000")
HOBS = PHIT + RES_UNACCEPTED + END


def test_resource_constants_match_pi():
    assert RESOURCE_SYSTEM_MEMORY == 0
    assert RESOURCE_MEMORY_UNACCEPTED == 7
    assert hob.resource_type_name(7) == "EFI_RESOURCE_MEMORY_UNACCEPTED"
    assert hob.resource_type_name(5) == "EFI_RESOURCE_MEMORY_RESERVED"
    assert TDX_RESOURCE_ATTRIBUTES == 0x7
    assert hob.EFI_RESOURCE_ATTRIBUTE_UNCACHEABLE == 0x400
    assert hob.EFI_RESOURCE_ATTRIBUTE_PERSISTENT == 0x800000
    assert hob.EFI_RESOURCE_ATTRIBUTE_MORE_RELIABLE == 0x2000000
    assert hob.EFI_RESOURCE_ATTRIBUTE_ENCRYPTED == 0x4000000
    assert hob.resource_attribute_names(0x7) == ["PRESENT", "INITIALIZED", "TESTED"]


def test_parse_td_hob_by_hand():
    assert len(PHIT) == 56 and len(RES_UNACCEPTED) == 48 and len(END) == 8
    hl = parse_hob_list(HOBS)
    assert hl.handoff == Handoff(version=9, boot_mode=0, efi_end_of_hob_list=0x809068)
    (r,) = hl.resources()
    assert r.resource_type == RESOURCE_MEMORY_UNACCEPTED
    assert r.attribute == 0x7
    assert r.start == 4 * G
    assert r.length == 6 * G
    assert r.end == 10 * G
    assert r.owner == uuid.UUID(int=0)


def test_build_td_hob_is_byte_exact_and_sets_end_of_list():
    hl = HobList(Handoff(), [ResourceDescriptor(7, 0x7, 4 * G, 6 * G)])
    assert build_hob_list(hl, base_address=0x809000) == HOBS
    # Without a base address the PHIT value given is written as is.
    hl.handoff.efi_end_of_hob_list = 0x809068
    assert build_hob_list(hl) == HOBS


def test_owner_guid_is_efi_guid_byte_order():
    owner = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    # EFI_GUID: Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4[8] as is.
    res = h("0300 3000 00000000 67452301 ab89 efcd 0123456789abcdef 00000000 07000000")
    res += h("0000100000000000 0000100000000000")
    hl = parse_hob_list(PHIT + res + END)
    assert hl.resources() == [ResourceDescriptor(0, 7, 0x100000, 0x100000, owner)]
    assert build_hob_list(hl) == PHIT + res + END


def test_other_hob_types_round_trip_as_raw_bytes():
    # Memory allocation (48 bytes): Name GUID, base 0x809000, length 0x2000, type 4 (BS data), pad.
    mem_alloc = h("0200 3000 00000000") + bytes(16) + h("0090800000000000 0020000000000000 04000000 00000000")
    # GUID extension with 8 bytes of payload (32 bytes).
    guid_ext = h("0400 2000 00000000") + bytes(range(16)) + h("1122334455667788")
    # CPU: SizeOfMemorySpace 52, SizeOfIoSpace 16, reserved zero (16 bytes).
    cpu = h("0600 1000 00000000 34 10 000000000000")
    data = PHIT + mem_alloc + RES_UNACCEPTED + guid_ext + cpu + END
    hl = parse_hob_list(data)
    assert [type(x).__name__ for x in hl.hobs] == ["RawHob", "ResourceDescriptor", "RawHob", "RawHob"]
    assert hl.hobs[0] == RawHob(2, mem_alloc[8:])
    assert hl.hobs[3].hob_type == hob.HOB_TYPE_CPU and hl.hobs[3].length == 16
    assert build_hob_list(hl) == data


def test_bytes_after_end_hob_are_ignored():
    assert parse_hob_list(HOBS + bytes(4096)) == parse_hob_list(HOBS)


def _with(data: bytes, offset: int, patch: bytes) -> bytes:
    return data[:offset] + patch + data[offset + len(patch) :]


@pytest.mark.parametrize(
    "data, needle",
    [
        # HOB zero length: the resource HOB's HobLength (offset 56+2) set to 0.
        (_with(HOBS, 58, h("0000")), "HobLength is 0"),
        # Overrun: a GUID HOB claims 0xf8 bytes but only 24 follow the PHIT.
        (PHIT + h("0400 f800 00000000") + bytes(16), "runs past the end"),
        # Wrong reserved field in the resource HOB.
        (_with(HOBS, 60, h("01000000")), "Reserved header field"),
        # Wrong reserved field in the END HOB.
        (_with(HOBS, 108, h("00000080")), "Reserved header field"),
        # Bad resource type 8 (ResourceType at 56 + 24).
        (_with(HOBS, 80, h("08000000")), "resource type"),
        # Attribute bit 28 is outside the known mask (ResourceAttribute at 56 + 28).
        (_with(HOBS, 84, h("07000010")), "known mask"),
        # No END HOB.
        (PHIT + RES_UNACCEPTED, "before the END_OF_HOB_LIST"),
        (PHIT + RES_UNACCEPTED + END[:4], "before the END_OF_HOB_LIST"),
        # Must start with a PHIT.
        (RES_UNACCEPTED + END, "not the PHIT"),
        (END, "not the PHIT"),
        (b"", "before the END_OF_HOB_LIST"),
        # Only one PHIT.
        (PHIT + PHIT + END, "second PHIT"),
        # HobLength not a multiple of 8 (GUID HOB of 28 bytes).
        (PHIT + h("0400 1c00 00000000") + bytes(20) + END, "multiple of 8"),
        # Known fixed size: a resource descriptor of 56 bytes.
        (PHIT + _with(RES_UNACCEPTED, 2, h("3800")) + bytes(8) + END, "structure is 48"),
        # PHIT of 64 bytes.
        (_with(PHIT, 2, h("4000")) + bytes(8) + END, "structure is 56"),
        # END HOB of 16 bytes.
        (PHIT + h("ffff 1000 00000000") + bytes(8), "structure is 8"),
        # GUID extension shorter than header + GUID.
        (PHIT + h("0400 1000 00000000") + bytes(8) + END, "at least 24"),
        # CPU HOB reserved bytes not zero.
        (PHIT + h("0600 1000 00000000 34 10 000000000001") + END, "CPU HOB Reserved"),
        # BootMode 8 is not a PI boot mode (BootMode at offset 12).
        (_with(HOBS, 12, h("08000000")), "BootMode"),
        # EfiFreeMemoryTop (offset 32) not 4 KiB aligned.
        (_with(HOBS, 32, h("0110000000000000")), "EfiFreeMemoryTop"),
        # Resource [2^64 - 4K, +8K) wraps (PhysicalStart at 56 + 32, length at 56 + 40).
        (_with(_with(HOBS, 88, h("00f0ffffffffffff")), 96, h("0020000000000000")), "2\\^64"),
    ],
)
def test_hob_list_errors(data, needle):
    with pytest.raises(FormatError, match=needle):
        parse_hob_list(data)


def test_hob_builder_refuses_invalid_hobs():
    with pytest.raises(FormatError, match="resource type"):
        build_hob_list(HobList(Handoff(), [ResourceDescriptor(8, 0, 0, 4096)]))
    with pytest.raises(FormatError, match="known mask"):
        build_hob_list(HobList(Handoff(), [ResourceDescriptor(0, 1 << 30, 0, 4096)]))
    with pytest.raises(FormatError, match="cannot be given as RawHob"):
        build_hob_list(HobList(Handoff(), [RawHob(hob.HOB_TYPE_RESOURCE_DESCRIPTOR, bytes(40))]))
    with pytest.raises(FormatError, match="multiple of 8"):
        build_hob_list(HobList(Handoff(), [RawHob(0x7, bytes(3))]))
    with pytest.raises(FormatError, match="16 bits"):
        build_hob_list(HobList(Handoff(), [RawHob(0x7, bytes(0x10000))]))
    with pytest.raises(FormatError, match="BootMode"):
        build_hob_list(HobList(Handoff(boot_mode=0x21)))


def test_empty_hob_list_is_phit_then_end():
    data = build_hob_list(HobList(), base_address=0x1000)
    assert len(data) == 56 + 8
    assert parse_hob_list(data).handoff.efi_end_of_hob_list == 0x1000 + 56


# =============================================================================================
# e820
# =============================================================================================


def test_e820_binary_by_hand():
    # addr 0x100000, size 0x7ff00000, type 1 (RAM): 20 packed bytes.
    raw = h("0000100000000000 0000f07f00000000 01000000")
    raw += h("0000000001000000 0000000001000000 0c000000")  # 4G, 4G, PRAM
    entries = parse_e820_table(raw)
    assert entries == [E820Entry(0x100000, 0x7FF00000, 1), E820Entry(4 * G, 4 * G, 12)]
    assert entries[0].end == 0x80000000
    assert build_e820_table(entries) == raw
    assert e820.E820_ENTRY_SIZE == 20


def test_e820_binary_errors():
    with pytest.raises(FormatError, match="whole number"):
        parse_e820_table(bytes(19))
    with pytest.raises(FormatError, match="64-bit"):
        parse_e820_table(h("00f0ffffffffffff 0020000000000000 01000000"))
    assert parse_e820_table(b"") == []


def test_e820_type_codes():
    assert (e820.E820_TYPE_RAM, e820.E820_TYPE_RESERVED, e820.E820_TYPE_ACPI) == (1, 2, 3)
    assert (e820.E820_TYPE_NVS, e820.E820_TYPE_UNUSABLE, e820.E820_TYPE_PMEM) == (4, 5, 7)
    assert (e820.E820_TYPE_PRAM, e820.E820_TYPE_SOFT_RESERVED) == (12, 0xEFFFFFFF)


@pytest.mark.parametrize(
    "efi_type, expected",
    [
        (0, 2), (5, 2), (6, 2), (11, 2), (12, 2), (13, 2),  # reserved, runtime, MMIO, PAL -> RESERVED
        (8, 5),  # unusable -> UNUSABLE
        (9, 3),  # ACPI reclaim -> ACPI
        (1, 1), (2, 1), (3, 1), (4, 1), (7, 1),  # loader, boot services, conventional -> RAM
        (10, 4),  # ACPI NVS -> NVS
        (14, 7),  # persistent -> PMEM
        (15, 1),  # unaccepted -> RAM (with CONFIG_UNACCEPTED_MEMORY)
        (16, None), (0x70000000, None), (0x80000000, None),  # unknown: skipped
    ],
)
def test_efi_type_to_e820_matches_setup_e820(efi_type, expected):
    assert efi_type_to_e820(efi_type) == expected


def test_unaccepted_is_skipped_without_kernel_support():
    assert efi_type_to_e820(15, unaccepted_supported=False) is None
    assert efi_type_to_e820(7, unaccepted_supported=False) == 1


def test_soft_reserved_only_when_enabled():
    assert efi_type_to_e820(7, attribute=EFI_MEMORY_SP) == 1
    assert efi_type_to_e820(7, attribute=EFI_MEMORY_SP, soft_reserve=True) == 0xEFFFFFFF
    assert efi_type_to_e820(9, attribute=EFI_MEMORY_SP, soft_reserve=True) == 3


def _d(t: int, start: int, end: int) -> EfiMemoryDescriptor:
    return EfiMemoryDescriptor(t, start, (end - start) // 4096)


def test_efi_to_e820_merges_like_setup_e820():
    descs = [
        _d(7, 0, 0x9F000),
        _d(0, 0x9F000, 0xA0000),
        _d(4, 0x100000, 0x800000),  # boot services data ...
        _d(7, 0x800000, 0x80000000),  # ... + conventional: one RAM entry
        _d(9, 0x80000000, 0x80001000),
        _d(7, 0x80001000, 0xC0000000),
        _d(15, 0xC0000000, 0x100000000),  # conventional + unaccepted: one RAM entry
        _d(15, 0x100000000, 0x180000000),
        _d(15, 0x180000000, 0x200000000),
    ]
    assert efi_to_e820(descs) == [
        E820Entry(0, 0x9F000, 1),
        E820Entry(0x9F000, 0x1000, 2),
        E820Entry(0x100000, 0x7FF00000, 1),
        E820Entry(0x80000000, 0x1000, 3),
        E820Entry(0x80001000, 0x200000000 - 0x80001000, 1),
    ]
    assert efi_to_e820(descs, unaccepted_supported=False) == [
        E820Entry(0, 0x9F000, 1),
        E820Entry(0x9F000, 0x1000, 2),
        E820Entry(0x100000, 0x7FF00000, 1),
        E820Entry(0x80000000, 0x1000, 3),
        E820Entry(0x80001000, 0xC0000000 - 0x80001000, 1),
    ]


def test_efi_to_e820_merges_only_with_the_previous_emitted_entry():
    # A skipped (OEM) descriptor leaves prev alone, so the next adjacent RAM still merges.
    skipped_between = [_d(7, 0, 1 * M), _d(0x70000000, 8 * M, 9 * M), _d(7, 1 * M, 2 * M)]
    assert efi_to_e820(skipped_between) == [E820Entry(0, 2 * M, 1)]
    # No sorting: a lower descriptor after a higher one is not merged even if adjacent.
    assert efi_to_e820([_d(7, 1 * M, 2 * M), _d(7, 0, 1 * M)]) == [
        E820Entry(1 * M, 1 * M, 1),
        E820Entry(0, 1 * M, 1),
    ]
    # A gap prevents merging.
    assert len(efi_to_e820([_d(7, 0, 1 * M), _d(7, 2 * M, 3 * M)])) == 2


@pytest.mark.parametrize(
    "entry, text",
    [
        (E820Entry(0, 0x9FC00, 1), "[mem 0x0000000000000000-0x000000000009fbff] usable"),
        (E820Entry(0xFEFFC000, 0x4000, 2), "[mem 0x00000000feffc000-0x00000000feffffff] reserved"),
        (E820Entry(0x7FFDF000, 0x21000, 3), "[mem 0x000000007ffdf000-0x000000007fffffff] ACPI data"),
        (E820Entry(0x800000, 0x8000, 4), "[mem 0x0000000000800000-0x0000000000807fff] ACPI NVS"),
        (E820Entry(4 * G, 2 * G, 5), "[mem 0x0000000100000000-0x000000017fffffff] unusable"),
        (E820Entry(4 * G, G, 7), "[mem 0x0000000100000000-0x000000013fffffff] persistent (type 7)"),
        (E820Entry(4 * G, G, 12), "[mem 0x0000000100000000-0x000000013fffffff] persistent (type 12)"),
        (E820Entry(4 * G, G, 0xEFFFFFFF), "[mem 0x0000000100000000-0x000000013fffffff] soft reserved"),
        (E820Entry(4 * G, G, 20), "[mem 0x0000000100000000-0x000000013fffffff] type 20"),
    ],
)
def test_format_e820_line(entry, text):
    assert format_e820_line(entry) == "BIOS-e820: " + text


# =============================================================================================
# Round trips of generated valid structures
# =============================================================================================

_U64 = (1 << 64) - 1
legal_memory_types = st.one_of(
    st.integers(0, 15), st.integers(0x70000000, 0x7FFFFFFF), st.integers(0x80000000, 0xFFFFFFFF)
)


@st.composite
def memory_maps(draw):
    """Non-overlapping descriptors (gaps allowed) in a shuffled order."""
    n = draw(st.integers(0, 12))
    addr = draw(st.integers(0, 1 << 20)) * 4096
    descs = []
    for _ in range(n):
        pages = draw(st.integers(1, 1 << 24))
        descs.append(
            EfiMemoryDescriptor(
                draw(legal_memory_types), addr, pages, draw(st.integers(0, _U64)), draw(st.integers(0, _U64))
            )
        )
        addr += (pages + draw(st.integers(0, 1 << 20))) * 4096
    return draw(st.permutations(descs))


@settings(max_examples=150, deadline=None)
@given(memory_maps(), st.sampled_from([40, 44, 48, 56, 64]))
def test_memory_map_round_trip(descs, stride):
    raw = build_memory_map(descs, stride)
    assert len(raw) == stride * len(descs)
    assert parse_memory_map(raw, stride) == list(descs)
    assert build_memory_map(parse_memory_map(raw, stride), stride) == raw


@settings(max_examples=100, deadline=None)
@given(memory_maps())
def test_memory_map_detection_round_trip_edk2(descs):
    # 48 is tried first, so an EDK2-stride map always reads back as written.
    raw = build_memory_map(descs)
    assert parse_memory_map(raw) == list(descs)


@st.composite
def unaccepted_tables(draw):
    unit = draw(st.sampled_from([4 * K, 2 * M, G]))
    base = draw(st.integers(0, 1 << 20)) * unit
    bitmap = draw(st.binary(max_size=300))
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little").astype(bool)
    return UnacceptedTable(1, unit, base, bits)


def _naive_ranges(t: UnacceptedTable) -> list[tuple[int, int]]:
    """Independent oracle: walk the bits one by one (fine for a few thousand bits)."""
    out: list[tuple[int, int]] = []
    for i, bit in enumerate(t.bits.tolist()):
        if not bit:
            continue
        lo = t.phys_base + i * t.unit_size
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], lo + t.unit_size)
        else:
            out.append((lo, lo + t.unit_size))
    return out


@settings(max_examples=150, deadline=None)
@given(unaccepted_tables(), st.binary(max_size=16))
def test_unaccepted_round_trip(t, trailing):
    raw = build_unaccepted_table(t)
    assert len(raw) == HEADER_SIZE + t.size
    back = parse_unaccepted_table(raw + trailing)
    assert back == t
    assert build_unaccepted_table(back) == raw
    ranges = back.unaccepted_ranges()
    assert ranges == _naive_ranges(t)
    assert sum(e - s for s, e in ranges) == back.unaccepted_bytes()


guids = st.builds(uuid.UUID, int=st.integers(0, (1 << 128) - 1))


@st.composite
def raw_hobs(draw):
    """A raw HOB of a type whose size rules are met by construction."""
    kind = draw(st.sampled_from(["alloc", "guid", "fv", "fv2", "fv3", "cpu", "pool", "unused", "capsule"]))
    extra = bytes(8 * draw(st.integers(0, 4)))
    match kind:
        case "alloc":
            return RawHob(hob.HOB_TYPE_MEMORY_ALLOCATION, draw(st.binary(min_size=40, max_size=40)) + extra)
        case "guid":
            return RawHob(hob.HOB_TYPE_GUID_EXTENSION, draw(st.binary(min_size=16, max_size=16)) + extra)
        case "fv":
            return RawHob(hob.HOB_TYPE_FV, draw(st.binary(min_size=16, max_size=16)))
        case "fv2":
            return RawHob(hob.HOB_TYPE_FV2, draw(st.binary(min_size=48, max_size=48)))
        case "fv3":
            return RawHob(hob.HOB_TYPE_FV3, draw(st.binary(min_size=56, max_size=56)))
        case "cpu":
            return RawHob(hob.HOB_TYPE_CPU, draw(st.binary(min_size=2, max_size=2)) + bytes(6))
        case "pool":
            return RawHob(hob.HOB_TYPE_MEMORY_POOL, extra)
        case "unused":
            return RawHob(hob.HOB_TYPE_UNUSED, extra)
        case _:
            return RawHob(hob.HOB_TYPE_UEFI_CAPSULE, draw(st.binary(min_size=16, max_size=16)))


@st.composite
def resources(draw):
    start = draw(st.integers(0, _U64))
    length = draw(st.integers(0, min(_U64, (1 << 64) - start)))
    attr = draw(st.integers(0, hob.RESOURCE_ATTRIBUTE_KNOWN_MASK)) & hob.RESOURCE_ATTRIBUTE_KNOWN_MASK
    return ResourceDescriptor(draw(st.integers(0, 7)), attr, start, length, draw(guids))


@st.composite
def hob_lists(draw):
    handoff = Handoff(
        version=draw(st.integers(0, 0xFFFFFFFF)),
        boot_mode=draw(st.sampled_from(sorted(hob.BOOT_MODES))),
        efi_memory_top=draw(st.integers(0, _U64)),
        efi_memory_bottom=draw(st.integers(0, _U64)),
        efi_free_memory_top=draw(st.integers(0, (1 << 52) - 1)) * 4096,
        efi_free_memory_bottom=draw(st.integers(0, _U64)),
        efi_end_of_hob_list=draw(st.integers(0, _U64)),
    )
    return HobList(handoff, draw(st.lists(st.one_of(resources(), raw_hobs()), max_size=10)))


@settings(max_examples=150, deadline=None)
@given(hob_lists())
def test_hob_round_trip(hl):
    raw = build_hob_list(hl)
    back = parse_hob_list(raw)
    assert back == hl
    assert build_hob_list(back) == raw


@st.composite
def e820_entries(draw):
    addr = draw(st.integers(0, _U64))
    size = draw(st.integers(0, min(_U64, (1 << 64) - addr)))
    return E820Entry(addr, size, draw(st.sampled_from(sorted(KNOWN_TYPES))))


@settings(max_examples=100, deadline=None)
@given(st.lists(e820_entries(), max_size=20))
def test_e820_round_trip(entries):
    raw = build_e820_table(entries)
    assert len(raw) == 20 * len(entries)
    assert parse_e820_table(raw) == entries
    assert build_e820_table(parse_e820_table(raw)) == raw


def test_e820_binary_with_an_unknown_type_is_not_an_e820_table():
    # One 20-byte entry: addr 0x1000, size 0x1000, type 0x01010101 (random bytes look like this).
    raw = (0x1000).to_bytes(8, "little") + (0x1000).to_bytes(8, "little") + (0x01010101).to_bytes(4, "little")
    with pytest.raises(FormatError, match="unknown type"):
        parse_e820_table(raw)
