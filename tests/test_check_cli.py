"""``lazyaccept check``: the whole catalogue passes, its JSON document, exit statuses 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from click.testing import CliRunner

from lazyaccept.cli import cli
from lazyaccept.scenario.check import catalogue as catalogue_module
from lazyaccept.scenario.check import triggers_mini
from lazyaccept.scenario.check.findings import Detector
from lazyaccept.scenario.check.mutants import Mutant

KEYS = {"name", "kind", "expected", "observed", "ok"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazyaccept", "check", *args], capture_output=True, text=True,
                          timeout=120)


def test_the_whole_catalogue_passes_quickly_with_the_counts_the_issue_asks_for():
    t0 = time.monotonic()
    r = run("--json")
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    doc = json.loads(r.stdout)
    s = doc["summary"]
    assert s["mutants"] >= 13 and s["mutants_caught"] == s["mutants"]
    assert s["hostile"] >= 7 and s["hostile_as_expected"] == s["hostile"]
    assert s["interleavings_explored"] > 10_000
    assert s["correct_kernel_violations"] == 0 and s["silent_data_losses"] == 0
    assert s["all_matched"] and s["matched"] == s["scenarios"] == len(doc["scenarios"])
    kinds = {d["kind"] for d in doc["scenarios"]}
    assert kinds == {"mutant", "hostile-host", "interleavings"}
    for d in doc["scenarios"]:
        assert KEYS <= set(d) and d["ok"] is True and isinstance(d["schedule"], list)
    assert elapsed < 60  # CI budget is 2 minutes; it takes a few seconds on 2 cores


def test_only_selects_scenarios_and_the_table_says_what_matched():
    r = run("--only", "snp-refuse", "--only", "interleavings-no-accepting-list", "--schedules", "20")
    assert r.returncode == 0, r.stderr
    assert "snp-refuse" in r.stdout and "hostile-host" in r.stdout
    assert "Shortest failing schedule of interleavings-no-accepting-list:" in r.stdout
    assert "double-accept" in r.stdout and "all 2 scenarios match" in r.stdout
    assert "no-guard-unit" not in r.stdout


def test_json_of_a_selection_counts_only_what_ran():
    r = run("--json", "--only", "global-accept-lock", "--only", "tdx-forged-hob")
    doc = json.loads(r.stdout)
    s = doc["summary"]
    assert (s["mutants"], s["mutants_caught"], s["hostile"], s["hostile_as_expected"]) == (1, 1, 1, 1)
    lock = doc["scenarios"][0]
    assert lock["kind"] == "mutant" and lock["detector"] == "latency" and len(lock["schedule"]) == 2
    assert lock["source"].startswith("50e782a86c98")


def test_unknown_scenario_is_one_line_and_exit_2():
    r = run("--only", "no-such-bug")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown scenario 'no-such-bug'" in lines[0]


def test_bad_schedule_count_is_exit_2():
    r = run("--schedules", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_a_scenario_that_does_not_match_gives_exit_1(monkeypatch):
    fake = Mutant("no-op", "none", "nothing changed", {}, Detector.SAFETY, triggers_mini.no_guard_unit, "4 units")
    monkeypatch.setattr(catalogue_module, "MUTANTS", (fake,))
    result = CliRunner().invoke(cli, ["check", "--only", "no-op", "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["summary"]["all_matched"] is False and doc["scenarios"][0]["ok"] is False
