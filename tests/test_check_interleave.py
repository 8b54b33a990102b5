"""Interleavings of accept_memory() / range_contains_unaccepted_memory() (lazyaccept check, kind
"interleavings"), and the detectors they feed: latency, liveness (deadlock), safety."""

from __future__ import annotations

import pytest

from lazyaccept.base.units import MiB
from lazyaccept.guest.rules import kernel_rules
from lazyaccept.guest.unaccepted import UnitRange
from lazyaccept.scenario.check import detectors
from lazyaccept.scenario.check.cases import (
    ADJACENT_2,
    DISJOINT_2,
    GUARD_SHARE_2,
    IRQ_REENTRY_2,
    MIXED_3,
    SMALL_CASES,
    large_cases,
    random_case,
)
from lazyaccept.scenario.check.catalogue import INTERLEAVING_TARGETS, CheckOptions, run_interleavings
from lazyaccept.scenario.check.findings import Detector
from lazyaccept.scenario.check.interleave import Case, Op, OpKind, World, explore_all, explore_sample
from lazyaccept.scenario.check.mini import BASE

MAINLINE = kernel_rules("mainline")
GLOBAL_LOCK = MAINLINE.with_rule(global_accept_lock=True)
OFF_BY_ONE = MAINLINE.with_rule(overlap_off_by_one=True)


def test_independent_workers_give_every_interleaving():
    # Two workers of 4 steps each (lock+register, accept, relock+clear, use) that never wait for
    # each other: C(8, 4) = 70 schedules.
    for case in (DISJOINT_2, ADJACENT_2):
        exp = explore_all(case, MAINLINE)
        assert (exp.schedules, exp.finding) == (70, None)


def test_mutual_exclusion_leaves_ten_schedules():
    # Each worker's steps 1-3 exclude the other's (global lock, or overlapping accepting-list
    # entries): one runs 1-3 first, then the other's 1-4 with the first one's step 4 in any of 5
    # places: 2 x 5 = 10.
    assert explore_all(DISJOINT_2, GLOBAL_LOCK).schedules == 10
    assert explore_all(GUARD_SHARE_2, MAINLINE).schedules == 10


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: c.name)
def test_correct_kernel_has_no_violation_in_any_interleaving(case):
    exp = explore_all(case, MAINLINE)
    assert exp.clean and exp.schedules > 0 and exp.states > 0


def test_sampled_cases_are_clean_on_the_correct_kernel_and_reproducible():
    for case in large_cases(seed=7):
        a = explore_sample(case, MAINLINE, 50, seed=7)
        assert a.clean and a.schedules == 50
    r1, r2 = random_case("r", 8, 24, 3), random_case("r", 8, 24, 3)
    assert r1 == r2 and r1 != random_case("r", 8, 24, 4)
    assert len(r1.ops) == 8 and not r1.exhaustive


@pytest.mark.parametrize("seed", range(8))
def test_sampled_cases_stay_clean_over_many_seeds(seed):
    for case in large_cases(seed):
        assert explore_sample(case, MAINLINE, 30, seed=seed).clean


def test_range_contains_skips_the_last_unit_of_an_unaligned_range_longer_than_a_unit():
    # range_contains_unaccepted_memory(): the loop tests units at start, start + u, ... while below end.  For
    # [+2M+4K, +6M+4K) it tests units 1 and 2 and stops at +6M+4K: unit 3 is never looked at.  The
    # explorer found this with a caller no in-tree code makes; it is kept out of the sampled cases.
    case = Case("unaligned-check", 8, (Op(OpKind.CHECK, 2 * MiB + 4096, 4 * MiB),), accepted_units=(1, 2))
    world = World(case, MAINLINE, True)
    assert world.mem.table.bits[3] and not world.mem.range_contains_unaccepted(BASE + 2 * MiB + 4096, 4 * MiB)
    exp = explore_all(case, MAINLINE)
    f = exp.finding
    assert f is not None and (f.rule, f.address) == ("touch-unaccepted", BASE + 6 * MiB)


def test_no_accepting_list_double_accepts_the_shared_guard_unit_in_four_steps():
    # cpu0 finds units [0, 3), accepts them; before it clears the bits cpu1 finds [2, 5) still set
    # and accepts unit 2 again: BASE + 4 MiB.
    exp = explore_all(GUARD_SHARE_2, MAINLINE, use_accepting_list=False)
    f = exp.finding
    assert f is not None and (f.detector, f.rule, f.address) == (Detector.SAFETY, "double-accept", BASE + 4 * MiB)
    assert len(f.schedule) == 4 and f.schedule[-1].startswith("cpu1 fails: double-accept")


def test_global_lock_and_off_by_one_waits_are_latency_findings():
    g = explore_all(MIXED_3, GLOBAL_LOCK).finding
    o = explore_all(MIXED_3, OFF_BY_ONE).finding
    assert g is not None and g.detector is Detector.LATENCY and "the accept lock" in g.detail
    assert o is not None and o.detector is Detector.LATENCY and "accepting-list entry" in o.detail


def test_waiting_for_an_intersecting_range_is_not_latency():
    assert detectors.wait_on_disjoint_work("a", UnitRange(2, 5), "b", UnitRange(0, 3), "x") is None
    f = detectors.wait_on_disjoint_work("a", UnitRange(3, 5), "b", UnitRange(0, 3), "x")
    assert f is not None and f.detector is Detector.LATENCY


def test_deadlock_detector_fires_when_every_live_vcpu_spins():
    # An accepting-list entry whose owner never comes back (an IRQ handler interrupted it on its
    # own CPU): the only worker spins on it for ever.
    case = Case("stuck", 4, (Op(OpKind.ACCEPT, 0, 4 * MiB),))
    world = World(case, MAINLINE, True)
    world.mem.accepting.append(UnitRange(0, 2))
    found = world.state_findings()
    assert [f.rule for f in found] == ["deadlock"]
    assert found[0].detector is Detector.LIVENESS and "never returns" in found[0].detail
    assert world.runnable() == []


def test_an_interrupt_can_only_come_before_or_after_the_accept_on_the_correct_kernel():
    # IRQs are off from registering to returning, so the handler runs before cpu0's accept (then
    # cpu0 finds nothing left to do in units 1) or after it returns, before or after cpu0 uses the
    # range: 3 schedules, none stuck.
    exp = explore_all(IRQ_REENTRY_2, MAINLINE)
    assert (exp.schedules, exp.finding) == (3, None)


def test_irqs_on_during_the_accept_deadlock_the_interrupted_cpu():
    exp = explore_all(IRQ_REENTRY_2, MAINLINE.with_rule(accept_irqs_off=False))
    f = exp.finding
    assert f is not None and (f.detector, f.rule) == (Detector.LIVENESS, "deadlock")
    assert f.schedule[0].endswith("drops the lock and enables IRQs")
    assert f.schedule[1].startswith("interrupt on cpu0")
    assert "cpu0 is interrupted by irq1@cpu0" in f.detail and "waiting for cpu0" in f.detail


@pytest.mark.parametrize("target", INTERLEAVING_TARGETS, ids=lambda t: t.name)
def test_interleaving_scenarios_match(target):
    r = run_interleavings(target, CheckOptions(schedules=40, seed=1))
    assert r.ok, r.observed
    assert r.explored > 0
    if target.detector is None:
        assert r.explored > 8000  # every interleaving of the small cases (7175 in mixed-3 alone)
        assert r.correct_violations == 0 and r.schedule == ()
    else:
        assert r.schedule and r.detector == target.detector.value
