"""``lazyaccept calibrate``: fit cost profiles to the published measurements."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..console import make_console
from ..errors import ConfigError
from ..fileio import atomic_write
from ..sim.calibrate import PACKAGED_CALIBRATION, CalibrationResult, calibrate, read_calibration
from ..sim.costs import PLATFORMS, load_profile


def _out_path(out: str, name: str, many: bool) -> Path:
    p = Path(out)
    if p.is_dir():
        return p / f"{name}.toml"
    if many:
        raise ConfigError(f"--out {out}: with several profiles, --out must be an existing folder")
    return p


def _as_json(res: CalibrationResult) -> dict[str, object]:
    return {
        "profile": res.profile.name,
        "platform": res.profile.platform,
        "success": res.success,
        "rms_rel_error": res.rms_rel_error,
        "params": [
            {"key": p.key, "unit": p.unit, "before": p.before, "after": p.after, "bounds": [p.lo, p.hi]}
            for p in res.params
        ],
        "points": [
            {
                "id": r.point.id,
                "quantity": r.point.quantity,
                "memory_bytes": r.point.memory,
                "target": r.point.target,
                "prediction": r.prediction,
                "rel_error": r.rel_error,
            }
            for r in res.points
        ],
    }


_QUANTITY = {
    "ratio_eager_over_lazy": "eager/lazy",
    "eager_s": "eager boot s",
    "lazy_s": "lazy boot s",
    "accept_s": "accept s",
}


def _print(console: Console, res: CalibrationResult, written: Path | None) -> None:
    prof = res.profile
    params = Table(title=f"{prof.name} ({prof.platform.upper()}): fitted parameters", title_justify="left")
    for col in ("parameter", "unit", "before", "fitted", "bounds"):
        params.add_column(col, justify="left" if col in ("parameter", "unit") else "right")
    for p in res.params:
        params.add_row(p.key, p.unit, f"{p.before:.4g}", f"{p.after:.6g}", f"[{p.lo:g}, {p.hi:g}]")
    console.print(params)
    pts = Table(title=f"{prof.name}: calibration points", title_justify="left")
    for col in ("point", "quantity", "memory", "target", "prediction", "rel. error"):
        pts.add_column(col, justify="left" if col in ("point", "quantity") else "right")
    for r in res.points:
        pts.add_row(
            r.point.id,
            _QUANTITY.get(r.point.quantity, r.point.quantity),
            f"{r.point.memory / 2**30:g} GiB",
            f"{r.point.target:.4g}",
            f"{r.prediction:.4g}",
            f"{r.rel_error:+.1%}",
        )
    console.print(pts)
    status = "converged" if res.success else f"did not converge: {res.message}"
    line = f"rms relative error {res.rms_rel_error:.2%} ({status})"
    if written is not None:
        line += f"; wrote {written}"
    console.print(line)


@click.command("calibrate")
@click.option("--data", "data", default=None, metavar="CSV",
              help="Calibration table (default: the copy of shared/data/calibration.csv shipped with lazyaccept).")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="tdx|snp|PATH",
    help="Profile(s) to fit; default: every packaged platform profile.",
)
@click.option("--out", "out", metavar="FILE", help="Write the fitted profile here (a folder for several).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def calibrate_cmd(data: str, profiles: tuple[str, ...], out: str | None, as_json: bool) -> None:
    """Fit each profile's free parameters to the calibration rows of its platform.

    Bounded least squares on relative errors; the same data always gives the same profile.
    """
    points = read_calibration(data if data is not None else str(PACKAGED_CALIBRATION))
    names = list(profiles) or list(PLATFORMS)
    loaded = [load_profile(n) for n in names]
    console = make_console()
    results = []
    for prof in loaded:
        res = calibrate(prof, points)
        written = None
        if out is not None:
            written = _out_path(out, prof.name, len(loaded) > 1)
            atomic_write(written, res.profile.to_toml())
        results.append(res)
        if not as_json:
            _print(console, res, written)
    if as_json:
        click.echo(json.dumps([_as_json(r) for r in results], indent=2))
