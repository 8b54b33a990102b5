"""The docs show what the code prints: every ``$ lazyaccept ...`` example of README.md and
docs/*.md is run and compared (``docs/doc_examples.py``); ``python docs/regenerate.py``
rewrites them when the code changes on purpose."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import doc_examples  # noqa: E402

EXAMPLES = doc_examples.examples()
#: Examples that simulate minutes of a workload take seconds each: CI runs them, `-m "not slow"` skips them.
SLOW = ("--workload", "sweep ")


def _params() -> list[object]:
    out = []
    for ex in EXAMPLES:
        slow = any(word in s.command for s in ex.steps for word in SLOW)
        out.append(pytest.param(ex, id=ex.ident, marks=[pytest.mark.slow] if slow else []))
    return out


@pytest.mark.parametrize("example", _params())
def test_documented_output_is_what_the_code_prints(example: doc_examples.Example, tmp_path: Path) -> None:
    ran = doc_examples.run_example(example, doc_examples.scratch(tmp_path))
    drift = doc_examples.drift(example, ran)
    assert drift == [], (f"{example.ident}: the docs show something else than the code prints; if the change is "
                         "meant, run `python docs/regenerate.py`\n" + "\n".join(drift))


def test_the_examples_are_found() -> None:
    commands = {s.command.split(" | ")[0] for ex in EXAMPLES for s in ex.steps}
    # The README's three, and the status example on the shipped guest tree.
    assert "lazyaccept compare --memory 4G --memory 64G --profile tdx-seed --profile tdx" in commands
    assert "lazyaccept run --memory 64G --workload touch:32G" in commands
    assert any(c.startswith("lazyaccept compare --memory 64G --workload touch:32G --policy lazy") for c in commands)
    assert "lazyaccept status --root tests/data/guest-tdx-16g" in commands
    assert len(EXAMPLES) >= 20
    # A recorded session is not replayed.
    assert not any("--watch" in c for c in commands)


def test_drift_is_caught_and_left_out_stretches_follow_their_anchors() -> None:
    shown = "Guest like x\n┏━━┓\n└──┘\n... (the boot report) ...\nBoot to shell: 16.17 s\nend"
    printed = "Guest like x\n┏━━┓\n└──┘\nTimeline\n│ a │ 1 │\nBoot to shell: 16.17 s\nend"
    assert doc_examples.merged(shown, printed) == shown
    later = printed.replace("16.17", "17.00")
    assert doc_examples.merged(shown, later) == shown.replace("16.17", "17.00")  # a drift, and its rewrite
    assert doc_examples.merged(shown, "Guest like x\nnothing else") is None  # anchors gone: a hand edit
    ex = doc_examples.Example(ROOT / "README.md", 1, 0, 0, [doc_examples.Step("lazyaccept x", "7.51 ms")])
    assert doc_examples.drift(ex, [doc_examples.Ran("7.50 ms", 0, 0.0)])
    assert not doc_examples.drift(ex, [doc_examples.Ran("7.51 ms", 0, 0.0)])


def test_boot_json_has_per_phase_host_path_wait_and_idle_exits_as_the_readme_says() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "host-path wait and the idle" in " ".join(readme.split())
    phases = {}
    for hz in (100, 1000):
        r = run_cli("boot", "--memory", "16G", "--vcpus", "32", "--kconfig", f"HZ={hz}", "--kconfig", "NO_HZ_IDLE=n",
                    "--json")
        assert r.code == 0, r.err
        phases[hz] = json.loads(r.out)["phases"]
    for p in phases[100]:
        assert p["host_path_wait_s"] >= 0 and isinstance(p["idle_exits"], int) and p["idle_exits"] >= 0
    # Ticks of idle vCPUs: ten times the rate gives more exits in all (never fewer), and some phase has them.
    total = {hz: sum(p["idle_exits"] for p in ps) for hz, ps in phases.items()}
    assert total[100] > 0 and total[1000] > 5 * total[100]
    assert any(p["host_path_wait_s"] > 0 for p in phases[1000])


def test_the_sweep_docs_show_the_example_grids_as_they_are() -> None:
    import re

    from lazyaccept.base.errors import SafetyViolation
    from lazyaccept.base.units import MiB
    from lazyaccept.scenario.config import GuestRequest
    from lazyaccept.sim.fleet.driver import plan_sweep
    from lazyaccept.sim.fleet.grid import load_grid
    from lazyaccept.sim.profile import load_profile
    from lazyaccept.sim.run import resolve, run

    doc = (ROOT / "docs" / "sweeps.md").read_text()
    fleet = (ROOT / "examples" / "fleet.toml").read_text()
    shown = re.search(r"```toml\n(\[sweep\].*?)```", doc, re.DOTALL)
    assert shown is not None and shown[1] == fleet[fleet.index("[sweep]"):]
    runs = {name: len(plan_sweep(load_grid(str(ROOT / "examples" / f"{name}.toml"))).tasks)
            for name in ("fleet", "kernels")}
    assert f"`examples/fleet.toml` ({runs['fleet']} runs)" in doc
    assert f"`examples/kernels.toml` ({runs['kernels']} runs)" in doc
    # Which kernels of examples/kernels.toml fail the 67000M guest with upstream firmware, by the model.
    prof = load_profile("tdx")
    failing = []
    for kernel in ("6.5", "6.6", "6.7", "6.11", "6.12", "mainline"):
        config = resolve(GuestRequest(memory=67000 * MiB, kernel=kernel), prof)
        assert str(config.firmware_accept) == "below-4g"  # upstream firmware: the profile's default
        try:
            run(config, prof)
        except SafetyViolation as exc:
            assert exc.rule == "table-reservation"
            failing.append(kernel)
    assert failing == ["6.6", "6.7", "6.11", "6.12"]
    said = " ".join(doc.split())
    assert "kernels 6.6, 6.7, 6.11 and 6.12 at 67000M" in said
    # 2 mappings x 2 policies per failing kernel
    assert f"{len(failing) * 4} of its runs are the 2026 table-reservation fault" in said
    # The TDX defaults the docs state are the profile's own.
    assert "kernel mainline, firmware accepting below 4 GiB" in said
    default = resolve(GuestRequest(memory=4096 * MiB), prof)
    assert (default.kernel_release, str(default.firmware_accept), default.vcpus) == ("mainline", "below-4g", 4)
