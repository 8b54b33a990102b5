"""Stages from the shell to ready (agent, attestation, model load) on the run's one clock.

Expected values come from the stage data as shipped (read here from the TOML, not through the
code), the profile's unit costs, and the storage rate; shapes: each stage starts when the one
before it ends, a model load is storage-bound on an accepted guest and acceptance-bound on a lazy
one with fast storage.
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from importlib import resources

import pytest
from click.testing import CliRunner

from lazyaccept.base.errors import ConfigError
from lazyaccept.base.units import GiB, MiB, parse_size
from lazyaccept.cli import cli
from lazyaccept.guest.policies import Policy
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.scenario.runtime import RunConfig
from lazyaccept.scenario.stages import Stage, StageKind
from lazyaccept.scenario.workloads import Workload
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import resolve
from lazyaccept.sim.runtime import RunResult, simulate_run

DATA = tomllib.loads(resources.files("lazyaccept.data").joinpath("stages.toml").read_text())


@cache
def staged(memory_gib: int, stages: tuple[str, ...], policy: str = "lazy", vcpus: int = 4,
           workloads: tuple[str, ...] = ()) -> RunResult:
    prof = load_profile("tdx")
    pol = Policy.parse(policy)
    vm = resolve(GuestRequest(memory_gib * GiB, prof.tee, pol.accept_memory, vcpus=vcpus), prof)
    cfg = RunConfig(vm, tuple(Workload.parse(w) for w in workloads), pol,
                    stages=tuple(Stage.parse(s) for s in stages))
    return simulate_run(cfg, prof, baseline=False)


def test_stages_parse_and_bad_ones_are_refused():
    m = Stage.parse("modelload:40G,from=2G,threads=4")
    assert (m.kind, m.size, m.rate, m.threads) == (StageKind.MODELLOAD, 40 * GiB, 2 * GiB, 4)
    assert Stage.parse("attest:1.5").seconds == 1.5
    assert Stage.parse("agent").seconds is None
    for bad in ("juggle", "modelload:4G", "modelload:4G,from=0", "agent:soon", "agent:-1", "attest:1,2",
                "modelload:4G,from=1G,threads=0"):
        with pytest.raises(ConfigError):
            Stage.parse(bad)


def test_every_stage_value_has_a_source():
    def walk(d: dict) -> list[dict]:
        return [v for v in d.values() if isinstance(v, dict) and "value" in v] + [
            x for v in d.values() if isinstance(v, dict) and "value" not in v for x in walk(v)]

    values = walk(DATA)
    assert len(values) >= 7
    assert all(v.get("source") for v in values)


def test_each_stage_starts_when_the_one_before_it_ends_and_ready_is_the_last_end():
    r = staged(8, ("agent", "attest", "modelload:2G,from=1G"))
    assert r.stages[0].start_s == pytest.approx(r.boot_s)
    for a, b in zip(r.stages, r.stages[1:], strict=False):
        assert b.start_s == pytest.approx(a.end_s)
    assert r.ready_s == r.stages[-1].end_s
    assert r.ready_range is not None and r.ready_range.low <= r.ready_s <= r.ready_range.high


def test_attestation_takes_the_guests_request_and_the_hosts_answer():
    # The attestation alone, from the shipped data: the guest's request, then idle for the host.
    r = staged(8, ("attest",))
    tdx = DATA["attest"]["tdx"]
    assert r.stages[0].duration_s == pytest.approx(tdx["guest_s"]["value"] + tdx["host_s"]["value"], rel=1e-9)
    r2 = staged(8, ("attest:2",))
    assert r2.stages[0].duration_s == pytest.approx(tdx["guest_s"]["value"] + 2.0, rel=1e-9)


def test_on_an_accepted_guest_a_model_load_goes_at_the_storage_rate():
    # Eager: nothing left to accept, so 8 GiB from 1 GiB/s takes 8 s plus the copy of the last
    # batch after its data arrived (a batch is SIZE / 4096 rounded up to a 4 MiB chunk).
    r = staged(16, ("modelload:8G,from=1G",), policy="eager")
    d = r.stages[0].duration_s
    assert 8.0 <= d <= 8.0 * 1.02


def test_on_a_lazy_guest_with_fast_storage_a_model_load_is_as_slow_as_touching_that_memory():
    # Storage far faster than acceptance: loading is bound by the first touches, like a touch
    # workload of the same size on one thread (plus the copy out of the page cache).
    loaded = staged(16, ("modelload:4G,from=1000G",)).stages[0].duration_s
    touched = staged(16, (), workloads=("touch:4G",)).workloads[0].duration_s
    copy = 4 * GiB / parse_size(DATA["modelload"]["copy_bps"]["value"])
    assert loaded == pytest.approx(touched + copy, rel=0.05)
    assert loaded > 4 * GiB / (1000 * GiB) * 20  # acceptance, not storage, sets the pace


def test_a_deadline_on_the_agent_without_an_agent_stage_is_held_at_the_shell():
    res = CliRunner().invoke(cli, ["run", "--memory", "4G", "--deadline", "agent=600", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    (v,) = doc["deadlines"]
    assert v["predicted_s"] == pytest.approx(doc["boot_s"])


def test_an_orchestrators_stages_run_when_none_is_given():
    res = CliRunner().invoke(cli, ["run", "--memory", "4G", "--orchestrator", "kata-qemu-tdx", "--json"])
    doc = json.loads(res.output[: res.output.rindex("}") + 1])
    assert [s["name"] for s in doc["stages"]] == ["agent", "attest"]
    assert doc["ready_s"] == pytest.approx(doc["stages"][-1]["end_s"])
    held = {d["stage"] for d in doc["deadlines"]}
    assert held == {"agent", "ready"}
    assert res.exit_code in (0, 3)
    assert (res.exit_code == 3) == any(not d["met"] for d in doc["deadlines"])


def test_agent_memory_is_touched_like_a_workloads():
    # The agent's footprint is allocated through the same fault path: on a lazy guest its first
    # touches accept memory when the allocator needs it, so it can only take longer than on an
    # eager one, and at least its CPU time.
    lazy = staged(8, ("agent",)).stages[0].duration_s
    eager = staged(8, ("agent",), policy="eager").stages[0].duration_s
    cpu = DATA["agent"]["cpu_s"]["value"]
    assert eager >= cpu
    assert lazy >= eager
    assert eager - cpu < 64 * MiB / 1e9  # zeroing 64 MiB at >1 GB/s


def test_a_sweep_with_stages_gives_each_run_its_ready_time_as_run_does(tmp_path):
    from fleet_helpers import run_rows
    from lazyaccept.presentation.sweep_report import run_table
    from lazyaccept.sim.fleet.driver import plan_sweep, run_sweep
    from lazyaccept.sim.fleet.executors import InlineExecutor
    from lazyaccept.sim.fleet.grid import parse_grid

    grid = tomllib.loads('[sweep]\nname = "staged"\n[fixed]\nmemory = "8G"\nvcpus = 4\n'
                        '[dimensions]\npolicy = ["lazy", "eager"]\nstage = [["agent", "attest"]]\n')
    out = tmp_path / "r.jsonl"
    run_sweep(plan_sweep(parse_grid(grid)), out, InlineExecutor())
    rows = {r["point"]["policy"]: r for r in run_rows(out)}
    for policy, row in rows.items():
        alone = staged(8, ("agent", "attest"), policy=policy)
        assert row["ready_s"] == pytest.approx(alone.ready_s, rel=1e-9)
        assert [s["name"] for s in row["stages"]] == ["agent", "attest"]
    assert "ready (s, one-sigma range)" in run_table(list(rows.values()))



def test_a_staged_sweep_reports_ready_time_by_dimension_and_against_memory(tmp_path):
    from cli_helpers import run_cli

    grid = tmp_path / "g.toml"
    grid.write_text('[sweep]\nname = "staged"\n[fixed]\nvcpus = 2\nstage = "agent;attest"\n'
                    '[dimensions]\nmemory = ["4G", "8G"]\npolicy = ["lazy", "eager"]\n')
    out, page = tmp_path / "r.jsonl", tmp_path / "r.html"
    assert run_cli("sweep", str(grid), "--out", str(out), "--jobs", "1").code == 0
    r = run_cli("report", str(out), "--out", str(page))
    assert r.code == 0, r.err
    html = page.read_text()
    assert "Ready time by dimension" in html and "Ready time against memory" in html
    assert "ready (s, one-sigma range)" in html
