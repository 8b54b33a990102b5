"""After the shell: workloads on the boot's clock, first-touch stalls, policies, and the commands.

Shapes, not fitted points: laziness costs at run time what it saved at boot and then nothing
once memory is accepted; eager has no stalls; a background thread lowers stalls and time to
fully accepted at a CPU cost it reports; stalls follow the host's per-fault cost; IRQs-off
intervals stretch with host oversubscription.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
from click.testing import CliRunner

from lazyaccept.base.errors import ConfigError, FormatError
from lazyaccept.base.record import AcceptEvent
from lazyaccept.base.units import GiB, MiB
from lazyaccept.cli import cli
from lazyaccept.guest.policies import Policy, PolicyKind
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.scenario.runtime import RunConfig, RunThreads, record_run
from lazyaccept.scenario.sanitizer import check_no_memory_lost
from lazyaccept.scenario.workloads import Workload, WorkloadKind
from lazyaccept.sim.pricing import price
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import resolve
from lazyaccept.sim.runtime import RunResult, simulate_run, time_run, weighted_quantiles
from lazyaccept.sim.timeline import timed_events


@cache
def run(memory_gib: int, workloads: tuple[str, ...], policy: str = "lazy", vcpus: int = 4, profile: str = "tdx",
        kernel: str | None = None, host_cpus: int | None = None, baseline: bool = True) -> RunResult:
    prof = load_profile(profile)
    pol = Policy.parse(policy)
    req = GuestRequest(memory_gib * GiB, prof.tee, pol.accept_memory, vcpus=vcpus, kernel=kernel,
                       patches=pol.with_patches(None))
    cfg = RunConfig(resolve(req, prof), tuple(Workload.parse(w) for w in workloads), pol, host_cpus=host_cpus)
    return simulate_run(cfg, prof, baseline=baseline)


# --- parsing at the edge ------------------------------------------------------------------------------


def test_workloads_parse():
    w = Workload.parse("touch:32G,threads=4@30")
    assert (w.kind, w.size, w.threads, w.start) == (WorkloadKind.TOUCH, 32 * GiB, 4, 30.0)
    d = Workload.parse("drain,workers=32")
    assert (d.kind, d.threads) == (WorkloadKind.DRAIN, 32)
    s = Workload.parse("steady:100M,for=1h")
    assert (s.rate, s.duration) == (100 * MiB, 3600.0)
    assert Workload.parse("pretouch:8G").threads == 0  # one per vCPU
    for bad, message in [("juggle:1G", "unknown workload"), ("touch", "expected touch:SIZE"),
                         ("steady:1G", "needs for=DURATION"), ("touch:1G,threads=0", "thread count"),
                         ("steady:1G,for=soon", "duration"), ("touch:1G@-3", "duration")]:
        with pytest.raises(ConfigError, match=message):
            Workload.parse(bad)


def test_trace_file_is_read_once_and_checked(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("time_s,bytes,thread\n0.5,1048576,1\n0,4194304,0\n")
    w = Workload.parse(f"trace:{f}")
    assert w.trace == ((0.0, 4194304, 0), (0.5, 1048576, 1))  # sorted by time
    f.write_text("0,-5,0\n")
    with pytest.raises(FormatError, match="bytes positive"):
        Workload.parse(f"trace:{f}")


def test_policies_parse():
    b = Policy.parse("background:threads=2,rate=4G")
    assert (b.kind, b.threads, b.rate) == (PolicyKind.BACKGROUND, 2, 4 * GiB)
    assert str(b) == "background:threads=2,rate=4G"
    assert Policy.parse("accept-ahead:chunks=8").chunks == 8
    assert Policy.parse("accepted-reserve").patches[0].value == "accepted-reserve"
    with pytest.raises(ConfigError, match="unknown policy"):
        Policy.parse("psychic")
    with pytest.raises(ConfigError, match="takes no 'rate'"):
        Policy.parse("lazy:rate=1G")


def test_weighted_quantiles_by_hand():
    # values 1 (x 98), 5 (x 1), 9 (x 1): p50 = 1, p99 = 5 (cumulative 99 of 100), p99.9 = 9
    v, w = np.array([9.0, 1.0, 5.0]), np.array([1.0, 98.0, 1.0])
    assert weighted_quantiles(v, w, [0.5, 0.99, 0.999]) == [1.0, 5.0, 9.0]


# --- shapes --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_touch_slowdown_under_lazy_and_none_once_memory_is_accepted():
    first = run(16, ("touch:8G",))
    assert first.workloads[0].slowdown > 2.0
    # The same touch long after a background thread has accepted everything: no stall at all,
    # and it runs as fast as on an eagerly accepted guest.
    later = run(16, ("touch:8G@1000",), "background:threads=4,rate=8G")
    assert later.fully_accepted_s is not None and later.fully_accepted_s < later.workloads[0].start_s
    assert later.stall_summary()["count"] == 0
    assert later.workloads[0].slowdown == pytest.approx(1.0, rel=0.02)


def test_eager_has_no_stalls_and_is_its_own_baseline():
    r = run(16, ("touch:8G",), "eager")
    assert r.stall_summary()["count"] == 0
    assert r.workloads[0].slowdown == pytest.approx(1.0)
    assert r.fully_accepted_s == pytest.approx(r.boot_s)


@pytest.mark.slow
def test_background_thread_lowers_stalls_and_time_to_fully_accepted_at_a_reported_cost():
    lazy = run(32, ("touch:16G",))
    bg = run(32, ("touch:16G",), "background:threads=2,rate=4G")
    assert bg.stall_summary()["count"] < lazy.stall_summary()["count"]
    assert lazy.fully_accepted_s is None and bg.fully_accepted_s is not None
    assert bg.workloads[0].duration_s < lazy.workloads[0].duration_s
    # its cost: CPU time of the kaccept threads, and all memory committed on the host early
    assert bg.accept_by["kaccept"] > 0
    assert bg.record.boot.platform.host_committed > lazy.record.boot.platform.host_committed


def test_stall_size_follows_the_hosts_fault_cost():
    # The same run on a host whose TD exit costs 4x: every stall grows by about the ratio of the
    # per-page cost of acceptance, computed here from the profile: one TD exit, one TDCALL, the
    # vCPU's part of the host fault, the path's part, and 8 KiB zeroed at the vCPU's bandwidth.
    prof = load_profile("tdx")
    slow = prof.with_values({"accept.td_exit": prof.params["accept.td_exit"].value * 4})
    cfg = RunConfig(resolve(GuestRequest(16 * GiB, vcpus=4), prof), (Workload.parse("touch:4G"),))
    a = simulate_run(cfg, prof, baseline=False).stall_summary()["p50_s"]
    b = simulate_run(cfg, slow, baseline=False).stall_summary()["p50_s"]
    td = prof.si("accept.td_exit")
    rest = (prof.si("accept.tdcall_4k") + prof.si("accept.host_fault_4k") + prof.si("host.path_fault_4k")
            + 8192 / prof.si("host.vcpu_bandwidth"))
    assert b / a == pytest.approx((4 * td + rest) / (td + rest), rel=0.15)


def test_host_oversubscription_stretches_irqs_off_time():
    # 8 workers on 8 vCPUs; with only 2 host CPUs every accept_memory() call (IRQs off) takes
    # about 4x as long.
    alone = run(32, ("touch:16G,threads=8",), vcpus=8, baseline=False)
    squeezed = run(32, ("touch:16G,threads=8",), vcpus=8, host_cpus=2, baseline=False)
    assert squeezed.irqs_off_max_s == pytest.approx(4 * alone.irqs_off_max_s, rel=0.15)
    assert squeezed.workloads[0].duration_s > 3 * alone.workloads[0].duration_s


@pytest.mark.slow
def test_accept_ahead_makes_fewer_larger_stalls():
    lazy = run(32, ("touch:8G",)).stall_summary()
    ahead = run(32, ("touch:8G",), "accept-ahead:chunks=8").stall_summary()
    assert ahead["count"] < lazy["count"] / 5
    assert ahead["max_s"] > 5 * lazy["max_s"]


def test_drain_leaves_lazy_and_eager_with_the_same_memory():
    prof = load_profile("tdx")
    lazy = record_run(RunConfig(resolve(GuestRequest(8 * GiB, vcpus=2), prof), (Workload.parse("drain,workers=2"),)))
    assert lazy.drained and lazy.unaccepted_at_end == 0
    eager_vm = resolve(GuestRequest(8 * GiB, vcpus=2, policy=Policy.parse("eager").accept_memory), prof)
    eager = record_run(RunConfig(eager_vm, (), Policy.parse("eager")))
    check_no_memory_lost(lazy.boot, eager.boot)


def test_a_run_is_recorded_in_the_order_and_at_the_times_the_clock_runs_it():
    # One clock: the guest is asked for a vCPU's next batch when the engine finds that vCPU free,
    # so the asks come in time order, and each batch's first event starts its vCPU's work then.
    prof = load_profile("tdx")
    cfg = RunConfig(resolve(GuestRequest(8 * GiB, vcpus=4), prof), (Workload.parse("touch:2G,threads=3"),
                                                                     Workload.parse("drain,workers=2")))
    asks: list[tuple[int, float, int]] = []
    real = RunThreads.next_work

    def spy(self, vcpu, t):  # noqa: ANN001, ANN202
        before = len(self.phase.events)
        n = real(self, vcpu, t)
        if n:
            asks.append((vcpu, t, before))
        return n

    RunThreads.next_work = spy  # type: ignore[method-assign]
    try:
        record, tl = time_run(cfg, prof)
    finally:
        RunThreads.next_work = real  # type: ignore[method-assign]
    assert len(asks) > 50
    times = [t for _, t, _ in asks]
    assert times == sorted(times)
    span = tl.phases[-1]
    reached = [r for _, _, _, r in timed_events(record.boot.phases[-1], span)]
    for _, t, first in asks:
        assert reached[first] - span.start == pytest.approx(t, abs=1e-9)


def test_a_background_thread_asked_for_more_than_it_can_do_goes_at_its_own_speed():
    # kaccept asked for 1 TiB/s on an idle guest: each wake-up finds the next one already past, so
    # it accepts back to back, and it is done when the sum of its calls' times alone says (NOHZ
    # idle: no other vCPU asks anything of the host path).
    prof = load_profile("tdx")
    r = run(16, (), "background:threads=1,rate=1024G", baseline=False)
    phase = r.record.boot.phases[-1]
    assert r.record.config.vm.kconfig.no_hz_idle
    calls = [price(prof, e) for e in phase.events if isinstance(e, AcceptEvent)]
    alone = sum(i.cpu_s + i.bytes / prof.host.vcpu_bandwidth + i.host_s for i in calls)
    assert r.fully_accepted_s is not None
    assert r.fully_accepted_s - r.boot_s == pytest.approx(alone, rel=1e-6)


def test_steady_workload_is_paced_by_its_rate():
    r = run(16, ("steady:64M,for=60",), baseline=False)
    w = r.workloads[0]
    assert w.duration_s == pytest.approx(60.0, abs=2.0)


# --- commands ------------------------------------------------------------------------------------------


def test_run_command_json_keys():
    res = CliRunner().invoke(cli, ["run", "--memory", "8G", "--workload", "touch:2G", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    for key in ("boot_s", "workload", "baseline_s", "stalls", "irqs_off_max_s", "soft_lockup", "fully_accepted_s"):
        assert key in doc
    assert set(doc["stalls"]) == {"count", "p50_s", "p99_s", "p999_s", "max_s"}
    assert doc["workload"]["duration_s"] == pytest.approx(doc["workload"]["end_s"] - doc["workload"]["start_s"])


def test_compare_policies_command(tmp_path):
    png = tmp_path / "p.png"
    res = CliRunner().invoke(cli, ["compare", "--memory", "16G", "--workload", "touch:4G", "--policy", "lazy",
                                   "--policy", "eager", "--json", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)["policies"][0]["runs"]
    assert [r["config"]["policy"] for r in runs] == ["lazy", "eager"]
    assert runs[1]["stalls"]["count"] == 0 < runs[0]["stalls"]["count"]
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_advise_recommends_something_that_meets_the_deadline():
    res = CliRunner().invoke(cli, ["advise", "--memory", "64G", "--boot-deadline", "30", "--workload", "touch:8G",
                                   "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rec = doc["recommended"]
    assert rec["ranged"] and rec["meets_deadline"] and rec["boot_s_range"][1] <= 30
    assert doc["run_time"] == "measured" and rec["slowdown"] >= 1.0


def test_replace_keeps_the_request_frozen():
    req = GuestRequest(4 * GiB)
    assert replace(req, vcpus=2).vcpus == 2 and req.vcpus is None


def test_run_html_page_is_self_contained_and_agrees_with_json(tmp_path):
    from test_report import assert_self_contained

    page = tmp_path / "run.html"
    args = ["run", "--memory", "8G", "--workload", "touch:2G"]
    res = CliRunner().invoke(cli, [*args, "--html", str(page), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    html = page.read_text()
    assert_self_contained(html)
    assert f"{doc['stalls']['count']:,}" in html and f"{doc['boot_s']:.3f} s" in html
    assert html.count("<svg") == 1


def test_a_sweep_runs_workloads_and_policies_like_the_run_command(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('[dimensions]\nmemory = ["8G"]\npolicy = ["lazy", "background:threads=1,rate=2G"]\n'
                    'workload = ["touch:2G"]\n')
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(cli, ["sweep", str(grid), "--out", str(out), "--jobs", "1"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    runs = {r["point"]["policy"]: r for r in rows if r["kind"] == "run"}
    assert set(runs) == {"lazy", "background:threads=1,rate=2G"}
    alone = json.loads(CliRunner().invoke(cli, ["run", "--memory", "8G", "--workload", "touch:2G", "--json"]).output)
    lazy = runs["lazy"]["workload"]
    assert lazy["slowdown"] == pytest.approx(alone["workloads"][0]["slowdown"])
    assert lazy["stalls"]["count"] == alone["stalls"]["count"]
    bg = json.loads(CliRunner().invoke(cli, ["run", "--memory", "8G", "--workload", "touch:2G", "--policy",
                                             "background:threads=1,rate=2G", "--json"]).output)
    assert runs["background:threads=1,rate=2G"]["workload"]["slowdown"] == pytest.approx(bg["workloads"][0]["slowdown"])
    assert runs["background:threads=1,rate=2G"]["workload"]["fully_accepted_s"] == pytest.approx(bg["fully_accepted_s"])


@pytest.mark.slow
def test_parallel_faults_soft_lockups_come_from_the_65_global_lock_not_the_accepting_list():
    """50e782a86c98 (v6.6, "efi/unaccepted: Fix soft lockups caused by parallel memory
    acceptance", drivers/firmware/efi/unaccepted_memory.c): v6.5's accept_memory() held
    ``unaccepted_memory_lock`` with IRQs off across arch_accept_memory(), so 32 threads faulting
    at once queue behind each other and the last waits for 31 calls, each stretched by 32
    runnable vCPUs on 4 host CPUs: soft lockups (the 21-23 s reports on oversubscribed SNP
    guests).  From v6.6 a call waits only for entries on the accepting list that intersect its
    own range, so each call waits at most for its neighbours'."""

    def one(kernel: str) -> RunResult:
        return run(64, ("touch:32G,threads=32",), vcpus=32, kernel=kernel, host_cpus=4, baseline=False)

    old, new = one("6.5"), one("6.6")
    assert old.soft_lockup and old.irqs_off_max_s > 20.0
    assert not new.soft_lockup
    # Under the global lock the longest call is ~31 other calls long; with the list, a few.
    assert old.irqs_off_max_s > 10 * new.irqs_off_max_s


def test_66_and_67_wait_alike_on_neighbouring_chunks_and_stalls_include_the_spinning():
    """v6.7 "efi/unaccepted: Fix off-by-one when checking for overlapping ranges" changed
    ``entry->end < range.start`` to ``<=``: only ranges that merely touch stop conflicting.
    accept_memory() adds the guard unit to a request ending on a unit boundary, so the 4 MiB
    chunk requests the allocator makes (``PAGE_SIZE << MAX_PAGE_ORDER``, 2 MiB units) cover
    units [2k, 2k+3) and never merely touch a neighbour's [2k+2, 2k+5): the two releases wait
    alike (mm/page_alloc.c __accept_page(); drivers/firmware/efi/unaccepted_memory.c, v6.6 and
    v6.7)."""

    def one(kernel: str) -> RunResult:
        return run(64, ("touch:32G,threads=32",), vcpus=32, kernel=kernel, host_cpus=4, baseline=False)

    v66, v67 = one("6.6"), one("6.7")
    assert v66.workloads[0].duration_s == pytest.approx(v67.workloads[0].duration_s, rel=1e-9)
    assert v66.irqs_off_max_s == pytest.approx(v67.irqs_off_max_s, rel=1e-9)
    work = v67.timeline.phases[-1].timing
    spun = sum(vt.spin_s for vt in work.vcpus.values())
    assert spun > 0  # neighbours did wait for each other
    # A stall is the call and the spinning before it: the stalls add up to every workload
    # accept call's time from when its vCPU reached it, which is more than the calls alone.
    total_stall = float((v67.stall_s * v67.stall_weight).sum())
    calls = [c for per_item in work.call_s.values() for cs in per_item.values() for c in cs]
    assert total_stall == pytest.approx(sum(calls), rel=1e-6)
    assert v67.stall_summary()["max_s"] == pytest.approx(max(calls), rel=1e-9)
