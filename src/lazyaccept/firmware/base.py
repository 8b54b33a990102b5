"""What every OVMF build does alike: the RAM layout, which unaccepted RAM it accepts, the EFI
memory map it hands over, and the firmware's own allocations (firmware-and-platform.md §2-§3).

:class:`Firmware` holds this shared part; :class:`~lazyaccept.firmware.tdvf.Tdvf` (TDX) and
:class:`~lazyaccept.firmware.ovmf_sev.OvmfSev` (SEV-SNP) add what only their platform does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ..base.choices import AcceptRoutine, FirmwareAccept, FirmwareAcceptMode
from ..base.errors import ConfigError
from ..base.ranges import RangeSet
from ..base.record import AcceptStats, Recorder
from ..base.units import KiB, MiB, align_down
from ..formats.efi_memmap import EfiMemoryDescriptor, MemoryType
from ..formats.tdvf import TdvfMetadata
from ..platform.base import Platform
from .memmap_builder import MemoryMapPainter
from .q35 import FOUR_GIB, LEGACY_HOLE, MMCFG_BASE, MMCFG_SIZE, ram_ranges

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
#: Memory types the firmware itself writes before hand-off: they must be accepted.
_OWN_TYPES = frozenset({
    MemoryType.EfiBootServicesCode, MemoryType.EfiBootServicesData, MemoryType.EfiRuntimeServicesCode,
    MemoryType.EfiRuntimeServicesData, MemoryType.EfiACPIReclaimMemory, MemoryType.EfiACPIMemoryNVS,
    MemoryType.EfiLoaderData,
})
#: A painter marker for ranges that are not in the memory map at all (the legacy hole).
_NOT_IN_MAP = -1


@dataclass
class FirmwareResult:
    memory_map: list[EfiMemoryDescriptor]
    accepted: RangeSet  # everything the guest may touch at hand-off (accepted or added)
    kernel_image: tuple[int, int]
    td_hob: bytes | None = None
    tdvf: TdvfMetadata | None = None
    pre_accepted_bytes: int = 0
    stats: AcceptStats = field(default_factory=AcceptStats)


class Firmware(ABC):
    """The firmware of one boot: the parts every OVMF build shares."""

    def __init__(
        self,
        platform: Platform,
        recorder: Recorder,
        *,
        ram: int,
        vcpus: int,
        firmware_accept: FirmwareAccept,
        kernel_image: int,
    ) -> None:
        self.platform = platform
        self.rec = recorder
        self.ram = RangeSet(ram_ranges(ram))
        self.vcpus = vcpus
        self.firmware_accept = firmware_accept
        self.kernel_image = kernel_image
        self.accepted = RangeSet()
        self.stats = AcceptStats()

    @abstractmethod
    def boot(self) -> FirmwareResult:
        """Run the firmware from reset to hand-off."""

    @property
    def low_end(self) -> int:
        """End of RAM below 4 GiB."""
        return self.ram.intersection(0, FOUR_GIB)[-1][1]

    def _accept(
        self, start: int, end: int, vcpu: int, routine: AcceptRoutine, reason: str = "pre-accept"
    ) -> AcceptStats:
        stats = self.platform.accept(start, end, routine=routine, actor="firmware", vcpu=vcpu)
        self.accepted.add(start, end)
        self.stats += stats
        self.rec.accept("firmware", vcpu, start, end, stats, reason)
        return stats

    def _accept_plan(self, regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Which parts of the unaccepted ``regions`` (in HOB order) firmware accepts."""
        mode = self.firmware_accept.mode
        if mode is FirmwareAcceptMode.ALL:
            return list(regions)
        if mode is FirmwareAcceptMode.BELOW_4G:
            return [(s, min(e, FOUR_GIB)) for s, e in regions if s < FOUR_GIB]
        out: list[tuple[int, int]] = []
        budget = min(self.firmware_accept.size, self.ram.total())
        for s, e in regions:
            # Firmware accepts page-aligned sizes.
            take = align_down(min(e - s, budget), 4 * KiB)
            if take > 0:
                out.append((s, s + take))
                budget -= take
        return out

    def _memory_map(self, added_in_ram: list[tuple[int, int]]) -> tuple[list[EfiMemoryDescriptor], tuple[int, int]]:
        """The EFI memory map at hand-off, and where the kernel image was loaded."""
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
        painter.paint(*LEGACY_HOLE, _NOT_IN_MAP)
        if low_end <= MMCFG_BASE:
            painter.paint(MMCFG_BASE, MMCFG_BASE + MMCFG_SIZE, MemoryType.EfiReservedMemoryType)
        painter.segments = [seg for seg in painter.segments if seg[2] != _NOT_IN_MAP]
        return painter.descriptors(), kernel

    def _touch_own(self, memmap: list[EfiMemoryDescriptor]) -> None:
        """The firmware writes its own allocations: they must be accepted."""
        for d in memmap:
            if d.type in _OWN_TYPES:
                self.platform.touch(d.physical_start, d.end, actor="firmware", vcpu=0)

    def _accept_work_area(self, routine: AcceptRoutine, within: list[tuple[int, int]] | None = None) -> None:
        """The reserved top of low RAM (mailbox, work area) is always accepted, whatever the plan."""
        low_end = self.low_end
        candidates = RangeSet(within).intersection(low_end - TOP_RESERVED, low_end) if within is not None else [
            (low_end - TOP_RESERVED, low_end)
        ]
        for s, e in candidates:
            for gs, ge in self.accepted.gaps(s, e):
                self._accept(gs, ge, 0, routine, "firmware-work-area")


__all__ = ["Firmware", "FirmwareResult", "FIRMWARE_AREA", "TOP_RESERVED"]
