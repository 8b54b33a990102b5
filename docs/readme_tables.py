"""Regenerate the README's profile, calibration and validation tables from the shipped profiles.

    python docs/readme_tables.py          # rewrite the tables in README.md
    python docs/readme_tables.py --check  # exit 1 if README.md differs from what the code gives

Each table sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers.  The numbers
come from the shipped profiles (``src/lazyaccept/profiles``), the shipped calibration table and
the validation table (``src/lazyaccept/data/validation.csv``): figures no profile was fitted to.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lazyaccept.sim.calibrate import (
    PACKAGED_CALIBRATION,
    PACKAGED_VALIDATION,
    Predictor,
    Role,
    points_of,
    read_calibration,
)
from lazyaccept.sim.profile import load_profile, packaged_profiles
from lazyaccept.sim.uncertainty import perturbed_profiles, spread

README = Path(__file__).resolve().parent.parent / "README.md"


def _num(x: float) -> str:
    if x == 0:
        return "0"
    digits = 3 if abs(x) < 1000 else 0
    text = f"{x:,.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
    return text


def profiles_table() -> str:
    """Per profile: what it was fitted to, its fitted values with their uncertainty, the degrees
    of freedom."""
    points = read_calibration(str(PACKAGED_CALIBRATION))
    lines = ["| profile | fitted to (rows) | fitted parameters (one sigma) | points / free / degrees of freedom |",
             "|---|---|---|---|"]
    for name in packaged_profiles():
        prof = load_profile(name)
        mine, _ = points_of(prof, points)
        fitted = [p for p in mine if p.spec.fittable]
        free = prof.free_parameters()
        params = ", ".join(
            f"`{p.key.split('.', 1)[1]}` {_num(p.value)} {p.unit}"
            + (f" (±{prof.params[p.key].uncertainty:.0%})" if prof.params[p.key].uncertainty is not None else "")
            for p in free
        )
        rows = ", ".join(prof.fitted_to.rows) if prof.fitted_to else "-"
        dof = len(fitted) - len(free)
        note = f"{len(fitted)} / {len(free)} / {dof}" + (" (a fit, not evidence)" if dof <= 0 and free else "")
        lines.append(f"| `{name}` | {rows} | {params or '-'} | {note} |")
    return "\n".join(lines)


def calibration_table() -> str:
    """Every calibration row against the shipped profile it belongs to."""
    points = read_calibration(str(PACKAGED_CALIBRATION))
    lines = ["| row | profile | role | target | model | error |", "|---|---|---|---|---|---|"]
    for name in packaged_profiles():
        prof = load_profile(name)
        mine, derived = points_of(prof, points)
        preds = Predictor(mine, prof).predict(prof)
        for p, y in zip(mine, preds, strict=True):
            role = "fitted" if p.spec.fittable else "check"
            err = (y - p.target) / p.target
            lines.append(f"| {p.id} | {name} | {role} | {_num(p.target)} | {_num(y)} | {err:+.0%} |")
        for rid in derived:
            lines.append(f"| {rid} | {name} | derived from (not a check) | | | |")
    return "\n".join(lines)


def validation_table() -> str:
    """Every published figure no profile was fitted to, with the model's value, its one-sigma
    range from the profile's fitted uncertainties, and the ratio."""
    points = read_calibration(str(PACKAGED_VALIDATION))
    lines = ["| figure | profile | published | model (one sigma) | model / published | source |",
             "|---|---|---|---|---|---|"]
    for name in packaged_profiles():
        prof = load_profile(name)
        mine = [p for p in points if p.profile == name]
        if not mine:
            continue
        predictor = Predictor(mine, prof)
        preds = predictor.predict(prof)
        moved = [predictor.predict(q) for q in perturbed_profiles(prof)]
        for i, (p, y) in enumerate(zip(mine, preds, strict=True)):
            rng = spread(y, [m[i] for m in moved])
            assert p.spec.role is not Role.DERIVED
            lines.append(
                f"| {p.id} | {name} | {_num(p.target)} | {_num(y)} ({_num(rng.low)}-{_num(rng.high)}) | "
                f"{y / p.target:.2f} | {p.source} |"
            )
    return "\n".join(lines)


TABLES = {"profiles": profiles_table, "calibration": calibration_table, "validation": validation_table}


def render(text: str) -> str:
    """``text`` with every marked table replaced by what the code gives now."""
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- {name}:begin --> ... <!-- {name}:end --> block")
        table = make()
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is not what the code gives")
    args = ap.parse_args(argv)
    old = README.read_text(encoding="utf-8")
    new = render(old)
    if args.check:
        if new != old:
            print("README.md tables drifted from the code: run python docs/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
