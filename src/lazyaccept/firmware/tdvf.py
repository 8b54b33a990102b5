"""TDVF, the TDX build of OVMF, with the host's part of a TD launch (firmware-and-platform.md §2).

QEMU turns every RAM range into unaccepted RAM, carves the TDVF sections out as added memory
(``TDH.MEM.PAGE.ADD`` at build time) and writes the TD HOB (resource type 7 for unaccepted RAM).
TDVF's SEC phase accepts the unaccepted RAM below 4 GiB (or what ``firmware_accept`` says): the
boot vCPU does a 4 KiB head up to the first 2 MiB boundary, and bodies over 32 MiB are striped
in 32 MiB chunks over all vCPUs, accepted at 2 MiB; the rest stays type 7 and reaches the OS as
``EfiUnacceptedMemoryType``.

Not modelled: TDVF's phase 1, where the boot vCPU accepts the APs' stacks first; it changes who
accepts a few MiB, not what is accepted.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..base.choices import AcceptRoutine, BootPhase, FirmwareAccept
from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..base.ranges import RangeSet
from ..base.record import Recorder
from ..base.units import SIZE_2M, MiB, align_down, align_up
from ..formats.hob import (
    RESOURCE_MEMORY_MAPPED_IO,
    RESOURCE_MEMORY_UNACCEPTED,
    RESOURCE_SYSTEM_MEMORY,
    TDX_RESOURCE_ATTRIBUTES,
    Handoff,
    HobList,
    ResourceDescriptor,
    build_hob_list,
)
from ..formats.tdvf import TdvfMetadata, TdvfSection, parse_tdvf
from ..platform.base import Platform
from .base import Firmware, FirmwareResult
from .q35 import MMCFG_BASE, MMCFG_SIZE

DEFAULT_OVMF = Path("/usr/share/OVMF/OVMF_CODE.fd")
#: Stands for "Debian's OVMF_CODE.fd when installed, else its sections built in" in a configuration.
BUILTIN_IMAGE = "builtin"
#: TDVF sections of Debian's OVMF_CODE.fd (ovmf 2022.11), used when no image is available:
#: (type, memory_address, memory_size).  tests/test_tdvf.py checks them against the real file.
BUILTIN_TDVF_SECTIONS = (
    (0, 0xFFE20000, 0x1E0000),  # BFV
    (1, 0xFFE00000, 0x20000),  # CFV
    (3, 0x810000, 0x10000),  # TEMP_MEM
    (3, 0x80B000, 0x2000),  # TEMP_MEM
    (2, 0x809000, 0x2000),  # TD_HOB
    (3, 0x800000, 0x6000),  # TEMP_MEM
)
TD_HOB_TYPE = 2
ACCEPT_CHUNK_SIZE = 32 * MiB  # OvmfPkg/Library/PlatformInitLib (SecTdxHelper.c) ACCEPT_CHUNK_SIZE


def default_image() -> str:
    """The image a configuration names when the user gives none."""
    return str(DEFAULT_OVMF) if DEFAULT_OVMF.is_file() else BUILTIN_IMAGE


@lru_cache(maxsize=8)
def load_tdvf(path: str) -> TdvfMetadata:
    """TDVF metadata of the image at ``path``, or the built-in copy of Debian's for
    :data:`BUILTIN_IMAGE`.  Cached: a sweep parses each image once per process."""
    if path == BUILTIN_IMAGE:
        sections = [TdvfSection(t, 0, 0, a, s, 1 if t == 0 else 0) for t, a, s in BUILTIN_TDVF_SECTIONS]
        return TdvfMetadata(version=1, sections=sections, descriptor_offset=0)
    try:
        return parse_tdvf(read_input(path))
    except FormatError as exc:
        msg = str(exc)
        raise FormatError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


class Tdvf(Firmware):
    """TDVF booting one TD."""

    def __init__(
        self,
        platform: Platform,
        recorder: Recorder,
        *,
        ram: int,
        vcpus: int,
        firmware_accept: FirmwareAccept,
        kernel_image: int,
        tdvf: TdvfMetadata,
    ) -> None:
        super().__init__(
            platform, recorder, ram=ram, vcpus=vcpus, firmware_accept=firmware_accept, kernel_image=kernel_image
        )
        self.tdvf = tdvf

    def boot(self) -> FirmwareResult:
        meta = self.tdvf
        self.rec.begin(BootPhase.FIRMWARE, "firmware", online_vcpus=self.vcpus)
        # Host (QEMU) at build time: TDH.MEM.PAGE.ADD of every TDVF section.
        added: list[tuple[int, int]] = []
        for sec in meta.sections:
            if sec.memory_size:
                self.platform.add_at_build(sec.memory_address, sec.memory_address + sec.memory_size)
                self.accepted.add(sec.memory_address, sec.memory_address + sec.memory_size)
                if self.ram.overlaps(sec.memory_address, sec.memory_address + sec.memory_size):
                    added.append((sec.memory_address, sec.memory_address + sec.memory_size))
        added.sort()
        hob, unaccepted_regions = self._td_hob(meta, added)
        self.rec.work("firmware_base", 0)
        for cpu in range(1, self.vcpus):
            self.rec.work("firmware_ap_init", cpu)
        self.rec.begin(BootPhase.FIRMWARE_ACCEPT, "firmware", online_vcpus=self.vcpus)
        plan = self._accept_plan(unaccepted_regions)
        for s, e in plan:
            self._mp_accept(s, e)
        # TDVF always needs the reserved top of low RAM (mailbox, work area).
        self._accept_work_area(AcceptRoutine.TDVF, within=unaccepted_regions)
        memmap, kernel = self._memory_map(added)
        self._touch_own(memmap)
        pre = self.stats.bytes_accepted
        return FirmwareResult(memmap, self.accepted.copy(), kernel, hob, meta, pre, self.stats)

    def _td_hob(self, meta: TdvfMetadata, added: list[tuple[int, int]]) -> tuple[bytes, list[tuple[int, int]]]:
        """QEMU's TD HOB: RAM as unaccepted (type 7) or added (system memory), plus MMIO."""
        hob_sections = [s for s in meta.sections if s.type == TD_HOB_TYPE]
        if len(hob_sections) != 1:
            raise ConfigError(f"TDVF metadata must have exactly one TD_HOB section, found {len(hob_sections)}")
        resources = qemu_td_hob_resources(self.ram, added)
        unaccepted = [(r.start, r.end) for r in resources if r.resource_type == RESOURCE_MEMORY_UNACCEPTED]
        return build_td_hob(hob_sections[0], resources), unaccepted


    def _mp_accept(self, start: int, end: int) -> None:
        """MpAcceptMemoryResourceRange: BSP head, then 32 MiB chunks striped over all vCPUs at 2 MiB,
        the BSP taking the sub-2 MiB remainder (EDK2 PR #11525 behaviour)."""
        head_end = min(align_up(start, SIZE_2M), end)
        if head_end > start:
            self._accept(start, head_end, 0, AcceptRoutine.TDVF)
        start = head_end
        body_end = align_down(end, SIZE_2M)
        if body_end - start <= ACCEPT_CHUNK_SIZE or self.vcpus == 1:
            if start < end:
                self._accept(start, end, 0, AcceptRoutine.TDVF)
            return
        nchunks = -(-(body_end - start) // ACCEPT_CHUNK_SIZE)
        # The striped chunks tile the body: accept one full chunk to learn its cost, then the
        # rest in one request, and share the counts out to the vCPUs that own each chunk.
        ap = AcceptRoutine.TDVF_AP
        first = self.platform.accept(start, start + ACCEPT_CHUNK_SIZE, routine=ap, actor="firmware", vcpu=0)
        rest = self.platform.accept(start + ACCEPT_CHUNK_SIZE, body_end, routine=ap, actor="firmware", vcpu=0)
        self.accepted.add(start, body_end)
        self.stats += first
        self.stats += rest
        nfull = (body_end - start) // ACCEPT_CHUNK_SIZE
        partial = nchunks - nfull
        last_stats = rest - first.scaled(nfull - 1) if partial else None
        for cpu in range(min(self.vcpus, nchunks)):
            owned = len(range(cpu, nfull, self.vcpus))
            stats = first.scaled(owned)
            if partial and (nchunks - 1) % self.vcpus == cpu and last_stats is not None:
                stats = stats + last_stats
            lo = start + cpu * ACCEPT_CHUNK_SIZE
            self.rec.accept("firmware", cpu, lo, body_end, stats, "pre-accept-mp", requests=max(owned, 1))
        if body_end < end:
            self._accept(body_end, end, 0, AcceptRoutine.TDVF)


def qemu_td_hob_resources(ram: RangeSet, added: list[tuple[int, int]]) -> list[ResourceDescriptor]:
    """QEMU's TD HOB resources (hw/i386/tdvf-hob.c): RAM as unaccepted (type 7) except the TDVF
    sections it added (system memory), in address order, then the MMCFG window."""
    added_set = RangeSet(added)
    resources: list[ResourceDescriptor] = []
    for s, e in ram:
        pieces = [(a, b, RESOURCE_SYSTEM_MEMORY) for a, b in added_set.intersection(s, e)]
        pieces += [(a, b, RESOURCE_MEMORY_UNACCEPTED) for a, b in added_set.gaps(s, e)]
        for a, b, t in sorted(pieces):
            resources.append(ResourceDescriptor(t, TDX_RESOURCE_ATTRIBUTES, a, b - a))
    resources.append(ResourceDescriptor(RESOURCE_MEMORY_MAPPED_IO, 0x403, MMCFG_BASE, MMCFG_SIZE))
    return resources


def build_td_hob(hob_sec: TdvfSection, resources: list[ResourceDescriptor]) -> bytes:
    """The TD HOB bytes QEMU writes into the TD_HOB section: a handoff header and ``resources``."""
    handoff = Handoff(
        efi_memory_top=hob_sec.memory_address + hob_sec.memory_size,
        efi_memory_bottom=hob_sec.memory_address,
        efi_free_memory_top=hob_sec.memory_address + hob_sec.memory_size,
        efi_free_memory_bottom=hob_sec.memory_address,
    )
    data = build_hob_list(HobList(handoff, list(resources)), base_address=hob_sec.memory_address)
    if len(data) > hob_sec.memory_size:
        raise ConfigError(f"TD HOB of {len(data)} bytes does not fit its {hob_sec.memory_size}-byte section")
    return data

