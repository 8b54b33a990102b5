"""Firmware volumes: hand-built volumes round-trip, Debian's OVMF against the uefi-firmware
package's reading of it, and bad input."""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import re
import struct
import uuid
from pathlib import Path

import pytest

from lazyaccept.base.errors import FormatError
from lazyaccept.formats import fv
from test_tdvf import OVMF_CODE, _real

A = uuid.UUID("11111111-2222-3333-4444-555555555555")
B = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")


def _ui(name: str) -> bytes:
    return fv.build_section(fv.SectionType.USER_INTERFACE, (name + "\0").encode("utf-16-le"))


def test_header_bytes_as_the_pi_spec_lays_them_out() -> None:
    """PI vol. 3, 3.2.1: the '_FVH' signature 40 bytes into the header, FvLength at 32; 3.2.3:
    an FFS file header is 24 bytes, its size a 24-bit field at offset 20, type at 18."""
    file = fv.build_file(A, fv.FileType.DRIVER, [_ui("X")])
    vol = fv.build_volume([file])
    assert vol[40:44] == b"_FVH"
    assert struct.unpack_from("<Q", vol, 32)[0] == len(vol)
    assert uuid.UUID(bytes_le=vol[16:32]) == uuid.UUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
    assert file[18] == 0x07 and int.from_bytes(file[20:23], "little") == len(file)
    # A UI section: 4-byte header (24-bit size, type 0x15), then UTF-16LE with a NUL.
    assert file[24:28] == bytes([4 + 4, 0, 0, 0x15])


def test_lzma_and_nested_volume_round_trip() -> None:
    """An FV-image file whose LZMA section holds a volume with two drivers, as OVMF's FVMAIN_COMPACT."""
    code = b"MZ" + bytes(100) + uuid.UUID("38c74800-5590-4db4-a0f3-675d9b8e8026").bytes_le
    inner = fv.build_volume([
        fv.build_file(A, fv.FileType.DRIVER, [fv.build_section(fv.SectionType.PE32, code), _ui("TdxDxe")]),
        fv.build_file(B, fv.FileType.PEIM, [_ui("PlatformPei")]),
    ], name=uuid.UUID(int=7))
    outer_file = fv.build_file(uuid.UUID(int=9), fv.FileType.FIRMWARE_VOLUME_IMAGE, [
        fv.build_lzma_section(fv.build_section(fv.SectionType.FIRMWARE_VOLUME_IMAGE, inner))])
    image = bytes(4096) + fv.build_volume([outer_file], length=8192)
    vols = fv.find_volumes(image)
    assert [v.offset for v in vols] == [4096]
    files = fv.walk_files(vols)
    assert [f.ui_name for _, f in files] == [None, "TdxDxe", "PlatformPei"]
    assert files[1][1].image == code
    assert files[1][0].name == uuid.UUID(int=7)
    assert files[1][0].parent == f"in {uuid.UUID(int=9)}"


def test_lzma_f86_section_opens() -> None:
    """EDK2's LZMA-F86 GUID: LZMA with the x86 branch filter; the code comes back unchanged."""
    code = bytes(range(256)) * 8 + b"\xe8\x00\x01\x00\x00" * 50  # x86 CALLs the filter rewrites
    f = fv.build_file(A, fv.FileType.DRIVER, [
        fv.build_lzma_section(fv.build_section(fv.SectionType.PE32, code), f86=True)])
    ((_, parsed),) = fv.walk_files([fv.parse_volume(fv.build_volume([f]))])
    assert parsed.image == code
    assert parsed.sections[0].encapsulation == (fv.LZMA_F86_GUID,)


def test_edk2_lzma_header_is_lzma_alone() -> None:
    """The 13-byte header EDK2's LzmaCompress writes: properties byte 0x5d (lc=3, lp=0, pb=2),
    the dictionary size, then the u64 uncompressed size (LzmaCustomDecompressLib reads it there)."""
    sec = fv.build_lzma_section(b"x" * 1000)
    payload = sec[4 + 20 :]
    assert payload[0] == 0x5D
    assert struct.unpack_from("<Q", payload, 5)[0] == 1000
    assert lzma.decompress(payload, format=lzma.FORMAT_ALONE) == b"x" * 1000


def test_unknown_encoding_is_reported_not_opened() -> None:
    guid = uuid.UUID("3d532050-5cda-4fd0-879e-0f7f630d5afb")  # Brotli
    body = struct.pack("<16sHH", guid.bytes_le, 24, 0x01) + b"\x00" * 16
    f = fv.build_file(A, fv.FileType.DRIVER, [fv.build_section(fv.SectionType.GUID_DEFINED, body)])
    ((_, parsed),) = fv.walk_files([fv.parse_volume(fv.build_volume([f]))])
    assert parsed.unopened == [f"GUID-defined section {guid}"]


@pytest.mark.parametrize("cut", [30, 60, 100])
def test_truncated_volume_is_a_format_error(cut: int) -> None:
    vol = fv.build_volume([fv.build_file(A, fv.FileType.DRIVER, [_ui("X" * 40)])])
    with pytest.raises(FormatError):
        fv.parse_volume(vol[:cut])


def test_corrupt_lzma_is_a_format_error() -> None:
    sec = bytearray(fv.build_lzma_section(b"y" * 5000))
    sec[40:60] = b"\xff" * 20
    f = fv.build_file(A, fv.FileType.DRIVER, [bytes(sec)])
    with pytest.raises(FormatError, match="LZMA"):
        fv.parse_volume(fv.build_volume([f]))


def test_lzma_bomb_is_refused() -> None:
    """A section claiming more than the budget is refused before it is decompressed."""
    sec = bytearray(fv.build_lzma_section(b"z" * 100))
    struct.pack_into("<Q", sec, 24 + 5, fv.MAX_DECOMPRESSED + 1)
    f = fv.build_file(A, fv.FileType.DRIVER, [bytes(sec)])
    with pytest.raises(FormatError, match="uncompressed bytes"):
        fv.parse_volume(fv.build_volume([f]))


# -- Debian's OVMF against an independent parser ------------------------------------------------


def _oracle_files(image: bytes) -> list[tuple[str, str]]:
    """(file GUID, UI name) of every non-pad FFS file, as the uefi-firmware package shows them."""
    try:
        import uefi_firmware
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("uefi-firmware is not installed; the test extra installs it")
        pytest.skip("uefi-firmware is not installed")
    parsed = uefi_firmware.AutoParser(image).parse()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        parsed.showinfo()
    text = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"\s*File \d+: ([0-9a-f-]{36}).* type 0x([0-9a-f]{2})", line)
        if m and m.group(2) != "f0":
            out.append((m.group(1), ""))
        n = re.match(r"\s*Name: (\S+)", line)
        if n and out and not out[-1][1]:
            out[-1] = (out[-1][0], n.group(1))
    return out


def test_debian_ovmf_files_match_uefi_firmware() -> None:
    """Every FFS file of Debian's OVMF_CODE.fd (ovmf 2022.11-6+deb12u2), in order, with its UI
    name, equals what the uefi-firmware package (1.16) finds in the same image."""
    image = _real(OVMF_CODE)
    ours = [(str(f.name), f.ui_name or "") for _, f in fv.walk_files(fv.find_volumes(image))
            if f.type != fv.FileType.FFS_PAD]
    assert ours == _oracle_files(image)
    names = {n for _, n in ours}
    assert {"TdxDxe", "AmdSevDxe", "DxeCore", "PlatformPei", "SecMain"} <= names


def test_debian_ovmf_volume_layout() -> None:
    """OVMF's FDF (OvmfPkg/OvmfPkgX64.fdf): FVMAIN_COMPACT (PEI and DXE volumes LZMA-packed in
    one FV-image file) then SECFV; the DXE volume's GUID 7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1."""
    image = _real(OVMF_CODE)
    vols = fv.find_volumes(image)
    nested = [v for _, f in fv.walk_files(vols) for v in f.volumes]
    assert len(vols) == 2
    assert {str(v.name) for v in nested if v.name} >= {"7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1"}


def test_ovmf_vars_file_is_a_volume_without_ffs_files() -> None:
    """OVMF_VARS.fd is an NV-variable volume (EFI_SYSTEM_NV_DATA_FV_GUID file system): listed, no files."""
    path = Path("/usr/share/OVMF/OVMF_VARS.fd")
    vols = fv.find_volumes(_real(path))
    assert len(vols) == 1 and vols[0].files == []
    assert str(vols[0].file_system) == "fff12b8d-7696-4c8b-a985-2747075b4f50"
