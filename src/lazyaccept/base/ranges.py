"""A coalescing set of half-open address ranges ``[start, end)``.

State in lazyaccept is held as ranges, never as per-page objects: a 16 TiB guest has four
billion pages, but the accepted memory of a booting guest is a few thousand ranges at most.
Operations cost O(log n + k) where k is the number of ranges touched.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

import numpy as np


class RangeSet:
    """Sorted, disjoint, non-adjacent ``[start, end)`` ranges (adjacent ranges are merged)."""

    __slots__ = ("_starts", "_ends")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for s, e in ranges:
            self.add(s, e)

    # -- queries ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    def __repr__(self) -> str:
        inner = ", ".join(f"[{s:#x}, {e:#x})" for s, e in self)
        return f"RangeSet({inner})"

    def copy(self) -> RangeSet:
        new = RangeSet()
        new._starts = list(self._starts)
        new._ends = list(self._ends)
        return new

    def total(self) -> int:
        """Number of bytes covered."""
        return sum(self._ends) - sum(self._starts)

    def first(self) -> int | None:
        return self._starts[0] if self._starts else None

    def last(self) -> int | None:
        return self._ends[-1] if self._ends else None

    def contains(self, start: int, end: int) -> bool:
        """True when every byte of ``[start, end)`` is in the set (an empty range is contained)."""
        if end <= start:
            return True
        i = bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def overlaps(self, start: int, end: int) -> bool:
        """True when any byte of ``[start, end)`` is in the set."""
        if end <= start:
            return False
        i = bisect_right(self._starts, start) - 1
        if i >= 0 and self._ends[i] > start:
            return True
        j = bisect_left(self._starts, end)
        return j > i + 1

    def intersection(self, start: int, end: int) -> list[tuple[int, int]]:
        """The pieces of the set inside ``[start, end)``, in address order."""
        if end <= start:
            return []
        out = []
        i = max(bisect_right(self._starts, start) - 1, 0)
        n = len(self._starts)
        while i < n and self._starts[i] < end:
            s, e = max(self._starts[i], start), min(self._ends[i], end)
            if s < e:
                out.append((s, e))
            i += 1
        return out

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The pieces of ``[start, end)`` that are *not* in the set."""
        out = []
        cur = start
        for s, e in self.intersection(start, end):
            if s > cur:
                out.append((cur, s))
            cur = e
        if cur < end:
            out.append((cur, end))
        return out

    def covered(self, start: int, end: int) -> int:
        """Bytes of ``[start, end)`` in the set."""
        return sum(e - s for s, e in self.intersection(start, end))

    def covered_per_block(self, base: int, block: int, count: int) -> np.ndarray:
        """Bytes covered in each of ``count`` blocks ``[base + i*block, base + (i+1)*block)``.

        Vectorised: cost is O(count + len(self)), so it serves bitmap-wide checks of a
        multi-TiB guest; worked in slices so temporary arrays stay small.
        """
        out = np.zeros(max(count, 0), dtype=np.int64)
        if count <= 0 or not self._starts:
            return out
        starts = np.asarray(self._starts, dtype=np.int64)
        ends = np.asarray(self._ends, dtype=np.int64)
        lengths = ends - starts
        prefix = np.concatenate(([0], np.cumsum(lengths)))
        step = 1 << 20
        for first in range(0, count, step):
            n = min(step, count - first)
            edges = base + (first + np.arange(n + 1, dtype=np.int64)) * block
            # cum(x) = bytes of the set below address x.
            idx = np.searchsorted(starts, edges, side="right") - 1
            safe = np.maximum(idx, 0)
            inside = np.minimum(np.clip(edges - starts[safe], 0, None), lengths[safe])
            cum = np.where(idx >= 0, prefix[safe] + inside, 0)
            out[first : first + n] = np.diff(cum)
        return out

    # -- updates ---------------------------------------------------------------------------
    def add(self, start: int, end: int) -> None:
        """Add ``[start, end)``, merging with overlapping and adjacent ranges."""
        if end <= start:
            return
        i = bisect_left(self._ends, start)  # first range ending at or after start
        j = bisect_right(self._starts, end)  # ranges [i, j) touch or overlap
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def remove(self, start: int, end: int) -> None:
        """Remove ``[start, end)`` from the set."""
        if end <= start:
            return
        i = bisect_right(self._ends, start)  # first range ending after start
        j = bisect_left(self._starts, end)  # ranges [i, j) overlap
        if i >= j:
            return
        new_s: list[int] = []
        new_e: list[int] = []
        if self._starts[i] < start:
            new_s.append(self._starts[i])
            new_e.append(start)
        if self._ends[j - 1] > end:
            new_s.append(end)
            new_e.append(self._ends[j - 1])
        self._starts[i:j] = new_s
        self._ends[i:j] = new_e

    def update(self, ranges: Iterable[tuple[int, int]]) -> None:
        for s, e in ranges:
            self.add(s, e)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a boolean array, as half-open index pairs ``[start, end)``."""
    if mask.size == 0:
        return []
    zero = np.zeros(1, dtype=np.int8)
    # Edges of the runs: +1 where a run starts, -1 one past where it ends.
    edges = np.diff(np.concatenate((zero, mask.astype(np.int8, copy=False), zero)))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    # tolist() gives Python ints, so callers' address arithmetic cannot overflow.
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
