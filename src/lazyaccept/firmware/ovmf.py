"""OVMF/TDVF firmware: what the host adds at build time, what firmware accepts before the OS,
and the EFI memory map it hands over (firmware-and-platform.md §2-§3).

TDX (TDVF): QEMU turns every RAM range into unaccepted RAM, carves the TDVF sections out as
added memory and writes the TD HOB (resource type 7 for unaccepted RAM).  TDVF's SEC phase
accepts the unaccepted RAM below 4 GiB (or what ``firmware_accept`` says): the boot vCPU does
a 4 KiB head up to the first 2 MiB boundary, and bodies over 32 MiB are striped in 32 MiB
chunks over all vCPUs, accepted at 2 MiB; the rest stays type 7 and reaches the OS as
``EfiUnacceptedMemoryType``.

Not modelled: TDVF's phase 1, where the boot vCPU accepts the APs' stacks first; it changes who
accepts a few MiB, not what is accepted.

SEV-SNP (OVMF): the host pre-validates the firmware's own pages; PEI validates all RAM below
4 GiB on the boot vCPU with 2 MiB page-state-change entries and retypes RAM above 4 GiB to
unaccepted.  At ExitBootServices the firmware accepts everything unless the OS called
``AllowUnacceptedMemory`` (Linux does since v6.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, FormatError
from ..formats.efi_memmap import EfiMemoryDescriptor, MemoryType
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
from ..formats.tdvf import TdvfMetadata, parse_tdvf
from ..platform.base import Platform
from ..ranges import RangeSet
from ..record import AcceptStats, Recorder
from ..units import SIZE_2M, KiB, MiB, align_down, align_up, parse_size
from .memmap_builder import MemoryMapPainter
from .q35 import FOUR_GIB, LEGACY_HOLE, MMCFG_BASE, MMCFG_SIZE, ram_ranges

DEFAULT_OVMF = Path("/usr/share/OVMF/OVMF_CODE.fd")
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
ACCEPT_CHUNK_SIZE = 32 * MiB  # SecTdxHelper.c ACCEPT_CHUNK_SIZE
#: Top of low RAM the firmware keeps reserved (mailbox, work area, ACPI NVS): the real TDX
#: guest's e820 shows [0x7ff7c000, 0x80000000) reserved below a 2 GiB split.
TOP_RESERVED = 0x84000
#: Firmware's own allocations at the top of accepted low memory, top down: (type, bytes).
FIRMWARE_AREA = (
    (MemoryType.EfiACPIMemoryNVS, 128 * KiB),
    (MemoryType.EfiACPIReclaimMemory, 128 * KiB),
    (MemoryType.EfiRuntimeServicesData, 1 * MiB),
    (MemoryType.EfiRuntimeServicesCode, 1 * MiB),
    (MemoryType.EfiBootServicesCode, 8 * MiB),
    (MemoryType.EfiBootServicesData, 22 * MiB),
)
#: SNP: pages the host pre-validates at launch (SNP_SEC_MEM, secrets and CPUID pages in the
#: MEMFD area) and the range SEC validates itself (PcdOvmfSecValidatedStart/End of one build).
SNP_PREVALIDATED = (0x800000, 0x820000)
SNP_SEC_VALIDATED = (0x820000, 0x1A10000)


@dataclass
class FirmwareResult:
    memory_map: list[EfiMemoryDescriptor]
    accepted: RangeSet  # everything the guest may touch at hand-off (accepted or added)
    kernel_image: tuple[int, int]
    td_hob: bytes | None = None
    tdvf: TdvfMetadata | None = None
    pre_accepted_bytes: int = 0
    stats: AcceptStats = field(default_factory=AcceptStats)


def parse_firmware_accept(value: str, ram: int) -> tuple[str, int]:
    """``below-4g`` | ``all`` | a size, as (mode, byte budget)."""
    v = value.strip().lower()
    if v in ("below-4g", "below4g"):
        return "below-4g", 0
    if v == "all":
        return "all", 0
    size = parse_size(value)
    return "size", min(size, ram)


def load_tdvf(path: str | None) -> TdvfMetadata:
    """TDVF metadata from ``path``, from Debian's OVMF when present, else the built-in copy."""
    from ..fileio import read_input
    from ..formats.tdvf import TdvfSection

    if path is not None:
        try:
            return parse_tdvf(read_input(path))
        except FormatError as exc:
            msg = str(exc)
            raise FormatError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    if DEFAULT_OVMF.is_file():
        return parse_tdvf(DEFAULT_OVMF.read_bytes())
    sections = [TdvfSection(t, 0, 0, a, s, 1 if t == 0 else 0) for t, a, s in BUILTIN_TDVF_SECTIONS]
    return TdvfMetadata(version=1, sections=sections, descriptor_offset=0)


class Ovmf:
    """The firmware of one boot."""

    def __init__(
        self,
        platform: Platform,
        recorder: Recorder,
        *,
        ram: int,
        vcpus: int,
        firmware_accept: str = "below-4g",
        kernel_image: int = 64 * MiB,
        tdvf: TdvfMetadata | None = None,
        os_opts_in: bool = True,
    ) -> None:
        self.platform = platform
        self.rec = recorder
        self.ram = RangeSet(ram_ranges(ram))
        self.vcpus = vcpus
        self.mode, self.budget = parse_firmware_accept(firmware_accept, ram)
        self.kernel_image = kernel_image
        self.tdvf = tdvf
        self.os_opts_in = os_opts_in
        self.accepted = RangeSet()
        self.stats = AcceptStats()

    @property
    def low_end(self) -> int:
        """End of RAM below 4 GiB."""
        return self.ram.intersection(0, FOUR_GIB)[-1][1]

    # -- acceptance helpers -------------------------------------------------------------------
    def _accept(self, start: int, end: int, vcpu: int, strategy: str, reason: str = "pre-accept") -> AcceptStats:
        stats = self.platform.accept(start, end, strategy=strategy, actor="firmware", vcpu=vcpu)
        self.accepted.add(start, end)
        self.stats += stats
        self.rec.accept("firmware", vcpu, start, end, stats, reason)
        return stats

    def _mp_accept(self, start: int, end: int) -> None:
        """MpAcceptMemoryResourceRange: BSP head, then 32 MiB chunks striped over all vCPUs at 2 MiB,
        the BSP taking the sub-2 MiB remainder (EDK2 PR #11525 behaviour)."""
        head_end = min(align_up(start, SIZE_2M), end)
        if head_end > start:
            self._accept(start, head_end, 0, "tdvf")
        start = head_end
        body_end = align_down(end, SIZE_2M)
        if body_end - start <= ACCEPT_CHUNK_SIZE or self.vcpus == 1:
            if start < end:
                self._accept(start, end, 0, "tdvf")
            return
        nchunks = -(-(body_end - start) // ACCEPT_CHUNK_SIZE)
        # The striped chunks tile the body: accept one full chunk to learn its cost, then the
        # rest in one request, and share the counts out to the vCPUs that own each chunk.
        first = self.platform.accept(start, start + ACCEPT_CHUNK_SIZE, strategy="tdvf-ap", actor="firmware", vcpu=0)
        rest = self.platform.accept(start + ACCEPT_CHUNK_SIZE, body_end, strategy="tdvf-ap", actor="firmware", vcpu=0)
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
            self._accept(body_end, end, 0, "tdvf")

    # -- the layout shared by both platforms ---------------------------------------------------
    def _accept_plan(self, regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Which parts of the unaccepted ``regions`` (in HOB order) firmware accepts."""
        out: list[tuple[int, int]] = []
        budget = self.budget
        for s, e in regions:
            if self.mode == "all":
                out.append((s, e))
            elif self.mode == "below-4g":
                if s < FOUR_GIB:
                    out.append((s, min(e, FOUR_GIB)))
            else:
                take = min(e - s, budget)
                # Firmware accepts page-aligned sizes.
                take = align_down(take, 4 * KiB)
                if take > 0:
                    out.append((s, s + take))
                    budget -= take
        return out

    def _memory_map(self, added_in_ram: list[tuple[int, int]]) -> tuple[list[EfiMemoryDescriptor], tuple[int, int]]:
        low_end = self.low_end
        painter = MemoryMapPainter()
        for s, e in self.ram:
            for gs, ge in self.accepted.gaps(s, e):
                painter.paint(gs, ge, MemoryType.EfiUnacceptedMemoryType)
            for as_, ae in self.accepted.intersection(s, e):
                painter.paint(as_, ae, MemoryType.EfiConventionalMemory)
        for s, e in added_in_ram:
            painter.paint(s, e, MemoryType.EfiBootServicesData)
        # The firmware's own allocations sit at the top of accepted low memory.
        painter.paint(low_end - TOP_RESERVED, low_end, MemoryType.EfiReservedMemoryType)
        top = low_end - TOP_RESERVED
        acc = self.accepted.intersection(0, top)
        top = acc[-1][1] if acc else 0
        need = sum(size for _, size in FIRMWARE_AREA) + self.kernel_image
        if not acc or acc[-1][1] - acc[-1][0] < need:
            raise ConfigError(
                f"firmware accepts too little memory: its own allocations and the kernel need {need // MiB} MiB "
                "of accepted memory below 4 GiB"
            )
        for mtype, size in FIRMWARE_AREA:
            painter.paint(top - size, top, mtype)
            top -= size
        kernel = (top - self.kernel_image, top)
        painter.paint(kernel[0], kernel[1], MemoryType.EfiLoaderData)
        painter.paint(*LEGACY_HOLE, -1)
        if low_end <= MMCFG_BASE:
            painter.paint(MMCFG_BASE, MMCFG_BASE + MMCFG_SIZE, MemoryType.EfiReservedMemoryType)
        painter.segments = [seg for seg in painter.segments if seg[2] != -1]
        return painter.descriptors(), kernel

    def _touch_own(self, memmap: list[EfiMemoryDescriptor]) -> None:
        """The firmware writes its own allocations: they must be accepted."""
        own = {
            MemoryType.EfiBootServicesCode, MemoryType.EfiBootServicesData, MemoryType.EfiRuntimeServicesCode,
            MemoryType.EfiRuntimeServicesData, MemoryType.EfiACPIReclaimMemory, MemoryType.EfiACPIMemoryNVS,
            MemoryType.EfiLoaderData,
        }
        for d in memmap:
            if d.type in own:
                self.platform.touch(d.physical_start, d.end, actor="firmware", vcpu=0)

    # -- TDX -----------------------------------------------------------------------------------
    def boot_tdx(self) -> FirmwareResult:
        meta = self.tdvf if self.tdvf is not None else load_tdvf(None)
        self.rec.begin("firmware", "firmware", online_vcpus=self.vcpus)
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
        self.rec.begin("firmware-accept", "firmware", online_vcpus=self.vcpus)
        low_end = self.low_end
        plan = self._accept_plan(unaccepted_regions)
        for s, e in plan:
            self._mp_accept(s, e)
        # TDVF always needs the reserved top of low RAM (mailbox, work area).
        for s, e in RangeSet(unaccepted_regions).intersection(low_end - TOP_RESERVED, low_end):
            for gs, ge in self.accepted.gaps(s, e):
                self._accept(gs, ge, 0, "tdvf", "firmware-work-area")
        memmap, kernel = self._memory_map(added)
        self._touch_own(memmap)
        pre = self.stats.bytes_accepted
        return FirmwareResult(memmap, self.accepted.copy(), kernel, hob, meta, pre, self.stats)

    def _td_hob(self, meta: TdvfMetadata, added: list[tuple[int, int]]) -> tuple[bytes, list[tuple[int, int]]]:
        """QEMU's TD HOB: RAM as unaccepted (type 7) or added (system memory), plus MMIO."""
        hob_sections = [s for s in meta.sections if s.type == TD_HOB_TYPE]
        if len(hob_sections) != 1:
            raise ConfigError(f"TDVF metadata must have exactly one TD_HOB section, found {len(hob_sections)}")
        hob_sec = hob_sections[0]
        added_set = RangeSet(added)
        resources: list[ResourceDescriptor] = []
        unaccepted: list[tuple[int, int]] = []
        for s, e in self.ram:
            pieces = [(a, b, RESOURCE_SYSTEM_MEMORY) for a, b in added_set.intersection(s, e)]
            pieces += [(a, b, RESOURCE_MEMORY_UNACCEPTED) for a, b in added_set.gaps(s, e)]
            for a, b, t in sorted(pieces):
                resources.append(ResourceDescriptor(t, TDX_RESOURCE_ATTRIBUTES, a, b - a))
                if t == RESOURCE_MEMORY_UNACCEPTED:
                    unaccepted.append((a, b))
        resources.append(ResourceDescriptor(RESOURCE_MEMORY_MAPPED_IO, 0x403, MMCFG_BASE, MMCFG_SIZE))
        handoff = Handoff(
            efi_memory_top=hob_sec.memory_address + hob_sec.memory_size,
            efi_memory_bottom=hob_sec.memory_address,
            efi_free_memory_top=hob_sec.memory_address + hob_sec.memory_size,
            efi_free_memory_bottom=hob_sec.memory_address,
        )
        data = build_hob_list(HobList(handoff, list(resources)), base_address=hob_sec.memory_address)
        if len(data) > hob_sec.memory_size:
            raise ConfigError(f"TD HOB of {len(data)} bytes does not fit its {hob_sec.memory_size}-byte section")
        return data, unaccepted

    # -- SEV-SNP -------------------------------------------------------------------------------
    def boot_snp(self) -> FirmwareResult:
        self.rec.begin("firmware", "firmware", online_vcpus=self.vcpus)
        self.platform.add_at_build(*SNP_PREVALIDATED)
        self.accepted.add(*SNP_PREVALIDATED)
        self.rec.work("firmware_base", 0)
        for cpu in range(1, self.vcpus):
            self.rec.work("firmware_ap_init", cpu)
        self.rec.begin("firmware-accept", "firmware", online_vcpus=1)
        self._accept(*SNP_SEC_VALIDATED, 0, "ovmf", "sec-validate")
        # PEI: SYSTEM_MEMORY below 4 GiB is validated; above 4 GiB it is retyped to unaccepted.
        regions = [(s, e) for s, e in self.ram]
        plan = self._accept_plan(regions)
        for s, e in plan:
            for gs, ge in self.accepted.gaps(s, e):
                self._accept(gs, ge, 0, "ovmf")
        low_end = self.low_end
        for gs, ge in self.accepted.gaps(low_end - TOP_RESERVED, low_end):
            self._accept(gs, ge, 0, "ovmf", "firmware-work-area")
        if not self.os_opts_in:
            # No AllowUnacceptedMemory call: AcceptAllMemory at ExitBootServices.
            for s, e in self.ram:
                for gs, ge in self.accepted.gaps(s, e):
                    self._accept(gs, ge, 0, "ovmf", "accept-all-at-ebs")
        memmap, kernel = self._memory_map([])
        self._touch_own(memmap)
        return FirmwareResult(memmap, self.accepted.copy(), kernel, None, None, self.stats.bytes_accepted, self.stats)

    def boot(self) -> FirmwareResult:
        if self.platform.name == "tdx":
            return self.boot_tdx()
        return self.boot_snp()


__all__ = ["Ovmf", "FirmwareResult", "load_tdvf", "parse_firmware_accept"]
