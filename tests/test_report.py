"""The HTML reports: what the sweep report holds, computed independently from the rows; the
one-page boot and compare reports agree with --json; nothing refers outside the page."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_helpers import run_rows, sweep_files
from lazyaccept import __version__
from lazyaccept.presentation import sweep_figures as sf
from lazyaccept.presentation.html import esc
from lazyaccept.presentation.sweep_report import sweep_report
from lazyaccept.sim.fleet.results import read_results
from lazyaccept.sim.profile import load_profile

ROOT = Path(__file__).parents[1]
#: The only URIs a page may hold: SVG's XML namespaces, which are names, not requests.
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return sweep_files(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def page(files):
    """The small grid's report (one grid per page)."""
    return sweep_report(read_results(files[:1]), [str(files[0])])


@pytest.fixture(scope="module")
def failing_page(files):
    """The failing grid's report: kernel 6.12 fails at 67000M, mainline boots."""
    return sweep_report(read_results(files[1:]), [str(files[1])])


def assert_self_contained(html: str) -> None:
    assert set(re.findall(r"https?://[^\"'\s<>)]+", html)) <= NAMESPACES
    assert not re.search(r"<(script|img|iframe|link)[^>]*\ssrc=", html)
    assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']
    assert "@import" not in html and "url(http" not in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate ids"


def test_report_is_self_contained_with_one_svg_per_plot(page):
    assert_self_contained(page)
    # By dimension (profile, policy), boot vs memory, vCPU scaling, speed-up, committed; no workloads in these runs.
    assert len(re.findall(r"<svg\b", page)) == 5
    assert "No run had a workload" in page
    assert f"lazyaccept {__version__}" in page


def test_every_run_is_a_row_of_the_table(page, failing_page, files):
    body = page.split('<table id="t-runs"', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr>") == 1 + 24  # header + every run
    body = failing_page.split('<table id="t-runs"', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr>") == 1 + 2
    failed = [r for f in files for r in run_rows(f) if not r["ok"]]
    assert len(failed) == 1 and esc(failed[0]["failure"]) in body


def test_key_figures_match_a_hand_computation(files, page):
    rows = run_rows(files[0])
    by_config: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["ok"]:
            ident = json.dumps([{k: v for k, v in r["point"].items() if k != "policy"}, r["profile"]["sha256"]],
                               sort_keys=True)
            by_config.setdefault(ident, {})[r["point"].get("policy", "lazy")] = r["boot_s"]
    ratios = sorted(b["eager"] / b["lazy"] for b in by_config.values() if {"eager", "lazy"} <= b.keys())
    assert len(ratios) == 12  # the small grid's 12 configurations, each booted both ways
    assert f"{ratios[0]:.2f}x to {ratios[-1]:.2f}x" in page
    boots = [r["boot_s"] for r in rows if r["ok"]]
    assert f"{min(boots):.2f} s to {max(boots):.2f} s" in page
    assert "24 (24 reached a shell, 0 failed)" in page


def test_profiles_are_listed_with_their_sources(page):
    for name in ("tdx", "snp"):
        prof = load_profile(name)
        some = next(iter(prof.params.values()))
        assert esc(some.source) in page
        assert esc(prof.description) in page


def test_series_medians_and_bands():
    rows = [{"k": "a", "x": 1, "y": y} for y in (1.0, 5.0, 3.0)] + [{"k": "a", "x": 2, "y": 4.0},
                                                                      {"k": "b", "x": 1, "y": 2.0}]
    out = sf.series(rows, lambda r: r["k"], lambda r: r["x"], lambda r: r["y"])
    assert out == {"a": [(1, 3.0, 1.0, 5.0, 3), (2, 4.0, 4.0, 4.0, 1)], "b": [(1, 2.0, 2.0, 2.0, 1)]}


def _row(policy: str, memory: int, boot: float, vcpus: int = 1, ok: bool = True) -> dict:
    return {"ok": ok, "boot_s": boot if ok else None, "point": {"memory": memory, "vcpus": vcpus, "policy": policy},
            "profile": {"ref": "tdx", "sha256": "x"},
            "config": {"policy": policy, "memory_bytes": memory, "vcpus": vcpus}, "host_committed_bytes": 1}


def test_speedups_pair_lazy_and_eager_of_the_same_configuration():
    rows = [_row("lazy", 1, 2.0), _row("eager", 1, 5.0), _row("lazy", 2, 4.0, vcpus=2), _row("eager", 2, 6.0, vcpus=2),
            _row("eager", 2, 9.0),  # no lazy twin
            _row("lazy", 3, 1.0), _row("eager", 3, 0.0, ok=False)]  # the eager boot failed
    got = sorted(s for _, s in sf.speedups(rows))
    assert got == [1.5, 2.5]


def test_workload_figures_appear_when_runs_carry_workloads(files):
    results = read_results(files[:1])
    for i, r in enumerate(r for r in results.runs.values() if r["ok"]):
        r["workload"] = {"name": "memtouch", "stalls_s": [0.001 * (i % 7 + 1), 0.02], "slowdown": 1.0 + i / 100}
    html = sweep_report(results, ["synthetic"])
    assert len(re.findall(r"<svg\b", html)) == 7
    assert "No run had a workload" not in html
    slow = [r["workload"]["slowdown"] for r in results.runs.values() if "workload" in r]
    assert statistics.median(slow) > 1.0


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazyaccept", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_boot_html_agrees_with_boot_json(tmp_path):
    page = tmp_path / "boot.html"
    args = ["boot", "--memory", "8G", "--vcpus", "2", "--platform", "snp"]
    r = cli(*args, "--html", str(page))
    assert r.returncode == 0 and f"wrote {page}" in r.stdout
    doc = json.loads(cli(*args, "--json").stdout)
    html = page.read_text()
    assert_self_contained(html)
    assert f"{doc['boot_s']:.3f} s" in html and f"{doc['exits']:,}" in html
    assert len(re.findall(r"<svg\b", html)) == 1
    assert html.count('<tr><td>') >= len(doc["phases"])


def test_compare_html_agrees_with_compare_json(tmp_path):
    page = tmp_path / "compare.html"
    args = ["compare", "--memory", "4G", "--memory", "64G"]
    assert cli(*args, "--html", str(page)).returncode == 0
    doc = json.loads(cli(*args, "--json").stdout)
    html = page.read_text()
    assert_self_contained(html)
    for row in doc["comparisons"][0]["rows"]:
        assert f"{row['eager_s']:.3f}" in html and f"{row['speedup']:.2f}x" in html
    assert len(re.findall(r"<svg\b", html)) == 1


def test_html_output_folder_is_checked_before_the_run(tmp_path):
    r = cli("boot", "--memory", "4G", "--html", str(tmp_path / "no" / "b.html"))
    assert r.returncode == 2 and r.stdout == "" and "does not exist" in r.stderr
