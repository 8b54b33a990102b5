"""Start-up pays only for what a command uses: ``lazyaccept --help`` imports no command, and a
command imports no heavy module it does not need (numpy for the model, rich for tables,
matplotlib for plots, scipy for calibration, dask for sweeps on a cluster).

Each case runs in a fresh interpreter and reads ``sys.modules`` after the command.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from lazyaccept.cli import COMMANDS, cli

HEAVY = ("numpy", "rich", "matplotlib", "scipy", "dask", "distributed")


def _modules_after(*args: str) -> set[str]:
    """The modules loaded once ``lazyaccept ARGS`` has run (in a fresh interpreter)."""
    script = (
        "import io, json, sys, contextlib\n"
        "from lazyaccept.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({list(args)!r})\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    assert code in (0, None), (args, code, proc.stderr)
    return set(modules)


def _loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(r for r in roots if r in modules)


def test_help_imports_no_command_and_nothing_heavy() -> None:
    modules = _modules_after("--help")
    assert _loaded(modules, HEAVY) == []
    assert sorted(m for m in modules if m.startswith("lazyaccept.commands.")) == []


def test_the_command_list_says_what_each_command_says_of_itself() -> None:
    assert set(COMMANDS) == set(cli.list_commands(click.Context(cli)))
    for name, (module, attribute, summary) in COMMANDS.items():
        command = getattr(importlib.import_module(f"lazyaccept.commands.{module}"), attribute)
        assert command.name == name
        assert command.get_short_help_str(10**6) == click.Command(name, help=summary).get_short_help_str(10**6)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_commands_help_loads_that_command_only_and_no_plotting_fitting_or_cluster(name: str) -> None:
    modules = _modules_after(name, "--help")
    assert _loaded(modules, ("matplotlib", "scipy", "dask", "distributed")) == []
    commands = {m.removeprefix("lazyaccept.commands.") for m in modules if m.startswith("lazyaccept.commands.")}
    assert commands <= {COMMANDS[name][0], "options", "run"}  # the shared options, and run's for compare/advise


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_inspect_of_a_small_file_needs_no_numpy_and_json_no_rich(tmp_path: Path, as_json: bool) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        4000000 kB\nMemFree:         3000000 kB\nUnaccepted:       100000 kB\n")
    log = Path(__file__).parent / "data" / "real-logs" / "tdx_guest_zones_intel_tdx-linux_issue5.txt"
    modules = _modules_after("inspect", *(["--json"] if as_json else []), str(meminfo), str(log))
    heavy = ("numpy", "matplotlib", "scipy", "dask", "distributed") + (("rich",) if as_json else ())
    assert _loaded(modules, heavy) == []
    assert "lazyaccept.sim.engine" not in modules and "lazyaccept.guest.page_alloc" not in modules
