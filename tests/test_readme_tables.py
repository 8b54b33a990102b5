"""The README's profile, calibration and validation tables are what the shipped profiles give.

``docs/readme_tables.py`` writes them from the profiles, the calibration table and the
validation table; a hand edit of a number, or a profile refitted without regenerating them,
fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_readme_tables_are_generated_from_the_profiles():
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "readme_tables.py"), "--check"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def test_the_check_fails_on_a_hand_edited_number(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import readme_tables
    finally:
        sys.path.pop(0)
    text = "<!-- profiles:begin -->\n| a hand-made row |\n<!-- profiles:end -->\n"
    readme = tmp_path / "README.md"
    readme.write_text(text + "<!-- calibration:begin -->\n<!-- calibration:end -->\n"
                      "<!-- validation:begin -->\n<!-- validation:end -->\n")
    monkeypatch.setattr(readme_tables, "README", readme)
    monkeypatch.setattr(readme_tables, "TABLES", {"profiles": lambda: "| generated |"})
    assert readme_tables.main(["--check"]) == 1
    assert readme_tables.main([]) == 0
    assert "| generated |" in readme.read_text() and "hand-made" not in readme.read_text()
    assert readme_tables.main(["--check"]) == 0
