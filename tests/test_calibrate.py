"""Calibration: reading the data, fitting each profile to its own rows, reproducibility, the command."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from click.testing import CliRunner

from lazyaccept.base.errors import ConfigError, FormatError
from lazyaccept.base.units import GiB
from lazyaccept.cli import cli
from lazyaccept.sim.calibrate import (
    PACKAGED_CALIBRATION,
    Predictor,
    calibrate,
    parse_calibration,
    points_of,
    read_calibration,
)
from lazyaccept.sim.profile import load_profile, packaged_profiles

#: The calibration table shipped with the package (shared/data/calibration.csv with the kernel
#: and firmware columns spelt as releases and sizes).
DATA = PACKAGED_CALIBRATION
HEADER = (
    "id,platform,profile,metric,memory_gib,vcpus,host_private_mapping,kernel,firmware_accept,kconfig,patches,"
    "workload,eager_s,lazy_s,ratio_eager_over_lazy,value,unit,source,note\n"
)


@pytest.fixture(scope="module")
def points():
    return read_calibration(str(DATA))


def test_points_of_the_published_data(points):
    got = {(p.id, p.profile, p.quantity, p.request.memory, p.request.vcpus, p.target) for p in points}
    assert got == {
        ("tdx-seed-4g", "tdx-seed", "ratio_eager_over_lazy", 4 * GiB, None, 2.5),
        ("tdx-seed-64g", "tdx-seed", "ratio_eager_over_lazy", 64 * GiB, None, 4.0),
        ("tdx-90g-1vcpu", "tdx-fast", "accept_all", 90 * GiB, 1, 60.0),
        ("tdx-90g-4vcpu", "tdx-fast", "accept_all", 90 * GiB, 4, 40.0),
        ("tdx-90g-8vcpu", "tdx-fast", "accept_all", 90 * GiB, 8, 40.0),
        ("dstack-fault-early", "tdx", "fault_cost_early", 32 * GiB, 248, 8.0),
        ("dstack-fault-late", "tdx", "fault_cost_late", 32 * GiB, 248, 153.0),
        ("dstack-idle-exits", "tdx", "idle_hlt_exits_per_10s", 32 * GiB, 248, 1.66e6),
        ("dstack-td-exit-rtt-32v", "tdx", "td_exit_round_trip", 32 * GiB, 32, 9.0),
        ("dstack-td-exit-rtt-248v", "tdx", "td_exit_round_trip", 32 * GiB, 248, 180.0),
        ("dstack-bsp-accept", "tdx", "accepted_before_watermarks", 32 * GiB, 248, 13.0),
        ("dstack-swiotlb-convert", "tdx", "swiotlb_convert", 32 * GiB, 248, 68.0),
        ("lkvs-32c-32w-16g", "tdx-lkvs", "drain", 16 * GiB, 32, 6.0),
        ("lkvs-32c-32w-32g", "tdx-lkvs", "drain", 32 * GiB, 32, 11.0),
        ("lkvs-32c-32w-96g", "tdx-lkvs", "drain", 96 * GiB, 32, 33.0),
        ("lkvs-32c-1w-16g", "tdx-lkvs", "drain", 16 * GiB, 32, 34.0),
        # the row's ratio (10.3) is just 227 / 22 and is not fitted a second time
        ("snp-128g:eager", "snp", "eager_s", 128 * GiB, None, 227.0),
        ("snp-128g:lazy", "snp", "lazy_s", 128 * GiB, None, 22.0),
    }
    dstack = next(p for p in points if p.id == "dstack-fault-late")
    assert set(dstack.request.kconfig) == {"HZ=1000", "DEFERRED_STRUCT_PAGE_INIT=n"}


@pytest.mark.parametrize("name", ["tdx-seed", "tdx-fast", "snp"])
def test_each_shipped_profile_reproduces_its_own_points_within_10_percent(points, name):
    prof = load_profile(name)
    mine, _ = points_of(prof, points)
    preds = Predictor(mine, prof).predict(prof)
    for p, y in zip(mine, preds, strict=True):
        assert abs(y - p.target) / p.target < 0.10, (p.id, y, p.target)


def test_the_default_tdx_profile_reproduces_dstack_within_10_percent(points):
    prof = load_profile("tdx")
    mine, _ = points_of(prof, points)
    # dstack-bsp-accept is the figure the allocations per AP were derived from: not a point.
    assert {p.row_id for p in mine} == {"dstack-fault-early", "dstack-fault-late", "dstack-idle-exits",
                                        "dstack-td-exit-rtt-32v", "dstack-td-exit-rtt-248v",
                                        "dstack-swiotlb-convert"}
    preds = Predictor(mine, prof).predict(prof)
    # A check of the fit (one degree of freedom), not evidence: every point within 15% (the
    # 32-vCPU round trip is published as 8-10 us) and the whole within 10% RMS.
    errors = [(y - p.target) / p.target for p, y in zip(mine, preds, strict=True)]
    assert all(abs(e) < 0.15 for e in errors), list(zip([p.id for p in mine], errors, strict=True))
    assert math.sqrt(sum(e * e for e in errors) / len(errors)) < 0.10


@pytest.mark.slow
def test_the_lkvs_host_reproduces_its_drain_times_within_their_resolution(points):
    # tdx_mem_test.sh times with bash's SECONDS (1 s steps) and passes at 1.15 x expected: a
    # prediction is good within 1 s plus 10%.
    prof = load_profile("tdx-lkvs")
    mine, _ = points_of(prof, points)
    assert len(mine) == 4
    preds = Predictor(mine, prof).predict(prof)
    for p, y in zip(mine, preds, strict=True):
        assert abs(y - p.target) < 1.0 + 0.10 * p.target, (p.id, y, p.target)


#: Profiles whose refit takes more than a few seconds on a 2-core machine (run in CI).
_SLOW_REFITS = {"tdx", "tdx-lkvs", "tdx-seed"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_REFITS else n
                                  for n in packaged_profiles()])
def test_shipped_profile_is_the_calibration_of_its_rows(points, name):
    """Calibrating again from the shipped table gives exactly the values, uncertainties and
    rows that are shipped: no fitted value was set by hand."""
    prof = load_profile(name)
    res = calibrate(prof, points)
    assert res.params, name
    for p in res.params:
        shipped = prof.params[p.key]
        assert p.after == pytest.approx(shipped.value, rel=1e-9), p.key
        got = res.profile.params[p.key].uncertainty
        if shipped.uncertainty is None:  # undetermined (an underdetermined fit records none)
            assert got is None, p.key
        else:
            assert got == pytest.approx(shipped.uncertainty, rel=1e-9), p.key
    assert res.profile.fitted_to == prof.fitted_to
    assert not [w for w in res.warnings if "out of date" in w]


def test_calibrate_warns_when_the_rows_a_profile_was_fitted_to_change(points):
    prof = load_profile("tdx-fast")
    moved = [dataclasses.replace(p, target=p.target * 1.1, digest="changed") if p.row_id == "tdx-90g-8vcpu" else p
             for p in points]
    res = calibrate(prof, moved)
    assert any("out of date" in w and "tdx-90g-8vcpu" in w for w in res.warnings)


def test_fit_does_not_depend_on_the_starting_values(points):
    prof = load_profile("tdx-fast")
    moved = prof.with_values({p.key: p.lo * 1.5 for p in prof.free_parameters()})
    a, b = calibrate(prof, points), calibrate(moved, points)
    assert [p.after for p in a.params] == [p.after for p in b.params]


def test_fit_recovers_a_known_parameter(points):
    # Make targets with a known path cost (2.2 us per fault), then fit from the bounds' middle:
    # the fit must find it again.
    prof = load_profile("tdx-fast")
    truth = prof.with_values({"host.path_fault_4k": 2.2, "accept.td_exit": 0.3})
    mine, _ = points_of(prof, points)
    synthetic = [dataclasses.replace(p, target=y) for p, y in zip(mine, Predictor(mine, truth).predict(truth),
                                                                   strict=True)]
    res = calibrate(prof, synthetic)
    got = {p.key: p.after for p in res.params}
    assert got["host.path_fault_4k"] == pytest.approx(2.2, rel=1e-3)
    assert got["accept.td_exit"] == pytest.approx(0.3, rel=1e-2)
    assert res.rms_rel_error < 1e-4


def test_uncertainty_shrinks_with_a_parameter_that_matters_more(points):
    # The 90 GiB points depend on the path cost far more than on the exit cost: the exit cost
    # (0.13 us of ~2.5 us per page) is the less certain of the two.
    res = calibrate(load_profile("tdx-fast"), points)
    u = {p.key: p.rel_uncertainty for p in res.params}
    assert 0 < u["host.path_fault_4k"] < u["accept.td_exit"]


def test_warnings_for_an_underdetermined_fit_and_a_parameter_on_a_bound(points):
    prof = load_profile("tdx-fast")
    # one point, two free parameters
    one = [p for p in points if p.id == "tdx-90g-1vcpu"]
    res = calibrate(prof, one)
    assert any("underdetermined" in w for w in res.warnings)
    # a target far beyond what the bounds allow: 90 GiB in 1 s needs costs below their bounds
    fast = [dataclasses.replace(p, target=1.0) for p in points if p.profile == "tdx-fast"]
    res = calibrate(prof, fast)
    assert any("sits on a bound" in w for w in res.warnings)
    assert any("poor fit" in w for w in res.warnings)
    assert all(p.at_bound for p in res.params)


def test_a_user_can_fit_a_new_host_profile_from_their_own_rows(tmp_path):
    # A profile file of their own, named "myhost", and two rows of theirs.
    text = load_profile("tdx-fast").to_toml().replace('name = "tdx-fast"', 'name = "myhost"')
    mine = tmp_path / "myhost.toml"
    mine.write_text(text)
    data = tmp_path / "mine.csv"
    data.write_text(HEADER + "m1,tdx,myhost,accept_all,16,1,4K,6.12,,,,,,,,20,s,my lab,\n"
                    "m4,tdx,myhost,accept_all,16,4,4K,6.12,,,,,,,,10,s,my lab,\n")
    out = tmp_path / "fitted.toml"
    res = CliRunner().invoke(cli, ["calibrate", "--data", str(data), "--profile", str(mine), "--out", str(out),
                                   "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)[0]
    assert {p["id"] for p in doc["points"]} == {"m1", "m4"}
    assert all(abs(p["rel_error"]) < 0.05 for p in doc["points"])
    assert "fitted to m1, m4" in out.read_text()


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        read_calibration(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n", "missing column"),
        (HEADER + "x,tdx,tdx,boot,4,,,,,,,,,,,,,s,\n", "no measured value"),
        (HEADER + "x,arm,tdx,boot,4,,,,,,,,1,2,,,,s,\n", "platform must be tdx or snp"),
        (HEADER + "x,tdx,tdx,boot,,,,,,,,,1,2,,,,s,\n", "memory_gib is empty"),
        (HEADER + "x,tdx,tdx,boot,4,,,,,,,,1,2,,,,s,\nx,tdx,tdx,boot,4,,,,,,,,1,2,,,,s,\n", "appears twice"),
        (HEADER + "x,tdx,tdx,speed,4,,,,,,,,1,2,,,,s,\n", "unknown metric 'speed'"),
        (HEADER + "x,tdx,tdx,accept_all,4,,,,,,,,,,,-3,s,s,\n", "value must be a positive number"),
        (HEADER + "x,tdx,tdx,accept_all,4,,,,,,,,,,,3,parsecs,s,\n", "unit 'parsecs'"),
        (HEADER + "x,tdx,tdx,boot,4,,,,,\"HZ=7\",,,1,2,,,,s,\n", "HZ takes one of"),
    ],
)
def test_malformed_rows(text, message):
    with pytest.raises(FormatError, match=message):
        parse_calibration(text, "t.csv")


def test_no_rows_for_the_profile(points):
    with pytest.raises(ConfigError, match="no calibration rows for profile"):
        calibrate(load_profile("tdx"), [p for p in points if p.profile != "tdx"])


def test_calibrate_command_json(points):
    res = CliRunner().invoke(cli, ["calibrate", "--profile", "snp", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [d["profile"] for d in doc] == ["snp"]
    assert {p["id"] for p in doc[0]["points"]} == {"snp-128g:eager", "snp-128g:lazy"}
    assert all(math.isfinite(p["rel_uncertainty"]) for p in doc[0]["params"])
