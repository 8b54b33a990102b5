"""The host path as a queue: mean-value analysis against hand solutions of its equations.

Schweitzer's approximate MVA for one queueing station: a class of one customer with think time Z
and demand D has ``R = D (1 + S - q)`` and ``q = R / (Z + R)``, ``S`` the summed queues; ``n``
idle vCPUs ticking every ``P`` with demand ``d`` have ``R = d (1 + S - q / n)`` and
``q = n R / P`` while ``R <= P``.  Each expected value below is solved by hand from these.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lazyaccept.sim.engine import Host, Idle, WorkItem, simulate_phase
from lazyaccept.sim.queueing import share_path


def test_one_customer_alone_never_waits():
    s = share_path(np.array([2.0]), np.array([1.0]))
    assert s.response[0] == pytest.approx(1.0)
    assert s.queue == pytest.approx(1.0 / 3.0)


def test_two_equal_customers_solve_the_golden_ratio():
    # Z = D = 1, two customers: q = (1 + q) / (2 + q) -> q^2 + q - 1 = 0 -> q = (sqrt 5 - 1) / 2,
    # and R = 1 + S - q = 1 + q.
    q = (math.sqrt(5) - 1) / 2
    s = share_path(np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    assert s.response == pytest.approx([1 + q, 1 + q])
    assert s.queue == pytest.approx(2 * q)


@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_customers_that_only_use_the_path_share_it_exactly(n):
    # Z = 0: every customer is always at the path, q = 1 each, R = D (1 + n - 1) = n D: the path
    # serves 1 / D operations per second in all, exactly as one server must.
    s = share_path(np.zeros(n), np.full(n, 0.5))
    assert s.response == pytest.approx(np.full(n, 0.5 * n))
    assert float(np.sum(1.0 / s.response)) == pytest.approx(1 / 0.5)


def test_idle_vcpus_ticking_alone():
    # 100 idle vCPUs, a tick every 1 ms, 5 us each: R = d (1 + (n - 1) R / P)
    # -> R = d / (1 - (n - 1) d / P) = 5 / (1 - 99 * 0.005) us = 9.90 us; every tick taken.
    s = share_path(np.zeros(0), np.zeros(0), idle=100, idle_demand=5e-6, tick_period=1e-3)
    assert s.idle_response == pytest.approx(5e-6 / (1 - 99 * 0.005))
    assert s.idle_rate == pytest.approx(1000.0)


def test_ticks_are_lost_only_when_an_exit_outlasts_the_period():
    # 1000 idle vCPUs asking 1000 x 1000 x 5 us = 5 s of path per second: the path can give 1 s,
    # so each exit waits for the others (R ~ n d = 5 ms > P) and each vCPU ticks ~200 times a second.
    s = share_path(np.zeros(0), np.zeros(0), idle=1000, idle_demand=5e-6, tick_period=1e-3)
    assert s.idle_response > 1e-3
    assert 1000 * s.idle_rate * 5e-6 == pytest.approx(1.0, rel=0.01)


def test_throughput_tends_to_the_path_capacity():
    # 1000 customers of Z = 1 s, D = 10 ms ask 10 s of path per second: they get just under 1.
    n = 1000
    s = share_path(np.ones(n), np.full(n, 0.01))
    busy = float(np.sum(0.01 / (1.0 + s.response)))
    assert 0.98 < busy <= 1.0


def test_the_fault_cost_grows_smoothly_with_the_idle_aps_online():
    """A fault of 4.5 us of the vCPU's own and 3.5 us of path, while n APs tick at 1000 Hz with
    3.9 us of path each (about tdx's fitted values): the cost grows from the first AP on and
    never jumps, where a fair-share fluid stays flat until the APs fill the path and then leaps."""
    costs = []
    for n in range(0, 248):
        s = share_path(np.array([4.5e-6]), np.array([3.5e-6]), idle=n, idle_demand=3.9e-6, tick_period=1e-3)
        costs.append(4.5e-6 + s.response[0])
    costs = np.array(costs)
    assert np.all(np.diff(costs) > 0)  # every AP online makes it dearer
    assert costs[32] > 1.05 * costs[0]  # already with 32 APs, far from saturation
    assert np.max(costs[1:] / costs[:-1]) < 1.1  # no knee: no AP adds a tenth
    assert costs[-1] > 10 * costs[0]  # and near saturation it is an order of magnitude dearer


def test_the_engine_times_items_at_their_mva_rate():
    # Two vCPUs, each one item of Z = 1 s own work and D = 1 s of path: each runs at
    # 1 / (Z + R) = 1 / (2 + q) with q the golden section, so both end at 2 + 0.618 = 2.618 s.
    items = {v: [WorkItem(v, 1.0, 0.0, host_s=1.0)] for v in (0, 1)}
    t = simulate_phase(items, 0.0, Host(1e12, 1e12), Idle(online=2))
    assert t.end == pytest.approx(2 + (math.sqrt(5) - 1) / 2)
