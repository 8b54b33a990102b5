"""A modelled guest failure is a result (exit 3, a failure record, a failed row), not bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.base.errors import ConfigError, FormatError, GuestFailure, SafetyViolation
from lazyaccept.guest.efistub import StubError
from lazyaccept.guest.memblock import MemblockError
from lazyaccept.guest.page_alloc import BootFailure
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.sim.outcome import Failure, try_run
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import BootResult, resolve

#: The 2026 reproduction: with 6.12's rules the unaccepted table runs past its reservation.
CRASH = ["--memory", "67000M", "--kernel", "6.12", "--firmware-accept", "below-4g"]
#: A 1 GiB guest asked to touch 2 GiB to reach a shell runs out of memory.
OOM = ["--memory", "1G", "--shell-footprint", "2G"]


def test_the_failures_of_the_model_share_one_base() -> None:
    for cls in (SafetyViolation, BootFailure, MemblockError, StubError):
        assert issubclass(cls, GuestFailure)
    for cls in (ConfigError, FormatError):
        assert not issubclass(cls, GuestFailure)
    v = SafetyViolation("double-accept", "kernel", 2, 0x1000, "again")
    assert v.as_dict() == {"kind": "crash", "rule": "double-accept", "detail": "kernel on vCPU 2 at 0x1000 (again)"}
    assert BootFailure("x").as_dict()["kind"] == "out-of-memory"
    assert MemblockError("y").as_dict() == {"kind": "out-of-memory", "rule": "memblock-alloc", "detail": "y"}


def test_try_run_returns_a_result_or_a_failure() -> None:
    prof = load_profile("tdx")
    ok = try_run(resolve(GuestRequest(memory=2 << 30), prof), prof)
    assert isinstance(ok, BootResult) and ok.boot_s > 0
    bad = try_run(resolve(GuestRequest(memory=67000 << 20, kernel="6.12"), prof), prof)
    assert isinstance(bad, Failure)
    assert bad.rule == "table-reservation" and bad.kind == "crash"
    assert bad.row() == {"ok": False, "failure": bad.one_line()}
    assert "\n" not in bad.one_line() and bad.one_line().startswith("table-reservation: kernel on vCPU 0")


def test_try_run_still_raises_for_bad_input() -> None:
    prof = load_profile("snp")
    with pytest.raises(ConfigError):
        try_run(resolve(GuestRequest(memory=2 << 30), load_profile("tdx")), prof)  # a TDX guest, an SNP profile


@pytest.mark.parametrize("args,rule,kind",
                         [(CRASH, "table-reservation", "crash"), (OOM, "page-alloc", "out-of-memory")])
def test_boot_failure_is_exit_3_with_one_line(args: list[str], rule: str, kind: str) -> None:
    r = run_cli("boot", *args)
    assert r.code == 3
    assert r.out == ""
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(f"lazyaccept: guest failed: {rule}: ")


@pytest.mark.parametrize("args,rule,kind",
                         [(CRASH, "table-reservation", "crash"), (OOM, "page-alloc", "out-of-memory")])
def test_boot_failure_json(args: list[str], rule: str, kind: str) -> None:
    r = run_cli("boot", *args, "--json")
    assert r.code == 3
    doc = json.loads(r.out)
    assert doc["ok"] is False
    assert doc["failure"]["kind"] == kind and doc["failure"]["rule"] == rule
    assert doc["failure"]["detail"] and doc["failure"]["detail"] in r.err_lines[0]
    assert doc["config"]["memory_bytes"] == int(args[1][:-1]) << (20 if args[1].endswith("M") else 30)
    assert len(r.err_lines) == 1


def test_success_json_says_ok() -> None:
    r = run_cli("boot", "--memory", "2G", "--json")
    assert r.code == 0 and json.loads(r.out)["ok"] is True


def test_failed_boot_writes_no_plot_and_no_dump(tmp_path: Path) -> None:
    plot, dump = tmp_path / "p.png", tmp_path / "d"
    r = run_cli("boot", *CRASH, "--plot", str(plot), "--dump", str(dump))
    assert r.code == 3
    assert list(tmp_path.iterdir()) == []


def test_compare_goes_on_past_a_failed_size() -> None:
    r = run_cli("compare", "--memory", "4G", "--memory", "67000M", "--memory", "8G", "--kernel", "6.12",
                "--firmware-accept", "below-4g", "--json")
    assert r.code == 3
    (comparison,) = json.loads(r.out)["comparisons"]
    rows = {row["memory_bytes"]: row for row in comparison["rows"]}
    assert [rows[4 << 30]["ok"], rows[67000 << 20]["ok"], rows[8 << 30]["ok"]] == [True, False, True]
    assert rows[4 << 30]["eager_s"] > rows[4 << 30]["lazy_s"] > 0
    assert rows[8 << 30]["eager_s"] > 0
    failed = rows[67000 << 20]
    assert "table-reservation" in failed["failure"] and "eager_s" not in failed
    assert failed["failure_record"]["rule"] == "table-reservation"
    assert comparison["failed"] == 1
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("lazyaccept: guest failed: 65.43 GiB: ")


def test_compare_table_shows_the_failed_row(tmp_path: Path) -> None:
    plot = tmp_path / "c.png"
    r = run_cli("compare", "--memory", "4G", "--memory", "67000M", "--kernel", "6.12", "--firmware-accept",
                "below-4g", "--plot", str(plot))
    assert r.code == 3
    rows = [line for line in r.out.splitlines() if "GiB │" in line]
    assert len(rows) == 2
    assert "failed: table-reservation" in rows[1] and " s " in rows[0]
    assert plot.read_bytes().startswith(b"\x89PNG")  # the sizes that booted are still drawn


def test_compare_all_good_is_exit_0() -> None:
    r = run_cli("compare", "--memory", "2G", "--json")
    assert r.code == 0
    assert json.loads(r.out)["comparisons"][0]["failed"] == 0
