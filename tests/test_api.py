"""lazyaccept.api, the library: the same figures as the commands' --json, typed records, one
error type per kind of problem, and a sweep's results as a pandas DataFrame."""

from __future__ import annotations

import inspect
import json
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from cli_helpers import run_cli
from fleet_helpers import run_rows, sweep_files
from lazyaccept import api


def _cli_json(*args: str, code: int = 0) -> dict:
    r = run_cli(*args, "--json")
    assert r.code == code, r.err
    return json.loads(r.out)


def test_boot_is_the_boot_command() -> None:
    b = api.boot("8G", vcpus=2, kernel="6.7")
    doc = _cli_json("boot", "--memory", "8G", "--vcpus", "2", "--kernel", "6.7")
    assert b.boot_s == doc["boot_s"] and b.exits == doc["exits"]
    assert b.accepted_bytes == doc["accepted_bytes"]
    assert [p.name for p in b.phases] == [p["name"] for p in doc["phases"]]
    assert [p.idle_exits for p in b.phases] == [p["idle_exits"] for p in doc["phases"]]
    assert b.config["kernel"] == "6.7" and b.config["vcpus"] == 2
    # The phases tile the boot: each starts where the one before ended, the last ends at boot_s.
    assert b.phases[0].start_s == 0 and b.phases[-1].end_s == pytest.approx(b.boot_s)
    assert all(a.end_s == pytest.approx(c.start_s) for a, c in zip(b.phases, b.phases[1:], strict=False))


def test_sizes_read_as_the_command_line_reads_them() -> None:
    assert api.boot(8 << 30).boot_s == api.boot("8G").boot_s == api.boot("8192").boot_s  # bytes, text, MiB


def test_run_is_the_run_command() -> None:
    r = api.run("8G", ["touch:4G"], vcpus=2, policy="background:threads=1,rate=2G")
    doc = _cli_json("run", "--memory", "8G", "--vcpus", "2", "--workload", "touch:4G",
                    "--policy", "background:threads=1,rate=2G")
    assert r.boot_s == doc["boot_s"] and r.stalls.count == doc["stalls"]["count"]
    assert r.stalls.p99_s == doc["stalls"]["p99_s"] and r.fully_accepted_s == doc["fully_accepted_s"]
    (w,) = r.workloads
    assert w.name == "touch:4G" and w.slowdown == pytest.approx((w.end_s - w.start_s) / w.baseline_s)


def test_compare_rows_and_a_failed_size() -> None:
    c = api.compare(["4G", "67000M"], kernel="6.12")
    doc = _cli_json("compare", "--memory", "4G", "--memory", "67000M", "--kernel", "6.12", code=3)
    assert isinstance(c.rows[0], api.ComparisonRow) and isinstance(c.rows[1], api.FailedSize)
    cli_row = doc["comparisons"][0]["rows"][0]
    assert (c.rows[0].eager_s, c.rows[0].lazy_s) == (cli_row["eager_s"], cli_row["lazy_s"])
    assert c.rows[0].speedup == pytest.approx(cli_row["eager_s"] / cli_row["lazy_s"])
    assert c.rows[1].failure["rule"] == "table-reservation" and c.rows[1].memory_bytes == 67000 << 20
    assert c.config["kernel"] == "6.12" and c.profile == "tdx"


def test_bad_input_is_a_config_error_and_a_failing_guest_a_guest_failure() -> None:
    with pytest.raises(api.ConfigError):
        api.boot("lots")
    with pytest.raises(api.ConfigError):
        api.boot("4G", vcpus=True)  # type: ignore[arg-type]
    with pytest.raises(api.ConfigError):
        api.compare("4G")  # type: ignore[arg-type]  # a size, not a list of them
    with pytest.raises(api.ConfigError):
        api.run("4G", "touch:1G")  # a workload, not a list of them
    with pytest.raises(api.ConfigError):
        api.run("4G", ["touch:1G"], watchdog_thresh=float("nan"))
    with pytest.raises(api.GuestFailure) as e:
        api.boot("67000M", kernel="6.12")
    assert e.value.as_dict()["rule"] == "table-reservation"


def test_sweep_results_as_records_and_as_a_dataframe(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    small, failing = sweep_files(tmp_path)
    raw = run_rows(small)
    runs = api.read_sweep(small)
    assert [r.key for r in runs] == [r["key"] for r in raw]
    assert {r.policy for r in runs} == {"lazy", "eager"}
    df = api.sweep_frame(small, failing)
    assert list(df.columns) == list(api.FRAME_COLUMNS)
    assert len(df) == len(raw) + len(run_rows(failing))
    assert df["ok"].sum() == len(df) - 1 and df.loc[~df["ok"], "failure_kind"].item() == "SafetyViolation"
    # A notebook's first question, answered from the frame and by hand from the raw rows.
    medians = df[df["ok"]].groupby(["profile", "policy"])["boot_s"].median()
    for (profile, policy), value in medians.items():
        mine = sorted(r["boot_s"] for r in raw + run_rows(failing)
                      if r["ok"] and r["profile"]["ref"] == profile and r["point"].get("policy", "lazy") == policy)
        mid = len(mine) // 2
        assert value == pytest.approx(mine[mid] if len(mine) % 2 else (mine[mid - 1] + mine[mid]) / 2)
    assert isinstance(df, pandas.DataFrame)


def test_a_policy_the_kernel_does_not_ship_keeps_its_name(tmp_path: Path) -> None:
    small, _ = sweep_files(tmp_path)
    rows = run_rows(small)[:1]
    rows[0]["point"]["policy"] = "background:threads=1,rate=2G"  # the config says lazy: accept_memory=
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run,) = api.read_sweep(path)
    assert run.policy == "background:threads=1,rate=2G"


def test_every_public_function_and_record_is_typed() -> None:
    for name in api.__all__:
        obj = getattr(api, name)
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)  # annotations as written (pandas may not be installed)
            assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), name
            assert sig.return_annotation is not inspect.Signature.empty, name
            assert obj.__doc__, name
        elif is_dataclass(obj):
            assert all(f.type for f in fields(obj)), name
            assert obj.__dataclass_params__.frozen, name  # type: ignore[attr-defined]


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    import re

    pytest.importorskip("pandas")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## A library as well", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    small, _ = sweep_files(tmp_path)
    (tmp_path / "fleet.jsonl").write_bytes(small.read_bytes())  # the results file the example names
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\d+\.\d\d s to shell, longest phase [\w-]+", out[0])
    seed = api.compare(["4G", "64G"], profile="tdx-seed")
    assert out[1] == str([f"{r.speedup:.2f}x" for r in seed.rows])
    # The README's own compare table says the same speed-ups for tdx-seed.
    table = readme.split("profile tdx-seed (TDX)", 1)[1].split("profile tdx (TDX)", 1)[0]
    assert re.findall(r"(\d+\.\d\d)x", table) == [s.removesuffix("x") for s in eval(out[1])]
    assert any("tdx" in line and "eager" in line for line in out[2:])  # the medians by profile and policy
