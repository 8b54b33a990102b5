"""Make the screenshots of docs/sweeps.md: the example fleet swept, reported, and shown in headless Chromium.

    python docs/screenshots.py          # needs selenium, Debian's chromium and chromium-driver

Writes docs/sweep-report.png (the top of the report) and docs/sweep-report-table.png (the run
table after a click on "boot (s)", twice: slowest first).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as tmp:
        results, page = Path(tmp) / "fleet.jsonl", Path(tmp) / "fleet.html"
        lazyaccept = [sys.executable, "-m", "lazyaccept"]
        # Run in the temporary folder with relative names: the report shows the names it was given.
        grid = (DOCS.parent / "examples" / "fleet.toml").resolve()
        subprocess.run([*lazyaccept, "sweep", str(grid), "--out", results.name], check=True, cwd=tmp)
        subprocess.run([*lazyaccept, "report", results.name, "--out", page.name], check=True, cwd=tmp)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in [*FLAGS, f"--user-data-dir={tmp}/profile"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.set_window_size(1280, 1000)
            driver.get(page.as_uri())
            driver.save_screenshot(str(DOCS / "sweep-report.png"))
            th = next(h for h in driver.find_elements("css selector", "#t-runs thead th") if h.text == "boot (s)")
            th.click()
            th.click()
            driver.execute_script("document.getElementById('runs').scrollIntoView()")
            driver.save_screenshot(str(DOCS / "sweep-report-table.png"))
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
