"""The host's clock against the guest's: where a modelled instant falls in a host trace.

A host trace and the model's own trace of the same boot both count the faults on guest memory as
they happen.  An instant of the model has some count by then; in the host's trace the same count
holds over a stretch of time, and the instant is placed in it as far in, in proportion, as it is
in the model's stretch (inside a burst of faults the stretch is one instant).  The count is what
both clocks agree on, whatever the guest's own clock says.
"""

from __future__ import annotations

import math

from ..formats.host_trace import FAULT_EXIT, Counter, HostTrace

#: A step series: (seconds, faults so far), time ascending.
Counts = list[tuple[float, float]]


def fault_counts(trace: HostTrace, platform: str) -> Counts:
    """(seconds, faults so far) at every interval's start and end: faults on guest memory (the
    kvm_page_fault count, else the fault exits)."""
    use_counter = trace.total(Counter.FAULT) > 0
    dt = trace.interval_ms / 1000
    out: list[tuple[float, float]] = []
    total = 0.0
    for i in trace.intervals:
        n = i.get(Counter.FAULT) if use_counter else i.exits.get(FAULT_EXIT[platform], 0)
        out.append((i.t_ns / 1e9 - dt, total))
        total += n
        out.append((i.t_ns / 1e9, total))
    return out


def count_at(points: Counts, t: float) -> float:
    """The count at ``t`` (linear inside an interval)."""
    for (t0, c0), (t1, c1) in zip(points, points[1:], strict=False):
        if t0 <= t <= t1:
            return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return points[-1][1] if points else 0.0


def plateau(points: Counts, n: float) -> tuple[float, float] | None:
    """When the count first reaches ``n`` (linear inside an interval) and when it first passes it:
    the stretch with exactly ``n`` faults counted (one instant inside a burst)."""
    first = None
    for (t0, c0), (t1, c1) in zip(points, points[1:], strict=False):
        if first is None and c1 >= n and c1 > c0:
            first = t0 + (t1 - t0) * max(0.0, n - c0) / (c1 - c0)
        if first is not None and c1 > n:
            passed = t0 + (t1 - t0) * max(0.0, n - c0) / (c1 - c0) if c0 <= n else t0
            return first, max(first, passed)
    if first is None:
        return None
    return first, math.inf  # no fault after: the stretch runs to the end


def host_time(host: Counts, model: Counts, model_t: float) -> float | None:
    """Where on the host's clock the instant ``model_t`` of the model falls: on the model's trace it
    has some count of faults; the host's trace has the same count over a stretch, and the instant
    sits in it as far in (in proportion) as in the model's stretch.  Open-ended stretches (no fault
    after) keep the model's distance from their start."""
    n = count_at(model, model_t)
    if n <= 0:
        return None
    pm, ph = plateau(model, n), plateau(host, n)
    if pm is None or ph is None:
        return None
    (am, bm), (ah, bh) = pm, ph
    if math.isinf(bm) or math.isinf(bh) or bm <= am:
        return ah + max(0.0, model_t - am)
    return ah + (model_t - am) * (bh - ah) / (bm - am)
