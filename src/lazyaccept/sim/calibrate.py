"""Fit a cost profile's free parameters to published measurements.

The calibration file (``shared/data/calibration.csv``) holds one row per published figure:

``id, platform, metric, memory_gib, vcpus, host_private_mapping, eager_s, lazy_s,
ratio_eager_over_lazy, accept_s, source``

Each row gives one or more *points*, each a quantity the model predicts for one configuration
(empty ``vcpus`` / ``host_private_mapping`` take the profile's ``[defaults]``):

* ``eager_s`` / ``lazy_s``: boot time with ``accept_memory=eager`` / ``lazy``;
* ``ratio_eager_over_lazy``: eager boot time over lazy boot time (used only when the row does
  not also give both times, of which it is then just the quotient);
* ``accept_s``: time spent accepting memory (firmware and kernel, vCPU-seconds) in an eager
  boot, i.e. the time to accept all of memory.

:func:`calibrate` fits the profile's ``fit = true`` parameters within their bounds by bounded
least squares (:func:`scipy.optimize.least_squares`) on the relative errors of the points of
the profile's platform.  The model's record of a boot does not depend on costs, so each
configuration is modelled once and only re-timed for each trial.  The fit starts from the
middle of each parameter's bounds (geometric middle for positive bounds, where it works in
log space), not from the profile's current values, so the result depends only on the data, the
bounds and the fixed parameters: calibrating a fitted profile again gives the same profile.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.choices import AcceptPolicy, HostMapping, Tee
from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..base.units import GiB
from ..scenario.boot_record import BootRecord
from ..scenario.build import build_record
from ..scenario.config import GuestRequest, VMConfig
from .profile import CostProfile
from .run import resolve
from .timeline import Timeline, simulate

COLUMNS = (
    "id", "platform", "metric", "memory_gib", "vcpus", "host_private_mapping", "eager_s", "lazy_s",
    "ratio_eager_over_lazy", "accept_s", "source",
)  # fmt: skip
QUANTITIES = ("eager_s", "lazy_s", "ratio_eager_over_lazy", "accept_s")
#: The published calibration points, shipped with the package (shared/data/calibration.csv).
PACKAGED_CALIBRATION = Path(__file__).resolve().parent.parent / "data" / "calibration.csv"
#: Significant digits fitted values are written with (keeps the written profile stable).
DIGITS = 6


@dataclass(frozen=True)
class CalibrationPoint:
    """One published number the model must reproduce."""

    id: str  # the row id, with ":eager" / ":lazy" when the row gives both times
    row_id: str
    tee: Tee
    quantity: str
    memory: int
    vcpus: int | None
    host_mapping: HostMapping | None
    target: float
    source: str = ""

    def requests(self) -> list[GuestRequest]:
        """The boots the prediction needs."""
        policies = {"eager_s": [AcceptPolicy.EAGER], "lazy_s": [AcceptPolicy.LAZY], "accept_s": [AcceptPolicy.EAGER]}
        return [self.request(p) for p in policies.get(self.quantity, [AcceptPolicy.EAGER, AcceptPolicy.LAZY])]

    def request(self, policy: AcceptPolicy) -> GuestRequest:
        return GuestRequest(
            memory=self.memory, tee=self.tee, vcpus=self.vcpus, policy=policy, host_mapping=self.host_mapping
        )


@dataclass(frozen=True)
class PointResult:
    point: CalibrationPoint
    prediction: float

    @property
    def rel_error(self) -> float:
        return (self.prediction - self.point.target) / self.point.target


@dataclass(frozen=True)
class FittedParam:
    key: str
    unit: str
    before: float
    after: float
    lo: float
    hi: float


@dataclass
class CalibrationResult:
    """The fitted profile, each point's target and prediction, and each parameter's move."""

    profile: CostProfile
    points: list[PointResult]
    params: list[FittedParam] = field(default_factory=list)
    success: bool = True
    message: str = ""

    @property
    def rms_rel_error(self) -> float:
        if not self.points:
            return 0.0
        return math.sqrt(sum(p.rel_error**2 for p in self.points) / len(self.points))


# --- reading the data -----------------------------------------------------------------------------


def _number(row: dict[str, str], key: str, where: str) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FormatError(f"{where}: {key} is not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise FormatError(f"{where}: {key} must be a positive number, not {text!r}")
    return value


def parse_calibration(text: str, path: str = "<calibration>") -> list[CalibrationPoint]:
    """The points of a calibration CSV (see the module docstring)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise FormatError(f"{path}: not a calibration table: missing column(s) {', '.join(missing)}")
    points: list[CalibrationPoint] = []
    seen: set[str] = set()
    for n, row in enumerate(reader, start=2):
        rid = (row.get("id") or "").strip()
        where = f"{path}: line {n} ({rid or 'no id'})"
        if not rid:
            raise FormatError(f"{where}: empty id")
        if rid in seen:
            raise FormatError(f"{where}: id {rid!r} appears twice")
        seen.add(rid)
        platform = (row.get("platform") or "").strip().lower()
        if platform not in set(Tee):
            raise FormatError(f"{where}: platform must be tdx or snp, not {platform!r}")
        gib = _number(row, "memory_gib", where)
        if gib is None:
            raise FormatError(f"{where}: memory_gib is empty")
        vcpus_f = _number(row, "vcpus", where)
        if vcpus_f is not None and not vcpus_f.is_integer():
            raise FormatError(f"{where}: vcpus must be a whole number, not {vcpus_f}")
        mapping = (row.get("host_private_mapping") or "").strip().lower() or None
        if mapping not in (None, *HostMapping):
            raise FormatError(f"{where}: host_private_mapping must be 4K or 2M, not {mapping!r}")
        values = {q: _number(row, q, where) for q in QUANTITIES}
        if values["eager_s"] is not None and values["lazy_s"] is not None:
            values["ratio_eager_over_lazy"] = None  # just their quotient: do not count it twice
        given = [q for q in QUANTITIES if values[q] is not None]
        if not given:
            raise FormatError(f"{where}: no measured value (eager_s, lazy_s, ratio_eager_over_lazy or accept_s)")
        for q in given:
            suffix = {"eager_s": ":eager", "lazy_s": ":lazy"}.get(q, "") if len(given) > 1 else ""
            points.append(
                CalibrationPoint(
                    id=rid + suffix,
                    row_id=rid,
                    tee=Tee(platform),
                    quantity=q,
                    memory=int(round(gib * GiB)),
                    vcpus=int(vcpus_f) if vcpus_f is not None else None,
                    host_mapping=None if mapping is None else HostMapping(mapping),
                    target=float(values[q]),  # type: ignore[arg-type]
                    source=(row.get("source") or "").strip(),
                )
            )
    return points


def read_calibration(path: str) -> list[CalibrationPoint]:
    """Read a calibration CSV; a missing or unreadable file is a :class:`FormatError`."""
    data = read_input(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text (UTF-8) file") from None
    return parse_calibration(text, str(path))


# --- predicting -------------------------------------------------------------------------------------


class Predictor:
    """Predicts the points of one platform with any profile; models each boot only once."""

    def __init__(self, points: list[CalibrationPoint], profile: CostProfile) -> None:
        self.points = points
        self.records: dict[VMConfig, BootRecord] = {}
        #: Per point, the resolved configuration of each boot it needs, by policy.
        self.configs: list[dict[AcceptPolicy, VMConfig]] = []
        for p in points:
            by_policy = {}
            for req in p.requests():
                cfg = resolve(req, profile)
                if cfg not in self.records:
                    self.records[cfg] = build_record(cfg)
                by_policy[req.policy] = cfg
            self.configs.append(by_policy)

    def timelines(self, profile: CostProfile) -> dict[VMConfig, Timeline]:
        return {cfg: simulate(rec.phases, profile) for cfg, rec in self.records.items()}

    def predict(self, profile: CostProfile) -> list[float]:
        tls = self.timelines(profile)
        out = []
        for p, by_policy in zip(self.points, self.configs, strict=True):
            tl = {policy: tls[cfg] for policy, cfg in by_policy.items()}
            if p.quantity == "eager_s":
                out.append(tl[AcceptPolicy.EAGER].total_s)
            elif p.quantity == "lazy_s":
                out.append(tl[AcceptPolicy.LAZY].total_s)
            elif p.quantity == "accept_s":
                out.append(tl[AcceptPolicy.EAGER].accept_s)
            else:
                out.append(tl[AcceptPolicy.EAGER].total_s / tl[AcceptPolicy.LAZY].total_s)
        return out


# --- fitting ----------------------------------------------------------------------------------------


def _round(x: float, digits: int = DIGITS) -> float:
    if x == 0:
        return 0.0
    return float(f"{x:.{digits}g}")


def calibrate(profile: CostProfile, points: list[CalibrationPoint]) -> CalibrationResult:
    """Fit ``profile``'s free parameters to the ``points`` of its platform (see the module doc)."""
    from scipy.optimize import least_squares  # imported here: slow to import, only needed to fit

    mine = [p for p in points if p.tee is profile.tee]
    if not mine:
        raise ConfigError(f"no calibration points for platform {profile.tee.value} (profile {profile.name})")
    predictor = Predictor(mine, profile)
    targets = np.array([p.target for p in mine])
    free = profile.free_parameters()
    if not free:
        preds = predictor.predict(profile)
        return CalibrationResult(profile, [PointResult(p, y) for p, y in zip(mine, preds, strict=True)],
                                 message="no free parameters")  # fmt: skip

    logs = [r.lo > 0 for r in free]
    lo = np.array([math.log(r.lo) if lg else r.lo for r, lg in zip(free, logs, strict=True)])
    hi = np.array([math.log(r.hi) if lg else r.hi for r, lg in zip(free, logs, strict=True)])
    x0 = (lo + hi) / 2

    def values(x: np.ndarray) -> dict[str, float]:
        out = {}
        for r, lg, xi in zip(free, logs, x, strict=True):
            v = math.exp(xi) if lg else float(xi)
            out[r.key] = min(max(v, r.lo), r.hi)
        return out

    def residuals(x: np.ndarray) -> np.ndarray:
        trial = profile.with_values(values(x))
        return (np.array(predictor.predict(trial)) - targets) / targets

    sol = least_squares(residuals, x0, bounds=(lo, hi), method="trf", x_scale=1.0, xtol=1e-10, ftol=1e-10)
    fitted = {k: min(max(_round(v), r.lo), r.hi) for (k, v), r in zip(values(sol.x).items(), free, strict=True)}
    ids = ", ".join(dict.fromkeys(p.row_id for p in mine))
    result_profile = profile.with_values(fitted, source=f"fitted to {ids}")
    preds = predictor.predict(result_profile)
    return CalibrationResult(
        profile=result_profile,
        points=[PointResult(p, y) for p, y in zip(mine, preds, strict=True)],
        params=[FittedParam(r.key, r.unit, r.value, fitted[r.key], r.lo, r.hi) for r in free],
        success=bool(sol.success),
        message=str(sol.message),
    )
