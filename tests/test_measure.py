"""Launch measurements: MRTD against an independent reading of the TDX module specification,
and the SNP launch digest against the sev-snp-measure command line."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.base.errors import ConfigError
from lazyaccept.firmware.measure import Vmm, snp_launch_digest, tdx_mrtd
from lazyaccept.formats.tdvf import TdvfMetadata, TdvfSection, build_tdvf_image, parse_tdvf
from test_tdvf import OVMF_CODE, _real

TDX_METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")


def _spec_mrtd(image: bytes, image_base: int) -> str:
    """MRTD written from the Intel TDX Module ABI text, independently of the code under test.

    The descriptor is found by its GUID (OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm puts
    TdxMetadataGuid right before "TDVF") and read with struct here.  For each section in
    descriptor order, for each 4 KiB page: TDH.MEM.PAGE.ADD hashes 128 bytes
    ("MEM.PAGE.ADD" at 0..11, GPA at 16..23); if the section has attribute bit 0, each of the
    page's sixteen 256-byte chunks is TDH.MR.EXTEND: 128 bytes ("MR.EXTEND", GPA of the chunk)
    then the chunk.  All of it is one SHA-384 message.
    """
    at = image.rfind(TDX_METADATA_GUID.bytes_le) + 16
    sig, _length, _version, count = struct.unpack_from("<4sIII", image, at)
    assert sig == b"TDVF"
    message = bytearray()
    for i in range(count):
        off, raw, gpa, size, _typ, attrs = struct.unpack_from("<IIQQII", image, at + 16 + 32 * i)
        content = b""
        if raw:
            content = image[off - image_base : off - image_base + raw]
        content = content + bytes(size - len(content))
        for page in range(size // 4096):
            page_gpa = gpa + page * 4096
            message += b"MEM.PAGE.ADD" + bytes(4) + page_gpa.to_bytes(8, "little") + bytes(104)
            if attrs & 1:
                for c in range(16):
                    message += b"MR.EXTEND" + bytes(7) + (page_gpa + 256 * c).to_bytes(8, "little") + bytes(104)
                    message += content[page * 4096 + 256 * c : page * 4096 + 256 * (c + 1)]
    return hashlib.sha384(bytes(message)).hexdigest()


def test_mrtd_of_debian_ovmf_matches_the_spec_reading() -> None:
    """Debian's OVMF_CODE.fd: a CODE-only file, 0x20000 bytes of VARS before it in the flash."""
    image = _real(OVMF_CODE)
    result = tdx_mrtd(image, parse_tdvf(image))
    assert result.mrtd.hex() == _spec_mrtd(image, 0x20000)
    # 0x1e0000 BFV + 0x20000 CFV + 0x10000 + 0x2000 + 0x2000 + 0x6000 of TEMP_MEM / TD_HOB, in pages.
    assert result.pages_added == (0x1E0000 + 0x20000 + 0x10000 + 0x2000 + 0x2000 + 0x6000) // 4096
    assert result.bytes_extended == 0x1E0000  # only the BFV has MR.EXTEND


def test_mrtd_of_one_page_by_hand() -> None:
    """The smallest measured build: one BFV page of 0xab bytes at 0xfffff000, one TD_HOB page."""
    sections = [TdvfSection(0, 0, 0x1000, 0xFFFFF000, 0x1000, 1), TdvfSection(2, 0, 0, 0x800000, 0x1000, 0)]
    image = bytearray(build_tdvf_image(TdvfMetadata(version=1, sections=sections), 0x1000 * 2))
    # The builder put the descriptor at the end; the BFV raw data is the first page.
    image[:0x1000] = b"\xab" * 0x1000
    h = hashlib.sha384()
    h.update(b"MEM.PAGE.ADD\0\0\0\0" + (0xFFFFF000).to_bytes(8, "little") + bytes(104))
    for c in range(16):
        h.update(b"MR.EXTEND\0\0\0\0\0\0\0" + (0xFFFFF000 + 256 * c).to_bytes(8, "little") + bytes(104))
        h.update(b"\xab" * 256)
    h.update(b"MEM.PAGE.ADD\0\0\0\0" + (0x800000).to_bytes(8, "little") + bytes(104))
    meta = parse_tdvf(bytes(image))
    assert tdx_mrtd(bytes(image), meta).mrtd == h.digest()


def test_mrtd_changes_with_one_byte_of_the_bfv_only() -> None:
    image = bytearray(_real(OVMF_CODE))
    meta = parse_tdvf(bytes(image))
    before = tdx_mrtd(bytes(image), meta).mrtd
    image[0x1000] ^= 1  # inside the BFV (it starts at file offset 0)
    assert tdx_mrtd(bytes(image), meta).mrtd != before


def test_measured_section_outside_the_file_is_refused() -> None:
    """A BFV whose raw data lies in a missing VARS head cannot be measured from this file."""
    meta = TdvfMetadata(version=1, sections=[TdvfSection(0, 0, 0x1000, 0xFFFFF000, 0x1000, 1)], image_base=0x1000)
    with pytest.raises(ConfigError, match="not in this file"):
        tdx_mrtd(bytes(0x1000), meta)


# -- SEV-SNP ---------------------------------------------------------------------------------------


def _cli_digest(*args: str) -> str:
    """The digest printed by sev-snp-measure's own command line (installed with the test extra)."""
    exe = shutil.which("sev-snp-measure", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("sev-snp-measure is not installed")
    out = subprocess.run([exe, "--mode", "snp", *args], check=True, capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


@pytest.mark.parametrize(("vcpus", "vcpu_type", "vmm"), [(1, "EPYC-v4", Vmm.QEMU), (4, "EPYC-Milan", Vmm.QEMU),
                                                         (2, "EPYC-Genoa", Vmm.EC2)])
def test_snp_launch_digest_equals_sev_snp_measure(vcpus: int, vcpu_type: str, vmm: Vmm) -> None:
    _real(OVMF_CODE)
    pytest.importorskip("sevsnpmeasure")
    ours = snp_launch_digest(str(OVMF_CODE), vcpus=vcpus, vcpu_type=vcpu_type, vmm=vmm)
    assert ours is not None
    vmm_arg = {Vmm.QEMU: "QEMU", Vmm.EC2: "ec2", Vmm.GCE: "gce"}[vmm]
    expected = _cli_digest("--vcpus", str(vcpus), "--vcpu-type", vcpu_type, "--vmm-type", vmm_arg,
                           "--ovmf", str(OVMF_CODE))
    assert ours.digest.hex() == expected


def test_snp_unknown_vcpu_type_is_a_config_error() -> None:
    _real(OVMF_CODE)
    pytest.importorskip("sevsnpmeasure")
    with pytest.raises(ConfigError, match="unknown vCPU type"):
        snp_launch_digest(str(OVMF_CODE), vcpus=1, vcpu_type="Pentium")


def test_inspect_shows_the_snp_digest_for_the_launch_asked() -> None:
    _real(OVMF_CODE)
    pytest.importorskip("sevsnpmeasure")
    r = run_cli("inspect", "--json", "--vcpus", "4", "--vcpu-type", "EPYC-Milan", str(OVMF_CODE))
    assert r.code == 0, r.err
    snp = json.loads(r.out)["files"][0]["measurements"]["snp_launch_digest"]
    assert (snp["vcpus"], snp["vcpu_type"], snp["vmm"]) == (4, "EPYC-Milan", "qemu")
    assert snp["hex"] == _cli_digest("--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--ovmf", str(OVMF_CODE))
