"""TDVF reading the TD HOB the host wrote, and the check EDK2 Bugzilla 4363 asks for
(EDK2 OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c; QEMU hw/i386/tdvf-hob.c).

The host (QEMU) writes the TD HOB: guest RAM as unaccepted memory (resource type 7) except the
TDVF sections it added at build time with TDH.MEM.PAGE.ADD.  TDVF's SEC phase accepts the type-7
memory below 4 GiB.  The host is not trusted, so it can forge the HOB and declare as unaccepted
memory it added -- and, for the boot firmware volume, measured into MRTD: TDVF would accept those
pages a second time.  Bugzilla 4363 (tianocore/edk2 issue #10384, "TDVF shall check the
TDX_METADATA to ensure if only accepts the AUG(unaccepted) page, not ADD(private) page"): TDVF's
own metadata, which is part of MRTD, lists every section the host added, so TDVF must refuse an
unaccepted resource that overlaps one.  Upstream TDVF checks the TEMP_MEM sections only
(``CheckUnacceptedMemory``, tianocore/edk2 PR #4002); the model offers the three.

On the TDX module the second accept of a MAPPED page returns TDX_PAGE_ALREADY_ACCEPTED, on which
EDK2's TdAcceptPages only warns; the model's platform treats every second acceptance as the
violation it is (``double-accept``).
"""

from __future__ import annotations

from enum import StrEnum

from ..base.choices import AcceptRoutine
from ..base.errors import GuestStopped
from ..base.record import AcceptStats
from ..formats.hob import RESOURCE_MEMORY_UNACCEPTED, parse_hob_list
from ..formats.tdvf import TdvfMetadata, TdvfSectionType
from ..platform.base import Platform
from .q35 import FOUR_GIB


class HobCheck(StrEnum):
    """Which sections TDVF checks the unaccepted resources of the TD HOB against."""

    NONE = "none"
    #: Upstream: TEMP_MEM sections only (PR #4002, CheckUnacceptedMemory).
    TEMP_MEM = "temp-mem"
    #: Bugzilla 4363: every section of TDVF's metadata (the pages the host added).
    METADATA = "metadata"


def hob_problems(meta: TdvfMetadata, hob: bytes, check: HobCheck) -> list[str]:
    """Unaccepted resources of the HOB that overlap sections TDVF checks against."""
    if check is HobCheck.NONE:
        return []
    sections = [
        s for s in meta.sections
        if s.memory_size and (check is HobCheck.METADATA or s.type == TdvfSectionType.TEMP_MEM)
    ]
    problems = []
    for r in parse_hob_list(hob).resources():
        if r.resource_type != RESOURCE_MEMORY_UNACCEPTED:
            continue
        for sec in sections:
            if r.start < sec.memory_address + sec.memory_size and sec.memory_address < r.end:
                name = TdvfSectionType(sec.type).name
                problems.append(
                    f"unaccepted resource [{r.start:#x}, {r.end:#x}) overlaps TDVF section {name} at "
                    f"[{sec.memory_address:#x}, {sec.memory_address + sec.memory_size:#x}) that the host added"
                )
    return problems


def tdvf_accept_from_hob(platform: Platform, meta: TdvfMetadata, hob: bytes, check: HobCheck) -> AcceptStats:
    """TDVF's SEC phase: validate the HOB (halting on a problem) and accept its unaccepted
    resources below 4 GiB on the boot vCPU, in HOB order."""
    problems = hob_problems(meta, hob, check)
    if problems:
        # ValidateTdxMetadata / TdxHelperProcessTdHob fail: TDVF stops (CpuDeadLoop) before accepting.
        raise GuestStopped("tdvf", "tdvf-hob-refused", problems[0])
    stats = AcceptStats()
    for r in parse_hob_list(hob).resources():
        if r.resource_type == RESOURCE_MEMORY_UNACCEPTED and r.start < FOUR_GIB:
            end = min(r.end, FOUR_GIB)
            stats += platform.accept(r.start, end, routine=AcceptRoutine.TDVF, actor="firmware", vcpu=0)
    return stats
