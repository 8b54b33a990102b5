"""``lazyaccept calibrate --from-logs DIR``: a profile for this host from its own boots."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..base.errors import ConfigError
from ..base.fileio import STDOUT, check_writable, write_output
from ..presentation.calibration_logs_report import log_fit_document, print_log_fit
from ..presentation.console import make_console
from ..sim.calibrate_logs import fit_logs, platforms, read_boots
from ..sim.profile import load_profile


def calibrate_from_logs(folder: str, profile: str | None, out: str | None, as_json: bool) -> None:
    """Fit ``profile`` (default: the packaged profile of the logs' platform) to the boots under
    ``folder``; write it to ``out``."""
    if profile is None:
        found = platforms(folder)
        if len(found) > 1:
            raise ConfigError(f"--from-logs {folder}: logs of {' and '.join(sorted(found))} guests; a profile is "
                              "one host: name one --profile and its boots are fitted")
        profile = found.pop() if found else "tdx"
    prof = load_profile(profile)
    target: Path | str | None = None
    if out is not None:
        if out == STDOUT:
            target = STDOUT
        else:
            p = Path(out)
            target = p / f"{prof.name}.toml" if p.is_dir() and not p.is_symlink() else p
            check_writable(target)
    boots, skipped = read_boots(folder, prof)
    if not boots:
        raise ConfigError(f"--from-logs {folder}: no boot to fit ({'; '.join(skipped[:3])})")
    res = fit_logs(prof, boots)
    if target is not None:
        write_output(target, res.profile.to_toml())
    if as_json:
        click.echo(json.dumps(log_fit_document(res, skipped), indent=2))
        return
    print_log_fit(make_console(stderr=target == STDOUT), res, skipped,
                  None if target in (None, STDOUT) else Path(target))  # type: ignore[arg-type]
