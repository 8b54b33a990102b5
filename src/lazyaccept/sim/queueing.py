"""Waiting at the host's serialised path: mean-value analysis of a closed queueing network.

The host's serialised path (fault handling, AUG and TD entries under the same KVM / TDX-module
locks, page removals under the MMU lock) serves one operation at a time.  Every vCPU cycles
between running in the guest and asking the path for an operation, so the path is the single
queueing station of a closed network whose customers are:

* each running work item: per unit of its work, a *think* time ``Z`` (its CPU time and its
  memory traffic at the vCPU's own bandwidth) and a service *demand* ``D`` at the path;
* the idle vCPUs that take the periodic tick: each tick is one exit and re-entry, a demand of
  ``d`` at the path, once per tick period ``P = 1 / HZ`` (the tick is re-armed on a fixed period,
  so the cycle is ``max(P, R)``: a tick is lost only when an exit takes longer than the period).

Mean-value analysis with Schweitzer's approximation of the arrival theorem (an arriving customer
sees the mean queue with its own share removed) gives each class's response time at the path,
``R = D (1 + S - Q_own / N_own)``, with ``S`` the mean number of operations at the path; the
fixed point ``S = sum of the classes' queues`` is one monotone equation in ``S``, solved by
bracketed regula falsi.  Waiting thus grows with the first contender, smoothly, and the path's throughput
tends to ``1 / D`` as the customers grow: saturation is the limit of the same law, not a knee.

Queue lengths in these equations are ratios of times (``R / (Z + R)``), so an item may be given
by the totals of its operations: the same ``Z`` and ``D`` per operation or per item give the same
queues and the same slowdown.

References: M. Reiser and S. S. Lavenberg, "Mean-value analysis of closed multichain queuing
networks", J. ACM 27(2), 1980; P. Schweitzer, "Approximate analysis of multiclass closed networks
of queues", 1979; E. Lazowska et al., *Quantitative System Performance*, 1984, ch. 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Steps of the root search on the mean queue length at most (it converges in far fewer).
_STEPS = 100


@dataclass(frozen=True, slots=True)
class PathShare:
    """What the path gives each customer: per running item its response time ``R`` for its whole
    demand (service and waiting), and per idle vCPU its response time per tick and its tick
    rate; ``queue`` is the mean number of operations at the path."""

    response: np.ndarray
    idle_response: float
    idle_rate: float
    queue: float


def _singleton_queues(s: float, think: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Each one-customer class's mean queue when the path holds ``s`` on average: the smaller
    root of ``D q^2 - (Z + D (2 + s)) q + D (1 + s) = 0`` (from ``R = D (1 + s - q)`` and
    ``q = R / (Z + R)``)."""
    a = 1.0 + s
    b = think + demand * (a + 1.0)
    disc = np.maximum(b * b - 4.0 * demand * demand * a, 0.0)
    # The smaller root, written so that it does not cancel when D is tiny: 2c / (b + sqrt(disc)).
    return 2.0 * demand * a / (b + np.sqrt(disc))


def _idle_response(s: float, n: int, d: float, period: float) -> tuple[float, float]:
    """(response per tick, queue) of ``n`` idle vCPUs ticking every ``period`` with demand ``d``
    when the path holds ``s``: ``R = d (1 + s - q / n)`` and ``q = n R / max(period, R)``."""
    if n == 0 or d <= 0:
        return 0.0, 0.0
    a = 1.0 + s
    r = d * a / (1.0 + d / period)  # with R <= period: q = n R / period
    if r <= period:
        return r, n * r / period
    # Ticks lost: the cycle is the response itself, q = n.
    return max(d * (a - 1.0), period), float(n)


def _singleton_queue(s: float, z: float, d: float) -> float:
    """:func:`_singleton_queues` for one class, in plain floats (the common case of few items)."""
    a = 1.0 + s
    b = z + d * (a + 1.0)
    return 2.0 * d * a / (b + math.sqrt(max(b * b - 4.0 * d * d * a, 0.0)))


def share_path(think: np.ndarray, demand: np.ndarray, idle: int = 0, idle_demand: float = 0.0,
               tick_period: float = math.inf) -> PathShare:
    """Response times at the path for running items (``think`` and ``demand`` per item, seconds)
    and ``idle`` vCPUs ticking every ``tick_period`` with ``idle_demand`` each (see the module
    docstring).  Items with no demand get a response of 0."""
    on = demand > 0
    z, d = think[on], demand[on]
    n_idle = idle if (idle_demand > 0 and math.isfinite(tick_period)) else 0
    response = np.zeros(len(demand))
    if not len(d) and not n_idle:
        return PathShare(response, 0.0, 0.0, 0.0)
    few = len(d) <= 8
    zl, dl = (z.tolist(), d.tolist()) if few else ([], [])
    # Items alike (vCPUs in lockstep, workers of one workload): one class's queue times their count.
    alike = len(d) > 1 and bool(np.all(z == z[0]) and np.all(d == d[0]))
    z0, d0, count = (float(z[0]), float(d[0]), len(d)) if alike else (0.0, 0.0, 0)

    def excess(s: float) -> float:
        if alike:
            q = count * _singleton_queue(s, z0, d0)
        elif few:
            q = sum(_singleton_queue(s, zi, di) for zi, di in zip(zl, dl, strict=True))
        else:
            q = float(_singleton_queues(s, z, d).sum())
        return q + _idle_response(s, n_idle, idle_demand, tick_period)[1] - s

    s = _root(excess, float(len(d) + n_idle))
    if len(d):
        q = _singleton_queues(s, z, d)
        response[on] = d * (1.0 + s - q)
    r_idle, _ = _idle_response(s, n_idle, idle_demand, tick_period)
    rate = 1.0 / max(tick_period, r_idle) if n_idle else 0.0
    return PathShare(response, r_idle, rate, s)


def share_path_one(think: float, demand: float, idle: int = 0, idle_demand: float = 0.0,
                   tick_period: float = math.inf) -> tuple[float, float, float, float]:
    """:func:`share_path` for one running item, in plain floats (most steps of a boot have one):
    (its response, an idle vCPU's response per tick, its tick rate, the mean queue)."""
    n_idle = idle if (idle_demand > 0 and math.isfinite(tick_period)) else 0
    if demand <= 0 and not n_idle:
        return 0.0, 0.0, 0.0, 0.0

    def excess(s: float) -> float:
        q = _singleton_queue(s, think, demand) if demand > 0 else 0.0
        return q + _idle_response(s, n_idle, idle_demand, tick_period)[1] - s

    s = _root(excess, float((demand > 0) + n_idle))
    response = demand * (1.0 + s - _singleton_queue(s, think, demand)) if demand > 0 else 0.0
    r_idle, _ = _idle_response(s, n_idle, idle_demand, tick_period)
    rate = 1.0 / max(tick_period, r_idle) if n_idle else 0.0
    return response, r_idle, rate, s


def _root(f, hi: float) -> float:  # noqa: ANN001
    """The root of ``f`` in ``[0, hi]``, where ``f(0) >= 0 >= f(hi)`` (the queues' excess over the
    mean queue is decreasing there): the Illinois variant of regula falsi, which keeps a bracket
    like bisection and converges superlinearly."""
    lo, f_lo = 0.0, f(0.0)
    if f_lo <= 0.0:
        return 0.0
    f_hi = f(hi)
    if f_hi >= 0.0:
        return hi
    side = 0
    for _ in range(_STEPS):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        fx = f(x)
        if abs(fx) <= 1e-12 * max(1.0, x) or hi - lo <= 1e-12 * max(1.0, hi):
            return x
        if fx > 0.0:
            lo, f_lo = x, fx
            if side == 1:
                f_hi *= 0.5
            side = 1
        else:
            hi, f_hi = x, fx
            if side == -1:
                f_lo *= 0.5
            side = -1
    return 0.5 * (lo + hi)


#: An idle class at the path: (idle vCPUs, demand per tick, tick period).
IdleClass = tuple[int, float, float]


def share_path_classes(think: np.ndarray, demand: np.ndarray,
                       idle: tuple[IdleClass, ...]) -> tuple[np.ndarray, list[tuple[float, float]], float]:
    """:func:`share_path` with several idle classes (the idle vCPUs of several guests, each with
    its own tick rate and exit cost, customers of the one path): (each item's response, per
    class an idle vCPU's response per tick and its tick rate, the mean queue).  An idle class's
    per-customer response depends on the class only through ``q / n = R / P``, so one class of
    ``n`` vCPUs and two of ``n1 + n2 = n`` with the same tick give the same answer."""
    on = demand > 0
    z, d = think[on], demand[on]
    ticking = [(n if (dd > 0 and math.isfinite(p)) else 0, dd, p) for n, dd, p in idle]
    n_idle = sum(n for n, _, _ in ticking)
    response = np.zeros(len(demand))
    if not len(d) and not n_idle:
        return response, [(0.0, 0.0)] * len(idle), 0.0

    def excess(s: float) -> float:
        q = float(_singleton_queues(s, z, d).sum()) if len(d) else 0.0
        for n, dd, p in ticking:
            q += _idle_response(s, n, dd, p)[1]
        return q - s

    s = _root(excess, float(len(d) + n_idle))
    if len(d):
        response[on] = d * (1.0 + s - _singleton_queues(s, z, d))
    per_class = []
    for n, dd, p in ticking:
        r_idle, _ = _idle_response(s, n, dd, p)
        per_class.append((r_idle, 1.0 / max(p, r_idle) if n else 0.0))
    return response, per_class, s
