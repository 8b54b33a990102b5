"""The reports in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium.  The page loads with no console error and no request, every plot paints a
non-blank area, the run table sorts by a click, and a screenshot is saved.

Skips when Chromium, its driver or Selenium is missing; under CI=true it fails instead.  Set
LAZYACCEPT_SCREENSHOTS=DIR to keep the screenshots (they go to the test's temporary folder).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_helpers import need, need_module, sweep_files
from lazyaccept.presentation.sweep_report import sweep_report
from lazyaccept.sim.fleet.results import read_results

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = Path(__file__).parents[1]
#: Flags headless Chromium needs as root in a container, and no traffic of its own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[object]:
    need("Chromium (Debian package chromium)", Path(CHROMIUM).is_file())
    need("chromedriver (Debian package chromium-driver)", Path(CHROMEDRIVER).is_file())
    need_module("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    # Nothing was fetched: no script, style sheet, font, image or favicon from anywhere.
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0


def check_plots_painted(driver, expected: int) -> None:
    import numpy as np
    from PIL import Image

    svgs = driver.find_elements("css selector", "figure svg")
    assert len(svgs) == expected
    for svg in svgs:
        driver.execute_script("arguments[0].scrollIntoView()", svg)
        size = svg.size
        assert size["width"] > 300 and size["height"] > 150, (svg.get_attribute("id"), size)
        rgb = np.asarray(Image.open(io.BytesIO(svg.screenshot_as_png)).convert("RGB")).reshape(-1, 3).astype(int)
        inked = float(np.mean(rgb.sum(axis=1) < 3 * 235))
        colours = len(np.unique(rgb, axis=0))
        # Axes, ticks, text and curves: a few percent of the area is ink, in many colours.
        assert inked > 0.02 and colours > 20, (svg.get_attribute("id"), inked, colours)


def column(driver, table_id: str, index: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows)"
        ".map(r => r.cells[arguments[1]].dataset.sort ?? r.cells[arguments[1]].textContent.trim())",
        table_id, index)


def header(driver, table_id: str, text: str):
    heads = driver.find_elements("css selector", f"#{table_id} thead th")
    names = [h.text.strip() for h in heads]
    return heads[names.index(text)], names.index(text)


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    driver.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000  # a page with plots, not a blank viewport
    keep = os.environ.get("LAZYACCEPT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / name)
    return shot


@pytest.mark.slow
def test_sweep_report_in_chromium(browser, tmp_path):
    files = sweep_files(tmp_path)[:1]  # one grid per report
    results = read_results(files)
    # One run failed (as a failing run is written): it sorts last.
    failed = next(iter(results.runs.values()))
    failed.update(ok=False, boot_s=None, failure="the model's reason", failure_kind="BootFailure")
    page = tmp_path / "report.html"
    page.write_text(sweep_report(results, [f.name for f in files]))
    open_page(browser, page)
    check_plots_painted(browser, 5)

    runs = list(results.runs.values())
    th, col = header(browser, "t-runs", "boot (s, one-sigma range)")
    th.click()
    assert th.get_attribute("aria-sort") == "ascending"
    values = column(browser, "t-runs", col)
    expected = sorted(round(r["boot_s"], 6) for r in runs if r["ok"])
    assert [float(v) for v in values[: len(expected)]] == expected
    assert values[len(expected):] == [""]  # the failed run has no boot time: last
    th.click()
    assert th.get_attribute("aria-sort") == "descending"
    assert [float(v) for v in column(browser, "t-runs", col)[: len(expected)]] == expected[::-1]

    th, col = header(browser, "t-runs", "memory")
    th.click()  # sizes sort by bytes ("16 GiB" after "4 GiB"), not as text
    assert [int(v) for v in column(browser, "t-runs", col)] == sorted(r["config"]["memory_bytes"] for r in runs)
    th, col = header(browser, "t-runs", "policy")
    th.click()
    assert column(browser, "t-runs", col) == sorted(r["config"]["policy"] for r in runs)
    save_screenshot(browser, tmp_path, "sweep-report.png")


def test_the_plot_check_fails_on_a_blank_plot(browser, tmp_path):
    page = tmp_path / "blank.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"><style>figure svg {width: 800px}'
                    '</style></head><body><figure><svg viewBox="0 0 800 400" xmlns="http://www.w3.org/2000/svg">'
                    '<rect width="800" height="400" fill="white"/></svg></figure></body></html>')
    open_page(browser, page)
    with pytest.raises(AssertionError):
        check_plots_painted(browser, 1)


@pytest.mark.slow
def test_boot_and_compare_pages_in_chromium(browser, tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    for name, args in (("boot", ["boot", "--memory", "16G", "--vcpus", "4"]),
                       ("compare", ["compare", "--memory", "4G", "--memory", "64G"])):
        page = tmp_path / f"{name}.html"
        r = subprocess.run([sys.executable, "-m", "lazyaccept", *args, "--html", str(page)], capture_output=True,
                           text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        open_page(browser, page)
        check_plots_painted(browser, 1)
        save_screenshot(browser, tmp_path, f"{name}-report.png")
