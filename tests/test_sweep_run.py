"""Sweep runs: rows equal to single boots, modelled failures as rows, streaming, resume, and the
same rows from every executor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from fleet_helpers import FAILING_GRID, SMALL_GRID, need_module, run_rows
from lazyaccept.base.errors import ConfigError
from lazyaccept.base.units import GiB
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.sim.fleet import profiles as fleet_profiles
from lazyaccept.sim.fleet.driver import chunked, plan_sweep, run_sweep
from lazyaccept.sim.fleet.executors import InlineExecutor, PoolExecutor
from lazyaccept.sim.fleet.grid import parse_grid
from lazyaccept.sim.fleet.worker import run_chunk
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import resolve, run

SMALL, FAILING = SMALL_GRID, FAILING_GRID


def plan_of(text: str):
    return plan_sweep(parse_grid(tomllib.loads(text)))


def test_plan_resolves_every_point_with_its_profile():
    plan = plan_of(SMALL)
    assert len(plan.tasks) == 3 * 2 * 2 * 2
    for t in plan.tasks:
        point = dict(t.point)
        assert t.config.memory == point["memory"] and t.config.vcpus == point["vcpus"]
        assert t.config.tee.value == point["profile"]  # the platform comes from the profile
        assert t.config.policy.value == point["policy"]
    tdx = load_profile("tdx")
    # Dimensions the grid leaves out take the profile's defaults (TDX: kernel 6.5, 256M accept).
    some = next(t for t in plan.tasks if dict(t.point)["profile"] == "tdx")
    assert some.config.kernel_release == tdx.defaults.kernel
    assert some.config.firmware_accept == tdx.defaults.firmware_accept
    assert len({t.key for t in plan.tasks}) == len(plan.tasks)


def test_a_row_has_the_figures_of_the_same_boot_run_alone(tmp_path):
    plan = plan_of(SMALL)
    out = tmp_path / "r.jsonl"
    run_sweep(plan, out, InlineExecutor())
    rows = {(r["point"]["memory"], r["point"]["vcpus"], r["point"]["profile"], r["point"]["policy"]): r
            for r in run_rows(out)}
    assert len(rows) == 24
    for key in [(16 * GiB, 4, "snp", "eager"), (GiB, 1, "tdx", "lazy")]:
        mem, vcpus, prof_name, policy = key
        prof = load_profile(prof_name)
        alone = run(resolve(GuestRequest(memory=mem, tee=prof.tee, vcpus=vcpus, policy=policy), prof), prof)
        row = rows[key]
        assert row["ok"] is True and row["failure"] is None
        assert row["boot_s"] == alone.boot_s
        assert row["host_committed_bytes"] == alone.record.platform.host_committed
        assert row["unaccepted_after_boot_bytes"] == alone.record.unaccepted_after_boot
        assert row["config"]["memory_bytes"] == mem and row["config"]["profile"] == prof.name
        assert sum(row["phases_s"].values()) == pytest.approx(alone.boot_s)
        assert row["accepted_bytes"] == sum(row["accepted_by"].values())


def test_a_modelled_failure_is_a_row_with_its_reason(tmp_path):
    out = tmp_path / "r.jsonl"
    summary = run_sweep(plan_of(FAILING), out, InlineExecutor())
    rows = {r["point"]["kernel"]: r for r in run_rows(out)}
    assert summary.failed == 1
    bad, good = rows["6.12"], rows["mainline"]
    assert bad["ok"] is False and bad["failure_kind"] == "SafetyViolation"
    assert bad["failure"].startswith("table-reservation: kernel on vCPU 0")
    assert "\n" not in bad["failure"]
    assert bad["boot_s"] is None and bad["phases_s"] is None
    assert bad["config"]["kernel"] == "6.12"  # a failed row still has its whole configuration
    assert good["ok"] is True and good["boot_s"] > 0


def test_rows_stream_to_the_file_as_chunks_finish(tmp_path):
    out = tmp_path / "r.jsonl"
    seen = []

    def check(done, total, failed):
        seen.append((done, len(run_rows(out))))  # what is on disk at this moment

    run_sweep(plan_of(SMALL), out, InlineExecutor(), on_progress=check, max_chunk=5)
    assert [d for d, _ in seen] == [0, 5, 10, 15, 20, 24]
    assert all(done == on_disk for done, on_disk in seen)


MARK = 123456.0


def test_resume_runs_exactly_the_missing_rows_and_drops_a_cut_line(tmp_path):
    plan = plan_of(SMALL)
    full = tmp_path / "full.jsonl"
    run_sweep(plan, full, InlineExecutor())
    lines = full.read_text().splitlines()
    runs = [json.loads(x) for x in lines if json.loads(x)["kind"] == "run"]
    heads = [x for x in lines if json.loads(x)["kind"] != "run"]
    # An interrupted file: the header, 7 rows (marked with a boot time no run gives, to see they are
    # not recomputed), half a row.
    kept = [r | {"boot_s": MARK} for r in runs[:7]]
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(heads + [json.dumps(r) for r in kept]) + "\n" + lines[-1][:40])
    summary = run_sweep(plan, part, InlineExecutor(), resume=True)
    assert (summary.total, summary.skipped, summary.ran) == (24, 7, 17)
    after = run_rows(part)
    assert len(after) == 24 and len({r["key"] for r in after}) == 24
    by_key = {r["key"]: r for r in after}
    assert all(by_key[r["key"]]["boot_s"] == MARK for r in kept)  # skipped, not run again
    assert {k: r for k, r in by_key.items() if r["boot_s"] != MARK} == {
        r["key"]: r for r in runs[7:]}  # the rest are what a full sweep gives
    # Resuming a complete file runs nothing; the profile lines are not written twice.
    again = run_sweep(plan, part, InlineExecutor(), resume=True)
    assert (again.skipped, again.ran) == (24, 0)
    kinds = [json.loads(x)["kind"] for x in part.read_text().splitlines()]
    assert kinds.count("profile") == 2 and kinds.count("sweep") == 3


def test_an_existing_file_is_not_overwritten_without_resume(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text("precious\n")
    with pytest.raises(ConfigError, match="exists; --resume continues it"):
        run_sweep(plan_of(FAILING), out, InlineExecutor())
    assert out.read_text() == "precious\n"


@pytest.mark.slow
def test_the_local_pool_gives_the_rows_this_process_gives(tmp_path):
    plan = plan_of(SMALL)
    run_sweep(plan, tmp_path / "a.jsonl", InlineExecutor())
    with PoolExecutor(2) as pool:
        run_sweep(plan, tmp_path / "b.jsonl", pool)
    assert run_rows(tmp_path / "a.jsonl", sort=True) == run_rows(tmp_path / "b.jsonl", sort=True)


#: Calls of the profile parser in this (worker) process, counted by the wrapper _count_parses installs.
_PARSES: list[str] = []


def _count_parses() -> None:
    """In the worker: count every call of the real parser from here on (the cache's own
    bookkeeping is not trusted to report its misses)."""
    real = fleet_profiles.parse_profile

    def counting(text: str, path: str):
        _PARSES.append(path)
        return real(text, path)

    fleet_profiles._PARSED.clear()
    fleet_profiles.parse_profile = counting


def _parses() -> int:
    return len(_PARSES)


def test_a_worker_parses_each_profile_once(tmp_path):
    plan = plan_of(SMALL)
    chunks = chunked(plan.tasks, workers=1, max_chunk=3)
    assert len(chunks) == 8
    with ProcessPoolExecutor(max_workers=1) as pool:  # one worker: every chunk lands on it
        pool.submit(_count_parses).result()
        for c in chunks:
            pool.submit(run_chunk, c, plan.profiles).result()
        # tdx and snp, once each, for 8 chunks of 24 runs (a cache that missed would parse per run).
        assert pool.submit(_parses).result() == 2


# Failures included: the Dask path must carry failure rows exactly as the local one does.
MIXED = """
[dimensions]
memory = ["4G", "67000M"]
kernel = ["6.12", "mainline"]
vcpus = [1, 4]
policy = ["lazy", "eager"]
[fixed]
profile = "tdx"
firmware_accept = "below-4g"
"""


@pytest.mark.slow
def test_dask_and_the_local_pool_give_the_same_rows(tmp_path):
    need_module("distributed")
    grid = tmp_path / "g.toml"
    grid.write_text(MIXED)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[1] / "src")}

    def sweep(*extra: str) -> Path:
        out = tmp_path / f"out{len(extra)}.jsonl"
        r = subprocess.run([sys.executable, "-m", "lazyaccept", "sweep", str(grid), "--out", str(out), "--jobs", "2",
                            *extra], capture_output=True, text=True, timeout=180, env=env)
        assert r.returncode == 0, r.stderr
        return out

    local, dask = sweep(), sweep("--dask", "local")
    rows = run_rows(local, sort=True)
    assert len(rows) == 16 and sum(not r["ok"] for r in rows) == 4  # 67000M x 6.12 x 2 vCPUs x 2 policies
    assert rows == run_rows(dask, sort=True)
