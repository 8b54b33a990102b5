"""Helpers of the sweep and report tests."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest


def run_rows(path: str | os.PathLike[str], *, sort: bool = False) -> list[dict[str, Any]]:
    """The run rows of a results file (whole lines only), in file order or by key."""
    text = Path(path).read_text() if Path(path).exists() else ""
    whole = text[: text.rfind("\n") + 1]
    rows = [r for r in (json.loads(x) for x in whole.splitlines() if x.strip()) if r["kind"] == "run"]
    return sorted(rows, key=lambda r: r["key"]) if sort else rows


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def need(what: str, present: bool) -> None:
    """Skip a test whose tool is missing; under CI=true, fail instead (CI installs it)."""
    if present:
        return
    if in_ci():
        pytest.fail(f"{what} is missing, and CI must run this test")
    pytest.skip(f"{what} is not installed")


def need_module(name: str) -> None:
    need(f"the Python package {name}", importlib.util.find_spec(name) is not None)


#: A small fleet: 2 profiles x 2 policies x 3 sizes x 2 vCPU counts = 24 runs, all successful.
SMALL_GRID = """
[sweep]
name = "test fleet"
[dimensions]
memory = ["1G", "4G", "16G"]
vcpus = [1, 4]
profile = ["tdx", "snp"]
policy = ["lazy", "eager"]
"""
#: The 2026 table-reservation fault: 6.12 fails at 67000M with upstream firmware, mainline boots.
FAILING_GRID = """
[dimensions]
kernel = ["6.12", "mainline"]
[fixed]
memory = "67000M"
firmware_accept = "below-4g"
"""


def sweep_files(folder: Path) -> list[Path]:
    """Results of SMALL_GRID and FAILING_GRID, run in this process: 26 runs, 1 failed."""
    import tomllib

    from lazyaccept.sim.fleet.driver import plan_sweep, run_sweep
    from lazyaccept.sim.fleet.executors import InlineExecutor
    from lazyaccept.sim.fleet.grid import parse_grid

    out = []
    for name, text in (("small", SMALL_GRID), ("failing", FAILING_GRID)):
        path = folder / f"{name}.jsonl"
        run_sweep(plan_sweep(parse_grid(tomllib.loads(text), f"{name}.toml")), path, InlineExecutor())
        out.append(path)
    return out
