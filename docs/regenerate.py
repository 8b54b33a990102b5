"""Regenerate everything in the docs that the code produces, from the current code.

    python docs/regenerate.py                   # examples, figures and screenshots
    python docs/regenerate.py --no-screenshots  # without Chromium: examples and figures
    python docs/regenerate.py --check           # only say which examples drifted (exit 1 if any)

What it makes:

* every command example (``$ lazyaccept ...`` blocks, see ``docs/doc_examples.py``) in
  README.md and docs/*.md: each is run at a fixed width and its output written back in place;
* ``docs/policies.png``: the README's ``compare --policy ... --plot policies.png``, as run there;
* ``docs/sweep-report.png`` (the top of the report of ``examples/fleet.toml``) and
  ``docs/sweep-report-table.png`` (its run table after two clicks on the boot column: slowest first),
  in headless Chromium through Selenium (Debian: chromium, chromium-driver).

``tests/test_docs_drift.py`` runs the same examples and fails when the docs and the code differ.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import doc_examples  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
#: Images a documented command writes into its folder and the docs show: copied into docs/.
DOC_IMAGES = ("policies.png",)


def examples(check: bool) -> int:
    """Run every example; rewrite the docs (or, with ``check``, only report).  Returns the
    number of examples that drifted."""
    drifted = 0
    with tempfile.TemporaryDirectory() as tmp:
        cwd = doc_examples.scratch(Path(tmp))
        by_file: dict[Path, list[tuple[doc_examples.Example, str]]] = {}
        for ex in doc_examples.examples():
            ran = doc_examples.run_example(ex, cwd)
            diffs = doc_examples.drift(ex, ran)
            if diffs:
                drifted += 1
                print(f"{ex.ident}: drifted", file=sys.stderr)
                if check:
                    print("\n".join(diffs), file=sys.stderr)
            by_file.setdefault(ex.path, []).append((ex, doc_examples.rendered(ex, ran)))
        if not check:
            for path, blocks in by_file.items():
                text = path.read_text(encoding="utf-8")
                for ex, body in sorted(blocks, key=lambda b: -b[0].start):  # from the end: offsets stay valid
                    text = text[: ex.start] + body + text[ex.end:]
                path.write_text(text, encoding="utf-8")
            for name in DOC_IMAGES:
                made = Path(tmp) / name
                if made.is_file():
                    shutil.copyfile(made, DOCS / name)
                    print(f"wrote docs/{name}")
    return drifted


def screenshots() -> None:
    """The sweep report of the example fleet, in headless Chromium."""
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
            heads = driver.find_elements("css selector", "#t-runs thead th")
            th = next(h for h in heads if h.text == "boot (s, one-sigma range)")
            th.click()
            th.click()
            driver.execute_script("document.getElementById('runs').scrollIntoView()")
            driver.save_screenshot(str(DOCS / "sweep-report-table.png"))
        finally:
            driver.quit()
    print("wrote docs/sweep-report.png, docs/sweep-report-table.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true", help="only report drifted examples; exit 1 if any")
    what.add_argument("--no-screenshots", action="store_true", help="leave the Chromium screenshots alone")
    args = parser.parse_args()
    if args.check:
        return 1 if examples(check=True) else 0
    n = examples(check=False)
    print(f"{n} example(s) rewritten" if n else "every example already matched the code")
    if not args.no_screenshots:
        screenshots()
    return 0


if __name__ == "__main__":
    sys.exit(main())
