"""TDVF metadata: the real Debian OVMF image (values checked by hand), round trips, bad input."""

from __future__ import annotations

import os
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyaccept.base.errors import FormatError
from lazyaccept.formats.tdvf import (
    TdvfMetadata,
    TdvfSection,
    build_tdvf_descriptor,
    build_tdvf_image,
    host_added_ranges,
    parse_ovmf_table,
    parse_tdvf,
    parse_tdvf_descriptor,
    tdvf_problems,
    validate_tdvf,
)

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_FULL = Path("/usr/share/ovmf/OVMF.fd")
OVMF_CODE_4M = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")


def _real(path: Path) -> bytes:
    """The real firmware file; skipped when absent, but a failure in CI (CI=true)."""
    if not path.is_file():
        msg = f"{path} is not installed (Debian package 'ovmf', version 2022.11-6+deb12u2 was checked)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + "; CI must install it")
        pytest.skip(msg)
    return path.read_bytes()


# Hand check of /usr/share/OVMF/OVMF_CODE.fd (Debian ovmf 2022.11-6+deb12u2), 1966080 = 0x1e0000
# bytes.  `xxd -s -256` of the file:
#   0x1dffd0: de82 b596 b21f f745 baea a366 c55a 082d  -> footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d
#             (little-endian first three fields) at size - 0x30.
#   0x1dffce: 8800 -> the table is 0x88 = 136 bytes long, footer included.
#   Walking back from 0x1dffce, each entry ends with {u16 length, GUID}:
#     0x1dffbe GUID 00f771de-... (SEV-ES reset block), length 0x16 -> data 04b0 8000 at 0x1dffb8
#     0x1dffa8 GUID 4c2eb361-... (SEV secret),         length 0x1a
#     0x1dff8e GUID 7255371f-... (SEV hash table),     length 0x1a
#     0x1dff74 GUID dc886566-... (SEV metadata),       length 0x16
#     0x1dff5e GUID 3565 7ae4 4a98 9847 865e 4685 a7bf 8ec2 = e47a6535-984a-4798-865e-4685a7bf8ec2,
#              length 0x16 (at 0x1dff5c), data at 0x1dff58: 4008 0000 -> 0x840 from the end.
#     22 + 26 + 26 + 22 + 22 + 18 (footer) = 136, so the table is fully used.
#   Descriptor at 0x1e0000 - 0x840 = 0x1df7c0 (`xxd -s 0x1df7b0 -l 0xd0`):
#     0x1df7b0: f3f9 eae9 8e16 d544 a8eb 7f4d 8738 f6ae  = TdxMetadataGuid e9eaf9f3-168e-...
#     0x1df7c0: 5444 5646 d000 0000 0100 0000 0600 0000  "TDVF", length 0xd0 = 16 + 6*32, v1, 6 sections
#   Then 32-byte sections {u32 DataOffset, u32 RawDataSize, u64 MemoryAddress, u64 MemoryDataSize,
#   u32 Type, u32 Attributes}, read little-endian:
#     0x1df7d0: 00000200 00001e00 0000e2ff00000000 00001e0000000000 00000000 01000000
#     0x1df7f0: 00000000 00000200 0000e0ff00000000 0000020000000000 01000000 00000000
#     0x1df810: 0 0 0000810000000000 0000010000000000 03000000 0
#     0x1df830: 0 0 00b0800000000000 0020000000000000 03000000 0
#     0x1df850: 0 0 0090800000000000 0020000000000000 02000000 0
#     0x1df870: 0 0 0000800000000000 0060000000000000 03000000 0
#   (type, data_offset, raw_data_size, memory_address, memory_size, attributes):
HAND_CHECKED = [
    (0, 0x20000, 0x1E0000, 0xFFE20000, 0x1E0000, 1),  # BFV, MR.EXTEND
    (1, 0x0, 0x20000, 0xFFE00000, 0x20000, 0),  # CFV (the VARS part)
    (3, 0, 0, 0x810000, 0x10000, 0),  # TEMP_MEM
    (3, 0, 0, 0x80B000, 0x2000, 0),  # TEMP_MEM
    (2, 0, 0, 0x809000, 0x2000, 0),  # TD_HOB
    (3, 0, 0, 0x800000, 0x6000, 0),  # TEMP_MEM
]
# The BFV's raw data [0x20000, 0x200000) runs 0x20000 past this 0x1e0000-byte file: DataOffset
# counts from the start of the 2 MiB OVMF.fd, whose first 0x20000 bytes are OVMF_VARS.fd (`cmp`
# shows OVMF.fd = OVMF_VARS.fd + OVMF_CODE.fd).  The same numbers agree with the TD layout in
# firmware-and-platform.md §2.1 (TEMP 0x800000+0x6000, TD HOB 0x809000+0x2000, 0x80b000+0x2000,
# 0x810000+0x10000).


def _as_tuples(meta: TdvfMetadata) -> list[tuple[int, ...]]:
    return [
        (s.type, s.data_offset, s.raw_data_size, s.memory_address, s.memory_size, s.attributes)
        for s in meta.sections
    ]


def test_real_debian_code_image_sections_match_the_hand_check() -> None:
    meta = parse_tdvf(_real(OVMF_CODE))
    assert meta.version == 1
    assert meta.descriptor_offset == 0x1DF7C0
    assert meta.image_base == 0x20000
    assert _as_tuples(meta) == HAND_CHECKED
    names = [s.type_name for s in meta.sections]
    assert names == ["BFV", "CFV", "TEMP_MEM", "TEMP_MEM", "TD_HOB", "TEMP_MEM"]
    assert meta.sections[0].attribute_names == ["MR.EXTEND"]
    # The CFV's raw data is in the VARS file, not in this one; the BFV's starts at file offset 0.
    assert meta.raw_data_file_offset(meta.sections[1]) is None
    assert meta.raw_data_file_offset(meta.sections[0]) == 0
    validate_tdvf(meta)


def test_real_debian_guid_table_entries() -> None:
    entries = parse_ovmf_table(_real(OVMF_CODE))
    assert [str(e.guid)[:8] for e in entries] == ["00f771de", "4c2eb361", "7255371f", "dc886566", "e47a6535"]
    assert entries[-1].offset == 0x1DFF58
    assert entries[-1].data == bytes.fromhex("40080000")
    assert entries[0].data == bytes.fromhex("04b08000")


def test_real_debian_full_image_has_the_same_sections() -> None:
    meta = parse_tdvf(_real(OVMF_FULL))
    assert meta.descriptor_offset == 0x1FF7C0  # 0x200000 - 0x840
    assert meta.image_base == 0
    assert _as_tuples(meta) == HAND_CHECKED


def test_real_4m_image_without_tdx_entry_is_refused() -> None:
    # xxd of OVMF_CODE_4M.fd's tail: table length 0x5c = 18 + 22 + 26 + 26, entries SEV-ES reset,
    # SEV secret, SEV hash only: no e47a6535 entry, so this build is not TDVF.
    with pytest.raises(FormatError, match="no TDX metadata offset entry"):
        parse_tdvf(_real(OVMF_CODE_4M))


def test_real_host_added_ranges() -> None:
    ranges = host_added_ranges(parse_tdvf(_real(OVMF_CODE)))
    assert ranges == [
        (0x800000, 0x806000),
        (0x809000, 0x80B000),
        (0x80B000, 0x80D000),
        (0x810000, 0x820000),
        (0xFFE00000, 0xFFE20000),
        (0xFFE20000, 0x100000000),
    ]
    # 0x6000 + 0x2000 + 0x2000 + 0x10000 (104 KiB) below 16 MiB, and 2 MiB of flash below 4 GiB.
    assert sum(e - s for s, e in ranges) == 104 * 1024 + 2 * 1024 * 1024


def test_descriptor_round_trip_against_the_raw_bytes() -> None:
    image = _real(OVMF_CODE)
    raw = image[0x1DF7C0 : 0x1DF7C0 + 0xD0]
    meta = parse_tdvf_descriptor(raw)
    assert _as_tuples(meta) == HAND_CHECKED
    assert build_tdvf_descriptor(meta) == raw


SECTIONS = [
    TdvfSection(0, 0x1000, 0x3000, 0xFFFFC000, 0x4000, 1),
    TdvfSection(2, 0, 0, 0x809000, 0x2000, 0),
    TdvfSection(3, 0, 0, 0x800000, 0x6000, 0),
]


def _image(sections: list[TdvfSection] = SECTIONS, size: int = 0x4000) -> bytes:
    return build_tdvf_image(TdvfMetadata(1, list(sections)), size)


def test_built_image_parses_back() -> None:
    image = _image()
    meta = parse_tdvf(image)
    assert meta.sections == SECTIONS
    assert meta.image_base == 0
    # The descriptor offset written into the table counts from the end of the image.
    assert image[meta.descriptor_offset : meta.descriptor_offset + 4] == b"TDVF"
    assert tdvf_problems(meta) == []


def _patch(image: bytes, offset: int, fmt: str, *values: int | bytes) -> bytes:
    buf = bytearray(image)
    struct.pack_into(fmt, buf, offset, *values)
    return bytes(buf)


def test_bad_signature() -> None:
    image = _image()
    off = parse_tdvf(image).descriptor_offset
    with pytest.raises(FormatError, match="signature"):
        parse_tdvf(_patch(image, off, "<4s", b"TDVX"))


def test_length_mismatch() -> None:
    image = _image()
    off = parse_tdvf(image).descriptor_offset
    # 3 sections need 16 + 3 * 32 = 112 bytes.
    with pytest.raises(FormatError, match="length 144 does not match its 3 sections"):
        parse_tdvf(_patch(image, off + 4, "<I", 144))


def test_zero_sections() -> None:
    image = _image()
    off = parse_tdvf(image).descriptor_offset
    with pytest.raises(FormatError, match="0 sections"):
        parse_tdvf(_patch(image, off + 12, "<I", 0))


def test_bad_version() -> None:
    image = _image()
    off = parse_tdvf(image).descriptor_offset
    with pytest.raises(FormatError, match="version 2"):
        parse_tdvf(_patch(image, off + 8, "<I", 2))


def test_section_running_past_the_image() -> None:
    # A CFV whose raw data ends 0x1000 past a 0x4000-byte image.  Read as the CODE part of a
    # 0x5000-byte split flash, the descriptor (near the end) would sit at flash offset ~0x4f00,
    # outside the BFV's raw data [0x1000, 0x4000): so this is not a split image but a bad one.
    bad = SECTIONS + [TdvfSection(1, 0x3000, 0x2000, 0xFFFF0000, 0x2000, 0)]
    with pytest.raises(FormatError, match=r"section 3 \(CFV\) raw data \[0x3000, 0x5000\) runs past the end"):
        parse_tdvf(_image(bad))
    # Whereas a BFV that ends past the file and holds the descriptor is a CODE-only split image.
    bfv = replace(SECTIONS[0], data_offset=0x2000, raw_data_size=0x3000, memory_size=0x3000)
    split = [bfv] + SECTIONS[1:]
    assert parse_tdvf(_image(split)).image_base == 0x1000


def test_unaligned_address_and_size() -> None:
    image = _image()
    off = parse_tdvf(image).descriptor_offset + 16 + 32  # section 1 (TD_HOB)
    with pytest.raises(FormatError, match="not 4 KiB aligned"):
        parse_tdvf(_patch(image, off + 8, "<Q", 0x809800))
    with pytest.raises(FormatError, match="multiple of 4 KiB"):
        parse_tdvf(_patch(image, off + 16, "<Q", 0x2100))


def test_raw_data_larger_than_memory() -> None:
    image = _image()
    off = parse_tdvf(image).descriptor_offset + 16  # section 0 (BFV)
    with pytest.raises(FormatError, match="larger than MemoryDataSize"):
        parse_tdvf(_patch(image, off + 4, "<I", 0x5000))


def test_missing_footer_and_broken_table() -> None:
    image = _image()
    with pytest.raises(FormatError, match="not an OVMF/TDVF firmware image"):
        parse_tdvf(image[:-1])
    with pytest.raises(FormatError, match="too small"):
        parse_tdvf(b"\0" * 40)
    # Table length 5 is shorter than the footer itself.
    with pytest.raises(FormatError, match="table length 5 is impossible"):
        parse_tdvf(_patch(image, len(image) - 0x32, "<H", 5))
    # The TDX entry's own length (at end - 0x32 - 18) set to 3 bytes.
    with pytest.raises(FormatError, match="corrupt table"):
        parse_tdvf(_patch(image, len(image) - 0x32 - 18, "<H", 3))
    # The offset from the end pointing before the start of the image.
    with pytest.raises(FormatError, match="points outside"):
        parse_tdvf(_patch(image, len(image) - 0x32 - 22, "<I", len(image) + 0x10))


def test_no_tdx_entry() -> None:
    image = bytearray(_image())
    # Turn the TDX offset entry's GUID into another GUID: the table stays valid.
    at = len(image) - 0x32 - 16
    image[at] ^= 0xFF
    with pytest.raises(FormatError, match="no TDX metadata offset entry"):
        parse_tdvf(bytes(image))


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ([replace(SECTIONS[0], attributes=0)] + SECTIONS[1:], "BFV must have MR.EXTEND"),
        (SECTIONS + [replace(SECTIONS[1], memory_address=0x900000)], "2 TD_HOB sections"),
        (SECTIONS[:1] + SECTIONS[2:], "0 TD_HOB sections"),
        (SECTIONS + [TdvfSection(1, 0, 0x1000, 0xFFFF0000, 0x1000, 1)], "only a BFV may have MR.EXTEND"),
        (SECTIONS + [TdvfSection(3, 0, 0, 0x805000, 0x2000, 0)], "overlap in guest memory"),
        (SECTIONS + [TdvfSection(3, 0x10, 0, 0x900000, 0x1000, 0)], "DataOffset and RawDataSize must be 0"),
        (SECTIONS + [TdvfSection(5, 0, 0, 0x900000, 0x1000, 0)], "type 5 is not a TDVF section type"),
        (SECTIONS[1:], "no BFV section"),
    ],
)
def test_tdvf_rules(sections: list[TdvfSection], needle: str) -> None:
    meta = TdvfMetadata(1, sections)
    assert any(needle in p for p in tdvf_problems(meta)), tdvf_problems(meta)
    with pytest.raises(FormatError, match="breaks TDVF's rules"):
        validate_tdvf(meta)


def test_type_names() -> None:
    names = [TdvfSection(t, 0, 0, 0, 0x1000, 0).type_name for t in range(9)]
    assert names == ["BFV", "CFV", "TD_HOB", "TEMP_MEM", "PERM_MEM", "PAYLOAD", "PAYLOAD_PARAM", "TD_INFO",
                     "UNKNOWN(8)"]
    assert TdvfSection(3, 0, 0, 0, 0x1000, 3).attribute_names == ["MR.EXTEND", "PAGE.AUG"]


@given(st.binary(max_size=600))
@settings(max_examples=200, deadline=None)
def test_random_bytes_only_raise_format_error(data: bytes) -> None:
    try:
        parse_tdvf(data)
    except FormatError:
        pass


_BASE = _image()


@given(st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_corrupted_images_only_raise_format_error(edits: list[tuple[int, int]]) -> None:
    # Only the last 0x200 bytes matter; aim the edits there.
    buf = bytearray(_BASE)
    for pos, value in edits:
        buf[len(buf) - 1 - pos % 0x200] = value
    try:
        meta = parse_tdvf(bytes(buf))
    except FormatError:
        return
    tdvf_problems(meta)
    host_added_ranges(meta)
