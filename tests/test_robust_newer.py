"""Hostile inputs against the newer commands (sweep, report, status, advise, calibrate) and the
options every command shares: each case names the error it must give, and a case that opens a
FIFO or a device, or sends a signal, runs in a subprocess with a timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli
from fleet_helpers import run_rows
from lazyaccept.base.errors import ConfigError

SRC = str(Path(__file__).resolve().parent.parent / "src")
LOGS = Path(__file__).resolve().parent / "data" / "real-logs"
LOG = str(LOGS / "tdx_guest_e820_intel_tdx-tools_issue524.txt")
OVMF = "/usr/share/OVMF/OVMF_CODE.fd"
ONE_RUN = '[dimensions]\nmemory = ["1G"]\n'
TWO_RUNS = '[dimensions]\nmemory = ["1G", "2G"]\n'


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _sub(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazyaccept", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), stdin=subprocess.DEVNULL)


def _one_error(code: int, err: str, needle: str, status: int = 2) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert code == status, (code, err)
    assert len(lines) == 1 and lines[0].startswith("lazyaccept: error: "), err
    assert needle in lines[0], (needle, lines[0])


def _sweep(tmp: Path, grid: str = ONE_RUN, name: str = "r.jsonl") -> Path:
    g, out = tmp / "g.toml", tmp / name
    g.write_text(grid)
    r = run_cli("sweep", str(g), "--out", str(out), "--jobs", "1")
    assert r.code == 0, r.err
    return out


# -- results rows, at the reading edge (report and sweep --resume) --------------------------------

def _good_row(tmp: Path) -> dict:
    return run_rows(_sweep(tmp))[0]


def _bad_rows(row: dict) -> list[tuple[str, str, str]]:
    """(what, the line, the error it must give)."""
    no_point = {k: v for k, v in row.items() if k != "point"}
    return [
        ("missing key", json.dumps(no_point), "a run without 'point'"),
        ("wrong type", json.dumps(row | {"ok": "yes"}), "whose 'ok' is not"),
        ("config not an object", json.dumps(row | {"config": 7}), "whose 'config' is not"),
        ("NaN", json.dumps(row | {"boot_s": float("nan")}), "is not JSON"),
        ("Infinity", json.dumps(row).replace('"boot_s":', '"boot_s": 1e999, "x":', 1), "non-finite number"),
        ("negative time", json.dumps(row | {"boot_s": -1.0}), "whose 'boot_s' is not"),
        ("lone surrogate", json.dumps(row | {"failure_kind": "\ud800"}), "lone surrogate"),
        ("deep nesting", '{"kind": "run", "key": "k", "point": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "nested"),
        ("5,000-digit integer", json.dumps(row).replace('"exits":', '"exits": ' + "9" * 5000 + ', "y":', 1),
         "is not JSON"),
        ("ok without figures", json.dumps(row | {"boot_s": None}), "a successful run without 'boot_s'"),
        ("failed without reason", json.dumps(row | {"ok": False, "failure": None}), "without its failure"),
    ]


def test_report_checks_every_row_and_names_file_and_line(tmp_path: Path) -> None:
    row = _good_row(tmp_path)
    for what, line, needle in _bad_rows(row):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(row) + "\n" + line + "\n")
        r = run_cli("report", str(bad), "--out", str(tmp_path / "page.html"))
        _one_error(r.code, r.err, needle)
        assert f"{bad}: line 2" in r.err, (what, r.err)
        assert not (tmp_path / "page.html").exists(), what


def test_resume_checks_every_row_too(tmp_path: Path) -> None:
    out = _sweep(tmp_path, TWO_RUNS)
    lines = out.read_text().splitlines()
    bad = json.loads(lines[-1]) | {"accepted_by": "lots"}
    out.write_text("\n".join(lines[:-1] + [json.dumps(bad)]) + "\n")
    before = out.read_bytes()
    r = run_cli("sweep", str(tmp_path / "g.toml"), "--out", str(out), "--jobs", "1", "--resume")
    _one_error(r.code, r.err, f"line {len(lines)}: a run whose 'accepted_by' is not")
    assert out.read_bytes() == before  # nothing appended to a file it cannot read


def test_report_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    out = _sweep(tmp_path)
    before = out.read_bytes()
    r = run_cli("report", str(out), "--out", str(out))
    _one_error(r.code, r.err, "an input")
    assert out.read_bytes() == before
    link = tmp_path / "same.jsonl"
    os.link(out, link)  # the same file by another name
    r = run_cli("report", str(out), "--out", str(link))
    _one_error(r.code, r.err, "an input")
    assert out.read_bytes() == before


def test_report_out_dash_is_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _sweep(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = run_cli("report", str(out), "--out", "-")
    assert r.code == 0, r.err
    assert r.out.startswith("<!DOCTYPE html>") and r.out.rstrip().endswith("</html>")
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("device,needle", [("/dev/zero", "character device"), ("{fifo}", "FIFO")])
def test_report_reads_only_regular_files(tmp_path: Path, device: str, needle: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    r = _sub("report", device.format(fifo=tmp_path / "fifo"), "--out", str(tmp_path / "p.html"), timeout=30)
    _one_error(r.returncode, r.stderr, needle)


# -- sweep: inputs checked as boot checks them, limits before work ------------------------------

@pytest.mark.parametrize("profile,needle", [("/dev/zero", "character device"), ("{fifo}", "FIFO"),
                                            ("{huge}", "limit for profiles")])
def test_sweep_reads_profiles_as_boot_does(tmp_path: Path, profile: str, needle: str) -> None:
    os.mkfifo(tmp_path / "fifo.toml")
    with open(tmp_path / "huge.toml", "wb") as fh:
        fh.truncate(8 << 20)
    ref = profile.format(fifo=tmp_path / "fifo.toml", huge=tmp_path / "huge.toml")
    (tmp_path / "g.toml").write_text(ONE_RUN + f'profile = ["{ref}"]\n')
    r = _sub("sweep", str(tmp_path / "g.toml"), "--out", str(tmp_path / "r.jsonl"), "--jobs", "1", timeout=30)
    _one_error(r.returncode, r.stderr, needle)
    assert not (tmp_path / "r.jsonl").exists()


GRIDS = [
    # A range of fifty million vCPUs took 44 s and 3.5 GB before the run-count limit saw it.
    ('[dimensions]\nmemory = ["1G"]\nvcpus = { from = 1, to = 50000000 }', "more runs than the 1,000,000"),
    # times barely above 1 never reached `to` in reasonable time.
    ('[dimensions]\nmemory = { from = "1G", to = "1T", times = 1.000000001 }', "more runs than the 1,000,000"),
    ('[dimensions]\nmemory = ["1G"]\nvcpus = { from = 1, to = 4, count = 100000000 }', "more runs than"),
    ('[dimensions]\nmemory = ["1G"]\nvcpus = { from = 0, to = 8, count = 4 }', "must start above 0"),
    ('[dimensions]\nmemory = ["1G"]\nvcpus = { from = 0, to = 8, times = 2 }', "must start above 0"),
    ('[dimensions]\nmemory = ["1G"]\nvcpus = { from = 1, to = 8, times = nan }', "finite number above 1"),
    ('[dimensions]\nmemory = ["1G"]\nvcpus = { from = 1, to = 8, times = inf }', "finite number above 1"),
    ('[dimensions]\nmemory = ["1G"]\nvcpus = [' + "9" * 5000 + "]", "not a TOML grid"),
    ("[dimensions]\nmemory = " + "[" * 5000 + "]" * 5000, "not a TOML grid: nested too deeply"),
]


@pytest.mark.parametrize("text,needle", GRIDS, ids=[n for _, n in GRIDS])
def test_bad_grids_are_refused_before_any_work(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "g.toml").write_text(text)
    started = time.monotonic()
    r = run_cli("sweep", str(tmp_path / "g.toml"), "--out", str(tmp_path / "r.jsonl"), "--jobs", "1")
    _one_error(r.code, r.err, needle)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "r.jsonl").exists()


def test_a_bad_firmware_image_is_bad_input_not_failed_rows(tmp_path: Path) -> None:
    (tmp_path / "junk.fd").write_bytes(b"\xff" * 65536)
    (tmp_path / "g.toml").write_text(ONE_RUN + f'[fixed]\nfirmware = "{tmp_path / "junk.fd"}"\n')
    r = run_cli("sweep", str(tmp_path / "g.toml"), "--out", str(tmp_path / "r.jsonl"), "--jobs", "1")
    _one_error(r.code, r.err, f"{tmp_path / 'junk.fd'}: no OVMF GUIDed table footer")
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("args,needle", [
    (["--jobs", "100000"], "--jobs"),
    (["--jobs", "0"], "--jobs"),
])
def test_sweep_options_have_bounds(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "g.toml").write_text(ONE_RUN)
    r = run_cli("sweep", str(tmp_path / "g.toml"), "--out", str(tmp_path / "r.jsonl"), *args)
    _one_error(r.code, r.err, needle)
    assert "256" in r.err or "0" in args


def test_sweep_out_dash_is_refused_not_a_file_named_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "g.toml").write_text(ONE_RUN)
    monkeypatch.chdir(tmp_path)
    r = run_cli("sweep", str(tmp_path / "g.toml"), "--out", "-", "--jobs", "1")
    _one_error(r.code, r.err, "a sweep's results go to a file")
    assert not (tmp_path / "-").exists()


def test_a_second_sweep_on_a_locked_file_is_refused(tmp_path: Path) -> None:
    from lazyaccept.sim.fleet.results import ResultsWriter

    out = _sweep(tmp_path, TWO_RUNS)
    before = out.read_bytes()
    with ResultsWriter(out, resume=True):  # another sweep holds the file
        r = run_cli("sweep", str(tmp_path / "g.toml"), "--out", str(out), "--jobs", "1", "--resume")
    _one_error(r.code, r.err, "another sweep is writing to it")
    assert out.read_bytes() == before


def test_two_resumes_at_once_give_each_run_once(tmp_path: Path) -> None:
    g, out = tmp_path / "g.toml", tmp_path / "r.jsonl"
    g.write_text('[dimensions]\nmemory = ["1G", "2G", "3G", "4G", "5G", "6G"]\nvcpus = [1, 2]\n')
    procs = [subprocess.Popen([sys.executable, "-m", "lazyaccept", "sweep", str(g), "--out", str(out), "--jobs", "1",
                               "--resume"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert sorted(code for _, _, code in results)[0] == 0, results
    for _, err, code in results:
        assert code == 0 or "another sweep is writing to it" in err, err
    rows = run_rows(out)
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12


def test_resume_refuses_another_grids_file(tmp_path: Path) -> None:
    out = _sweep(tmp_path, TWO_RUNS)
    before = out.read_bytes()
    other = tmp_path / "other.toml"
    other.write_text('[dimensions]\nmemory = ["8G"]\n')
    r = run_cli("sweep", str(other), "--out", str(out), "--jobs", "1", "--resume")
    _one_error(r.code, r.err, "another grid's")
    assert out.read_bytes() == before


def test_run_sweep_refuses_foreign_runs_in_process(tmp_path: Path) -> None:
    import tomllib

    from lazyaccept.sim.fleet.driver import plan_sweep, run_sweep
    from lazyaccept.sim.fleet.executors import InlineExecutor
    from lazyaccept.sim.fleet.grid import parse_grid

    out = _sweep(tmp_path, TWO_RUNS)
    plan = plan_sweep(parse_grid(tomllib.loads('[dimensions]\nmemory = ["8G"]\n')))
    with pytest.raises(ConfigError, match="holds 2 run"):
        run_sweep(plan, out, InlineExecutor(), resume=True)


# -- no process outlives a sweep ------------------------------------------------------------------

def _group(pgid: int) -> list[int]:
    """Processes still in the process group ``pgid`` (the sweep's session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_pool_sweep_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    g, out = tmp_path / "g.toml", tmp_path / "r.jsonl"
    g.write_text('[dimensions]\nmemory = { from = "1G", to = "64G", step = "1G" }\nvcpus = [1, 2, 4, 8]\n')
    proc = subprocess.Popen([sys.executable, "-m", "lazyaccept", "sweep", str(g), "--out", str(out), "--jobs", "2"],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not run_rows(out):
            time.sleep(0.2)  # the pool runs: its workers and resource tracker are up
        assert run_rows(out), "the sweep never wrote a row"
        assert len(_group(proc.pid)) >= 3  # the sweep, the fork server, workers
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while _group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _group(proc.pid) == []
        if sig == signal.SIGTERM:
            assert proc.returncode == 128 + signal.SIGTERM
            assert b"terminated; the runs done are in" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        for pid in _group(proc.pid):
            os.kill(pid, signal.SIGKILL)
    rows = run_rows(out)
    assert len({r["key"] for r in rows}) == len(rows)  # whole lines only, each run once


# -- status ---------------------------------------------------------------------------------------

def _tree(tmp: Path, meminfo: str | None) -> Path:
    (tmp / "proc").mkdir()
    (tmp / "dev").mkdir()
    if meminfo is not None:
        (tmp / "proc" / "meminfo").write_text(meminfo)
    return tmp


def test_status_without_meminfo_is_a_document_not_a_traceback(tmp_path: Path) -> None:
    root = _tree(tmp_path, None)
    r = run_cli("status", "--root", str(root), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["samples"] == []
    assert any("meminfo" in n for n in doc["notes"])


def test_status_names_the_file_it_cannot_parse(tmp_path: Path) -> None:
    root = _tree(tmp_path, "hello\n")
    r = run_cli("status", "--root", str(root))
    _one_error(r.code, r.err, f"{root}/proc/meminfo: meminfo: line 1")


def test_status_does_not_read_a_dev_kmsg_that_is_another_device(tmp_path: Path) -> None:
    root = _tree(tmp_path, "MemTotal: 100 kB\n")
    (root / "dev" / "kmsg").symlink_to("/dev/urandom")
    started = time.monotonic()
    r = _sub("status", "--root", str(root), "--json", timeout=30)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 20
    notes = json.loads(r.stdout)["notes"]
    assert any("but not /dev/kmsg" in n for n in notes), notes


def test_status_watch_on_a_tree_that_stands_still_ends_and_says_why(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import lazyaccept.commands.status as status_cmd

    root = _tree(tmp_path, "MemTotal: 100 kB\nUnaccepted: 40 kB\n")
    clock = {"t": 0.0}
    sleeps = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock["t"] += s
        assert len(sleeps) < 1000, "never stopped watching"

    monkeypatch.setattr(status_cmd, "_sleep", sleep)
    monkeypatch.setattr(status_cmd, "_clock", lambda: clock["t"])
    r = run_cli("status", "--root", str(root), "--watch", "1", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert len(doc["samples"]) == status_cmd.STILL_SAMPLES + 1
    assert any("did not change in 30 samples" in n for n in doc["notes"]), doc["notes"]


# -- float options, limits, Ctrl-C ----------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["run", "--memory", "4G", "--watchdog-thresh", "nan"], "'nan' is not a finite number"),
    (["run", "--memory", "4G", "--watchdog-thresh", "inf"], "'inf' is not a finite number"),
    (["compare", "--memory", "4G", "--workload", "touch:1G", "--watchdog-thresh", "NaN"], "not a finite number"),
    (["advise", "--memory", "4G", "--boot-deadline", "nan"], "'nan' is not a finite number"),
    (["advise", "--memory", "4G", "--boot-deadline", "-inf"], "not a finite number"),
])
def test_float_options_refuse_nan_and_infinities(args: list[str], needle: str) -> None:
    r = run_cli(*args)
    _one_error(r.code, r.err, needle)


def test_advise_checks_its_limits_before_working() -> None:
    started = time.monotonic()
    r = run_cli("advise", "--memory", "64T", "--vcpus", "4096")
    _one_error(r.code, r.err, "at most 1 TiB and 512 vCPUs")
    assert time.monotonic() - started < 5


CALIBRATION_HEAD = ("id,platform,profile,metric,memory_gib,vcpus,host_private_mapping,kernel,firmware_accept,kconfig,"
                    "patches,workload,eager_s,lazy_s,ratio_eager_over_lazy,value,unit,source,note")


@pytest.mark.parametrize("row,needle", [
    ("x,tdx,tdx-fast,boot_to_shell,1e308,,,6.5,256M,,,,,,2.5,,,s,n", "memory_gib '1e308' is outside"),
    ("x,tdx,tdx-fast,boot_to_shell,1e-320,,,6.5,256M,,,,,,2.5,,,s,n", "memory_gib '1e-320' is outside"),
    ("x,tdx,tdx-fast,boot_to_shell,4,,,6.5,256M,,,,,,1e308,,,s,n", "ratio_eager_over_lazy '1e308' is outside"),
    ("x,tdx,tdx-fast,boot_to_shell,4,,,6.5,256M,,,,,,2.5,,," + "a" * 140_000 + ",n", "line 2: not a calibration table"),
])
def test_calibration_rows_past_the_parsers_limits(tmp_path: Path, row: str, needle: str) -> None:
    data = tmp_path / "c.csv"
    data.write_text(CALIBRATION_HEAD + "\n" + row + "\n")
    r = run_cli("calibrate", "--data", str(data), "--profile", "tdx-fast")
    _one_error(r.code, r.err, needle)
    assert str(data) in r.err


def test_a_profile_nested_too_deeply(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    r = run_cli("boot", "--memory", "4G", "--profile", str(deep))
    _one_error(r.code, r.err, f"{deep}: not valid TOML: nested too deeply")


def test_ctrl_c_while_the_program_imports_is_one_line(tmp_path: Path) -> None:
    # The import of the commands is held up; SIGINT arrives in the middle of it.
    script = textwrap.dedent(
        """
        import importlib.abc, signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)

        class Slow(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "lazyaccept.commands.boot":
                    print("READY", file=sys.stderr, flush=True)
                    time.sleep(60)
                return None

        sys.meta_path.insert(0, Slow())
        from lazyaccept.cli import main
        main(["boot", "--memory", "4G"])
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env(), text=True)
    assert proc.stderr is not None
    assert proc.stderr.readline().strip() == "READY"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["lazyaccept: interrupted"]


# -- `-` is standard output everywhere; requests are never dropped --------------------------------

@pytest.mark.parametrize("args", [
    ["boot", "--memory", "1G", "--html", "-"],
    ["run", "--memory", "1G", "--html", "-"],
    ["compare", "--memory", "1G", "--html", "-"],
])
def test_html_dash_is_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_cli(*args)
    assert r.code == 0, r.err
    assert r.out.startswith("<!DOCTYPE html>") and r.out.rstrip().endswith("</html>")
    assert not (tmp_path / "-").exists()


def test_html_dash_and_json_both_on_stdout_are_refused() -> None:
    r = run_cli("boot", "--memory", "1G", "--html", "-", "--json")
    _one_error(r.code, r.err, "both write to standard output")


def test_compare_policies_with_html_is_refused_not_dropped(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    r = run_cli("compare", "--memory", "1G", "--policy", "lazy", "--policy", "eager", "--html", str(page))
    _one_error(r.code, r.err, "--html is not written for a policy comparison")
    assert not page.exists()


def test_advise_starts_from_the_firmware_accept_it_is_given_and_keeps_it_when_fixed() -> None:
    r = run_cli("advise", "--memory", "8G", "--firmware-accept", "all", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["baseline"]["firmware_accept"] == "all"
    assert "below-4g" in {c["firmware_accept"] for c in doc["candidates"]}
    r = run_cli("advise", "--memory", "8G", "--firmware-accept", "all", "--fixed", "firmware-accept", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {c["firmware_accept"] for c in doc["candidates"]} == {"all"}


def test_compare_like_with_policies_keeps_the_provenance() -> None:
    r = run_cli("compare", "--like", LOG, "--policy", "lazy", "--policy", "eager", "--json")
    assert r.code == 0, r.err
    like = json.loads(r.out)["like"]
    # The log is an 8 GiB guest (RAM ends at 0x280000000, 2 GiB of it below 4 GiB): see test_like.py.
    assert any(t["field"] == "memory" for t in like["taken"]), like
    r = run_cli("compare", "--like", LOG, "--policy", "lazy", "--policy", "eager")
    assert r.code == 0 and "Guest like" in r.out


def test_boot_like_html_has_the_provenance_and_milestones(tmp_path: Path) -> None:
    page = tmp_path / "b.html"
    r = run_cli("boot", "--like", LOG, "--html", str(page))
    assert r.code == 0, r.err
    html = page.read_text()
    assert 'id="like"' in html and 'id="milestones"' in html
    assert "BIOS-e820" in html  # where the memory size came from


def test_compare_takes_every_boot_option() -> None:
    base = ["compare", "--memory", "16G", "--platform", "snp", "--json"]
    plain = json.loads(run_cli(*base).out)["comparisons"][0]["rows"][0]
    prefault = json.loads(run_cli(*base, "--snp-prefault").out)["comparisons"][0]["rows"][0]
    # Pre-faulting removes one nested page fault per page validated: eager boots faster.
    assert prefault["eager_s"] < plain["eager_s"]
    bigger = json.loads(run_cli(*base, "--shell-footprint", "2G").out)["comparisons"][0]["rows"][0]
    assert bigger["lazy_s"] > plain["lazy_s"]  # more memory touched (and accepted) before the shell
    # An SEV-SNP guest takes the image's own acceptance (Debian's OVMF accepts everything for SNP).
    r = run_cli("compare", "--memory", "4G", "--platform", "snp", "--firmware", OVMF, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["comparisons"][0]["firmware_accept"] == "all"


def test_written_files_are_confirmed_in_one_wording(tmp_path: Path) -> None:
    outs = {
        "boot": run_cli("boot", "--memory", "1G", "--html", str(tmp_path / "b.html")).out,
        "run": run_cli("run", "--memory", "1G", "--html", str(tmp_path / "r.html")).out,
        "compare": run_cli("compare", "--memory", "1G", "--html", str(tmp_path / "c.html")).out,
    }
    for name, out in outs.items():
        assert f"wrote {tmp_path / name[0]}.html" in out, (name, out[-300:])


def test_calibrate_help_lists_every_shipped_profile() -> None:
    from lazyaccept.sim.profile import packaged_profiles

    text = " ".join(run_cli("calibrate", "--help").out.split())
    for name in packaged_profiles():
        assert name in text, name
    assert len(packaged_profiles()) == 5  # tdx, tdx-seed, tdx-fast, tdx-lkvs, snp (README, Profiles)


def test_a_profile_file_named_with_dollars_is_text_not_maths_in_the_report(tmp_path: Path) -> None:
    """matplotlib reads ``$...$`` as mathtext: a profile called ``p$^_$`` made the report crash.
    Names from the user's files are escaped where they become figure text."""
    prof = tmp_path / "p$^_$.toml"
    prof.write_text((Path(SRC) / "lazyaccept" / "profiles" / "tdx-fast.toml").read_text())
    (tmp_path / "g.toml").write_text(f'[dimensions]\nmemory = ["1G", "2G"]\nprofile = ["tdx", "{prof}"]\n')
    r = run_cli("sweep", str(tmp_path / "g.toml"), "--out", str(tmp_path / "r.jsonl"), "--jobs", "1")
    assert r.code == 0, r.err
    r = run_cli("report", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "r.html"))
    assert r.code == 0, r.err
    assert "p$^_$" in (tmp_path / "r.html").read_text()
