"""Paint typed regions into an EFI memory map, as the firmware's GCD and memory services do."""

from __future__ import annotations

from ..base.units import PAGE_SIZE
from ..formats.efi_memmap import (
    EFI_MEMORY_RUNTIME,
    EFI_MEMORY_UC,
    EFI_MEMORY_WB,
    EFI_MEMORY_WC,
    EFI_MEMORY_WT,
    EfiMemoryDescriptor,
    MemoryType,
)

RAM_ATTRIBUTES = EFI_MEMORY_UC | EFI_MEMORY_WC | EFI_MEMORY_WT | EFI_MEMORY_WB
_RUNTIME_TYPES = {MemoryType.EfiRuntimeServicesCode, MemoryType.EfiRuntimeServicesData}


class MemoryMapPainter:
    """Sorted, disjoint typed segments; painting a range overwrites what was there."""

    def __init__(self) -> None:
        self.segments: list[tuple[int, int, int]] = []

    def paint(self, start: int, end: int, mtype: int) -> None:
        if start >= end:
            return
        out: list[tuple[int, int, int]] = []
        for s, e, t in self.segments:
            if e <= start or s >= end:
                out.append((s, e, t))
                continue
            if s < start:
                out.append((s, start, t))
            if e > end:
                out.append((end, e, t))
        out.append((start, end, mtype))
        self.segments = sorted(out)

    def descriptors(self) -> list[EfiMemoryDescriptor]:
        """The map, adjacent segments of one type merged, with the attributes OVMF reports."""
        merged: list[tuple[int, int, int]] = []
        for s, e, t in self.segments:
            if merged and merged[-1][2] == t and merged[-1][1] == s:
                merged[-1] = (merged[-1][0], e, t)
            else:
                merged.append((s, e, t))
        out = []
        for s, e, t in merged:
            attr = RAM_ATTRIBUTES
            if t in _RUNTIME_TYPES:
                attr |= EFI_MEMORY_RUNTIME
            if t == MemoryType.EfiReservedMemoryType:
                attr = EFI_MEMORY_UC
            out.append(EfiMemoryDescriptor(t, s, (e - s) // PAGE_SIZE, attr))
        return out
