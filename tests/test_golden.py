"""The restructuring kept behaviour: 20 boots recorded before it give the same values now.

``tests/data/golden/boot-golden.json`` holds ``boot --json`` of 20 configurations
(both platforms, both policies, 1 GiB to 4 TiB, 1 to 64 vCPUs, kernels 6.5, 6.7 and mainline,
firmware accept below-4g / all / 256M), recorded with the profiles of that time, which are
kept beside it.  Every value recorded then must be found again (new keys are allowed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lazyaccept.cli import cli

GOLDEN = Path(__file__).parent / "data" / "golden"
RUNS = json.loads((GOLDEN / "boot-golden.json").read_text())["runs"]


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Where ``new`` lacks or changes a value of ``old`` (floats to 1e-9 relative)."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [f"{where}: not an object"]
        out = []
        for k, v in old.items():
            if k not in new:
                out.append(f"{where}.{k}: missing")
            else:
                out += _differences(v, new[k], f"{where}.{k}")
        return out
    if isinstance(old, list):
        if not isinstance(new, list) or len(new) != len(old):
            return [f"{where}: list of {len(old)} became {len(new) if isinstance(new, list) else type(new).__name__}"]
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in _differences(a, b, f"{where}[{i}]")]
    if isinstance(old, float) or isinstance(new, float):
        if not math.isclose(float(old), float(new), rel_tol=1e-9, abs_tol=1e-12):
            return [f"{where}: {old!r} became {new!r}"]
        return []
    return [] if old == new else [f"{where}: {old!r} became {new!r}"]


@pytest.mark.parametrize("run", RUNS, ids=[r["name"] for r in RUNS])
def test_boot_gives_the_recorded_values(run: dict[str, Any]) -> None:
    platform = run["args"][run["args"].index("--platform") + 1]
    profile = str(GOLDEN / "profiles" / f"{platform}.toml")
    res = CliRunner().invoke(cli, ["boot", *run["args"], "--profile", profile, "--json"])
    assert res.exit_code == 0, res.output
    diffs = _differences(run["result"], json.loads(res.output))
    assert diffs == []


def test_the_comparison_itself_can_fail() -> None:
    assert _differences({"a": 1.0, "b": [1, 2]}, {"a": 1.0 + 1e-6, "b": [1, 2], "c": 3}) == [".a: 1.0 became 1.000001"]
    assert _differences({"a": {"b": 1}}, {"a": {}}) == [".a.b: missing"]
