"""Calibration: reading the data, fitting, reproducibility, the command."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from lazyaccept.base.errors import ConfigError, FormatError
from lazyaccept.base.units import GiB
from lazyaccept.cli import cli
from lazyaccept.sim.calibrate import PACKAGED_CALIBRATION, Predictor, calibrate, parse_calibration, read_calibration
from lazyaccept.sim.profile import load_profile, parse_profile

#: The calibration table shipped with the package (a copy of shared/data/calibration.csv).
DATA = PACKAGED_CALIBRATION
HEADER = (
    "id,platform,metric,memory_gib,vcpus,host_private_mapping,eager_s,lazy_s,ratio_eager_over_lazy,accept_s,source\n"
)


@pytest.fixture(scope="module")
def points():
    return read_calibration(str(DATA))


def test_points_of_the_published_data(points):
    got = {(p.id, p.quantity, p.memory, p.vcpus, p.host_mapping, p.target) for p in points}
    assert got == {
        ("tdx-seed-4g", "ratio_eager_over_lazy", 4 * GiB, None, None, 2.5),
        ("tdx-seed-64g", "ratio_eager_over_lazy", 64 * GiB, None, None, 4.0),
        ("tdx-90g-1vcpu", "accept_s", 90 * GiB, 1, "4k", 60.0),
        # the row's ratio (10.3) is just 227 / 22 and is not fitted a second time
        ("snp-128g:eager", "eager_s", 128 * GiB, None, None, 227.0),
        ("snp-128g:lazy", "lazy_s", 128 * GiB, None, None, 22.0),
    }


@pytest.mark.parametrize("platform", ["tdx", "snp"])
def test_shipped_profile_is_the_calibration_of_the_data(points, platform):
    # Calibrating the shipped profile again gives the very same file: the shipped profile is
    # the fit of the data, and the fit does not depend on where it starts.
    shipped = load_profile(platform)
    res = calibrate(shipped, points)
    fitted = parse_profile(res.profile.to_toml(), "refit")
    for key, p in shipped.params.items():
        q = fitted.params[key]
        assert (q.unit, q.source, q.fit, q.bounds) == (p.unit, p.source, p.fit, p.bounds), key
        assert q.value == pytest.approx(p.value, rel=1e-4), key  # six digits are written
    for p in res.params:
        assert p.lo <= p.after <= p.hi
        assert res.profile.params[p.key].source.startswith("fitted to ")


def test_fit_does_not_depend_on_the_starting_values(points):
    prof = load_profile("tdx")
    moved = prof.with_values({r.key: r.hi for r in prof.free_parameters()})
    a = calibrate(prof, points)
    b = calibrate(moved, points)
    assert [p.after for p in a.params] == [p.after for p in b.params]
    assert [r.prediction for r in a.points] == [r.prediction for r in b.points]


def test_fit_recovers_a_known_parameter():
    # Make a measurement with td_exit = 2.0 us (chosen here), then fit from the middle of the bounds
    # with only td_exit free: the fit must find 2.0 again.
    fixed = _only_free(load_profile("tdx"), {"accept.td_exit"})
    truth = fixed.with_values({"accept.td_exit": 2.0})
    row = "x,tdx,accept_all,8,1,4K,,,,{accept},synthetic\n"
    probe = parse_calibration(HEADER + row.format(accept=1.0))
    measured = Predictor(probe, truth).predict(truth)[0]
    pts = parse_calibration(HEADER + row.format(accept=repr(measured)))
    res = calibrate(fixed, pts)
    assert [p.key for p in res.params] == ["accept.td_exit"]
    assert res.params[0].after == pytest.approx(2.0, rel=1e-5)
    assert res.points[0].rel_error == pytest.approx(0.0, abs=1e-5)


def _only_free(prof, keys):
    """The profile with fit = true on ``keys`` only."""
    params = {k: dataclasses.replace(p, fit=k in keys) for k, p in prof.params.items()}
    return dataclasses.replace(prof, params=params)


def test_fitted_profile_text_loads_and_keeps_the_old_source_in_a_note(points):
    res = calibrate(load_profile("snp"), points)
    again = parse_profile(res.profile.to_toml(), "fitted.toml")
    p = again.params["accept.host_fault_4k"]
    assert p.source == "fitted to snp-128g"
    assert "assumed:" in p.note


# --- bad input --------------------------------------------------------------------------------------


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        read_calibration(str(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,platform\nx,tdx\n", "missing column"),
        (HEADER + "x,sgx,boot,4,,,,,2,,s\n", "platform must be tdx or snp"),
        (HEADER + "x,tdx,boot,four,,,,,2,,s\n", "memory_gib is not a number"),
        (HEADER + "x,tdx,boot,4,,,,,-2,,s\n", "must be a positive number"),
        (HEADER + "x,tdx,boot,4,,,,,,,s\n", "no measured value"),
        (HEADER + "x,tdx,boot,4,,1G,,,2,,s\n", "host_private_mapping must be 4K or 2M"),
        (HEADER + "x,tdx,boot,4,,,,,2,,s\nx,tdx,boot,8,,,,,2,,s\n", "appears twice"),
    ],
)
def test_malformed_rows(text, message):
    with pytest.raises(FormatError, match=message):
        parse_calibration(text, "c.csv")


def test_no_points_for_the_platform():
    pts = parse_calibration(HEADER + "x,snp,boot,8,,,,,2,,s\n")
    with pytest.raises(ConfigError, match="no calibration points for platform tdx"):
        calibrate(load_profile("tdx"), pts)


# --- the command ------------------------------------------------------------------------------------


def test_calibrate_command_writes_a_profile(points, tmp_path):
    out = tmp_path / "snp.toml"
    r = CliRunner().invoke(cli, ["calibrate", "--data", str(DATA), "--profile", "snp", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "snp-128g:eager" in r.output and "wrote" in r.output
    assert load_profile(str(out)).params == load_profile("snp").params


def test_calibrate_command_json(points):
    r = CliRunner().invoke(cli, ["calibrate", "--data", str(DATA), "--profile", "snp", "--json"])
    assert r.exit_code == 0, r.output
    (doc,) = json.loads(r.output)
    assert {p["id"] for p in doc["points"]} == {"snp-128g:eager", "snp-128g:lazy"}
    assert all(abs(p["rel_error"]) < 0.01 for p in doc["points"])
