"""The guest's NUMA nodes as the kernel sees them: each node's RAM (from the VMM's SRAT) and its
CPUs, and the order in which an allocation on a node falls back to the others.

One node is the layout of a guest without ``-numa``: all RAM and every vCPU on node 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.ranges import RangeSet

#: The whole physical address space, as node 0 of a guest without NUMA nodes.
ALL_MEMORY = ((0, 1 << 62),)


@dataclass(frozen=True)
class NumaLayout:
    """Per node, its physical RAM ranges; and the vCPU count, split among the nodes."""

    ranges: tuple[tuple[tuple[int, int], ...], ...]
    vcpus: int

    @classmethod
    def single(cls, vcpus: int) -> NumaLayout:
        return cls((ALL_MEMORY,), vcpus)

    @property
    def nodes(self) -> int:
        return len(self.ranges)

    def node_of_cpu(self, vcpu: int) -> int:
        """The node of a vCPU: the vCPUs are split evenly, in blocks of consecutive ids (assumed:
        the VMM places vCPU sockets on nodes in order, ``-numa cpu,node-id=K,socket-id=K``), so
        the boot CPU is on node 0."""
        return min(self.nodes - 1, vcpu * self.nodes // max(1, self.vcpus))

    def cpus_of_node(self, node: int) -> list[int]:
        return [v for v in range(self.vcpus) if self.node_of_cpu(v) == node]

    def node_ram(self, node: int, ram: RangeSet) -> RangeSet:
        """The part of ``ram`` on ``node``."""
        return RangeSet(piece for a, b in self.ranges[node] for piece in ram.intersection(a, b))

    def fallback(self, node: int) -> list[int]:
        """The nodes an allocation on ``node`` tries, in order (``build_zonelists()``, mm/page_alloc.c:
        node order, the local node first; QEMU's default distances are all equal, 20 remote and
        10 local, so the remote nodes come in id order after the local one, wrapping: assumed,
        the kernel's ``find_next_best_node()`` also spreads nodes of equal distance by load)."""
        return [(node + i) % self.nodes for i in range(self.nodes)]
