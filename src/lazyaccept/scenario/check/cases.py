"""The concurrent cases the interleaving explorer runs: overlapping, adjacent and guard-unit-sharing
ranges on 2-3 vCPUs (explored exhaustively) and random mixes on 4 and 8 vCPUs (sampled).

Offsets are from the start of the bitmap; a unit is 2 MiB.  A page-allocator chunk is 4 MiB, so
``accept_memory()`` of a chunk covers two units and, ending on a unit boundary, pulls in the next
unit as its guard ("efi/unaccepted: Avoid load_unaligned_zeropad() stepping into unaccepted
memory").
"""

from __future__ import annotations

import random

from ...base.units import PAGE_SIZE, MiB
from .interleave import Case, Op, OpKind
from .mini import UNIT

A, C = OpKind.ACCEPT, OpKind.CHECK

#: Two chunk accepts far apart: units [0, 3) and [4, 7).  Nothing to wait for.
DISJOINT_2 = Case("disjoint-2", 16, (Op(A, 0, 4 * MiB), Op(A, 8 * MiB, 4 * MiB)),
                  what="2 vCPUs, disjoint chunks")
#: A chunk accept (units [0, 3) with its guard) and the next unit pair starting where it ends
#: (units [3, 5)): adjacent, not overlapping.
ADJACENT_2 = Case("adjacent-2", 8, (Op(A, 0, 4 * MiB), Op(A, 6 * MiB, 2 * MiB)),
                  what="2 vCPUs, adjacent ranges")
#: Two neighbouring chunks: [0, 3) and [2, 5) share unit 2, the first one's guard unit.
GUARD_SHARE_2 = Case("guard-share-2", 8, (Op(A, 0, 4 * MiB), Op(A, 4 * MiB, 4 * MiB)),
                     what="2 vCPUs, neighbouring chunks sharing a guard unit")
#: Overlapping byte ranges, one of them partly accepted already.
OVERLAP_2 = Case("overlap-2", 8, (Op(A, 0, 6 * MiB), Op(A, 2 * MiB, 5 * MiB)), accepted_units=(1,),
                 what="2 vCPUs, overlapping ranges over a partly accepted span")
#: A chunk accept, a one-page range_contains in its guard unit, and the adjacent unit pair.
MIXED_3 = Case("mixed-3", 8, (Op(A, 0, 4 * MiB), Op(C, 4 * MiB, PAGE_SIZE), Op(A, 6 * MiB, 2 * MiB)),
               what="3 vCPUs, chunk + page check in its guard unit + adjacent range")
#: Three requests inside one unit and its neighbour: sub-unit byte ranges that do not overlap
#: but share units (the kernel serialises at unit granularity).
SUB_UNIT_3 = Case(
    "sub-unit-3", 4,
    (Op(A, 0, 1 * MiB), Op(A, 1 * MiB, UNIT - 1 * MiB - PAGE_SIZE), Op(C, UNIT - PAGE_SIZE, PAGE_SIZE)),
    what="3 vCPUs, disjoint byte ranges inside one unit, one ending on its boundary",
)

#: cpu0 accepts a chunk (units [0, 3)); an interrupt on cpu0 asks for part of the same memory.
IRQ_REENTRY_2 = Case("irq-reentry-2", 8, (Op(A, 0, 4 * MiB), Op(A, 2 * MiB, 2 * MiB - PAGE_SIZE, irq_of=0)),
                     what="a chunk accept and an interrupt handler on the same CPU asking for part of it")

SMALL_CASES = (DISJOINT_2, ADJACENT_2, GUARD_SHARE_2, OVERLAP_2, MIXED_3, SUB_UNIT_3, IRQ_REENTRY_2)

#: accept_memory() callers pass any range (memblock: sub-page objects at any offset).
_ACCEPT_SIZES = (PAGE_SIZE, 1 * MiB, UNIT - PAGE_SIZE, UNIT, 4 * MiB, 6 * MiB)
#: range_contains_unaccepted_memory() callers pass a naturally aligned block of 2^order pages
#: (page_contains_unaccepted(page, order), pfn_is_unaccepted_memory()): order 0, 9 and 10 here.
#: Its loop steps one unit at a time from the start, so an unaligned range longer than a unit can
#: miss its last unit; no in-tree caller passes one (see tests/test_check_interleave.py).
_CHECK_SIZES = (PAGE_SIZE, UNIT, 4 * MiB)


def random_case(name: str, vcpus: int, units: int, seed: int) -> Case:
    """``vcpus`` calls on random, often overlapping ranges of a ``units``-unit bitmap, about a
    fifth of it accepted already; the same seed gives the same case."""
    rng = random.Random(seed)
    ops = []
    for _ in range(vcpus):
        start_unit = rng.randrange(0, units - 1)
        if rng.random() < 0.3:
            size = rng.choice(_CHECK_SIZES)
            offset = start_unit * UNIT // size * size + rng.choice((0, PAGE_SIZE)) * (size == PAGE_SIZE)
            ops.append(Op(C, offset, size))
            continue
        offset = start_unit * UNIT + rng.choice((0, 0, PAGE_SIZE, 1 * MiB))
        ops.append(Op(A, offset, min(rng.choice(_ACCEPT_SIZES), units * UNIT - offset)))
    accepted = tuple(sorted(rng.sample(range(units), units // 5)))
    return Case(name, units, tuple(ops), accepted, exhaustive=False,
                what=f"{vcpus} vCPUs, random ranges (seed {seed})")


def large_cases(seed: int) -> tuple[Case, ...]:
    """The sampled cases: 4 and 8 vCPUs."""
    return (random_case("random-4", 4, 12, seed), random_case("random-8", 8, 24, seed + 1))
