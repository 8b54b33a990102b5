"""Many guests on one host: the engine's shared resources against hand arithmetic, one guest
against ``run``, the host's memory against the guests' own series, and the command's errors.

Units in comments: GB = 1e9 bytes, GB/s = 1e9 bytes/s.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cli_helpers import run_cli
from lazyaccept.base.choices import HostPath
from lazyaccept.sim.engine import Host, Idle, WorkItem, simulate_phase
from lazyaccept.sim.multiguest import GuestPhase, GuestPlan, simulate_guests
from lazyaccept.sim.queueing import share_path, share_path_classes

GB = 1e9
HOST = Host(memory_bandwidth=10 * GB, vcpu_bandwidth=8 * GB)


def _stream(v: int, nbytes: float) -> WorkItem:
    return WorkItem(v, 0.0, nbytes, label="stream")


def _cpu(v: int, s: float) -> WorkItem:
    return WorkItem(v, s, 0.0, label="cpu")


def _phase(items: dict[int, list[WorkItem]], online: int = 1) -> GuestPhase:
    return GuestPhase(items, Idle(online=online))


def _guest(start: float = 0.0) -> GuestPlan:
    """A bandwidth-bound phase (16 GB streamed by one vCPU), then 1 s of CPU."""
    return GuestPlan(1, start, [_phase({0: [_stream(0, 16 * GB)]}), _phase({0: [_cpu(0, 1.0)]})])


def test_one_guest_alone_streams_at_its_vcpu_bandwidth():
    # 16 GB at 8 GB/s (the vCPU's cap; the host's 10 GB/s is not reached) = 2 s, then 1 s of CPU.
    [phases] = simulate_guests([_guest()], HOST)
    assert [p.end for p in phases] == pytest.approx([2.0, 3.0], rel=1e-12)


def test_two_guests_together_share_the_bandwidth_max_min():
    # Both ask 8 GB/s, 16 GB/s > 10 GB/s: each gets half, 5 GB/s; 16 GB / 5 GB/s = 3.2 s, then 1 s.
    a, b = simulate_guests([_guest(), _guest()], HOST)
    for phases in (a, b):
        assert [p.end for p in phases] == pytest.approx([3.2, 4.2], rel=1e-12)
        # Each lost 3.2 - 2 = 1.2 s to the bandwidth (its time alone is 2 s), none to the path.
        assert phases[0].bandwidth_wait_s == pytest.approx(1.2, rel=1e-9)
        assert phases[0].path_wait_s == 0.0 and phases[1].bandwidth_wait_s == 0.0


def test_staggered_guests_that_do_not_overlap_run_as_alone():
    # The second starts at 10 s, after the first ended at 3 s: each takes 2 s + 1 s from its start.
    a, b = simulate_guests([_guest(0.0), _guest(10.0)], HOST)
    assert [p.end for p in a] == pytest.approx([2.0, 3.0], rel=1e-12)
    assert [p.start for p in b] == pytest.approx([10.0, 12.0], rel=1e-12)
    assert [p.end for p in b] == pytest.approx([12.0, 13.0], rel=1e-12)


def test_partly_overlapping_guests_share_only_while_they_overlap():
    # B starts at 1 s, when A has streamed 8 GB (1 s at 8 GB/s).  Together each gets 5 GB/s: A's
    # last 8 GB take 1.6 s (A's phase ends at 2.6 s), while B streams 8 GB; B's last 8 GB run
    # alone at 8 GB/s: 1 s, so B's stream ends at 3.6 s and its CPU second at 4.6 s.
    a, b = simulate_guests([_guest(0.0), _guest(1.0)], HOST)
    assert [p.end for p in a] == pytest.approx([2.6, 3.6], rel=1e-12)
    assert [p.end for p in b] == pytest.approx([3.6, 4.6], rel=1e-12)


def test_a_phase_is_a_barrier_of_its_own_guest_only():
    # A's first phase ends when its slower vCPU does (3 s), then 1 s; B's CPU-only phases do not
    # wait for A's barrier: 0.5 s + 0.5 s.
    a_plan = GuestPlan(2, 0.0, [_phase({0: [_cpu(0, 1.0)], 1: [_cpu(1, 3.0)]}, online=2),
                                _phase({0: [_cpu(0, 1.0)]}, online=2)])
    b_plan = GuestPlan(1, 0.0, [_phase({0: [_cpu(0, 0.5)]}), _phase({0: [_cpu(0, 0.5)]})])
    a, b = simulate_guests([a_plan, b_plan], HOST)
    assert [p.end for p in a] == pytest.approx([3.0, 4.0], rel=1e-12)
    assert [p.end for p in b] == pytest.approx([0.5, 1.0], rel=1e-12)
    assert a[0].vcpus[0].end == pytest.approx(1.0) and a[0].vcpus[1].end == pytest.approx(3.0)


def test_one_guest_gives_what_the_engine_gives_phase_by_phase():
    # Bandwidth, host path with ticking idle vCPUs, host CPUs: the same as simulate_phase's chain.
    host = Host(memory_bandwidth=10 * GB, vcpu_bandwidth=8 * GB, cpus=2)
    idle = Idle(online=4, tick_hz=250, exit_s=20e-6)
    items = {v: [WorkItem(v, 0.01 * (v + 1), 2 * GB, host_s=0.05)] for v in range(3)}
    plan = GuestPlan(3, 0.0, [GuestPhase(items, idle), GuestPhase({0: [_cpu(0, 0.5)]}, idle)])
    [got] = simulate_guests([plan], host)
    first = simulate_phase(items, 0.0, host, idle)
    second = simulate_phase({0: [_cpu(0, 0.5)]}, first.end, host, idle)
    assert [p.end for p in got] == [first.end, second.end]
    assert got[0].idle_host_s == first.idle_host_s
    assert got[0].path_wait_s == first.path_wait_s


def test_idle_classes_with_one_tick_are_one_class():
    # Schweitzer's per-customer response depends on a class only through R / P: two classes of 3
    # and 2 vCPUs with the same tick are one class of 5.
    think, demand = np.array([1e-3, 2e-3]), np.array([1e-4, 5e-5])
    one = share_path(think, demand, 5, 2e-5, 1 / 250)
    response, per_class, queue = share_path_classes(think, demand, ((3, 2e-5, 1 / 250), (2, 2e-5, 1 / 250)))
    assert response == pytest.approx(one.response, rel=1e-9)
    assert queue == pytest.approx(one.queue, rel=1e-9)
    assert per_class[0] == pytest.approx((one.idle_response, one.idle_rate), rel=1e-9)
    assert per_class[1] == pytest.approx((one.idle_response, one.idle_rate), rel=1e-9)


# --- the command ----------------------------------------------------------------------------------


def test_a_single_guest_on_the_host_is_what_run_gives():
    host = run_cli("host", "--guest", "4G,workload=touch:1G", "--json")
    run = run_cli("run", "--memory", "4G", "--workload", "touch:1G", "--json")
    assert host.code == 0 and run.code == 0, host.err + run.err
    g = json.loads(host.out)["guests"][0]
    r = json.loads(run.out)
    assert g["boot_s"] == pytest.approx(r["boot_s"], rel=1e-9)
    assert g["boot_alone_s"] == pytest.approx(r["boot_s"], rel=1e-9)
    [w] = g["workloads"]
    [rw] = r["workloads"]
    assert (w["start_s"], w["end_s"]) == pytest.approx((rw["start_s"], rw["end_s"]), rel=1e-9)


def _at(series: list[list[float]], t: float) -> float:
    """A step series' value at ``t`` (0 before its first point)."""
    value = 0.0
    for ti, b in series:
        if ti <= t:
            value = b
    return value


def _host(*args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    ran = run_cli("host", *args, "--json")
    return ran.code, json.loads(ran.out), ran.err


def test_host_memory_is_the_sum_of_the_guests_series(tmp_path):
    # Each guest's own committed series, from `run`, shifted by its start, summed by hand.
    code, doc, err = _host("--guest", "2x4G", "--guest", "4G,workload=touch:1G,start=1", "--stagger", "2")
    assert code == 0, err
    starts = [g["start_s"] for g in doc["guests"]]
    assert starts == [0.0, 2.0, 5.0]
    own = []
    for g, memory_args in zip(doc["guests"], (["4G"], ["4G"], ["4G", "--workload", "touch:1G"]), strict=True):
        r = json.loads(run_cli("run", "--memory", *memory_args, "--json").out)
        # Overlapping guests change when each step comes, not how much each commits.
        assert g["committed_bytes"] == r["committed_over_time"][-1][1]
        own.append(g)
    total = doc["committed_over_time"]
    times = [t for t, _ in total]
    assert times == sorted(times)
    assert total[-1][1] == sum(g["committed_bytes"] for g in own)
    assert doc["peak_committed_bytes"] == max(b for _, b in total)


def test_host_memory_sum_of_series_step_by_step():
    from lazyaccept.sim.host import committed_sum

    a = [(0.0, 10), (1.0, 30), (4.0, 35)]
    b = [(2.0, 100), (4.0, 150)]
    total, oom = committed_sum([("a", a), ("b", b)], limit=140)
    for t in (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0):
        assert _at([list(p) for p in total], t) == _at([list(p) for p in a], t) + _at([list(p) for p in b], t)
    # At 4 s, a's step (to 35) comes first: 35 + 100 = 135 <= 140; then b's: 35 + 150 = 185 > 140.
    assert oom is not None and (oom.t, oom.guest, oom.committed) == (4.0, "b", 185)


def test_running_out_of_host_memory_is_a_guest_failure_naming_the_guest():
    ran = run_cli("host", "--guest", "2x4G", "--host-memory", "5G", "--json")
    assert ran.code == 3
    doc = json.loads(ran.out)  # the report comes first
    oom = doc["out_of_memory"]
    # The guests get the host's RAM less TDX's static PAMT: 5 GiB x 16 B / 4 KiB = 20 MiB.
    assert doc["host"]["reserved_bytes"] == 20 << 20
    limit = (5 << 30) - (20 << 20)
    assert oom is not None and oom["committed_bytes"] > limit
    [line] = ran.err_lines
    assert line.startswith("lazyaccept: guest failed: ") and f"{oom['guest']}'s first touch" in line
    # Just before that instant the guests fit.
    assert _at(doc["committed_over_time"], math.nextafter(oom["t_s"], 0)) <= limit


def test_enough_host_memory_is_no_failure():
    code, doc, _ = _host("--guest", "2x4G", "--host-memory", "64G")
    assert code == 0 and doc["out_of_memory"] is None


@pytest.mark.parametrize("text", [
    "", "x", "4Q", "0x4G", "2000x4G", "4G,vcpus=0", "4G,vcpus=two", "4G,foo=1", "4G,start=-1", "4G,start=nan",
    "4G,policy=nope", "4G,workload=bogus:1", "4G,kernel=4.19", "4G,vcpus=2,vcpus=4", "4G,workload=",
])
def test_bad_guest_texts_are_one_line_and_exit_2(text):
    ran = run_cli("host", "--guest", text)
    assert ran.code == 2, (text, ran.code, ran.err)
    [line] = ran.err_lines
    assert line.startswith("lazyaccept: error: --guest ")


def _path_guest() -> GuestPlan:
    """One item that is all host path: 1 s of operations at the path, nothing else."""
    return GuestPlan(1, 0.0, [_phase({0: [WorkItem(0, 0.0, 0.0, host_s=1.0)]})])


def test_one_path_for_all_guests_serialises_their_operations():
    # Two customers that never think (Z = 0), 1 s of demand each: with Schweitzer's approximation
    # each sees the other's whole queue, R = D (1 + S - q) = 1 s x (1 + 2 - 1) = 2 s: both end at
    # 2 s (the path's one second per second, shared).
    a, b = simulate_guests([_path_guest(), _path_guest()], HOST)
    assert a[0].end == pytest.approx(2.0, rel=1e-9) and b[0].end == pytest.approx(2.0, rel=1e-9)


def test_a_path_per_guest_keeps_guests_out_of_each_others_queue():
    # Each guest's path serves its own operation alone: R = D = 1 s.
    a, b = simulate_guests([_path_guest(), _path_guest()], HOST, HostPath.PER_GUEST)
    assert a[0].end == pytest.approx(1.0, rel=1e-9) and b[0].end == pytest.approx(1.0, rel=1e-9)


# --- host features ------------------------------------------------------------------------------


def test_dynamic_pamt_adds_a_page_pair_and_a_seamcall_per_2m_region_backed_at_4k():
    from lazyaccept.base.record import AcceptEvent, AcceptStats
    from lazyaccept.sim.host_features import DPAMT_ADD_S, _dpamt_price
    from lazyaccept.sim.pricing import price
    from lazyaccept.sim.profile import load_profile

    prof = load_profile("tdx")
    # 1,025 pages backed at 4 KiB: three 2 MiB regions (512 + 512 + 1), each 2 x 4 KiB of PAMT.
    ev = AcceptEvent("kernel", 0, 0, 1025 * 4096, AcceptStats(bytes_accepted=1025 * 4096, calls_4k=1025,
                                                              host_backed_4k=1025))
    plain, dpamt = price(prof, ev), _dpamt_price(prof, ev)
    assert dpamt.committed_bytes - plain.committed_bytes == 3 * 8192
    assert dpamt.host_s - plain.host_s == pytest.approx(3 * DPAMT_ADD_S, rel=1e-12)
    assert dpamt.cpu_s == plain.cpu_s and dpamt.bytes == plain.bytes


def test_static_pamt_is_kept_from_the_guests_and_dynamic_pamt_keeps_a_bitmap():
    # 256 GiB x 16 B / 4 KiB = 1 GiB of PAMT_4K; Dynamic PAMT keeps one bit per 4 KiB page: 8 MiB.
    code, doc, err = _host("--guest", "4G", "--host-memory", "256G")
    assert code == 0, err
    assert doc["host"]["reserved_bytes"] == 1 << 30
    code, doc, err = _host("--guest", "4G", "--host-memory", "256G", "--host-feature", "tdx-dpamt")
    assert code == 0, err
    assert doc["host"]["reserved_bytes"] == 8 << 20 and doc["host"]["features"] == ["tdx-dpamt"]
    code, doc, err = _host("--guest", "4G", "--host-memory", "256G", "--profile", "snp")
    assert code == 0, err
    assert doc["host"]["reserved_bytes"] == 0


def test_2m_private_mappings_are_runs_host_mapping():
    code, doc, err = _host("--guest", "4G", "--host-feature", "tdx-2m")
    assert code == 0, err
    run = json.loads(run_cli("run", "--memory", "4G", "--host-mapping", "2m", "--json").out)
    assert doc["guests"][0]["config"]["host_mapping"] == "2m"
    assert doc["guests"][0]["boot_s"] == pytest.approx(run["boot_s"], rel=1e-9)


def test_snp_prefault_is_runs_snp_prefault_and_only_for_snp():
    code, doc, err = _host("--guest", "4G", "--profile", "snp", "--host-feature", "snp-prefault")
    assert code == 0, err
    run = json.loads(run_cli("run", "--memory", "4G", "--profile", "snp", "--snp-prefault", "--json").out)
    assert doc["guests"][0]["boot_s"] == pytest.approx(run["boot_s"], rel=1e-9)
    ran = run_cli("host", "--guest", "4G", "--host-feature", "snp-prefault")
    assert ran.code == 2 and len(ran.err_lines) == 1


def test_plot_is_written(tmp_path):
    out = tmp_path / "host.png"
    ran = run_cli("host", "--guest", "2x4G", "--stagger", "1", "--host-memory", "64G", "--plot", str(out))
    assert ran.code == 0, ran.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in ran.out


def test_a_guests_own_failure_is_exit_3_naming_that_guest():
    # Released kernels leave hot-added memory out of the bitmap: the guest fails (as `run` says).
    ran = run_cli("host", "--guest", "4G", "--guest", "4G,workload=hotplug:1G")
    assert ran.code == 3
    [line] = ran.err_lines
    assert line.startswith("lazyaccept: guest failed: g2: hotplug-unaccepted")


def test_gmem_1g_commits_and_zeroes_a_whole_gib_on_its_first_fault():
    from lazyaccept.base.choices import Tee
    from lazyaccept.base.record import AcceptEvent, AcceptStats
    from lazyaccept.sim.host_features import HostFeatures
    from lazyaccept.sim.pricing import price
    from lazyaccept.sim.profile import load_profile

    prof = load_profile("tdx")
    pricing = HostFeatures.parse(("gmem-1g",), Tee.TDX).pricing()
    mib4 = 4 << 20

    def chunk(start: int) -> AcceptEvent:  # a 4 MiB chunk the host backs at 4 KiB and zeroes
        pages = mib4 // 4096
        return AcceptEvent("kernel", 0, start, start + mib4, AcceptStats(
            bytes_accepted=mib4, calls_4k=pages, host_backed_4k=pages, host_zeroed_bytes=mib4))

    first, again, next_gib = chunk(0), chunk(8 << 20), chunk(1 << 30)
    plain = price(prof, first)
    a, b, c = pricing(prof, first), pricing(prof, again), pricing(prof, next_gib)
    # The first fault into GiB 0 commits and zeroes all of it; another chunk of it commits nothing
    # and zeroes nothing on the host; GiB 1's first fault commits and zeroes 1 GiB again.
    assert (a.committed_bytes, a.bytes) == (1 << 30, plain.bytes - mib4 + (1 << 30))
    assert (b.committed_bytes, b.bytes) == (0, plain.bytes - mib4)
    assert c.committed_bytes == 1 << 30
    # The mapping is the TEE's as before: the same AUGs at the path, the same CPU time.
    assert (a.host_s, a.cpu_s) == (plain.host_s, plain.cpu_s)
    # A fresh guest has its own pages.
    assert HostFeatures.parse(("gmem-1g",), Tee.TDX).pricing()(prof, again).committed_bytes == 1 << 30


def test_gmem_1g_host_memory_grows_in_gib_steps():
    code, doc, err = _host("--guest", "4G,workload=touch:1G", "--host-feature", "gmem-1g")
    assert code == 0, err
    series = doc["committed_over_time"]
    at_start = series[0][1]
    assert all((b - at_start) % (1 << 30) == 0 for _, b in series)


@pytest.mark.parametrize("args", [
    ("--host-memory", "0"), ("--host-memory", "lots"), ("--stagger", "-1"), ("--stagger", "nan"),
    ("--host-cpus", "0"), ("--plot", "host.txt"), ("--json", "--plot", "-"), ("--host-path", "both"),
    ("--profile", "no-such-profile"), ("--host-feature", "tdx-dpamt", "--profile", "snp"),
])
def test_bad_host_options_are_one_line_and_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = run_cli("host", "--guest", "4G", *args)
    assert ran.code == 2, (args, ran.code, ran.err)
    assert len(ran.err_lines) == 1 and "Traceback" not in ran.err


def test_a_sweep_ranks_host_features_per_scenario(tmp_path):
    # The example grid's dimension, on a small grid: Dynamic PAMT commits a page pair (8 KiB) per
    # 2 MiB region an eager guest has AUGed at 4 KiB, beside what it commits without; tdx-2m is
    # the guest booted with --host-mapping 2m.
    import tomllib

    from fleet_helpers import run_rows
    from lazyaccept.base.units import GiB
    from lazyaccept.scenario.config import GuestRequest
    from lazyaccept.sim.fleet.driver import plan_sweep, run_sweep
    from lazyaccept.sim.fleet.executors import InlineExecutor
    from lazyaccept.sim.fleet.grid import parse_grid
    from lazyaccept.sim.profile import load_profile
    from lazyaccept.sim.run import resolve, run

    grid = tomllib.loads('[sweep]\nname = "features"\n[fixed]\nmemory = "8G"\nvcpus = 2\npolicy = "eager"\n'
                        '[dimensions]\nhost_feature = ["none", "tdx-dpamt", "tdx-2m"]\n')
    out = tmp_path / "r.jsonl"
    run_sweep(plan_sweep(parse_grid(grid)), out, InlineExecutor())
    rows = {r["point"]["host_feature"]: r for r in run_rows(out)}
    assert all(r["ok"] for r in rows.values())
    extra = rows["tdx-dpamt"]["host_committed_bytes"] - rows["none"]["host_committed_bytes"]
    regions_4k = rows["none"]["host_committed_bytes"] // (2 << 20)  # every committed 2 MiB AUGed at 4 KiB
    assert extra == pytest.approx(regions_4k * 8192, rel=0.01)
    prof = load_profile("tdx")
    two_m = run(resolve(GuestRequest(8 * GiB, vcpus=2, policy="eager", host_mapping="2m"), prof), prof)
    assert rows["tdx-2m"]["boot_s"] == pytest.approx(two_m.boot_s, rel=1e-12)
    assert rows["tdx-2m"]["config"]["host_mapping"] == "2m"
