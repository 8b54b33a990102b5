"""advise: from the configuration given, every lever moved, the cheapest change that meets every
deadline by the upper end of its range, and the timeouts the baseline would need."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli
from lazyaccept.sim.advise import EFFORT, Lever


@pytest.fixture(scope="module")
def eager_64g() -> dict:
    # An eager 64 GiB guest accepts everything before the shell: far over a 20 s boot deadline.
    r = run_cli("advise", "--memory", "64G", "--vcpus", "8", "--policy", "eager", "--boot-deadline", "20", "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_the_baseline_is_the_configuration_given_and_its_miss_is_said(eager_64g: dict) -> None:
    b = eager_64g["baseline"]
    assert b["policy"] == "eager" and b["change"] == "as given"
    assert not b["meets_deadline"] and b["first_failing"]["stage"] == "boot"
    # The timeout it would need is the upper end of its own range (nothing else).
    (need,) = eager_64g["timeouts_needed"]
    assert need["needed_s"] == pytest.approx(b["boot_s_range"][1])


def test_the_recommendation_meets_every_deadline_by_its_upper_end_and_is_the_cheapest(eager_64g: dict) -> None:
    rec = eager_64g["recommended"]
    assert rec["ranged"] and rec["meets_deadline"]
    assert rec["boot_s_range"][1] <= 20
    # The cheapest lever: no timed candidate that met by its range needs a cheaper one.
    effort = {lever.value: EFFORT[lever] for lever in Lever}
    cost = sum(effort[m["lever"]] + 1 for m in rec["moves"])
    for c in eager_64g["candidates"]:
        if c["ranged"] and c["meets_deadline"]:
            assert sum(effort[m["lever"]] + 1 for m in c["moves"]) >= cost
    assert rec["why"]  # what moved, in words


def test_every_lever_is_tried(eager_64g: dict) -> None:
    tried = {m["lever"] for c in eager_64g["candidates"] for m in c["moves"]}
    assert {"--policy", "--firmware-accept", "--vcpus", "--kconfig", "--patch", "--kernel",
            "--host-mapping"} <= tried
    assert eager_64g["run_time"].startswith("not measured")


def test_a_fixed_lever_is_not_moved() -> None:
    r = run_cli("advise", "--memory", "16G", "--policy", "eager", "--fixed", "policy", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert all(m["lever"] != "--policy" for c in doc["candidates"] for m in c["moves"])
    assert {c["policy"] for c in doc["candidates"]} == {"eager"}


def test_an_unknown_lever_is_one_line_and_exit_2() -> None:
    r = run_cli("advise", "--memory", "4G", "--fixed", "weather")
    assert r.code == 2 and len(r.err_lines) == 1 and "not a lever" in r.err
