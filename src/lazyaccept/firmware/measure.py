"""The launch measurement of a TDVF image: TDX's MRTD.

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

The SEV-SNP launch digest is in :mod:`.snp_digest`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from ..base.errors import ConfigError
from ..base.units import PAGE_SIZE
from ..formats.tdvf import ATTR_MR_EXTEND, TdvfMetadata

__all__ = ["EXTEND_CHUNK", "MrtdResult", "tdx_mrtd"]

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
