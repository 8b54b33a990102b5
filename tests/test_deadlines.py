"""Deadlines: margins against hand-computed values, the upper end of the range decides, the
shipped orchestrators carry their sources, and bad deadlines are one line and exit status 2."""

from __future__ import annotations

import json
import tomllib
from importlib import resources

import pytest

from cli_helpers import run_cli
from lazyaccept.base.errors import ConfigError
from lazyaccept.sim.deadlines import (
    Deadline,
    LaterStage,
    Milestone,
    Stage,
    evaluate,
    first_failing,
    milestones,
    parse_deadline,
)
from lazyaccept.sim.orchestrators import load_orchestrator, orchestrator_names, parse_orchestrator
from lazyaccept.sim.uncertainty import Range


def _d(stage: Stage, seconds: float) -> Deadline:
    return Deadline(stage, seconds, f"test {stage}={seconds}", "test")


# -- evaluation ------------------------------------------------------------------------------------

def test_margins_are_the_timeout_less_the_upper_end() -> None:
    # init at 10 s (8-12), boot at 20 s (17-23): by hand, init=15 leaves 15 - 12 = 3 s, boot=20
    # misses by 23 - 20 = 3 s, ready (= boot, no later stage) at 30 leaves 30 - 23 = 7 s.
    marks = milestones(Milestone(10.0, Range(8.0, 12.0)), Milestone(20.0, Range(17.0, 23.0)))
    v = evaluate([_d(Stage.INIT, 15), _d(Stage.BOOT, 20), _d(Stage.READY, 30)], marks)
    assert [x.margin_s for x in v] == [3.0, -3.0, 7.0]
    assert [x.met for x in v] == [True, False, True]
    assert first_failing(v) is v[1]


def test_a_nominal_time_that_meets_but_an_upper_end_that_misses_fails() -> None:
    # 40 s nominal fits 45 s; its range's upper end 47 s does not: missed by 2 s.
    marks = milestones(Milestone(5.0), Milestone(40.0, Range(33.0, 47.0)))
    (v,) = evaluate([_d(Stage.BOOT, 45)], marks)
    assert not v.met and v.margin_s == pytest.approx(-2.0)


def test_without_a_range_the_time_itself_is_held_and_exactly_on_time_is_met() -> None:
    marks = milestones(Milestone(5.0), Milestone(45.0))
    (v,) = evaluate([_d(Stage.BOOT, 45)], marks)
    assert v.met and v.margin_s == 0.0


def test_the_first_to_fail_is_the_missed_deadline_whose_timer_runs_out_first() -> None:
    # init=10 missed by 1 s (timer at 10 s); ready=45 missed by 55 s (timer at 45 s): the
    # orchestrator gives up at 10 s, on init.  Two timers at 45 s: the larger miss first.
    marks = milestones(Milestone(11.0), Milestone(100.0))
    v = evaluate([_d(Stage.READY, 45), _d(Stage.INIT, 10)], marks)
    assert first_failing(v) is v[1]
    w = evaluate([_d(Stage.INIT, 45), _d(Stage.READY, 45)], marks)
    assert first_failing(w) is w[1]  # ready misses by 55 s, init meets
    assert first_failing(evaluate([_d(Stage.READY, 200)], marks)) is None


def test_a_later_stage_the_run_lacks_is_reached_with_the_one_before_it() -> None:
    later = [LaterStage("agent", 20.0, 22.0, Range(21.0, 24.0)), LaterStage("modelload:4G,from=1G", 22.0, 30.0)]
    marks = milestones(Milestone(10.0), Milestone(20.0), later)
    assert marks["attest"] == marks["agent"] == Milestone(22.0, Range(21.0, 24.0))
    assert marks["modelload"] == Milestone(30.0)
    bare = milestones(Milestone(10.0), Milestone(20.0))
    assert bare["agent"] == bare["attest"] == bare["modelload"] == bare["ready"] == Milestone(20.0)


def test_later_stages_plug_in_by_name_and_ready_is_the_last_of_them() -> None:
    later = [LaterStage("agent", 20.0, 22.0, Range(21.0, 24.0)), LaterStage("attestation", 22.0, 30.0)]
    marks = milestones(Milestone(10.0), Milestone(20.0), later)
    assert marks["agent"] == Milestone(22.0, Range(21.0, 24.0))
    assert marks["ready"] == Milestone(30.0)  # the attestation's end, not the boot's
    (v,) = evaluate([_d(Stage.READY, 29)], marks)
    assert v.margin_s == -1.0


# -- parsing ---------------------------------------------------------------------------------------

def test_deadline_text_and_the_shell_alias() -> None:
    d = parse_deadline("shell=20")
    assert d.stage is Stage.BOOT and d.timeout_s == 20.0
    assert parse_deadline("READY=45.5").timeout_s == 45.5


@pytest.mark.parametrize("text", ["ready", "ready=", "=45", "ready=abc", "ready=nan", "ready=inf", "ready=-1",
                                  "ready=0", "login=45", "boot=1e999"])
def test_bad_deadline_text_is_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_deadline(text)


# -- the shipped orchestrators ---------------------------------------------------------------------

def test_the_shipped_orchestrators_load_and_every_value_says_where_it_comes_from() -> None:
    names = orchestrator_names()
    assert {"kata-qemu-tdx", "kata-qemu-snp", "kata-qemu-nvidia-gpu", "cloud-vm"} <= set(names)
    folder = resources.files("lazyaccept").joinpath("data", "orchestrators")
    for name in names:
        raw = tomllib.loads(folder.joinpath(f"{name}.toml").read_text())
        for entry in raw["deadline"]:
            assert entry.get("source") or entry.get("assumed"), (name, entry)
        if "overhead" in raw:
            assert raw["overhead"].get("source"), name
        assert load_orchestrator(name).deadlines


def test_the_kata_values_are_the_ones_the_kata_configuration_sets() -> None:
    # Kata runtime-rs: reconnect_timeout_ms = 45000 for TDX and SNP; the GPU configuration
    # DEFAULTTIMEOUT_NV := 1200 for create_container_timeout (kata-containers src/runtime-rs).
    for name in ("kata-qemu-tdx", "kata-qemu-snp"):
        by_label = {d.label: d.timeout_s for d in load_orchestrator(name).deadlines}
        assert by_label[f"{name} reconnect_timeout_ms"] == 45.0
    gpu = {d.label: d.timeout_s for d in load_orchestrator("kata-qemu-nvidia-gpu").deadlines}
    assert gpu["kata-qemu-nvidia-gpu create_container_timeout"] == 1200.0
    (cloud,) = load_orchestrator("cloud-vm").deadlines
    assert 90 <= cloud.timeout_s <= 330 and "90" in (cloud.assumed or "") and "330" in (cloud.assumed or "")


def test_an_orchestrator_value_without_a_source_is_refused() -> None:
    text = '[[deadline]]\nstage = "ready"\ntimeout_s = 45\nkey = "x"\n'
    with pytest.raises(ConfigError, match="source"):
        parse_orchestrator(text, "bare")


# -- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--orchestrator", "kubernetes"], "known are cloud-vm, kata-qemu-nvidia-gpu, kata-qemu-snp, kata-qemu-tdx"),
    (["--deadline", "login=45"], "known stages are init, boot, agent, attest, modelload, ready, shell"),
    (["--deadline", "ready"], "give STAGE=SECONDS"),
    (["--deadline", "ready=nan"], "finite number above 0"),
    (["--deadline", "ready=-3"], "finite number above 0"),
])
@pytest.mark.parametrize("command", ["boot", "advise"])
def test_bad_deadlines_are_one_line_and_exit_2(command: str, args: list[str], needle: str) -> None:
    r = run_cli(command, "--memory", "4G", *args)
    assert r.code == 2 and len(r.err_lines) == 1 and needle in r.err, r.err
    assert "Traceback" not in r.err


def test_boot_reports_each_deadline_and_a_miss_is_exit_3_after_the_report() -> None:
    r = run_cli("boot", "--memory", "4G", "--orchestrator", "kata-qemu-tdx", "--deadline", "init=0.5", "--json")
    assert r.code == 3, r.err
    doc = json.loads(r.out)
    assert [d["stage"] for d in doc["deadlines"]] == ["agent", "ready", "init"]
    for d in doc["deadlines"]:
        upper = d["range"][1] if d["range"] else d["predicted_s"]
        assert d["margin_s"] == pytest.approx(d["timeout_s"] - upper)
        assert d["met"] == (d["margin_s"] >= 0)
    # boot models no stage after the shell: the agent and ready are both reached there
    for d in doc["deadlines"][:2]:
        assert d["predicted_s"] == pytest.approx(doc["boot_s"]) and d["range"] == doc["boot_s_range"]
    assert doc["first_failing"]["stage"] == "init"
    assert r.err_lines == [r.err_lines[0]] and r.err.startswith("lazyaccept: guest failed: deadline missed: init")


def test_boot_meeting_every_deadline_is_exit_0() -> None:
    r = run_cli("boot", "--memory", "4G", "--deadline", "boot=600", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["first_failing"] is None and doc["deadlines"][0]["met"]


def test_boot_deadline_of_advise_is_a_deadline_on_boot() -> None:
    r = run_cli("advise", "--memory", "4G", "--boot-deadline", "30", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["boot_deadline_s"] == 30.0
    assert [(d["stage"], d["timeout_s"]) for d in doc["deadlines_held"]] == [("boot", 30.0)]
    for c in doc["candidates"]:
        upper = c["boot_s_range"][1] if c["boot_s_range"] else c["boot_s"]
        assert c["meets_deadline"] == (upper <= 30.0)
