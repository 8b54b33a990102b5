"""``lazyaccept calibrate``: fit cost profiles to the published measurements."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..base.errors import ConfigError
from ..base.fileio import STDOUT, check_writable, write_output
from ..presentation.calibration_report import calibration_document, print_calibration
from ..presentation.console import make_console
from ..sim.calibrate import PACKAGED_CALIBRATION, calibrate, read_calibration
from ..sim.profile import load_profile, packaged_profiles

#: The profiles installed with the package: calibrate writes there only when told to.
_PACKAGED = (Path(__file__).resolve().parent.parent / "profiles").resolve()


def _out_path(out: str, name: str, many: bool, force: bool = False) -> Path | str:
    """Where one profile's TOML goes: ``-`` (standard output), a file, or NAME.toml in a folder."""
    if out == STDOUT:
        if many:
            raise ConfigError("--out -: with several profiles, --out must be an existing folder; "
                              "name one --profile to write its TOML to standard output")
        return STDOUT
    p = Path(out)
    if p.is_dir() and not p.is_symlink():
        p = p / f"{name}.toml"
    elif many:
        raise ConfigError(f"--out {out}: with several profiles, --out must be an existing folder")
    if p.resolve().parent == _PACKAGED and not force:
        raise ConfigError(f"--out {out}: that is a profile installed with lazyaccept; write your fit elsewhere "
                          "(or give --force to replace the shipped profile)")
    check_writable(p)
    return p


@click.command("calibrate")
@click.option("--data", "data", default=None, metavar="CSV",
              help="Calibration table (default: the copy of shared/data/calibration.csv shipped with lazyaccept).")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="NAME|PATH",
    help=f"Profile(s) to fit, each to its own rows (the profile column): {', '.join(packaged_profiles())} or a "
         ".toml path (repeatable; default: every shipped profile).",
)
@click.option("--out", "out", metavar="FILE",
              help="Write the fitted profile here (a folder for several; - for standard output).")
@click.option("--force", is_flag=True, help="Allow --out to replace a profile installed with lazyaccept.")
@click.option("--from-logs", "from_logs", default=None, metavar="DIR",
              help="Fit to your own boots instead: the guest kernel logs (and host traces) under DIR.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def calibrate_cmd(data: str, profiles: tuple[str, ...], out: str | None, force: bool, as_json: bool,
                  from_logs: str | None = None) -> None:
    """Fit each profile's free parameters to the calibration rows of its platform.

    Bounded least squares on relative errors; the same data always gives the same profile.
    """
    if out == STDOUT and as_json:
        raise ConfigError("--json and --out - would both write to standard output; send one to a file")
    if from_logs is not None:
        from .calibrate_logs import calibrate_from_logs

        if data is not None:
            raise ConfigError("--from-logs and --data: fit to one or the other")
        if len(profiles) > 1:
            raise ConfigError("--from-logs fits one profile: name one --profile (default: the logs' platform's)")
        calibrate_from_logs(from_logs, profiles[0] if profiles else None, out, as_json)
        return
    points = read_calibration(data if data is not None else str(PACKAGED_CALIBRATION))
    names = list(profiles) or packaged_profiles()
    loaded = [load_profile(n) for n in names]
    targets = [_out_path(out, prof.name, len(loaded) > 1, force) if out is not None else None for prof in loaded]
    console = make_console(stderr=out == STDOUT)  # standard output carries the TOML
    results = []
    for prof, target in zip(loaded, targets, strict=True):
        res = calibrate(prof, points)
        written = None
        if target is not None:
            write_output(target, res.profile.to_toml())
            written = None if target == STDOUT else target
        results.append(res)
        if not as_json:
            print_calibration(console, res, written)
    if as_json:
        click.echo(json.dumps([calibration_document(r) for r in results], indent=2))
