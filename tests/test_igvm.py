"""IGVM files: the builder's bytes against a hand assembly from igvm_defs, round trips, what a
loader does per platform, the command line, bad input."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.base.errors import FormatError
from lazyaccept.firmware.igvm import describe_igvm
from lazyaccept.formats import igvm as g

SNP, TDX = 0x1, 0x2  # compatibility mask bits of the two platforms below


def _headers() -> list[g.Header]:
    """A two-platform image: SNP and TDX share a measured page and a parameter area holding the
    memory map; SNP has a secrets page, a VMSA and an unmeasured page; both require 2 MiB."""
    return [
        g.SupportedPlatform(SNP, 0, g.PlatformType.SEV_SNP, 1, 0),
        g.SupportedPlatform(TDX, 0, g.PlatformType.TDX, 1, 1 << 47),
        g.GuestPolicy(0x30000, SNP),
        g.ParameterArea(0x1000, 0, 0),
        g.Parameter(g.HeaderType.MEMORY_MAP, 0, 0),
        g.Parameter(g.HeaderType.VP_COUNT_PARAMETER, 0, 0xF00),
        g.PageData(0xFFE00000, SNP | TDX, 0, 0, g.PageDataType.NORMAL),
        g.PageData(0xFFE01000, SNP, 0, 0, g.PageDataType.SECRETS),
        g.PageData(0xFFE02000, SNP, 0, int(g.PageDataFlags.UNMEASURED), g.PageDataType.NORMAL),
        g.PageData(0xFFE03000, TDX, 0, int(g.PageDataFlags.SHARED), g.PageDataType.NORMAL),
        g.ParameterInsert(0x7000, SNP | TDX, 0),
        g.VpContext(0xFFFFF000, SNP, 0, 0),
        g.RequiredMemory(0x100000, SNP | TDX, 0x200000, 0),
    ]


def _with_data() -> tuple[list[g.Header], bytes]:
    """The same headers with the shared measured page's content in the file data."""
    headers = _headers()
    start = g.data_start(headers)
    headers[6] = g.PageData(0xFFE00000, SNP | TDX, start, 0, g.PageDataType.NORMAL)
    return headers, b"\x90" * 4096


def test_bytes_as_igvm_defs_lays_them_out() -> None:
    """One SUPPORTED_PLATFORM and one PAGE_DATA, assembled here field by field from
    igvm_defs/src/lib.rs: a 24-byte fixed header; each variable header {u32 type, u32 length}
    then the structure, padded to 8; the checksum a CRC-32 of the fixed header (checksum 0)
    and the variable headers."""
    plat = struct.pack("<II", 0x1, 16) + struct.pack("<IBBHQ", 1, 0, 2, 1, 0)
    page = struct.pack("<II", 0x302, 24) + struct.pack("<QIIIHH", 0x1000, 1, 0, 0, 0, 0)
    body = plat + page
    total = 24 + len(body)
    fixed = struct.pack("<4sIIIII", b"IGVM", 1, 24, len(body), total, 0)
    expected = fixed[:20] + struct.pack("<I", zlib.crc32(fixed + body)) + body
    built = g.build_igvm([g.SupportedPlatform(1, 0, 2, 1, 0), g.PageData(0x1000, 1, 0, 0, 0)])
    assert built == expected


def test_vp_context_is_20_bytes_padded_to_24() -> None:
    """IGVM_VHS_VP_CONTEXT is not 8-byte aligned (u64_le gpa): length 20, 4 bytes of padding."""
    built = g.build_igvm([g.SupportedPlatform(1, 0, 2, 1, 0), g.VpContext(0xF000, 1, 0, 3)])
    typ, length = struct.unpack_from("<II", built, 24 + 24)
    assert (typ, length) == (0x304, 20)
    assert len(built) == 24 + 24 + 8 + 24


def test_round_trip() -> None:
    headers, data = _with_data()
    built = g.build_igvm(headers, data)
    f = g.parse_igvm(built)
    assert f.checksum_ok and f.format_version == 1
    assert f.headers == headers
    assert g.build_igvm(f.headers, data) == built
    assert f.file_data(headers[6].file_offset, 4096) == data
    assert f.file_data(0, 16) == bytes(16)


def test_unknown_optional_header_is_kept() -> None:
    """A header type this reader does not know, with the optional bit (1 << 31), round-trips raw."""
    raw = g.RawHeader(0x3FF | g.OPTIONAL_BIT, b"abc")
    built = g.build_igvm([g.SupportedPlatform(1, 0, 2, 1, 0), raw])
    assert g.parse_igvm(built).headers[1] == raw


def test_what_each_platform_loads() -> None:
    """SNP: pages of 4 KiB measured (the shared normal page), unmeasured (one), secrets (one),
    plus one inserted parameter area and the VMSA; all private imports validated by the launch.
    TDX: the shared normal page measured, the host-visible page neither measured nor accepted."""
    snp, tdx = describe_igvm(g.parse_igvm(g.build_igvm(*_with_data())))
    assert snp.platform == "SEV_SNP" and tdx.platform == "TDX"
    assert (snp.measured_bytes, snp.unmeasured_bytes, snp.shared_bytes) == (2 * 4096, 4096, 0)
    assert snp.by_data_type == {"NORMAL": 2 * 4096, "SECRETS": 4096}
    assert snp.parameter_bytes == 4096 and snp.vp_contexts == 1 and snp.guest_policy == 0x30000
    assert snp.prevalidated_bytes == 4 * 4096
    assert (tdx.measured_bytes, tdx.shared_bytes, tdx.prevalidated_bytes) == (4096, 4096, 2 * 4096)
    assert tdx.vp_contexts == 0 and tdx.shared_gpa_boundary == 1 << 47
    assert snp.loaded_ranges == [(0x7000, 0x8000), (0xFFE00000, 0xFFE03000)]
    assert "MEMORY_MAP" in snp.rest_of_memory and "accepts it itself" in snp.rest_of_memory


@pytest.mark.parametrize(("offset", "value", "message"), [
    (0, b"IGVX", "magic"),
    (4, struct.pack("<I", 3), "version"),
    (16, struct.pack("<I", 10), "total_file_size"),
    (8, struct.pack("<I", 20), "variable headers"),
])
def test_bad_fixed_header(offset: int, value: bytes, message: str) -> None:
    data = bytearray(g.build_igvm(*_with_data()))
    data[offset : offset + len(value)] = value
    with pytest.raises(FormatError, match=message):
        g.parse_igvm(bytes(data))


def test_wrong_checksum_is_reported_not_fatal() -> None:
    data = bytearray(g.build_igvm(*_with_data()))
    data[20] ^= 0xFF
    assert g.parse_igvm(bytes(data)).checksum_ok is False


def test_directive_before_platform_is_refused() -> None:
    built = g.build_igvm([g.PageData(0x1000, 1, 0, 0, 0), g.SupportedPlatform(1, 0, 2, 1, 0)])
    with pytest.raises(FormatError, match="out of order"):
        g.parse_igvm(built)


def test_page_data_past_the_file_is_refused() -> None:
    built = g.build_igvm([g.SupportedPlatform(1, 0, 2, 1, 0), g.PageData(0x1000, 1, 1 << 20, 0, 0)])
    with pytest.raises(FormatError, match="past the file"):
        g.parse_igvm(built)


# -- the command line ------------------------------------------------------------------------------


def test_inspect_igvm(tmp_path: Path) -> None:
    path = tmp_path / "guest.igvm"
    path.write_bytes(g.build_igvm(*_with_data()))
    r = run_cli("inspect", "--json", str(path))
    assert r.code == 0, r.err
    doc = json.loads(r.out)["files"][0]
    assert doc["kind"] == "igvm" and doc["checksum_ok"] is True
    assert doc["header_counts"]["PAGE_DATA"] == 4
    assert [p["platform"] for p in doc["platforms"]] == ["SEV_SNP", "TDX"]
    assert doc["platforms"][0]["prevalidated_bytes"] == 4 * 4096
    text = run_cli("inspect", str(path))
    assert text.code == 0 and "Loading on SEV_SNP" in text.out and "MEMORY_MAP" in text.out


def test_inspect_truncated_igvm_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.igvm"
    path.write_bytes(g.build_igvm(*_with_data())[:100])
    r = run_cli("inspect", str(path))
    assert r.code == 2 and r.out == "" and r.err.count("\n") == 1 and str(path) in r.err


def test_version_2_fixed_header() -> None:
    """Format version 2 (igvm_defs IGVM_FIXED_HEADER_V2): 32 bytes, architecture and page_size
    after the checksum, which then covers all 32 bytes (checksum field zero) and the headers."""
    plat = struct.pack("<II", 0x1, 16) + struct.pack("<IBBHQ", 1, 0, 3, 1, 0)
    fixed = struct.pack("<4sIIIIIII", b"IGVM", 2, 32, len(plat), 32 + len(plat), 0, 1, 4096)
    data = fixed[:20] + struct.pack("<I", zlib.crc32(fixed + plat)) + fixed[24:] + plat
    f = g.parse_igvm(data)
    assert (f.format_version, f.architecture, f.page_size, f.checksum_ok) == (2, g.Architecture.AARCH64, 4096, True)
    assert f.headers == [g.SupportedPlatform(1, 0, g.PlatformType.TDX, 1, 0)]
