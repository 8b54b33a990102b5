"""Launch measurements of a firmware image: TDX's MRTD, SEV-SNP's launch digest.

**MRTD** (Intel TDX Module Base Architecture Specification, "Measurement of TD build"; the ABI
of TDH.MEM.PAGE.ADD and TDH.MR.EXTEND): MRTD is one SHA-384 running over the whole build and
finalised by TDH.MR.FINALIZE.  Each TDH.MEM.PAGE.ADD extends it with a 128-byte block, the
ASCII ``MEM.PAGE.ADD`` at bytes 0..11, the page's GPA (u64) at bytes 16..23, zeros elsewhere;
each TDH.MR.EXTEND of a 256-byte chunk with a 128-byte block holding ``MR.EXTEND`` and the
chunk's GPA the same way, then the chunk's 256 bytes.  The host issues them per section in
descriptor order (QEMU ``target/i386/kvm/tdx.c``: one KVM_TDX_INIT_MEM_REGION per TDVF
section, with KVM_TDX_MEASURE_MEMORY_REGION when the section has MR.EXTEND), and KVM adds
each page then extends its 16 chunks before the next page (Linux
``arch/x86/kvm/vmx/tdx.c``, ``tdx_gmem_post_populate``).  A section's memory holds its raw
data then zeros (QEMU copies ``RawDataSize`` bytes into a zeroed buffer of ``MemoryDataSize``).

**SEV-SNP launch digest**: computed by the ``sev-snp-measure`` package (declared in the
``measure`` extra; a dependency, not reimplemented here): it chains the SNP_LAUNCH_UPDATE page
digests of the image, the SEV metadata pages and one VMSA per vCPU as QEMU, EC2 or GCE set it.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import version

from ..base.errors import ConfigError
from ..base.units import PAGE_SIZE
from ..formats.tdvf import ATTR_MR_EXTEND, TdvfMetadata

__all__ = [
    "EXTEND_CHUNK",
    "MrtdResult",
    "tdx_mrtd",
    "Vmm",
    "SnpDigest",
    "snp_launch_digest",
    "snp_vcpu_types",
]

#: TDH.MR.EXTEND measures 256 bytes per call.
EXTEND_CHUNK = 256
_BLOCK = struct.Struct("<16sQ104x")  # ASCII operation name (zero-padded), GPA, zeros: 128 bytes


@dataclass(frozen=True)
class MrtdResult:
    """MRTD and what went into it."""

    mrtd: bytes
    pages_added: int
    bytes_extended: int


def _section_memory(image: bytes, meta: TdvfMetadata, index: int) -> bytes | None:
    """The bytes a section's memory holds at build time; None if its raw data is not in ``image``."""
    s = meta.sections[index]
    if s.raw_data_size == 0:
        return bytes(s.memory_size)
    at = meta.raw_data_file_offset(s)
    if at is None or at + s.raw_data_size > len(image):
        return None
    return image[at : at + s.raw_data_size] + bytes(s.memory_size - s.raw_data_size)


def tdx_mrtd(image: bytes, meta: TdvfMetadata) -> MrtdResult:
    """MRTD of a TD built from ``image`` whose TDVF descriptor is ``meta`` (see module text).

    Raises :class:`ConfigError` when a measured (MR.EXTEND) section's raw data is not in the
    file, as in a CODE-only file whose missing VARS part held it.
    """
    h = hashlib.sha384()
    pages = extended = 0
    for i, s in enumerate(meta.sections):
        measured = bool(s.attributes & ATTR_MR_EXTEND)
        memory = _section_memory(image, meta, i) if measured else None
        if measured and memory is None:
            raise ConfigError(f"TDVF section {i} ({s.type_name}) is measured but its raw data is not in this file")
        for off in range(0, s.memory_size, PAGE_SIZE):
            gpa = s.memory_address + off
            h.update(_BLOCK.pack(b"MEM.PAGE.ADD", gpa))
            pages += 1
            if memory is None:
                continue
            for chunk in range(off, off + PAGE_SIZE, EXTEND_CHUNK):
                h.update(_BLOCK.pack(b"MR.EXTEND", s.memory_address + chunk))
                h.update(memory[chunk : chunk + EXTEND_CHUNK])
                extended += EXTEND_CHUNK
    return MrtdResult(h.digest(), pages, extended)


class Vmm(StrEnum):
    """The VMMs whose VMSA register values sev-snp-measure knows."""

    QEMU = "qemu"
    EC2 = "ec2"
    GCE = "gce"


@dataclass(frozen=True)
class SnpDigest:
    """An SNP launch digest and the launch it is for."""

    digest: bytes
    vcpus: int
    vcpu_type: str
    vmm: Vmm
    guest_features: int
    computed_by: str


def _package():  # type: ignore[no-untyped-def]
    try:
        # Optional: the `measure` extra.
        from sevsnpmeasure import guest, vcpu_types, vmm_types
    except ImportError:
        return None
    return guest, vcpu_types, vmm_types


def snp_vcpu_types() -> list[str]:
    """The QEMU CPU models sev-snp-measure knows the signature of ([] if it is not installed)."""
    pkg = _package()
    return list(pkg[1].CPU_SIGS) if pkg else []


def snp_launch_digest(
    path: str, *, vcpus: int, vcpu_type: str = "EPYC-v4", vmm: Vmm = Vmm.QEMU, guest_features: int = 0x1
) -> SnpDigest | None:
    """The SNP launch digest of the OVMF image at ``path`` booted with no kernel hashes; None
    when sev-snp-measure is not installed (``pip install 'lazyaccept[measure]'``)."""
    pkg = _package()
    if pkg is None:
        return None
    guest, vcpu_types, vmm_types = pkg
    if vcpu_type not in vcpu_types.CPU_SIGS:
        raise ConfigError(f"unknown vCPU type {vcpu_type!r} (known: {', '.join(vcpu_types.CPU_SIGS)})")
    vmm_type = {Vmm.QEMU: vmm_types.VMMType.QEMU, Vmm.EC2: vmm_types.VMMType.ec2, Vmm.GCE: vmm_types.VMMType.gce}[vmm]
    try:
        digest = guest.snp_calc_launch_digest(
            vcpus, vcpu_types.CPU_SIGS[vcpu_type], path, None, None, None, guest_features, "", vmm_type
        )
    except Exception as exc:  # noqa: BLE001 -- a third-party reader of hostile bytes: any failure is "cannot"
        raise ConfigError(f"sev-snp-measure cannot measure this image: {str(exc) or type(exc).__name__}") from None
    by = f"sev-snp-measure {version('sev-snp-measure')}"
    return SnpDigest(bytes(digest), vcpus, vcpu_type, vmm, guest_features, by)
