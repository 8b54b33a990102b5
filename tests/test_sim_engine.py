"""The simulated clock: each mechanism against a hand calculation.

Units in comments: GB = 1e9 bytes, GB/s = 1e9 bytes/s.
"""

from __future__ import annotations

import numpy as np
import pytest

from lazyaccept.base.errors import ConfigError
from lazyaccept.base.record import AcceptEvent, AcceptingEntry, AcceptStats, Phase, WorkEvent
from lazyaccept.guest.rules import GLOBAL_ACCEPT_LOCK
from lazyaccept.sim.engine import Host, Idle, WorkItem, fair_level, simulate_phase
from lazyaccept.sim.profile import parse_profile
from lazyaccept.sim.timeline import simulate

GB = 1e9
HOST = Host(memory_bandwidth=40 * GB, vcpu_bandwidth=10 * GB)


def cpu(v: int, s: float, lock: str | None = None) -> WorkItem:
    return WorkItem(v, s, 0.0, lock, f"cpu{v}")


# --- one vCPU -------------------------------------------------------------------------------------


def test_one_item_alone_takes_cpu_plus_bytes_over_vcpu_bandwidth():
    # 0.5 s CPU + 6 GB at 10 GB/s = 0.5 + 0.6 = 1.1 s
    t = simulate_phase({0: [WorkItem(0, 0.5, 6 * GB)]}, 0.0, HOST)
    assert t.end == pytest.approx(1.1)
    assert t.item_end[0] == [pytest.approx(1.1)]


def test_items_of_one_vcpu_run_back_to_back_from_the_phase_start():
    # starts at 10 s; items of 1 s, 2 GB (0.2 s) and 0.3 s: ends at 11, 11.2, 11.5
    items = [cpu(0, 1.0), WorkItem(0, 0.0, 2 * GB), cpu(0, 0.3)]
    t = simulate_phase({0: items}, 10.0, HOST)
    assert t.item_start[0] == pytest.approx([10.0, 11.0, 11.2])
    assert t.item_end[0] == pytest.approx([11.0, 11.2, 11.5])
    assert t.vcpus[0].busy_s == pytest.approx(1.5)
    assert t.vcpus[0].spin_s == 0.0


def test_empty_items_take_no_time_and_empty_phase_ends_at_start():
    t = simulate_phase({0: [WorkItem(0, 0.0, 0.0)], 1: []}, 3.0, HOST)
    assert t.end == 3.0 and t.item_end[0] == [3.0] and t.vcpus[1].end == 3.0
    assert simulate_phase({}, 5.0, HOST).end == 5.0


# --- shared bandwidth -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_n_bandwidth_bound_items_saturate_the_host(n):
    # Each vCPU zeroes 10 GB.  Alone a vCPU streams 10 GB/s; together at most 40 GB/s.
    # Time = max(1 / 10 GB/s, n / 40 GB/s) x 10 GB: n=1,2,4 -> 1 s; n=8 -> 2 s; n=16 -> 4 s.
    expected = max(1 / (10 * GB), n / (40 * GB)) * 10 * GB
    t = simulate_phase({v: [WorkItem(v, 0.0, 10 * GB)] for v in range(n)}, 0.0, HOST)
    assert t.end == pytest.approx(expected)
    assert all(vt.end == pytest.approx(expected) for vt in t.vcpus.values())


def test_cpu_heavy_item_gets_its_ask_and_the_streamer_the_rest():
    # Host 10 GB/s, one vCPU 10 GB/s.  vCPU 1: 1 s CPU + 1 GB, asks 1 GB / 1.1 s = 0.909 GB/s,
    # below the fair level (5 GB/s), so it runs as if alone: ends at 1.1 s.  vCPU 0 streams
    # 20 GB and gets the rest; the host is saturated throughout, so all 21 GB move at 10 GB/s:
    # vCPU 0 ends at 21 / 10 = 2.1 s.
    host = Host(memory_bandwidth=10 * GB, vcpu_bandwidth=10 * GB)
    t = simulate_phase({0: [WorkItem(0, 0.0, 20 * GB)], 1: [WorkItem(1, 1.0, 1 * GB)]}, 0.0, host)
    assert t.vcpus[1].end == pytest.approx(1.1)
    assert t.vcpus[0].end == pytest.approx(2.1)


def test_cpu_only_items_do_not_use_bandwidth():
    # 8 vCPUs of 1 s CPU each next to saturating streamers still take 1 s.
    items = {v: [cpu(v, 1.0)] for v in range(8)}
    items.update({v: [WorkItem(v, 0.0, 40 * GB)] for v in range(8, 12)})  # 4 x 40 GB at 40 GB/s: 4 s
    t = simulate_phase(items, 0.0, HOST)
    assert all(t.vcpus[v].end == pytest.approx(1.0) for v in range(8))
    assert t.end == pytest.approx(4.0)


# --- locks ----------------------------------------------------------------------------------------


def test_a_lock_serialises_two_items():
    # two 1 s items, same lock: one ends at 1 s, the other waits (spins) 1 s and ends at 2 s
    t = simulate_phase({0: [cpu(0, 1.0, "L")], 1: [cpu(1, 1.0, "L")]}, 0.0, HOST)
    assert t.vcpus[0].end == pytest.approx(1.0)
    assert t.vcpus[1].end == pytest.approx(2.0)
    assert t.vcpus[1].spin_s == pytest.approx(1.0)
    assert t.vcpus[1].busy_s == pytest.approx(2.0) and t.vcpus[1].work_s == pytest.approx(1.0)
    assert t.item_start[1] == [pytest.approx(1.0)]


def test_different_locks_do_not_serialise():
    t = simulate_phase({0: [cpu(0, 1.0, "A")], 1: [cpu(1, 1.0, "B")]}, 0.0, HOST)
    assert t.end == pytest.approx(1.0)


def test_lock_waiters_are_served_in_arrival_order():
    # vCPU 0 holds L for 1 s.  vCPU 2 arrives at 0.2 s, vCPU 1 at 0.5 s: 2 gets it at 1 s
    # (ends 2 s), 1 at 2 s (ends 3 s).  vCPU 0 then wants L again at 1 s: it queues behind 1
    # and ends at 4 s.
    items = {
        0: [cpu(0, 1.0, "L"), cpu(0, 1.0, "L")],
        1: [cpu(1, 0.5), cpu(1, 1.0, "L")],
        2: [cpu(2, 0.2), cpu(2, 1.0, "L")],
    }
    t = simulate_phase(items, 0.0, HOST)
    assert t.vcpus[2].end == pytest.approx(2.0)
    assert t.vcpus[1].end == pytest.approx(3.0)
    assert t.vcpus[0].end == pytest.approx(4.0)
    # spins: vCPU 2 from 0.2 to 1.0; vCPU 1 from 0.5 to 2.0; vCPU 0 from 1.0 to 3.0
    assert t.vcpus[2].spin_s == pytest.approx(0.8)
    assert t.vcpus[1].spin_s == pytest.approx(1.5)
    assert t.vcpus[0].spin_s == pytest.approx(2.0)


def test_a_spinning_vcpu_does_not_take_bandwidth():
    # vCPU 0 streams 10 GB under L (1 s at 10 GB/s); vCPU 1 waits for L, then streams 10 GB.
    # Host 10 GB/s: if the spinner took a share, vCPU 0 would be slower than 1 s.
    host = Host(memory_bandwidth=10 * GB, vcpu_bandwidth=10 * GB)
    items = {0: [WorkItem(0, 0.0, 10 * GB, "L")], 1: [WorkItem(1, 0.0, 10 * GB, "L")]}
    t = simulate_phase(items, 0.0, host)
    assert t.vcpus[0].end == pytest.approx(1.0)
    assert t.vcpus[1].end == pytest.approx(2.0)


def test_many_vcpus_in_lockstep():
    # 512 vCPUs x 20 items of (0.01 s CPU + 0.1 GB): asks 0.1 GB / 0.02 s = 5 GB/s each, 2560 GB/s
    # in all, host 40 GB/s -> each gets 40/512 GB/s; 20 x 0.1 GB x 512 / 40 GB/s = 25.6 s.
    n, k = 512, 20
    t = simulate_phase({v: [WorkItem(v, 0.01, 0.1 * GB)] * k for v in range(n)}, 0.0, HOST)
    assert t.end == pytest.approx(k * 0.1 * GB * n / (40 * GB))


def test_bad_items_are_rejected():
    with pytest.raises(ConfigError, match="cpu_s"):
        simulate_phase({0: [WorkItem(0, -1.0, 0.0)]}, 0.0, HOST)
    with pytest.raises(ConfigError, match="vCPU 1"):
        simulate_phase({0: [WorkItem(1, 1.0, 0.0)]}, 0.0, HOST)
    with pytest.raises(ConfigError, match="bandwidth"):
        Host(0.0, 1.0)


# --- timeline ---------------------------------------------------------------------------------------

# A TDX profile with round numbers (independent of the shipped one).
PROFILE = """
[profile]
name = "t"
platform = "tdx"
description = "round numbers"
[defaults]
vcpus = { value = 2, why = "test" }
host_mapping = { value = "4k", why = "test" }
kernel = { value = "6.5", why = "test" }
firmware_accept = { value = "below-4g", why = "test" }
[host]
memory_bandwidth = { value = 40, unit = "GB/s", source = "test" }
vcpu_bandwidth = { value = 10, unit = "GB/s", source = "test" }
path_fault_4k = { value = 1e-6, unit = "us/page", source = "test: next to nothing" }
path_fault_2m = { value = 1e-6, unit = "us/page", source = "test" }
path_idle_exit = { value = 1, unit = "us/exit", source = "test" }
page_remove = { value = 1, unit = "us/page", source = "test" }
kick_vcpu = { value = 1, unit = "us/exit", source = "test" }
[accept]
tdcall_4k = { value = 1, unit = "us/call", source = "test" }
tdcall_2m = { value = 1, unit = "us/call", source = "test" }
tdcall_1g = { value = 1, unit = "us/call", source = "test" }
td_exit = { value = 1, unit = "us/exit", source = "test" }
host_fault_4k = { value = 1, unit = "us/page", source = "test" }
host_fault_2m = { value = 1, unit = "us/page", source = "test" }
accept_request = { value = 1, unit = "us/request", source = "test" }
[boot]
firmware_base = { value = 1, unit = "s", source = "test" }
firmware_ap_init = { value = 1, unit = "s/AP", source = "test" }
kernel_decompress = { value = 1, unit = "s", source = "test" }
early_init = { value = 1, unit = "s", source = "test" }
memmap_init = { value = 1, unit = "ns/page", source = "test" }
memmap_init_bytes = { value = 64, unit = "B/page", source = "test" }
struct_page_init = { value = 1, unit = "ns/page", source = "test" }
smp_bringup = { value = 1, unit = "s/AP", source = "test" }
initcalls = { value = 1, unit = "s", source = "test" }
userspace_to_shell = { value = 1, unit = "s", source = "test" }
userspace_touch = { value = 1, unit = "B/B", source = "test" }
user_fault = { value = 1, unit = "us/page", source = "test" }
"""


def one_second_accept(actor: str, vcpu: int, nbytes: int, serialized: bool = False) -> AcceptEvent:
    # (999_999 - pages) exits x 1 us + pages host faults x 1 us + 1 request x 1 us = 1 s,
    # where the host backs nbytes as 4 KiB pages
    pages = nbytes // 4096
    stats = AcceptStats(bytes_accepted=nbytes, exits=999_999 - pages, host_backed_4k=pages)
    lock = GLOBAL_ACCEPT_LOCK if serialized else None
    return AcceptEvent(actor, vcpu, 0, nbytes, stats, "test", requests=1, lock=lock)


def test_phases_run_one_after_another_with_a_barrier():
    prof = parse_profile(PROFILE)
    # phase 1: vCPU 0 works 1 s, vCPU 1 works 3 s (initcalls at 1 s per unit, amount 3);
    # phase 2 starts when vCPU 1 ends (3 s): vCPU 0 works 1 s -> boot ends at 4 s.
    p1 = Phase("one", "kernel", [WorkEvent("initcalls", 0, 1), WorkEvent("initcalls", 1, 3)], online_vcpus=2)
    p2 = Phase("two", "kernel", [WorkEvent("initcalls", 0, 1)], online_vcpus=2)
    tl = simulate([p1, p2], prof)
    spans = [(s.start, s.end) for s in tl.phases]
    assert spans == [(0.0, pytest.approx(3.0)), (pytest.approx(3.0), pytest.approx(4.0))]
    assert tl.total_s == pytest.approx(4.0)
    assert tl.vcpu_busy_s == {0: pytest.approx(2.0), 1: pytest.approx(3.0)}
    assert tl.accept_s == 0.0 and tl.accepted_bytes == [(0.0, 0)]


def test_serialized_accepts_take_the_one_accept_lock():
    prof = parse_profile(PROFILE)
    mib = 1 << 20
    # two serialized 1 s accepts on vCPUs 0 and 1: they end at 1 s and 2 s; a third,
    # unserialized one on vCPU 2 runs beside them and ends at 1 s.
    events = [
        one_second_accept("kernel", 0, 4 * mib, serialized=True),
        one_second_accept("kernel", 1, 4 * mib, serialized=True),
        one_second_accept("firmware", 2, 2 * mib),
    ]
    tl = simulate([Phase("accept", "kernel", events, online_vcpus=3)], prof)
    assert tl.total_s == pytest.approx(2.0)
    # accept time, spin included: kernel 1 + 2 = 3 vCPU-s, firmware 1; wall time 2 s
    assert tl.accept_by_actor == {"kernel": pytest.approx(3.0), "firmware": pytest.approx(1.0)}
    assert tl.accept_s == pytest.approx(4.0)
    assert tl.accept_wall_s == pytest.approx(2.0)
    assert tl.vcpu_spin_s[1] == pytest.approx(1.0)
    # accepted: 4 + 2 MiB at 1 s, 4 MiB more at 2 s; committed the same (host backed every byte)
    assert tl.accepted_bytes == [(0.0, 0), (pytest.approx(1.0), 6 * mib), (pytest.approx(2.0), 10 * mib)]
    assert tl.committed_bytes == tl.accepted_bytes


# --- the serialised host path ----------------------------------------------------------------------


def _symmetric_queue(n: int, z: float, d: float) -> float:
    """Schweitzer's MVA for n identical one-customer classes, solved by bisection here: each
    queue q = R / (Z + R) with R = D (1 + (n - 1) q)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        q = (lo + hi) / 2
        r = d * (1 + (n - 1) * q)
        lo, hi = (q, hi) if r / (z + r) > q else (lo, q)
    return (lo + hi) / 2


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_the_host_path_queues_from_the_second_vcpu_and_saturates_like_one_server(n):
    # Each of n vCPUs does 1 s of its own CPU work and 1 s on the host path.  Alone: 2 s.  With
    # n, each waits for the others' operations: R = 1 + (n - 1) q.  Never faster than the path's
    # capacity (n s of path work at 1 s per second), and slower than alone from n = 2 on.
    q = _symmetric_queue(n, 1.0, 1.0)
    t = simulate_phase({v: [WorkItem(v, 1.0, 0.0, host_s=1.0)] for v in range(n)}, 0.0, HOST)
    assert t.end == pytest.approx(2.0 + (n - 1) * q)
    assert t.end >= max(2.0, n) - 1e-9
    if n > 1:
        assert t.end > 2.0
    # what they lost to the path: n x (end - 2) vCPU-seconds
    assert t.path_wait_s == pytest.approx(n * (t.end - 2.0))


def test_total_work_shared_out_tends_to_the_path_capacity():
    # 100 units of (0.84 s CPU + 1.7 s path) split evenly over n vCPUs: alone 254 s; the path
    # caps the total at 170 s, approached as n grows, and more vCPUs always help a little less.
    ends = []
    for n in (1, 2, 4, 8, 64):
        items = {v: [WorkItem(v, 84.0 / n, 0.0, host_s=170.0 / n)] for v in range(n)}
        end = simulate_phase(items, 0.0, HOST).end
        q = _symmetric_queue(n, 84.0 / n, 170.0 / n)
        assert end == pytest.approx(84.0 / n + 170.0 / n * (1 + (n - 1) * q)), n
        ends.append(end)
    assert ends[0] == pytest.approx(254.0)
    assert all(a > b > 170.0 for a, b in zip(ends, ends[1:], strict=False))
    assert ends[-1] == pytest.approx(170.0, rel=0.02)


def test_idle_vcpus_taking_the_tick_share_the_host_path():
    # One vCPU faults: each fault 7 us own work + 1 us on the path (8 us alone); 1000 faults.
    # k idle vCPUs tick every 1 ms, 5 us on the path each.
    # k = 10: light load, each fault waits a little; the idle vCPUs take every tick.
    # k = 399: 399 x 5 us per ms asks 2 s of path per second: ticks are lost and every fault
    # waits for ~399 exits.  Solved here from R = d (1 + S - q) for the fault and
    # R_idle = d_idle (1 + S - q_idle / k), q_idle = k (R_idle capped at the period).
    from lazyaccept.sim.queueing import share_path

    item = [WorkItem(0, 7e-3, 0.0, host_s=1e-3)]
    t = simulate_phase({0: item}, 0.0, HOST, Idle(online=11, tick_hz=1000, exit_s=5e-6))
    s = share_path(np.array([7e-3]), np.array([1e-3]), 10, 5e-6, 1e-3)
    assert 8e-3 < t.end == pytest.approx(7e-3 + s.response[0])
    assert t.idle_host_s == pytest.approx(10 * 1000 * 5e-6 * t.end)  # every tick taken
    t = simulate_phase({0: item}, 0.0, HOST, Idle(online=400, tick_hz=1000, exit_s=5e-6))
    # The path is saturated: the 399 idle vCPUs and the fault share it; the fault's 1 ms of
    # path takes about 400 exits' worth of waiting per unit: hundreds of times its own.
    assert t.end > 0.2
    ticks = t.idle_host_rate_end / 5e-6 / 399
    assert 300 < ticks < 1000  # ticks lost, as a saturated path must lose them
    assert t.idle_host_rate_end + 1e-3 / t.end == pytest.approx(1.0, rel=0.02)  # the path is full


def test_vcpus_that_come_online_during_a_phase_load_the_path_from_then_on():
    # The boot vCPU brings an AP online after 1 s of work (onlines=1), then does 1 s of path
    # work (h = 1 s, no CPU).  The idle AP ticks 1000 times a second with 0.75 ms on the path
    # each: the second item waits behind its exits, so the phase ends after 3 s... more than
    # without the AP (2 s exactly).
    items = {0: [WorkItem(0, 1.0, 0.0, onlines=1), WorkItem(0, 0.0, 0.0, host_s=1.0)]}
    with_ap = simulate_phase(items, 0.0, HOST, Idle(online=1, tick_hz=1000, exit_s=0.75e-3)).end
    items0 = {0: [WorkItem(0, 1.0, 0.0), WorkItem(0, 0.0, 0.0, host_s=1.0)]}
    assert simulate_phase(items0, 0.0, HOST, Idle(online=1, tick_hz=1000, exit_s=0.75e-3)).end == pytest.approx(2.0)
    # Z = 0, D = 1: the item is always at the path (q = 1), so R = 1 + S - 1 = S = 1 + q_idle;
    # the AP: R_a = d (1 + S - q_idle) = d (2) with q_idle = R_a / P -> R_a = 1.5 ms > P, so it
    # ticks once per R_a and q_idle = 1: R = 2, the item takes 2 s: the phase ends at 3 s.
    assert with_ap == pytest.approx(3.0)


def test_a_vcpu_whose_work_is_done_ticks_until_the_phase_ends():
    # vCPU 1 finishes at 1 s and then ticks (0.75 ms of path per 1 ms tick); vCPU 0's 2 s of
    # path work runs alone until then (1 s done at 1 s), then at half speed as above: end 3 s.
    items = {0: [WorkItem(0, 0.0, 0.0, host_s=2.0)], 1: [WorkItem(1, 1.0, 0.0)]}
    assert simulate_phase(items, 0.0, HOST, Idle(online=2, tick_hz=1000, exit_s=0.75e-3)).end == pytest.approx(3.0)


def test_fair_level_by_hand():
    import math

    import numpy as np

    # capacity 1 among asks 0.1, 0.5, 0.9: 0.1 fits, the other two share 0.9: level 0.45
    assert fair_level(np.array([0.1, 0.5, 0.9]), 1.0) == pytest.approx(0.45)
    assert fair_level(np.array([0.1, 0.2]), 1.0) == math.inf
    # plus 8 parties asking 0.1 each: 0.1 x 9 = 0.9 fits, 0.5 and 0.9 share 0.1: level 0.05 <
    # 0.1, so all 11 are at the level: 1 / 11
    assert fair_level(np.array([0.1, 0.5, 0.9]), 1.0, 0.1, 8) == pytest.approx(1 / 11)


@pytest.mark.parametrize("n", [1, 3, 12])
def test_locks_and_bandwidth_together_agree_with_the_hand_calculation(n):
    # n vCPUs: vCPU v runs (v+1) x 0.1 s CPU, then 10 GB under lock L, then 5 GB.
    # Host 40 GB/s, vCPU 10 GB/s.  Checked properties, by hand:
    # - the locked 10 GB items never overlap and each takes >= 1 s;
    # - all data moves at <= 40 GB/s: the phase lasts at least (15 GB x n) / 40 GB/s.
    items = {
        v: [cpu(v, (v + 1) * 0.1), WorkItem(v, 0.0, 10 * GB, "L"), WorkItem(v, 0.0, 5 * GB)] for v in range(n)
    }
    t = simulate_phase(items, 0.0, HOST)
    locked = sorted((t.item_start[v][1], t.item_end[v][1]) for v in range(n))
    for (_, e1), (s2, _) in zip(locked, locked[1:], strict=False):
        assert s2 >= e1 - 1e-9
    assert all(e - s >= 1.0 - 1e-9 for s, e in locked)
    assert t.end >= 15 * GB * n / (40 * GB) - 1e-9
    if n == 1:  # alone: 0.1 + 1.0 + 0.5
        assert t.end == pytest.approx(1.6)
    if n == 3:
        # vCPU 0 takes L at 0.1 s (to 1.1 s), vCPU 1 at 1.1 (to 2.1), vCPU 2 at 2.1 (to 3.1);
        # while one holds L the others stream their 5 GB at 10 GB/s each (<= 30 GB/s: no
        # saturation): vCPU 0 ends 1.6, vCPU 1 2.6, vCPU 2 3.6.
        assert [t.vcpus[v].end for v in range(3)] == pytest.approx([1.6, 2.6, 3.6])
        assert [t.vcpus[v].spin_s for v in range(3)] == pytest.approx([0.0, 0.9, 1.8])


# --- the accepting list (v6.6+) --------------------------------------------------------------------
# drivers/firmware/efi/unaccepted_memory.c (v6.6 and v6.7), accept_memory(): under the lock, a
# request skips an entry when ``entry->end < range.start`` (v6.6; ``<=`` from v6.7) or
# ``entry->start >= range.end``; on any other entry it drops the lock and retries (``goto retry``)
# without rescheduling; otherwise it adds its own range and accepts.  A spinning request is not on
# the list.  mm/page_alloc.c __accept_page() asks for a whole 4 MiB chunk; with 2 MiB units and
# the guard unit, chunk k covers units [2k, 2k + 3).


def entry_item(v: int, first: int, end: int, seconds: float = 1.0, *, touching: bool = False,
               fifo: str | None = None, requests: int = 1, stride: int = 2) -> WorkItem:
    return WorkItem(v, seconds, 0.0, None, f"accept{v}", entry=AcceptingEntry(first, end, stride, fifo, touching),
                    requests=requests)


def test_intersecting_requests_wait_and_disjoint_ones_do_not():
    # chunk 0 [0, 3) and chunk 1 [2, 5) share unit 2: the second starts when the first ends (1 s);
    # chunk 2 [4, 7) does not intersect chunk 0's: it runs beside it.
    t = simulate_phase({0: [entry_item(0, 0, 3)], 1: [entry_item(1, 2, 5)]}, 0.0, HOST)
    assert t.item_start[1] == [pytest.approx(1.0)] and t.item_end[1] == [pytest.approx(2.0)]
    assert t.vcpus[1].spin_s == pytest.approx(1.0)
    t = simulate_phase({0: [entry_item(0, 0, 3)], 1: [entry_item(1, 4, 7)]}, 0.0, HOST)
    assert t.item_end[1] == [pytest.approx(1.0)] and t.vcpus[1].spin_s == 0.0


@pytest.mark.parametrize(("touching", "second_ends"), [(True, 2.0), (False, 1.0)])
def test_ranges_that_only_touch_wait_only_under_the_v66_test(touching, second_ends):
    # vCPU 0 holds [0, 3); vCPU 1 asks for [3, 6): entry->end (3) < range.start (3) is false, so
    # v6.6 retries; 3 <= 3 is true, so v6.7 skips the entry.
    t = simulate_phase({0: [entry_item(0, 0, 3, touching=touching)], 1: [entry_item(1, 3, 6, touching=touching)]},
                       0.0, HOST)
    assert t.item_end[1] == [pytest.approx(second_ends)]


def test_a_spinning_request_is_not_on_the_list():
    # Three CPUs take chunks 0, 1, 2 off one FIFO list in that order: chunk 1 spins on chunk 0;
    # chunk 2 checks the list, where only chunk 0 is, and runs at once.
    # The list's chunks in record order: vCPU 0's first, then 1's, then 2's.
    items = {0: [entry_item(0, 0, 3, fifo="Normal")], 1: [entry_item(1, 2, 5, fifo="Normal")],
             2: [entry_item(2, 4, 7, fifo="Normal")]}
    t = simulate_phase(items, 0.0, HOST, fifo_order=[(0, 0), (1, 0), (2, 0)])
    assert [t.item_end[v][0] for v in range(3)] == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(1.0)]


def test_two_cpus_drawing_on_one_fifo_list_alternate_neighbouring_chunks_and_serialise():
    # Each of two vCPUs accepts two chunks, one call at a time, from one list of chunks 0-3.  The
    # list hands them out as they ask: vCPU 0 gets chunk 0, vCPU 1 chunk 1 (spins on 0); at 1 s
    # vCPU 1, already retrying, takes its range, and vCPU 0's next chunk (2) intersects it, and so
    # on: each call waits for the one before, 4 s in all, where disjoint chunks would take 2 s.
    items = {0: [entry_item(0, 0, 3, 2.0, fifo="Normal", requests=2)],
             1: [entry_item(1, 4, 7, 2.0, fifo="Normal", requests=2)]}
    t = simulate_phase(items, 0.0, HOST, fifo_order=[(0, 0), (1, 0)])
    assert t.item_end[0] == [pytest.approx(3.0)] and t.item_end[1] == [pytest.approx(4.0)]
    # Each call's time from when its vCPU reached it: vCPU 0 ran 0-1, spun 1-2, ran 2-3.
    assert t.call_s[0][0] == [pytest.approx(1.0), pytest.approx(2.0)]
    assert t.call_s[1][0] == [pytest.approx(2.0), pytest.approx(2.0)]


def test_one_cpu_on_a_list_runs_its_calls_as_one_item():
    # Nobody else draws on the list: no call waits, and the item is timed whole.
    t = simulate_phase({0: [entry_item(0, 0, 3, 2.0, fifo="Normal", requests=2)], 1: [entry_item(1, 100, 103)]},
                       0.0, HOST)
    assert t.item_end[0] == [pytest.approx(2.0)] and t.call_s == {}


# --- a phase decided as it runs (the feed) ----------------------------------------------------------


def test_a_feed_is_asked_when_its_vcpu_is_free_and_its_answer_runs_then():
    # vCPU 0 gets 1 s items, vCPU 1 gets 3 s items, three each, from a phase starting at 5 s:
    # vCPU 0 asks at 0, 1, 2, 3 s into the phase (the last ask gets nothing), vCPU 1 at 0, 3, 6, 9.
    asked: list[tuple[int, float]] = []
    left = {0: 3, 1: 3}

    def feed(v: int, t: float) -> list[WorkItem]:
        asked.append((v, t))
        if not left[v]:
            return []
        left[v] -= 1
        return [cpu(v, 1.0 if v == 0 else 3.0)]

    t = simulate_phase({0: [], 1: []}, 5.0, HOST, feed=feed)
    assert sorted(tt for v, tt in asked if v == 0) == pytest.approx([0, 1, 2, 3])
    assert sorted(tt for v, tt in asked if v == 1) == pytest.approx([0, 3, 6, 9])
    assert t.end == pytest.approx(14.0)
    assert t.item_end[1] == pytest.approx([8, 11, 14])


def test_what_a_feed_decides_can_depend_on_what_the_clock_did_before():
    # Two vCPUs draw 2 s items from one pool of 5 (a FIFO of work): who gets the fifth depends on
    # who is free first.  vCPU 1 starts with a 0.5 s item of its own, so vCPU 0 is free first at
    # 2 s and 4 s, vCPU 1 at 2.5 s: items go 0, 1 (0 s, 0.5 s), 0 (2 s), 1 (2.5 s), 0 (4 s).
    pool = [5]
    got: list[tuple[int, float]] = []

    def feed(v: int, t: float) -> list[WorkItem]:
        if not pool[0]:
            return []
        pool[0] -= 1
        got.append((v, t))
        return [cpu(v, 2.0)]

    t = simulate_phase({0: [], 1: [cpu(1, 0.5)]}, 0.0, HOST, feed=feed)
    assert [v for v, _ in got] == [0, 1, 0, 1, 0]
    assert [tt for _, tt in got] == pytest.approx([0.0, 0.5, 2.0, 2.5, 4.0])
    assert t.end == pytest.approx(6.0)


def test_a_fed_vcpu_with_nothing_to_do_ticks_as_an_idle_vcpu():
    # Two online vCPUs with the tick; vCPU 1's feed gives nothing, vCPU 0 runs 1 s of CPU: vCPU 1
    # is idle the whole second and takes HZ ticks (exits of 1 us: no queue to speak of).
    idle = Idle(online=2, tick_hz=1000, exit_s=1e-6)
    t = simulate_phase({0: [cpu(0, 1.0)], 1: []}, 0.0, HOST, idle, feed=lambda v, tt: [])
    assert t.end == pytest.approx(1.0)
    assert t.idle_exit_series[-1][1] == pytest.approx(1000, rel=1e-3)


def test_a_vcpu_whose_work_waits_for_another_vcpus_idles_until_it_is_done():
    # vCPU 1's one item (1 s) may start only when vCPU 0's thread is done with its two items of
    # 2 s each, which it learns when vCPU 0 asks for more at 4 s: until then the feed says "not
    # yet" (None) and vCPU 1 idles and ticks.  vCPU 1 runs from 4 s to 5 s.
    left = {0: 2, 1: 1}
    finished = {0: False}
    idle = Idle(online=2, tick_hz=1000, exit_s=1e-6)

    def feed(v: int, t: float) -> list[WorkItem] | None:
        if v == 0:
            if not left[0]:
                finished[0] = True
                return []
            left[0] -= 1
            return [cpu(0, 2.0)]
        if not finished[0]:
            return None
        if not left[1]:
            return []
        left[1] -= 1
        return [cpu(1, 1.0)]

    t = simulate_phase({0: [], 1: []}, 0.0, HOST, idle, feed=feed)
    assert t.item_start[1] == pytest.approx([4.0])
    assert t.end == pytest.approx(5.0)
    # vCPU 1 idle for 4 s, vCPU 0 for 1 s: 5,000 ticks
    assert t.idle_exit_series[-1][1] == pytest.approx(5000, rel=1e-3)


def test_work_that_waits_for_work_that_never_finishes_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="wait for work"):
        simulate_phase({0: [cpu(0, 1.0)], 1: []}, 0.0, HOST, feed=lambda v, t: None if v == 1 else [])
