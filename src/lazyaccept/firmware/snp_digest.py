"""The SEV-SNP launch digest of an OVMF image booted with ``-bios``, no kernel hashes.

AMD SEV-SNP Firmware ABI Specification (publication 56860), "SNP_LAUNCH_UPDATE": every page
the host adds folds into the launch digest as ``LD = SHA-384(PAGE_INFO)``, PAGE_INFO being 0x70
bytes (its Table "Layout of the PAGE_INFO structure"): the current digest (48 bytes), the
page's CONTENTS (SHA-384 of the page for NORMAL and VMSA pages, zeros for ZERO, UNMEASURED,
SECRETS and CPUID pages), u16 LENGTH 0x70, u8 PAGE_TYPE, u8 IMI_PAGE, three u8 VMPL permission
masks, a reserved byte, and the u64 GPA.  The digest starts as 48 zero bytes.

What the host adds, in order (QEMU ``target/i386/sev.c``; the SEV metadata of edk2
``OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm``):

1. the image, page by page, as NORMAL pages mapped so that it ends at 4 GiB;
2. each SEV metadata section in table order: SNP_SEC_MEM as ZERO pages (GCE: UNMEASURED),
   SNP_SECRETS as a SECRETS page, CPUID as a CPUID page (EC2 adds its CPUID pages after all
   the other sections), SNP_KERNEL_HASHES and SVSM_CAA as ZERO pages (no kernel given);
3. one VMSA page per vCPU (PAGE_TYPE VMSA at GPA 0xFFFFFFFFF000: the RMP records the VMSA at
   GPA -1 with the low 12 and the bits above 51 cleared): the boot vCPU at the reset vector
   0xfffffff0, the others at the address the SEV-ES reset block of the OVMF table gives.

The VMSA is the SEV-ES save area (AMD64 Architecture Programmer's Manual vol. 2, table B-4,
"VMSA Layout, State Save Area for SEV-ES") with the register values each VMM sets at reset:
KVM's EFER.SVME (0x1000), CR4.MCE (0x40), CR0 0x10, DR7 0x400, DR6 0xffff0ff0, RFLAGS 2,
XCR0 1, the PAT reset value, real-mode segments, RDX the CPUID signature on QEMU (0x600 on
EC2 and GCE, whose hypervisors also differ in segment attributes, PAT, MXCSR and FCW).  The
``sev-snp-measure`` package computes the same digest; the tests check against it.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from ..base.errors import FormatError
from ..base.units import PAGE_SIZE, GiB
from ..formats.tdvf import parse_ovmf_table

__all__ = [
    "SEV_METADATA_OFFSET_GUID",
    "SEV_ES_RESET_BLOCK_GUID",
    "Vmm",
    "SevSectionType",
    "SevSection",
    "CPU_SIGNATURES",
    "cpu_signature",
    "parse_sev_metadata",
    "vmsa_page",
    "snp_launch_digest",
]

SEV_METADATA_OFFSET_GUID = uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc")
SEV_ES_RESET_BLOCK_GUID = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
_SEV_SIGNATURE = b"ASEV"
_SEV_HEADER = struct.Struct("<4sIII")  # Signature, Length, Version, NumItems
_SEV_ITEM = struct.Struct("<III")  # GPA, Size, Type

BSP_EIP = 0xFFFFFFF0
VMSA_GPA = 0xFFFFFFFFF000
_PAGE_INFO_TAIL = struct.Struct("<HBBBBBBQ")
_ZEROS = bytes(48)


class _PageType(IntEnum):
    NORMAL = 1
    VMSA = 2
    ZERO = 3
    UNMEASURED = 4
    SECRETS = 5
    CPUID = 6


class Vmm(StrEnum):
    """The VMMs whose VMSA register values are known."""

    QEMU = "qemu"
    EC2 = "ec2"
    GCE = "gce"


class SevSectionType(IntEnum):
    """OvmfSevMetadata.asm section types."""

    SNP_SEC_MEM = 1
    SNP_SECRETS = 2
    CPUID = 3
    SVSM_CAA = 4
    SNP_KERNEL_HASHES = 0x10


@dataclass(frozen=True)
class SevSection:
    gpa: int
    size: int
    type: int


def cpu_signature(family: int, model: int, stepping: int) -> int:
    """CPUID Fn0000_0001_EAX (AMD CPUID Specification, publication 25481): extended family
    above 0xf, extended model in bits 19:16."""
    base_family, ext_family = (0xF, family - 0xF) if family > 0xF else (family, 0)
    return ext_family << 20 | (model >> 4) << 16 | base_family << 8 | (model & 0xF) << 4 | (stepping & 0xF)


#: QEMU CPU models (target/i386/cpu.c ``builtin_x86_defs``) and their family, model, stepping.
CPU_SIGNATURES: dict[str, int] = {
    **{name: cpu_signature(23, 1, 2) for name in ("EPYC", "EPYC-v1", "EPYC-v2", "EPYC-IBPB", "EPYC-v3", "EPYC-v4")},
    **{name: cpu_signature(23, 49, 0) for name in ("EPYC-Rome", "EPYC-Rome-v1", "EPYC-Rome-v2", "EPYC-Rome-v3")},
    **{name: cpu_signature(25, 1, 1) for name in ("EPYC-Milan", "EPYC-Milan-v1", "EPYC-Milan-v2")},
    **{name: cpu_signature(25, 17, 0) for name in ("EPYC-Genoa", "EPYC-Genoa-v1")},
    "EPYC-Turin": cpu_signature(26, 0, 0),
}


# -- the image's SEV tables -----------------------------------------------------------------------


def parse_sev_metadata(image: bytes) -> tuple[list[SevSection], int | None]:
    """The SEV metadata sections and the APs' reset EIP (None without an SEV-ES reset block)."""
    table = {e.guid: e for e in parse_ovmf_table(image)}
    entry = table.get(SEV_METADATA_OFFSET_GUID)
    if entry is None or len(entry.data) < 4:
        raise FormatError("no SEV metadata entry in the OVMF table: not an SEV-SNP image")
    (from_end,) = struct.unpack_from("<I", entry.data)
    at = len(image) - from_end
    if from_end == 0 or at < 0 or at + _SEV_HEADER.size > len(image):
        raise FormatError(f"SEV metadata offset {from_end:#x} points outside the image")
    sig, length, version, count = _SEV_HEADER.unpack_from(image, at)
    if sig != _SEV_SIGNATURE:
        raise FormatError(f"bad SEV metadata signature {sig!r} (expected b'ASEV')")
    if length != _SEV_HEADER.size + count * _SEV_ITEM.size or at + length > len(image):
        raise FormatError(f"SEV metadata of {count} items does not fit its length {length}")
    sections = []
    for i in range(count):
        gpa, size, typ = _SEV_ITEM.unpack_from(image, at + _SEV_HEADER.size + i * _SEV_ITEM.size)
        if typ not in SevSectionType.__members__.values():
            raise FormatError(f"SEV metadata section {i} has unknown type {typ}")
        if gpa % PAGE_SIZE or size % PAGE_SIZE or size == 0 or gpa + size > 4 * GiB:
            raise FormatError(f"SEV metadata section {i} [{gpa:#x}, +{size:#x}) is not whole pages below 4 GiB")
        sections.append(SevSection(gpa, size, typ))
    reset = table.get(SEV_ES_RESET_BLOCK_GUID)
    ap_eip = struct.unpack_from("<I", reset.data)[0] if reset is not None and len(reset.data) >= 4 else None
    return sections, ap_eip


# -- the VMSA --------------------------------------------------------------------------------------

_SEGMENT = struct.Struct("<HHIQ")  # selector, attributes, limit, base
# Offsets in the save area (APM vol. 2, table B-4).
_ES, _CS, _SS, _DS, _FS, _GS, _GDTR, _LDTR, _IDTR, _TR = (16 * i for i in range(10))
_EFER, _CR4, _CR0, _DR7, _DR6, _RFLAGS, _RIP = 0xD0, 0x148, 0x158, 0x160, 0x168, 0x170, 0x178
_G_PAT, _RDX, _SEV_FEATURES, _XCR0, _MXCSR, _X87_FCW = 0x268, 0x310, 0x3B0, 0x3E8, 0x408, 0x410


@dataclass(frozen=True)
class _VmmReset:
    """What differs between VMMs at reset: CS (reset vector and other), SS and TR attributes,
    PAT, RDX (None: the CPU signature), MXCSR, x87 FCW."""

    cs_bsp: int
    cs_ap: int
    ss: int
    tr: int
    g_pat: int
    rdx: int | None
    mxcsr: int
    fcw: int


_PAT_RESET = 0x0007040600070406  # APM vol. 2, A.3: the PAT MSR after reset
_RESETS = {
    Vmm.QEMU: _VmmReset(0x9B, 0x9B, 0x93, 0x8B, _PAT_RESET, None, 0x1F80, 0x37F),
    Vmm.EC2: _VmmReset(0x9A, 0x9B, 0x92, 0x83, _PAT_RESET, 0x600, 0, 0),
    Vmm.GCE: _VmmReset(0x9B, 0x9B, 0x93, 0x8B, 0x00070106, 0x600, 0, 0),
}


def vmsa_page(eip: int, vmm: Vmm, cpu_sig: int, guest_features: int) -> bytes:
    """The 4 KiB VMSA of a vCPU starting in real mode at ``eip`` (CS base the top half, RIP the low)."""
    r = _RESETS[vmm]
    page = bytearray(PAGE_SIZE)
    data = (0, 0x93, 0xFFFF, 0)
    for off, seg in (
        (_ES, data), (_SS, (0, r.ss, 0xFFFF, 0)), (_DS, data), (_FS, data), (_GS, data),
        (_CS, (0xF000, r.cs_bsp if eip == BSP_EIP else r.cs_ap, 0xFFFF, eip & 0xFFFF0000)),
        (_GDTR, (0, 0, 0xFFFF, 0)), (_IDTR, (0, 0, 0xFFFF, 0)), (_LDTR, (0, 0x82, 0xFFFF, 0)),
        (_TR, (0, r.tr, 0xFFFF, 0)),
    ):
        _SEGMENT.pack_into(page, off, *seg)
    for off, value in (
        (_EFER, 0x1000), (_CR4, 0x40), (_CR0, 0x10), (_DR7, 0x400), (_DR6, 0xFFFF0FF0), (_RFLAGS, 0x2),
        (_RIP, eip & 0xFFFF), (_G_PAT, r.g_pat), (_RDX, cpu_sig if r.rdx is None else r.rdx),
        (_SEV_FEATURES, guest_features), (_XCR0, 0x1),
    ):
        struct.pack_into("<Q", page, off, value)
    struct.pack_into("<I", page, _MXCSR, r.mxcsr)
    struct.pack_into("<H", page, _X87_FCW, r.fcw)
    return bytes(page)


# -- the digest ------------------------------------------------------------------------------------


class _Digest:
    def __init__(self) -> None:
        self.ld = _ZEROS

    def page(self, kind: _PageType, gpa: int, contents: bytes = _ZEROS) -> None:
        info = self.ld + contents + _PAGE_INFO_TAIL.pack(0x70, kind, 0, 0, 0, 0, 0, gpa)
        self.ld = hashlib.sha384(info).digest()

    def pages(self, kind: _PageType, gpa: int, size: int) -> None:
        for off in range(0, size, PAGE_SIZE):
            self.page(kind, gpa + off)


def snp_launch_digest(
    image: bytes, *, vcpus: int, vcpu_type: str = "EPYC-v4", vmm: Vmm = Vmm.QEMU, guest_features: int = 0x1
) -> bytes:
    """The launch digest (48 bytes) of ``image`` launched as SEV-SNP (see the module text)."""
    if vcpu_type not in CPU_SIGNATURES:
        raise FormatError(f"unknown vCPU type {vcpu_type!r} (known: {', '.join(CPU_SIGNATURES)})")
    if len(image) % PAGE_SIZE or not 0 < len(image) <= 4 * GiB:
        raise FormatError(f"an image of {len(image)} bytes is not whole pages below 4 GiB")
    sections, ap_eip = parse_sev_metadata(image)
    if vcpus > 1 and not ap_eip:
        raise FormatError("the image has no SEV-ES reset block: the other vCPUs have nowhere to start")
    d = _Digest()
    base = 4 * GiB - len(image)
    for off in range(0, len(image), PAGE_SIZE):
        d.page(_PageType.NORMAL, base + off, hashlib.sha384(image[off : off + PAGE_SIZE]).digest())
    for s in sections:
        if s.type == SevSectionType.SNP_SEC_MEM:
            d.pages(_PageType.UNMEASURED if vmm is Vmm.GCE else _PageType.ZERO, s.gpa, s.size)
        elif s.type == SevSectionType.SNP_SECRETS:
            d.page(_PageType.SECRETS, s.gpa)
        elif s.type == SevSectionType.CPUID:
            if vmm is not Vmm.EC2:
                d.page(_PageType.CPUID, s.gpa)
        else:  # SNP_KERNEL_HASHES without a kernel, SVSM_CAA
            d.pages(_PageType.ZERO, s.gpa, s.size)
    if vmm is Vmm.EC2:
        for s in sections:
            if s.type == SevSectionType.CPUID:
                d.page(_PageType.CPUID, s.gpa)
    sig = CPU_SIGNATURES[vcpu_type]
    for cpu in range(vcpus):
        vmsa = vmsa_page(BSP_EIP if cpu == 0 else ap_eip or 0, vmm, sig, guest_features)
        d.page(_PageType.VMSA, VMSA_GPA, hashlib.sha384(vmsa).digest())
    return d.ld
