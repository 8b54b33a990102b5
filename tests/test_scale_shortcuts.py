"""Per-range shortcuts of a boot's bookkeeping give what the per-unit (per-section) way gives."""

from __future__ import annotations

import random

import numpy as np

from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.units import align_down
from lazyaccept.guest.kernel import SECTION_SIZE, _present_sections
from lazyaccept.scenario.sanitizer import _first_unit


def _random_ranges(rng: random.Random, scale: int, count: int) -> RangeSet:
    r = RangeSet()
    for _ in range(count):
        a = rng.randint(0, 60) * scale // 4
        r.add(a, a + rng.randint(1, 3 * scale) // 4096 * 4096 + 4096)
    return r


def test_sections_counted_per_range_are_the_sections_enumerated() -> None:
    rng = random.Random(1)
    for _ in range(1000):
        ram = _random_ranges(rng, rng.choice([1 << 20, 64 << 20, SECTION_SIZE]), rng.randint(0, 6))
        every = {s // SECTION_SIZE for a, b in ram for s in range(align_down(a, SECTION_SIZE), b, SECTION_SIZE)}
        assert _present_sections(ram) == len(every)


def test_the_first_wrong_unit_found_per_range_is_the_lowest_per_unit() -> None:
    rng = random.Random(2)
    unit = 2 << 20
    for _ in range(1000):
        n = rng.randint(1, 40)
        base = rng.randint(0, 4) * unit
        bits = np.array([rng.random() < 0.5 for _ in range(n)], dtype=bool)
        ranges = _random_ranges(rng, unit, rng.randint(0, 4))
        for want in (True, False):
            covered = np.zeros(n, dtype=bool)
            for s, e in ranges:
                for i in range(n):
                    lo, hi = base + i * unit, base + (i + 1) * unit
                    covered[i] |= s < hi and lo < e
            wrong = np.flatnonzero(covered & (bits == want))
            expected = int(wrong[0]) if wrong.size else None
            assert _first_unit(bits, base, unit, list(ranges), want) == expected
