"""Guest RAM layout of QEMU's q35 machine (hw/i386/pc_q35.c).

RAM that does not fit below the 32-bit PCI hole is split: when the guest has at least
0xb0000000 (2816 MiB) of RAM, 2 GiB stay below 4 GiB and the rest starts at 4 GiB; smaller
guests keep up to 2816 MiB below 4 GiB.  The PCIe MMCFG window (256 MiB at 0xe0000000) is
reserved.
"""

from __future__ import annotations

from ..base.units import GiB, MiB

LOWMEM_SPLIT_THRESHOLD = 0xB0000000
LOWMEM_LARGE = 0x80000000
MMCFG_BASE = 0xE0000000
MMCFG_SIZE = 256 * MiB
FOUR_GIB = 4 * GiB
#: The legacy VGA/BIOS window the firmware leaves out of the memory map.
LEGACY_HOLE = (0xA0000, 0x100000)


def q35_split(ram: int) -> tuple[int, int]:
    """Bytes of RAM below and above 4 GiB for a guest with ``ram`` bytes."""
    lowmem = LOWMEM_LARGE if ram >= LOWMEM_SPLIT_THRESHOLD else LOWMEM_SPLIT_THRESHOLD
    below = min(ram, lowmem)
    return below, ram - below


def ram_ranges(ram: int) -> list[tuple[int, int]]:
    """The guest's RAM as ``[start, end)`` ranges, as QEMU's e820 table gives them."""
    below, above = q35_split(ram)
    out = [(0, below)]
    if above:
        out.append((FOUR_GIB, FOUR_GIB + above))
    return out


#: An even split of RAM among NUMA nodes as QEMU made it for nodes given no size: multiples of
#: 8 MiB ("On Linux, each node's border has to be 8MB aligned": ``numa_mem_align_shift = 23`` in
#: ``machine_class_init()``, hw/core/machine.c), the last node taking the remainder
#: (``numa_default_auto_assign_ram()``, hw/core/numa.c).  Newer QEMU wants each node's size
#: (``-numa node,memdev=``); the model takes this split as what a management stack asks for.
NUMA_NODE_ALIGN = 8 * MiB


def numa_node_sizes(ram: int, nodes: int) -> list[int]:
    """Bytes of RAM per node: an even split aligned down to 8 MiB, the last node the rest."""
    per = (ram // nodes) // NUMA_NODE_ALIGN * NUMA_NODE_ALIGN
    return [per] * (nodes - 1) + [ram - per * (nodes - 1)]


def numa_node_ranges(ram: int, nodes: int) -> list[list[tuple[int, int]]]:
    """Each node's RAM as ``[start, end)`` ranges, as QEMU's SRAT gives them (``build_srat()``,
    hw/i386/acpi-build.c): nodes take consecutive RAM in order, a node reaching the end of the
    RAM below 4 GiB continuing at 4 GiB."""
    below, _ = q35_split(ram)
    out: list[list[tuple[int, int]]] = []
    offset = 0
    for size in numa_node_sizes(ram, nodes):
        lo, hi = offset, offset + size
        pieces = []
        if lo < below:
            pieces.append((lo, min(hi, below)))
        if hi > below:
            a = max(lo, below) - below
            pieces.append((FOUR_GIB + a, FOUR_GIB + hi - below))
        out.append(pieces)
        offset = hi
    return out
