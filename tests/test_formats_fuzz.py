"""Property-based fuzzing of the binary parsers.

Random bytes and mutated valid encodings go into every parser.  Each call must either succeed
or raise FormatError -- never IndexError, struct.error, ValueError, OverflowError, MemoryError.
And whatever a parser accepts, the builder must be able to write back and the parser to read
again unchanged (parse -> build -> parse is stable).
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazyaccept.base.errors import FormatError
from lazyaccept.formats import fv
from lazyaccept.formats import igvm as ig
from lazyaccept.formats.e820 import E820Entry, build_e820_table, parse_e820_table
from lazyaccept.formats.efi_memmap import EfiMemoryDescriptor, build_memory_map, parse_memory_map
from lazyaccept.formats.hob import (
    HOB_TYPE_GUID_EXTENSION,
    HOB_TYPE_MEMORY_ALLOCATION,
    Handoff,
    HobList,
    RawHob,
    ResourceDescriptor,
    build_hob_list,
    parse_hob_list,
)
from lazyaccept.formats.unaccepted import build_unaccepted_table, new_table, parse_unaccepted_table

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
G = 1 << 30


# -- valid seeds to mutate ---------------------------------------------------------------------
def _seed_memmap(stride: int) -> bytes:
    return build_memory_map(
        [
            EfiMemoryDescriptor(7, 0, 0x9F, 0xF),
            EfiMemoryDescriptor(0, 0x9F000, 1, 0x1),
            EfiMemoryDescriptor(4, 0x100000, 0x700, 0xF),
            EfiMemoryDescriptor(15, 4 * G, 0x40000, 0x8),
            EfiMemoryDescriptor(0x80000001, 8 * G, 16, 1 << 63),
        ],
        stride,
    )


def _seed_table() -> bytes:
    t = new_table(4 * G, 24)
    t.bits[3:90] = True
    t.bits[120:150] = True
    return build_unaccepted_table(t)


def _seed_hob() -> bytes:
    hl = HobList(
        Handoff(),
        [
            RawHob(HOB_TYPE_MEMORY_ALLOCATION, bytes(range(40))),
            ResourceDescriptor(0, 0x7, 0, 0x800000),
            ResourceDescriptor(7, 0x7, 0x800000, 0x7F800000, uuid.UUID(int=5)),
            RawHob(HOB_TYPE_GUID_EXTENSION, bytes(range(16)) + b"payload!"),
            ResourceDescriptor(1, 0x403, 0xE0000000, 0x10000000),
        ],
    )
    return build_hob_list(hl, base_address=0x809000)


def _seed_e820() -> bytes:
    entries = [E820Entry(0, 0x9FC00, 1), E820Entry(0xF0000, 0x10000, 2), E820Entry(4 * G, G, 1)]
    return build_e820_table(entries)


def _seed_fv() -> bytes:
    """A volume with a driver (PE32 + UI) and an FV-image file whose LZMA section holds a volume."""
    ui = fv.build_section(fv.SectionType.USER_INTERFACE, "TdxDxe\0".encode("utf-16-le"))
    inner = fv.build_volume([fv.build_file(uuid.UUID(int=2), fv.FileType.DRIVER, [
        fv.build_section(fv.SectionType.PE32, b"MZ" + bytes(30)), ui])])
    return fv.build_volume([
        fv.build_file(uuid.UUID(int=1), fv.FileType.PEIM, [ui]),
        fv.build_file(uuid.UUID(int=3), fv.FileType.FIRMWARE_VOLUME_IMAGE, [
            fv.build_lzma_section(fv.build_section(fv.SectionType.FIRMWARE_VOLUME_IMAGE, inner))]),
    ])


def _seed_igvm() -> bytes:
    headers = [
        ig.SupportedPlatform(1, 0, ig.PlatformType.SEV_SNP, 1, 0),
        ig.GuestPolicy(0x30000, 1),
        ig.ParameterArea(0x1000, 0, 0),
        ig.Parameter(ig.HeaderType.MEMORY_MAP, 0, 0),
        ig.PageData(0xFFE00000, 1, 0, 0, 0),
        ig.ParameterInsert(0x7000, 1, 0),
        ig.VpContext(0xFFFFF000, 1, 0, 0),
        ig.RequiredMemory(0x100000, 1, 0x200000, 0),
    ]
    return ig.build_igvm(headers, b"\x90" * 64)


SEEDS = {
    "memmap48": _seed_memmap(48),
    "memmap40": _seed_memmap(40),
    "table": _seed_table(),
    "hob": _seed_hob(),
    "e820": _seed_e820(),
    "fv": _seed_fv(),
    "igvm": _seed_igvm(),
}


@st.composite
def mutated(draw, seed: bytes):
    """A valid encoding with a few bytes overwritten, bits flipped, a slice cut or bytes added."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "flip", "truncate", "insert", "extend", "zero_word"]))
        if op in ("set", "flip", "zero_word") and not data:
            continue
        if op == "set":
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        elif op == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "zero_word":
            i = draw(st.integers(0, len(data) - 1))
            data[i : i + 2] = b"\0\0"
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            data += draw(st.binary(min_size=1, max_size=48))
    return bytes(data)


def _only_format_error(fn, *args):
    """Call a parser; return its result, or None if it raised FormatError (anything else fails)."""
    try:
        return fn(*args)
    except FormatError as exc:
        assert str(exc), "a FormatError must say what is wrong"
        return None


# -- EFI memory map --------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=400), st.one_of(st.none(), st.integers(-8, 200)))
def test_memmap_random_bytes(data, stride):
    descs = _only_format_error(parse_memory_map, data, stride)
    if descs is not None:
        assert parse_memory_map(build_memory_map(descs)) == descs


@FUZZ
@given(st.sampled_from(["memmap48", "memmap40"]).flatmap(lambda k: mutated(SEEDS[k])))
def test_memmap_mutated(data):
    for stride in (None, 40, 48):
        descs = _only_format_error(parse_memory_map, data, stride)
        if descs is not None:
            assert parse_memory_map(build_memory_map(descs)) == descs


# -- unaccepted table ----------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=200))
def test_table_random_bytes(data):
    t = _only_format_error(parse_unaccepted_table, data)
    if t is not None:
        assert parse_unaccepted_table(build_unaccepted_table(t)) == t
        t.unaccepted_ranges()


@FUZZ
@given(
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 64) - 1),
    st.binary(max_size=64),
)
def test_table_random_header_fields(version, unit, base, size, rest):
    # Random headers reach every header check, including huge sizes that must not allocate.
    data = (
        version.to_bytes(4, "little") + unit.to_bytes(4, "little")
        + base.to_bytes(8, "little") + size.to_bytes(8, "little") + rest
    )
    t = _only_format_error(parse_unaccepted_table, data)
    if t is not None:
        assert t.size <= len(rest)
        assert build_unaccepted_table(t) == data[: 24 + t.size]


@FUZZ
@given(mutated(SEEDS["table"]))
def test_table_mutated(data):
    t = _only_format_error(parse_unaccepted_table, data)
    if t is not None:
        ranges = t.unaccepted_ranges()
        assert sum(e - s for s, e in ranges) == t.unaccepted_bytes()
        assert all(t.phys_base <= s < e <= t.max_addr for s, e in ranges)


# -- HOB list ------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=300))
def test_hob_random_bytes(data):
    hl = _only_format_error(parse_hob_list, data)
    if hl is not None:
        assert parse_hob_list(build_hob_list(hl)) == hl


@FUZZ
@given(st.binary(max_size=200))
def test_hob_random_bytes_after_a_valid_phit(data):
    # Random bytes behind a good PHIT get past the first check and exercise the walk.
    hl = _only_format_error(parse_hob_list, SEEDS["hob"][:56] + data)
    if hl is not None:
        assert parse_hob_list(build_hob_list(hl)) == hl


@FUZZ
@given(mutated(SEEDS["hob"]))
def test_hob_mutated(data):
    hl = _only_format_error(parse_hob_list, data)
    if hl is not None:
        assert parse_hob_list(build_hob_list(hl)) == hl


# -- e820 ------------------------------------------------------------------------------------------
@FUZZ
@given(st.one_of(st.binary(max_size=200), mutated(SEEDS["e820"])))
def test_e820_random_and_mutated(data):
    entries = _only_format_error(parse_e820_table, data)
    if entries is not None:
        assert build_e820_table(entries) == data


# -- firmware volumes ------------------------------------------------------------------------------
@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(SEEDS["fv"])))
def test_fv_random_and_mutated(data):
    """Volumes found or not, never anything but FormatError; every file found lies in the data."""
    vols = _only_format_error(fv.find_volumes, data)
    for vol, f in fv.walk_files(vols or []):
        assert f.size >= 24
        if not vol.parent:
            assert vol.offset <= f.offset < vol.offset + vol.length <= len(data)


# -- IGVM ------------------------------------------------------------------------------------------
@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(SEEDS["igvm"]), st.binary(max_size=200).map(
    lambda tail: SEEDS["igvm"][:24] + tail)))
def test_igvm_random_and_mutated(data):
    """parse -> build -> parse is stable for whatever the parser accepts."""
    f = _only_format_error(ig.parse_igvm, data)
    if f is not None:
        start = f.data[8:12]
        offset = int.from_bytes(start, "little") + int.from_bytes(f.data[12:16], "little")
        rebuilt = ig.build_igvm(f.headers, f.data[offset:], data_offset=offset)
        assert ig.parse_igvm(rebuilt).headers == f.headers
