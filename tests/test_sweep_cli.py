"""``lazyaccept sweep`` and ``report`` on the command line: bad input is one line and exit 2
before any run; the shipped example grids are valid; --resume continues a file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fleet_helpers import need, run_rows
from lazyaccept.sim.fleet.grid import load_grid

ROOT = Path(__file__).parents[1]
GOOD = '[dimensions]\nmemory = ["1G", "2G"]\npolicy = ["lazy", "eager"]\n'


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazyaccept", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


BAD = [
    ('[dimensions]\nmemory = ["1G"]\nworkload = ["redis"]', "unknown workload"),
    ('[dimensions]\nmemory = ["1G"]\nflavour = ["x"]', "unknown dimension 'flavour'"),
    ('[dimensions]\nmemory = ["1G"]\nprofile = ["tdx", "nosuch"]', "profile 'nosuch': no profile named 'nosuch'"),
    ('[dimensions]\nmemory = ["1G", "loads"]', "memory: not a size: 'loads'"),
    ('[dimensions]\nmemory = ["1G", "100M"]', "run memory=100 MiB, profile=tdx: memory must be between 512 MiB"),
    ('[dimensions]\nmemory = ["1G"\n', "not a TOML grid"),
    ('[dimensions]\nmemory = ["1G"]\n[fixed]\nprofile = "snp"\nfirmware = "/usr/share/OVMF/OVMF_CODE_4M.fd"',
     "OVMF_CODE_4M.fd cannot launch on snp"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_grid_is_one_line_exit_2_and_no_results_file(tmp_path, text, message):
    if "OVMF_CODE" in text:
        need("Debian's OVMF (/usr/share/OVMF/OVMF_CODE.fd)", Path("/usr/share/OVMF/OVMF_CODE.fd").is_file())
    grid, out = tmp_path / "g.toml", tmp_path / "out.jsonl"
    grid.write_text(text)
    r = cli("sweep", str(grid), "--out", str(out), "--jobs", "1")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(grid) in lines[0], r.stderr
    assert not out.exists()


def test_sweep_refuses_to_overwrite_and_checks_the_output_folder(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text(GOOD)
    out = tmp_path / "out.jsonl"
    out.write_text("keep\n")
    r = cli("sweep", str(grid), "--out", str(out))
    assert r.returncode == 2 and "exists; --resume continues it" in r.stderr and out.read_text() == "keep\n"
    r = cli("sweep", str(grid), "--out", str(tmp_path / "no" / "out.jsonl"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_sweep_then_resume_then_report(tmp_path):
    grid, out, page = tmp_path / "g.toml", tmp_path / "out.jsonl", tmp_path / "r.html"
    grid.write_text(GOOD)
    r = cli("sweep", str(grid), "--out", str(out), "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("4 runs (4 now on 2 local processes, 0 already there), 0 failed")
    assert len(run_rows(out)) == 4
    grid.write_text(GOOD.replace('"2G"]', '"2G", "3G"]'))  # the grid grows: only the new runs run
    r = cli("sweep", str(grid), "--out", str(out), "--jobs", "1", "--resume")
    assert r.returncode == 0 and r.stdout.startswith("6 runs (2 now on this process, 4 already there)"), r.stdout
    assert sorted(x["point"]["memory"] for x in run_rows(out)) == [2**30] * 2 + [2**31] * 2 + [3 * 2**30] * 2
    r = cli("report", str(out), "--out", str(page))
    assert r.returncode == 0 and r.stdout.strip() == f"wrote {page} (6 runs)"
    assert page.read_text().count("<tr>") >= 6


def test_report_bad_input(tmp_path):
    junk = tmp_path / "junk.jsonl"
    junk.write_text('\nnot json\n')
    r = cli("report", str(junk), "--out", str(tmp_path / "r.html"))
    assert r.returncode == 2 and r.stderr.strip() == f"lazyaccept: error: {junk}: line 2 is not JSON: " \
                                                      "not a lazyaccept results file?"
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"kind": "sweep", "lazyaccept": "0.1.0", "grid": {
        "path": "g.toml", "name": "", "dimensions": {}, "fixed": {}, "exclude": []}}) + "\n")
    r = cli("report", str(empty), "--out", str(tmp_path / "r.html"))
    assert r.returncode == 2 and "no runs to report" in r.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("name", ["fleet.toml", "kernels.toml"])
def test_shipped_example_grids_are_valid_and_their_run_counts_are_as_documented(name):
    path = ROOT / "examples" / name
    g = load_grid(str(path))
    doc = tomllib.loads(path.read_text())
    dims = doc["dimensions"]
    if name == "fleet.toml":
        # 9 sizes (1..256 GiB by doubling) x 7 vCPU counts x 2 profiles x 2 policies x 2 kernels,
        # less the exclusion: 2 sizes x 2 vCPU counts x 2 x 2 x 2.
        expected = 9 * len(dims["vcpus"]) * 2 * 2 * 2 - 2 * 2 * 2 * 2 * 2
        assert expected == 472
    else:
        expected = math.prod(len(v) for v in dims.values())
    assert sum(1 for _ in g.points()) == expected


def test_progress_bar_shows_done_total_failures_and_time_left():
    import io

    from rich.console import Console

    from lazyaccept.commands.sweep import progress_bar

    term = Console(file=io.StringIO(), force_terminal=True, width=120)
    with progress_bar(term) as bar:
        task = bar.add_task("sweep", total=40, failed=0)
        bar.update(task, completed=30, failed=3)
        bar.refresh()
    screen = term.file.getvalue()
    assert "30/40" in screen and "3 failed" in screen and "left" in screen
    pipe = Console(file=io.StringIO(), width=120)  # not a terminal: nothing drawn
    with progress_bar(pipe) as bar:
        bar.update(bar.add_task("sweep", total=4, failed=0), completed=2)
    assert pipe.file.getvalue() == ""
