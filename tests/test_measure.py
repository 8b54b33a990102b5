"""Launch measurements: MRTD against an independent reading of the TDX module specification,
the SNP launch digest against the sev-snp-measure package (its command line, as an oracle)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.base.errors import ConfigError, FormatError
from lazyaccept.firmware.measure import tdx_mrtd
from lazyaccept.firmware.snp_digest import CPU_SIGNATURES, Vmm, cpu_signature, snp_launch_digest, vmsa_page
from lazyaccept.formats.tdvf import TdvfMetadata, TdvfSection, build_tdvf_image, parse_tdvf
from test_tdvf import OVMF_CODE, OVMF_CODE_4M, _real

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
        if os.environ.get("CI") == "true":
            pytest.fail("sev-snp-measure is not installed; the test extra installs it")
        pytest.skip("sev-snp-measure is not installed")
    out = subprocess.run([exe, "--mode", "snp", *args], check=True, capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


@pytest.mark.parametrize(("vcpus", "vcpu_type", "vmm"), [
    (1, "EPYC-v4", Vmm.QEMU), (4, "EPYC-Milan", Vmm.QEMU), (2, "EPYC-Genoa", Vmm.EC2), (3, "EPYC-Rome", Vmm.GCE),
    (64, "EPYC-Turin", Vmm.QEMU),
])
def test_snp_launch_digest_equals_sev_snp_measure(vcpus: int, vcpu_type: str, vmm: Vmm) -> None:
    """Debian's OVMF_CODE.fd (it has the SEV metadata and the SEV-ES reset block)."""
    image = _real(OVMF_CODE)
    ours = snp_launch_digest(image, vcpus=vcpus, vcpu_type=vcpu_type, vmm=vmm)
    vmm_arg = {Vmm.QEMU: "QEMU", Vmm.EC2: "ec2", Vmm.GCE: "gce"}[vmm]
    expected = _cli_digest("--vcpus", str(vcpus), "--vcpu-type", vcpu_type, "--vmm-type", vmm_arg,
                           "--ovmf", str(OVMF_CODE))
    assert ours.hex() == expected


def test_cpu_signatures_by_hand() -> None:
    """CPUID Fn0000_0001_EAX as AMD documents it: EPYC Milan (family 19h, model 01h, stepping 1)
    reads 0x00A00F11; Rome (17h, 31h, 0) 0x00830F10; the first EPYC (17h, 01h, 2) 0x00800F12."""
    assert CPU_SIGNATURES["EPYC-Milan"] == 0x00A00F11 == cpu_signature(0x19, 0x01, 1)
    assert CPU_SIGNATURES["EPYC-Rome"] == 0x00830F10
    assert CPU_SIGNATURES["EPYC-v4"] == 0x00800F12


def test_vmsa_fields_at_their_apm_offsets() -> None:
    """AMD APM vol. 2 table B-4: CS at 0x10 (selector, attributes, limit, base), EFER at 0xD0,
    RIP at 0x178, RDX at 0x310, SEV_FEATURES at 0x3B0; the AP starts at the reset block's EIP."""
    page = vmsa_page(0x0080_B004, Vmm.QEMU, 0x00A00F11, 0x1)
    assert struct.unpack_from("<HHIQ", page, 0x10) == (0xF000, 0x9B, 0xFFFF, 0x0080_0000)
    assert struct.unpack_from("<Q", page, 0xD0)[0] == 0x1000
    assert struct.unpack_from("<Q", page, 0x178)[0] == 0xB004
    assert struct.unpack_from("<Q", page, 0x310)[0] == 0x00A00F11
    assert struct.unpack_from("<Q", page, 0x3B0)[0] == 0x1
    assert len(page) == 4096


def test_snp_digest_refuses_what_it_cannot_measure() -> None:
    image = _real(OVMF_CODE)
    with pytest.raises(FormatError, match="unknown vCPU type"):
        snp_launch_digest(image, vcpus=1, vcpu_type="Pentium")
    with pytest.raises(FormatError, match="not an SEV-SNP image"):
        snp_launch_digest(_real(OVMF_CODE_4M), vcpus=1)
    bad = bytearray(image)
    bad[bad.find(b"ASEV") : bad.find(b"ASEV") + 4] = b"XSEV"
    with pytest.raises(FormatError, match="signature"):
        snp_launch_digest(bytes(bad), vcpus=1)


def test_inspect_shows_the_snp_digest_for_the_launch_asked() -> None:
    _real(OVMF_CODE)
    r = run_cli("inspect", "--json", "--vcpus", "4", "--vcpu-type", "EPYC-Milan", str(OVMF_CODE))
    assert r.code == 0, r.err
    snp = json.loads(r.out)["files"][0]["measurements"]["snp_launch_digest"]
    assert (snp["vcpus"], snp["vcpu_type"], snp["vmm"]) == (4, "EPYC-Milan", "qemu")
    assert snp["hex"] == _cli_digest("--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--ovmf", str(OVMF_CODE))
