"""accept_memory(), range_contains_unaccepted_memory() and concurrent acceptance (linux-kernel.md §3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import G4, M2, snp, tdx, unaccepted_memory
from lazyaccept.base.choices import AcceptRoutine
from lazyaccept.base.errors import SafetyViolation
from lazyaccept.base.units import MiB
from lazyaccept.guest.unaccepted import TaskState


def test_request_ending_on_unit_boundary_pulls_in_guard_unit():
    mem = unaccepted_memory(8)
    mem.accept_memory(G4, M2, actor="t")  # ends at 4G+2M: unit 0 plus guard unit 1
    assert mem.table.bits[:3].tolist() == [False, False, True]
    assert mem.platform.accepted().contains(G4, G4 + 2 * M2)


def test_request_not_ending_on_unit_boundary_has_no_guard():
    mem = unaccepted_memory(8)
    mem.accept_memory(G4, M2 - 4096, actor="t")
    assert mem.table.bits[:2].tolist() == [False, True]
    assert mem.platform.accepted().contains(G4, G4 + M2)
    assert not mem.platform.accepted().overlaps(G4 + M2, G4 + 2 * M2)


@pytest.mark.parametrize("kernel,guard", [("6.12", False), ("mainline", True)])
def test_sub_page_request_in_last_page_of_unit(kernel, guard):
    # [4G+2M-0x100, 4G+2M-0x80): raw end is not unit aligned, so before the 2026 fix no guard;
    # widened to whole pages it ends at 4G+2M and pulls in unit 1.
    mem = unaccepted_memory(4, kernel=kernel)
    mem.accept_memory(G4 + M2 - 0x100, 0x80, actor="t")
    assert mem.table.bits[0] == False  # noqa: E712
    assert mem.table.bits[1] == (not guard)


def test_memory_below_phys_base_and_beyond_bitmap_is_never_accepted():
    mem = unaccepted_memory(8)
    stats = mem.accept_memory(G4 - 16 * MiB, 8 * MiB, actor="t")  # entirely below phys_base
    assert stats.bytes_accepted == 0
    stats = mem.accept_memory(G4 + 64 * MiB, 4 * MiB, actor="t")  # beyond the 8 units
    assert stats.bytes_accepted == 0
    assert mem.table.bits[:8].all()


def test_range_contains_unaccepted_includes_guard():
    mem = unaccepted_memory(8, set_bits=False)
    mem.table.bits[1] = True
    assert mem.range_contains_unaccepted(G4, M2)  # guard unit 1
    assert not mem.range_contains_unaccepted(G4, M2 - 4096)


def test_two_mib_accept_on_4k_host_becomes_512_4k_accepts():
    # One unit, no guard (request ends 4K early): Linux tries 2M, exits once (host AUGs 4K),
    # retries 2M, gets PAGE_SIZE_MISMATCH, then 512 4K accepts of which 511 exit once each.
    mem = unaccepted_memory(4)
    stats = mem.accept_memory(G4, M2 - 4096, actor="t")
    assert (stats.calls_2m, stats.size_mismatch) == (2, 1)
    assert stats.calls_4k == 1 + 2 * 511
    assert stats.exits == 512 and stats.host_backed_4k == 512
    mem2 = unaccepted_memory(4, platform=tdx("2m"))
    stats = mem2.accept_memory(G4, M2 - 4096, actor="t")
    assert (stats.calls_2m, stats.calls_4k, stats.exits, stats.host_backed_2m) == (2, 0, 1, 1)


def test_snp_double_validation_is_caught():
    p = snp()
    mem = unaccepted_memory(4, platform=p)
    mem.accept_memory(G4, M2 - 4096, actor="t")
    with pytest.raises(SafetyViolation) as e:
        p.accept(G4, G4 + 4096, routine=AcceptRoutine.LINUX, actor="evil", vcpu=1)
    assert e.value.rule == "double-accept" and e.value.address == G4


def run_schedule(mem, tasks, schedule):
    """Step tasks in the order the schedule names (skipping finished ones), then finish all."""
    live = list(tasks)
    for pick in schedule:
        live = [t for t in live if t.state is not TaskState.DONE]
        if not live:
            break
        live[pick % len(live)].step()
    for _ in range(10_000):
        live = [t for t in live if t.state is not TaskState.DONE]
        if not live:
            return
        for t in live:
            t.step()
    raise AssertionError("tasks did not finish: livelock")


def neighbour_tasks(mem):
    # Two page-allocator chunk accepts: [4G, 4G+4M) (units 0-1, guard 2) and
    # [4G+4M, 4G+8M) (units 2-3, guard 4): they share unit 2.
    return [mem.task(G4, 4 * MiB, "cpu0", 0), mem.task(G4 + 4 * MiB, 4 * MiB, "cpu1", 1)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 1), max_size=30), st.sampled_from(["6.5", "6.7", "mainline"]))
def test_neighbouring_chunks_sharing_guard_unit_never_double_accept(schedule, kernel):
    mem = unaccepted_memory(8, kernel=kernel)
    run_schedule(mem, neighbour_tasks(mem), schedule)
    assert not mem.table.bits[:5].any() and mem.table.bits[5:8].all()
    assert mem.platform.accepted().contains(G4, G4 + 10 * MiB)
    assert mem.accepting == [] and mem.lock_holder is None


def test_without_accepting_list_the_sanitizer_catches_the_double_accept():
    # The interleaving the accepting list exists for: A finds units [0,3) and drops the lock;
    # B finds [2,5) (unit 2 still set) and accepts it; A then accepts unit 2 again.
    mem = unaccepted_memory(8, use_list=False)
    a, b = neighbour_tasks(mem)
    a.step()  # A: lock, run [0,3), unlock -> arch
    b.step()  # B: lock, run [2,5), unlock -> arch
    b.step()  # B accepts [2,5)
    with pytest.raises(SafetyViolation) as e:
        a.step()  # A accepts [0,3): unit 2 again
    assert e.value.rule == "double-accept" and e.value.address == G4 + 4 * MiB


def test_accepting_list_makes_the_second_request_wait():
    mem = unaccepted_memory(8)
    a, b = neighbour_tasks(mem)
    a.step()  # A registered [0,3), lock dropped during its architecture accept
    b.step()  # B overlaps at unit 2: drops the lock and retries
    assert b.spins == 1 and b.state is TaskState.LOCK
    run_schedule(mem, [a, b], [])
    assert b.stats.bytes_accepted == 2 * M2  # units 3 and 4: A took unit 2


@pytest.mark.parametrize("kernel,waits", [("6.6", True), ("6.7", False)])
def test_overlap_off_by_one_made_adjacent_requests_wait(kernel, waits):
    # A holds units [0,3); B asks for [3,5): adjacent, not overlapping.  v6.6's test
    # (entry.end < start) called that an overlap; v6.7 fixed it.
    mem = unaccepted_memory(8, kernel=kernel)
    a = mem.task(G4, 4 * MiB, "cpu0", 0)
    b = mem.task(G4 + 6 * MiB, 2 * MiB, "cpu1", 1)
    a.step()
    b.step()
    assert (b.spins > 0) == waits


def test_v6_5_global_lock_is_held_across_the_architecture_accept():
    mem = unaccepted_memory(16, kernel="6.5")
    a = mem.task(G4, 4 * MiB, "cpu0", 0)
    b = mem.task(G4 + 16 * MiB, 4 * MiB, "cpu1", 1)  # disjoint
    a.step()
    assert mem.lock_holder == 0  # still held while A accepts
    b.step()
    assert b.spins == 1
