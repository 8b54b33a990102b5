"""The verdict on a firmware image: Debian's real OVMF builds, and hand-built images with and
without each piece of evidence."""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.base.choices import Tee
from lazyaccept.base.errors import FormatError
from lazyaccept.firmware.known_builds import KNOWN_BUILDS
from lazyaccept.firmware.verdict import Acceptance, analyse_firmware
from lazyaccept.formats import fv
from lazyaccept.formats.tdvf import TdvfMetadata, TdvfSection, build_tdvf_image
from test_tdvf import OVMF_CODE, OVMF_CODE_4M, _real

FOOTER = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_ENTRY = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
SEV_META_ENTRY = uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc")
# edk2 MdePkg.dec and OvmfPkg.dec.
MEMORY_ACCEPT = uuid.UUID("38c74800-5590-4db4-a0f3-675d9b8e8026")
SEV_MEMORY_ACCEPTANCE = uuid.UUID("c5a010fe-38a7-4531-8a4a-0500d2fd1649")
# FILE_GUIDs of OvmfPkg/TdxDxe/TdxDxe.inf and OvmfPkg/AmdSevDxe/AmdSevDxe.inf.
TDX_DXE = uuid.UUID("e750224e-7bce-40af-b5bb-47e3611eb5c2")
AMD_SEV_DXE = uuid.UUID("2ec9da37-ee35-4de9-86c5-6d9a81dc38a7")


Module = tuple[uuid.UUID, str, list[uuid.UUID]]


def _ovmf(entries: list[uuid.UUID], modules: list[Module], size: int = 64 * 1024) -> bytes:
    """An image laid out as QEMU reads OVMF (hw/i386/pc_sysfw_ovmf.c): the footer GUID 0x30
    bytes before the end, the table length in the u16 before it, entries below, each ending
    with {u16 length, GUID}; and at offset 0 a volume holding the modules (UI name, code
    holding the given GUIDs)."""
    files = [
        fv.build_file(guid, fv.FileType.DRIVER, [
            fv.build_section(fv.SectionType.PE32, b"MZ" + b"".join(g.bytes_le for g in guids)),
            fv.build_section(fv.SectionType.USER_INTERFACE, (name + "\0").encode("utf-16-le"))])
        for guid, name, guids in modules
    ]
    img = bytearray(size)
    if files:
        vol = fv.build_volume(files)
        img[: len(vol)] = vol
    table = b""
    for g in entries:
        table = b"\x00\x00\x00\x00" + struct.pack("<H", 4 + 18) + g.bytes_le + table
    table += struct.pack("<H", len(table) + 18) + FOOTER.bytes_le
    end = size - 0x20
    img[end - len(table) : end] = table
    return bytes(img)


def test_debian_ovmf_code_tdx_lazy_snp_all() -> None:
    """Debian's OVMF_CODE.fd (ovmf 2022.11-6+deb12u2 = edk2-stable202211): TdxDxe holds
    EDKII_MEMORY_ACCEPT_PROTOCOL (TDX lazy accept landed in 202211, edk2 d1e41c620f) and AmdSevDxe
    does not (SNP's accept protocol and the OS opt-in came in 202302: 59aa48bb7d, a00e2e5513)."""
    v = analyse_firmware(_real(OVMF_CODE))
    tdx, snp = v.for_platform(Tee.TDX), v.for_platform(Tee.SNP)
    assert tdx.acceptance is Acceptance.LAZY_BELOW_4G and str(tdx.firmware_accept) == "below-4g"
    assert snp.acceptance is Acceptance.ALL and str(snp.firmware_accept) == "all"
    assert any("TdxDxe" in e and "EDKII_MEMORY_ACCEPT_PROTOCOL" in e for e in tdx.evidence)
    assert v.known is not None and v.known.upstream == "edk2-stable202211"
    by_name = {m.name: m for m in v.modules}
    assert by_name["TdxDxe"].protocols == ("EDKII_MEMORY_ACCEPT_PROTOCOL",)
    assert by_name["AmdSevDxe"].protocols == ()


def test_debian_ovmf_code_4m_launches_neither() -> None:
    """The 4 MiB build (SMM_REQUIRE) has neither the TDX nor the SEV metadata entry (its GUIDed
    table holds only the SEV-ES reset block, secret and hash-table entries) and no TdxDxe."""
    v = analyse_firmware(_real(OVMF_CODE_4M))
    assert {p.acceptance for p in v.platforms} == {Acceptance.NOT_SUPPORTED}
    assert "TdxDxe" not in {m.name for m in v.modules}
    assert "SEV-ES" in v.for_platform(Tee.SNP).evidence[0]


def test_known_builds_are_the_installed_files() -> None:
    """Each recorded hash is the hash of the installed file it names."""
    import hashlib

    for digest, build in KNOWN_BUILDS.items():
        assert hashlib.sha256(_real(Path(build.file))).hexdigest() == digest


@pytest.mark.parametrize(("protocols", "expected"), [
    ([MEMORY_ACCEPT], Acceptance.LAZY_BELOW_4G),
    ([], Acceptance.ALL),
])
def test_tdx_verdict_follows_tdxdxe(protocols: list[uuid.UUID], expected: Acceptance) -> None:
    img = _ovmf([TDX_ENTRY], [(TDX_DXE, "TdxDxe", protocols)])
    assert analyse_firmware(img).for_platform(Tee.TDX).acceptance is expected


@pytest.mark.parametrize(("protocols", "expected"), [
    ([MEMORY_ACCEPT, SEV_MEMORY_ACCEPTANCE], Acceptance.ALL_UNLESS_OS_OPTS_IN),
    ([MEMORY_ACCEPT], Acceptance.LAZY_BELOW_4G),
    ([], Acceptance.ALL),
])
def test_snp_verdict_follows_amdsevdxe(protocols: list[uuid.UUID], expected: Acceptance) -> None:
    img = _ovmf([SEV_META_ENTRY], [(AMD_SEV_DXE, "AmdSevDxe", protocols)])
    v = analyse_firmware(img).for_platform(Tee.SNP)
    assert v.acceptance is expected
    if expected is Acceptance.ALL_UNLESS_OS_OPTS_IN:
        assert str(v.firmware_accept) == "below-4g" and "AllowUnacceptedMemory" in " ".join(v.evidence)


def test_module_found_by_file_guid_without_ui_name() -> None:
    """A build without UI sections: TdxDxe is still recognised by its FILE_GUID."""
    img = _ovmf([TDX_ENTRY], [(TDX_DXE, "", [MEMORY_ACCEPT])])
    assert analyse_firmware(img).for_platform(Tee.TDX).acceptance is Acceptance.LAZY_BELOW_4G


def test_unknown_says_what_would_tell() -> None:
    """TDX metadata but no volume to read (e.g. a td-shim or a stripped image): unknown, and
    the kernel log of one boot would tell."""
    v = analyse_firmware(_ovmf([TDX_ENTRY, SEV_META_ENTRY], [])).for_platform(Tee.TDX)
    assert v.acceptance is Acceptance.UNKNOWN and v.firmware_accept is None
    assert "--like" in (v.what_would_tell or "")


def test_image_without_ovmf_table_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        analyse_firmware(bytes(4096))


# -- the command line ----------------------------------------------------------------------------


def test_inspect_prints_verdict_and_mrtd() -> None:
    _real(OVMF_CODE)
    r = run_cli("inspect", str(OVMF_CODE))
    assert r.code == 0, r.err
    assert "This image: TDX lazy below 4 GiB, MRTD" in r.out
    assert "edk2-stable202211" in r.out


def test_inspect_json_carries_the_verdict() -> None:
    _real(OVMF_CODE)
    r = run_cli("inspect", "--json", str(OVMF_CODE))
    assert r.code == 0, r.err
    doc = json.loads(r.out)["files"][0]
    assert [(p["platform"], p["acceptance"]) for p in doc["verdict"]] == [("tdx", "lazy-below-4g"), ("snp", "all")]
    assert len(doc["measurements"]["tdx_mrtd"]["hex"]) == 96


def _tdvf_image(tdxdxe_protocols: list[uuid.UUID]) -> bytes:
    """A TDVF image (one BFV over the whole file, a TD_HOB, a TEMP_MEM) whose BFV starts with a
    volume holding TdxDxe with the given protocol GUIDs."""
    size = 0x40000
    sections = [TdvfSection(0, 0, size, 0x1_0000_0000 - size, size, 1),
                TdvfSection(2, 0, 0, 0x809000, 0x2000, 0), TdvfSection(3, 0, 0, 0x800000, 0x6000, 0)]
    img = bytearray(build_tdvf_image(TdvfMetadata(version=1, sections=sections), size))
    vol = fv.build_volume([fv.build_file(TDX_DXE, fv.FileType.DRIVER, [
        fv.build_section(fv.SectionType.PE32, b"MZ" + b"".join(g.bytes_le for g in tdxdxe_protocols))])])
    img[: len(vol)] = vol
    return bytes(img)


def test_boot_takes_firmware_accept_from_the_image(tmp_path: Path) -> None:
    """`boot --firmware` without --firmware-accept: the image's verdict; --firmware-accept still wins."""
    eager, lazy = tmp_path / "eager.fd", tmp_path / "lazy.fd"
    eager.write_bytes(_tdvf_image([]))
    lazy.write_bytes(_tdvf_image([MEMORY_ACCEPT]))
    for path, expected in ((eager, "all"), (lazy, "below-4g")):
        r = run_cli("boot", "--memory", "8G", "--firmware", str(path), "--json")
        assert r.code == 0, r.err
        assert json.loads(r.out)["config"]["firmware_accept"] == expected
    r = run_cli("boot", "--memory", "8G", "--firmware", str(eager), "--firmware-accept", "below-4g", "--json")
    assert json.loads(r.out)["config"]["firmware_accept"] == "below-4g"


def test_boot_with_an_image_that_does_not_say(tmp_path: Path) -> None:
    """No volume to read: one line naming what to give, exit 2."""
    path = tmp_path / "bare.fd"
    img = bytearray(_tdvf_image([]))
    img[:0x1000] = bytes(0x1000)  # the volume header gone
    path.write_bytes(bytes(img))
    r = run_cli("boot", "--memory", "8G", "--firmware", str(path))
    assert r.code == 2 and "--firmware-accept" in r.err and r.err.count("\n") == 1
    assert run_cli("boot", "--memory", "8G", "--firmware", str(path), "--firmware-accept", "all").code == 0


@pytest.mark.parametrize("where", ["fv-header", "lzma", "table", "ffs-size", "tdvf"])
def test_corrupt_debian_image_is_one_line_or_a_document(tmp_path: Path, where: str) -> None:
    """Real bytes damaged where each parser looks: a document (exit 0) or one error line (exit 2)."""
    image = bytearray(_real(OVMF_CODE))
    if where == "fv-header":
        image[0x20:0x28] = b"\xff" * 8  # the first volume's FvLength
    elif where == "lzma":
        image[0x200:0x400] = bytes(0x200)  # inside FVMAIN_COMPACT's LZMA stream
    elif where == "table":
        image[-0x32:-0x30] = b"\xff\xff"  # the GUIDed table's length
    elif where == "ffs-size":
        image[0x48 + 0x14 : 0x48 + 0x17] = b"\xff\xff\x7f"  # the first file's size
    else:
        at = image.find(b"TDVF")
        image[at + 12 : at + 16] = b"\xff\xff\x00\x00"  # 65535 sections
    path = tmp_path / "bad.fd"
    path.write_bytes(bytes(image))
    r = run_cli("inspect", str(path))
    assert r.code in (0, 2), r.err
    if r.code == 2:
        assert r.out == "" and r.err.count("\n") == 1 and str(path) in r.err
    assert "Traceback" not in r.err


def test_snp_boot_takes_firmware_accept_from_the_image() -> None:
    """Debian's OVMF_CODE.fd on SEV-SNP: OVMF of edk2-stable202211 validates all RAM."""
    _real(OVMF_CODE)
    r = run_cli("boot", "--memory", "8G", "--platform", "snp", "--firmware", str(OVMF_CODE), "--json")
    assert r.code == 0, r.err
    config = json.loads(r.out)["config"]
    assert (config["platform"], config["firmware_accept"]) == ("snp", "all")


def test_boot_with_an_image_that_cannot_launch_there() -> None:
    """Debian's 4 MiB build has no SEV metadata: an SEV-SNP boot with it is refused in one line."""
    _real(OVMF_CODE_4M)
    r = run_cli("boot", "--memory", "8G", "--platform", "snp", "--firmware", str(OVMF_CODE_4M))
    assert r.code == 2 and "cannot launch on snp" in r.err
