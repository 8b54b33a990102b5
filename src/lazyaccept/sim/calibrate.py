"""Fit a host profile's free parameters to published measurements.

The calibration table (a CSV file; the one shipped is ``lazyaccept/data/calibration.csv``) has
one row per published figure, with its configuration:

``id, platform, profile, metric, memory_gib, vcpus, host_private_mapping, kernel,
firmware_accept, kconfig, patches, workload, eager_s, lazy_s, ratio_eager_over_lazy, value,
unit, source, note``

``profile`` names the host profile the figure belongs to: a profile is fitted to its own rows
only.  Empty configuration cells take that profile's ``[defaults]``; ``kconfig`` is a list of
``NAME=VALUE`` separated by commas, ``patches`` of patch names.  Each row gives one or more
*points*, a quantity the model predicts (:data:`METRICS`):

* ``boot`` / ``boot_to_shell``: boot time with ``accept_memory=eager`` (``eager_s``) and
  ``lazy`` (``lazy_s``), or their quotient (``ratio_eager_over_lazy``, used only when the row
  does not give both times);
* ``accept_all``: wall time during which memory is being accepted in an eager boot (``value``);
* ``fault_cost_early`` / ``fault_cost_late``: time per 4 KiB fault of the boot vCPU's first /
  last acceptance during SMP bring-up (``value`` in us);
* ``td_exit_round_trip``: an exit's round trip at the end of SMP bring-up, every AP online and
  idle (the vCPU's own part of the exit, ``[accept] td_exit``, and the host path's response to
  one exit, waiting included), in us;
* ``idle_hlt_exits_per_10s``: timer exits idle vCPUs make in 10 s.  Read with the row's ``HZ``:
  ``value / (10 * HZ)`` idle APs ticking at their full rate.  The model's count is that many
  idle APs at the tick rate it gives them when that many are idle in SMP bring-up; a *check*
  (ticks are not shed), not fitted: it constrains a cost only if the path were saturated;
* ``accepted_before_watermarks``: memory the boot vCPU accepted during SMP bring-up (GiB): a
  figure a profile's ``[defaults]`` or footprint was *derived* from (Dstack's 13 GiB gave the
  allocations per AP), so it is neither fitted nor reported as a check;
* ``swiotlb_convert``: time to convert the SWIOTLB buffer to shared (s);
* ``boot_to_init``: time from power-on until the kernel runs /init, lazy (s);
* ``drain``: a run-time workload (``workload`` column); listed, not fitted by boot calibration.

:func:`calibrate` fits the profile's ``fit = true`` parameters within their bounds by bounded
least squares (:func:`scipy.optimize.least_squares`) on relative errors.  The record of a boot
does not depend on costs, so each configuration is modelled once and only re-timed per trial.
The fit starts from the middle of each parameter's bounds (geometric middle, in log space), not
from the profile's current values, so the result depends only on the data, the bounds and the
fixed parameters.  Each fitted value gets an uncertainty from the Jacobian at the optimum.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np

from ..base.choices import AcceptPolicy, BootPhase, FirmwareAccept, HostMapping, Tee
from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..base.record import AcceptEvent, ConvertEvent
from ..base.units import PAGE_SIZE, GiB
from ..guest.kconfig import KernelConfig
from ..guest.patches import parse_patches
from ..scenario.boot_record import BootRecord
from ..scenario.build import build_record
from ..scenario.config import GuestRequest, VMConfig
from ..scenario.runtime import RunConfig
from ..scenario.workloads import Workload
from .profile import CostProfile, FittedTo
from .run import resolve
from .timeline import Timeline, simulate, timed_events

COLUMNS = (
    "id", "platform", "profile", "metric", "memory_gib", "vcpus", "host_private_mapping", "kernel",
    "firmware_accept", "kconfig", "patches", "workload", "eager_s", "lazy_s", "ratio_eager_over_lazy",
    "value", "unit", "source", "note",
)  # fmt: skip
#: The published calibration points, shipped with the package.
PACKAGED_CALIBRATION = Path(__file__).resolve().parent.parent / "data" / "calibration.csv"
#: Published figures no profile is fitted to (the same columns): what the model is checked on.
PACKAGED_VALIDATION = Path(__file__).resolve().parent.parent / "data" / "validation.csv"
#: Significant digits fitted values are written with (keeps the written profile stable).
DIGITS = 6
#: Relative measurement error assumed for a published figure when the fit leaves no residual
#: degrees of freedom to estimate it from (used only for the uncertainties).
ASSUMED_REL_ERROR = 0.10
#: Points of the space-filling screen a fit starts from the best of.
SCREEN_POINTS = 8
#: A fit whose RMS relative error passes this is reported as poor.
RMS_WARNING = 0.10

@dataclass(frozen=True)
class Results:
    """What a metric reads a prediction off: the point's boots by policy (``res[policy]`` is the
    record and its timeline), the point's own target, and the profile that timed them."""

    boots: dict[AcceptPolicy, tuple[BootRecord, Timeline]]
    target: float
    profile: CostProfile

    def __getitem__(self, policy: AcceptPolicy) -> tuple[BootRecord, Timeline]:
        return self.boots[policy]


# --- what the model predicts for each metric -----------------------------------------------------


def _accept_items(record: BootRecord, tl: Timeline, phase: BootPhase) -> list[tuple[float, int]]:
    """(duration, host faults) of the boot vCPU's acceptances in ``phase``, in order."""
    return [
        (e - s, ev.stats.host_backed_4k)
        for rec_phase, span in zip(record.phases, tl.phases, strict=True) if rec_phase.name == phase
        for ev, s, e, _ in timed_events(rec_phase, span)
        if ev.vcpu == 0 and isinstance(ev, AcceptEvent) and ev.stats.host_backed_4k
    ]


def _fault_cost(which: int) -> Callable[[Results], float]:
    def measure(res: Results) -> float:
        record, tl = res[AcceptPolicy.LAZY]
        items = _accept_items(record, tl, BootPhase.SMP_BRINGUP)
        if not items:
            raise ConfigError("no acceptance during SMP bring-up to time a fault by (more vCPUs, no deferred init?)")
        duration, faults = items[which]
        return duration / faults * 1e6

    return measure


def _idle_exits_per_10s(res: Results) -> float:
    """Exits in 10 s of the ``target / (10 * HZ)`` idle APs the figure implies, at the tick rate
    the model gives each idle AP when that many are idle in SMP bring-up."""
    target = res.target
    record, tl = res[AcceptPolicy.LAZY]
    phase = next(p for p in record.phases if p.name == BootPhase.SMP_BRINGUP)
    if not phase.tick_hz:
        raise ConfigError("idle_hlt_exits_per_10s needs a ticking kernel (NO_HZ_IDLE=n, or its HZ until NOHZ is on)")
    aps = target / (10 * phase.tick_hz)
    series = tl.phase(BootPhase.SMP_BRINGUP).timing.idle_exit_series
    prev_t, prev_ticks = tl.phase(BootPhase.SMP_BRINGUP).start, 0.0
    for t, ticks, idle in series:
        if idle >= aps and t > prev_t:
            return (ticks - prev_ticks) / (t - prev_t) / idle * aps * 10
        prev_t, prev_ticks = t, ticks
    raise ConfigError(f"fewer than {aps:.0f} idle APs during SMP bring-up: cannot read idle_hlt_exits_per_10s")


def _boot_to_init(res: Results) -> float:
    """Seconds from power-on until the kernel runs /init (the start of user space)."""
    _, tl = res[AcceptPolicy.LAZY]
    return tl.phase(BootPhase.USERSPACE).start


def _td_exit_round_trip(res: Results) -> float:
    record, tl = res[AcceptPolicy.LAZY]
    span = tl.phase(BootPhase.SMP_BRINGUP)
    return (res.profile.si("accept.td_exit") + span.timing.idle_response_end) * 1e6


def _accepted_before_watermarks(res: Results) -> float:
    record, _ = res[AcceptPolicy.LAZY]
    phase = next(p for p in record.phases if p.name == BootPhase.SMP_BRINGUP)
    accepted = sum(e.stats.bytes_accepted for e in phase.events if isinstance(e, AcceptEvent) and e.vcpu == 0)
    return accepted / GiB


def _swiotlb_convert(res: Results) -> float:
    record, tl = res[AcceptPolicy.LAZY]
    return sum(
        e - s
        for rec_phase, span in zip(record.phases, tl.phases, strict=True)
        for ev, s, e, _ in timed_events(rec_phase, span)
        if isinstance(ev, ConvertEvent)
    )


class Role(StrEnum):
    """What a point is for: fitted, checked against (validation, never fitted), or the figure a
    value was derived from (neither: reporting it as a check would be circular)."""

    FIT = "fit"
    CHECK = "check"
    DERIVED = "derived"


@dataclass(frozen=True)
class Metric:
    """What a metric needs (the boots, by policy) and how it reads the prediction off them."""

    policies: tuple[AcceptPolicy, ...]
    measure: Callable[[Results], float]
    unit_scale: dict[str, float] = field(default_factory=lambda: {"": 1.0})
    role: Role = Role.FIT

    @property
    def fittable(self) -> bool:
        return self.role is Role.FIT


_EAGER, _LAZY = AcceptPolicy.EAGER, AcceptPolicy.LAZY
METRICS: dict[str, Metric] = {
    "accept_all": Metric((_EAGER,), lambda r: r[_EAGER][1].accept_wall_s, {"s": 1.0, "": 1.0}),
    "fault_cost_early": Metric((_LAZY,), _fault_cost(0), {"us": 1.0, "": 1.0}),
    "fault_cost_late": Metric((_LAZY,), _fault_cost(-1), {"us": 1.0, "": 1.0}),
    "td_exit_round_trip": Metric((_LAZY,), _td_exit_round_trip, {"us": 1.0, "": 1.0}),
    "idle_hlt_exits_per_10s": Metric((_LAZY,), _idle_exits_per_10s, {"exits": 1.0, "": 1.0}, Role.CHECK),
    "accepted_before_watermarks": Metric((_LAZY,), _accepted_before_watermarks, {"GiB": 1.0, "": 1.0},
                                         Role.DERIVED),
    "swiotlb_convert": Metric((_LAZY,), _swiotlb_convert, {"s": 1.0, "": 1.0}),
    "boot_to_init": Metric((_LAZY,), _boot_to_init, {"s": 1.0, "": 1.0}),
}
#: Boot-time quantities read from the eager_s / lazy_s / ratio columns.
_BOOT_QUANTITIES = {
    "eager_s": Metric((_EAGER,), lambda r: r[_EAGER][1].total_s),
    "lazy_s": Metric((_LAZY,), lambda r: r[_LAZY][1].total_s),
    "ratio_eager_over_lazy": Metric((_EAGER, _LAZY), lambda r: r[_EAGER][1].total_s / r[_LAZY][1].total_s),
}
#: Metrics of run-time workloads: the drain of intel/lkvs tdx_mem_test.sh, from the workers'
#: start until nr_unaccepted is 0.  A boot's results cannot give them: :class:`Predictor` times
#: the point's recorded run instead.
RUNTIME_METRICS = ("drain",)


def _timed_by_the_run(res: Results) -> float:
    raise AssertionError("a run-time point is predicted from its run, not from boots")


_RUN_METRIC = Metric((), _timed_by_the_run)


# --- the points -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationPoint:
    """One published number the model must reproduce, with its configuration."""

    id: str  # the row id, with ":eager" / ":lazy" when the row gives both times
    row_id: str
    tee: Tee
    profile: str
    metric: str
    quantity: str  # the key of METRICS or _BOOT_QUANTITIES
    request: GuestRequest
    target: float
    source: str = ""
    workload: str = ""
    #: sha256 of the row's cells: a profile records the digests of the rows it was fitted to.
    digest: str = ""

    @property
    def spec(self) -> Metric:
        if self.quantity in RUNTIME_METRICS:
            return _RUN_METRIC
        return _BOOT_QUANTITIES.get(self.quantity) or METRICS[self.quantity]


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
    #: One standard deviation, relative to the value (from the Jacobian at the optimum).
    rel_uncertainty: float = math.nan

    @property
    def at_bound(self) -> bool:
        return math.isclose(self.after, self.lo, rel_tol=1e-4) or math.isclose(self.after, self.hi, rel_tol=1e-4)


@dataclass
class CalibrationResult:
    """The fitted profile, each point's target and prediction, each parameter's move, warnings."""

    profile: CostProfile
    points: list[PointResult]
    params: list[FittedParam] = field(default_factory=list)
    success: bool = True
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Rows of this profile that a value was derived from: neither fitted nor checks.
    derived: list[str] = field(default_factory=list)

    @property
    def checks(self) -> list[PointResult]:
        """Points predicted but not fitted: validation."""
        return [p for p in self.points if p.point.spec.role is Role.CHECK]

    @property
    def fitted_points(self) -> list[PointResult]:
        return [p for p in self.points if p.point.spec.fittable]

    @property
    def rms_rel_error(self) -> float:
        pts = self.fitted_points
        if not pts:
            return 0.0
        return math.sqrt(sum(p.rel_error**2 for p in pts) / len(pts))


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
    if not _LEAST <= value <= _MOST:
        # 1e308 overflows once scaled to bytes; 1e-320 is below a float's precision: not measurements.
        raise FormatError(f"{where}: {key} {text!r} is outside [{_LEAST:g}, {_MOST:g}], the range of any figure "
                          "a calibration row gives")
    return value


#: The range of every number in a calibration row (seconds, GiB, counts, ratios).
_LEAST, _MOST = 1e-12, 1e15


def _rows(reader: csv.DictReader[str], path: str) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows with their line numbers; a CSV error (a field over the csv module's 128 KiB limit,
    say) is a :class:`FormatError` naming the file and line."""
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FormatError(f"{path}: line {reader.line_num + 1}: not a calibration table: {exc}") from None
        yield reader.line_num, row


def _list(row: dict[str, str], key: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in (row.get(key) or "").split(",") if x.strip())


def _request(row: dict[str, str], tee: Tee, where: str) -> GuestRequest:
    gib = _number(row, "memory_gib", where)
    if gib is None:
        raise FormatError(f"{where}: memory_gib is empty")
    vcpus_f = _number(row, "vcpus", where)
    if vcpus_f is not None and not vcpus_f.is_integer():
        raise FormatError(f"{where}: vcpus must be a whole number, not {vcpus_f}")
    mapping = (row.get("host_private_mapping") or "").strip().lower() or None
    if mapping not in (None, *HostMapping):
        raise FormatError(f"{where}: host_private_mapping must be 4K or 2M, not {mapping!r}")
    fw = (row.get("firmware_accept") or "").strip()
    patches = _list(row, "patches")
    try:
        KernelConfig.parse(_list(row, "kconfig"))  # checked here, so a bad row names its line
        parse_patches(patches)
        return GuestRequest(
            memory=int(round(gib * GiB)) // PAGE_SIZE * PAGE_SIZE,
            tee=tee,
            vcpus=int(vcpus_f) if vcpus_f is not None else None,
            host_mapping=None if mapping is None else HostMapping(mapping),
            kernel=(row.get("kernel") or "").strip() or None,
            firmware_accept=FirmwareAccept.parse(fw) if fw else None,
            kconfig=_list(row, "kconfig"),
            patches=patches or None,
        )
    except ConfigError as exc:
        raise FormatError(f"{where}: {exc}") from None


def parse_calibration(text: str, path: str = "<calibration>") -> list[CalibrationPoint]:
    """The points of a calibration CSV (see the module docstring)."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        fieldnames = reader.fieldnames or []
    except csv.Error as exc:
        raise FormatError(f"{path}: line 1: not a calibration table: {exc}") from None
    missing = [c for c in ("id", "platform", "profile", "metric", "memory_gib") if c not in fieldnames]
    if missing:
        raise FormatError(f"{path}: not a calibration table: missing column(s) {', '.join(missing)}")
    points: list[CalibrationPoint] = []
    seen: set[str] = set()
    for n, row in _rows(reader, path):
        rid = (row.get("id") or "").strip()
        digest = hashlib.sha256("\x1f".join((row.get(c) or "").strip() for c in COLUMNS).encode()).hexdigest()
        where = f"{path}: line {n} ({rid or 'no id'})"
        if not rid:
            raise FormatError(f"{where}: empty id")
        if rid in seen:
            raise FormatError(f"{where}: id {rid!r} appears twice")
        seen.add(rid)
        platform = (row.get("platform") or "").strip().lower()
        if platform not in set(Tee):
            raise FormatError(f"{where}: platform must be tdx or snp, not {platform!r}")
        profile = (row.get("profile") or "").strip() or platform
        metric = (row.get("metric") or "").strip()
        request = _request(row, Tee(platform), where)
        source = (row.get("source") or "").strip()
        if metric in METRICS or metric in RUNTIME_METRICS:
            value = _number(row, "value", where)
            if value is None:
                raise FormatError(f"{where}: metric {metric} needs a value")
            unit = (row.get("unit") or "").strip()
            if metric in METRICS and unit not in METRICS[metric].unit_scale:
                raise FormatError(f"{where}: unit {unit!r} is not one metric {metric} is given in")
            scale = METRICS[metric].unit_scale[unit] if metric in METRICS else 1.0
            workload = (row.get("workload") or "").strip()
            if metric in RUNTIME_METRICS:
                if not workload:
                    raise FormatError(f"{where}: metric {metric} needs a workload (e.g. drain,workers=32)")
                try:
                    Workload.parse(workload)
                except ConfigError as exc:
                    raise FormatError(f"{where}: {exc}") from None
            points.append(CalibrationPoint(rid, rid, Tee(platform), profile, metric, metric, request,
                                           value * scale, source, workload, digest))
            continue
        if metric not in ("boot", "boot_to_shell"):
            known = ", ".join(["boot", "boot_to_shell", *METRICS, *RUNTIME_METRICS])
            raise FormatError(f"{where}: unknown metric {metric!r} (known: {known})")
        values = {q: _number(row, q, where) for q in _BOOT_QUANTITIES}
        if values["eager_s"] is not None and values["lazy_s"] is not None:
            values["ratio_eager_over_lazy"] = None  # just their quotient: do not count it twice
        given = [q for q in _BOOT_QUANTITIES if values[q] is not None]
        if not given:
            raise FormatError(f"{where}: no measured value (eager_s, lazy_s or ratio_eager_over_lazy)")
        for q in given:
            suffix = {"eager_s": ":eager", "lazy_s": ":lazy"}.get(q, "") if len(given) > 1 else ""
            points.append(CalibrationPoint(rid + suffix, rid, Tee(platform), profile, metric, q, request,
                                           float(values[q]), source, digest=digest))  # type: ignore[arg-type]
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
    """Predicts the points of one profile with any values of its costs; models each boot once.

    A boot is recorded once and timed with each profile.  A run-time point is recorded anew with
    each profile, as ``lazyaccept run`` records it: its workload's batches happen when the
    engine's clock says, so what they find (which chunks are left, whose they are) depends on the
    costs."""

    def __init__(self, points: list[CalibrationPoint], profile: CostProfile) -> None:
        self.points = points
        self.records: dict[VMConfig, BootRecord] = {}
        #: Per point, the resolved configuration of each boot it needs, by policy.
        self.configs: list[dict[AcceptPolicy, VMConfig]] = []
        #: Per run-time point, its run (a boot and its workload).
        self.runs: dict[int, RunConfig] = {}
        for i, p in enumerate(points):
            if p.metric in RUNTIME_METRICS:
                vm = resolve(p.request, profile)
                self.runs[i] = RunConfig(vm, (Workload.parse(p.workload),))
                self.configs.append({})
                continue
            by_policy = {}
            for policy in p.spec.policies:
                cfg = resolve(replace(p.request, policy=policy), profile)
                if cfg not in self.records:
                    self.records[cfg] = build_record(cfg)
                by_policy[policy] = cfg
            self.configs.append(by_policy)

    def predict(self, profile: CostProfile) -> list[float]:
        from .runtime import measure_run, time_run

        timelines = {cfg: simulate(rec.phases, profile) for cfg, rec in self.records.items()}
        out = []
        for i, (p, by_policy) in enumerate(zip(self.points, self.configs, strict=True)):
            if i in self.runs:
                result = measure_run(*time_run(self.runs[i], profile))
                start = result.workloads[0].start_s
                end = result.fully_accepted_s if result.fully_accepted_s is not None else result.workloads[0].end_s
                out.append(end - start)
                continue
            boots = {policy: (self.records[cfg], timelines[cfg]) for policy, cfg in by_policy.items()}
            out.append(p.spec.measure(Results(boots, p.target, profile)))
        return out


# --- fitting ----------------------------------------------------------------------------------------


def _round(x: float, digits: int = DIGITS) -> float:
    if x == 0:
        return 0.0
    return float(f"{x:.{digits}g}")


def points_of(profile: CostProfile, points: list[CalibrationPoint]) -> tuple[list[CalibrationPoint], list[str]]:
    """The points that belong to ``profile`` and the model predicts (fitted, and checks), and the
    ids of its rows that a value was derived from (:attr:`Role.DERIVED`)."""
    mine = [p for p in points if p.profile == profile.name]
    wrong = [p.id for p in mine if p.tee is not profile.tee]
    if wrong:
        raise ConfigError(f"calibration rows {', '.join(wrong)} are for another platform than profile {profile.name}")
    derived = [p.id for p in mine if p.spec.role is Role.DERIVED]
    return [p for p in mine if p.spec.role is not Role.DERIVED], derived


def fitted_to(points: list[CalibrationPoint]) -> FittedTo:
    """The rows a fit used, and one digest of their contents (order-free)."""
    rows = tuple(dict.fromkeys(p.row_id for p in points if p.spec.fittable))
    digests = sorted({f"{p.row_id}:{p.digest}" for p in points if p.spec.fittable})
    return FittedTo(rows, "sha256:" + hashlib.sha256("\n".join(digests).encode()).hexdigest())


def calibrate(profile: CostProfile, points: list[CalibrationPoint]) -> CalibrationResult:
    """Fit ``profile``'s free parameters to its own points (see the module docstring)."""
    from scipy.optimize import least_squares  # imported here: slow to import, only needed to fit

    mine, derived = points_of(profile, points)
    if not mine:
        raise ConfigError(f"no calibration rows for profile {profile.name!r} (the table's profile column)")
    predictor = Predictor(mine, profile)
    fit_idx = [i for i, p in enumerate(mine) if p.spec.fittable]
    targets = np.array([mine[i].target for i in fit_idx])
    free = profile.free_parameters()
    warnings: list[str] = []
    if not free:
        preds = predictor.predict(profile)
        return CalibrationResult(profile, [PointResult(p, y) for p, y in zip(mine, preds, strict=True)],
                                 message="no free parameters", derived=derived)  # fmt: skip
    table = fitted_to(mine)
    if profile.fitted_to is not None and profile.fitted_to != table:
        warnings.append(
            f"profile {profile.name} was fitted to rows {', '.join(profile.fitted_to.rows)} "
            f"({profile.fitted_to.digest[:19]}...); the table's rows for it now differ "
            f"({', '.join(table.rows)}, {table.digest[:19]}...): its shipped values are out of date"
        )
    if len(fit_idx) < len(free):
        warnings.append(
            f"underdetermined: {len(free)} free parameters but {len(fit_idx)} points; "
            "the values found are one of many that fit"
        )

    lo = np.array([math.log(r.lo) for r in free])
    hi = np.array([math.log(r.hi) for r in free])

    def values(x: np.ndarray) -> dict[str, float]:
        return {r.key: min(max(math.exp(xi), r.lo), r.hi) for r, xi in zip(free, x, strict=True)}

    def residuals(x: np.ndarray) -> np.ndarray:
        trial = profile.with_values(values(x))
        preds = predictor.predict(trial)
        return (np.array([preds[i] for i in fit_idx]) - targets) / targets

    # The shared resources make the predictions piecewise smooth (a resource saturates or not),
    # so a local fit can stop at a kink.  Start it from the best of a fixed, space-filling set of
    # points (the middle of the bounds and a Halton sequence), so the result depends only on the
    # data, the bounds and the fixed parameters.
    starts = [(lo + hi) / 2] + [lo + (hi - lo) * h for h in _halton(SCREEN_POINTS, len(free))]
    x0 = min(starts, key=lambda x: float(np.sum(residuals(x) ** 2)))
    sol = least_squares(residuals, x0, bounds=(lo, hi), method="trf", x_scale=1.0, xtol=1e-10, ftol=1e-10)
    fitted = {k: min(max(_round(v), r.lo), r.hi) for (k, v), r in zip(values(sol.x).items(), free, strict=True)}
    uncertainties = _uncertainties(sol.jac, sol.fun, warnings)
    ids = ", ".join(dict.fromkeys(mine[i].row_id for i in fit_idx))
    result_profile = replace(
        profile.with_values(fitted, source=f"fitted to {ids}",
                            uncertainties={r.key: _round(u, 3) for r, u in zip(free, uncertainties, strict=True)}),
        fitted_to=table,
    )
    preds = predictor.predict(result_profile)
    params = [
        FittedParam(r.key, r.unit, r.value, fitted[r.key], r.lo, r.hi, u)
        for r, u in zip(free, uncertainties, strict=True)
    ]
    for p in params:
        if p.at_bound:
            warnings.append(
                f"{p.key} sits on a bound ({p.after:g} {p.unit}): the data want it beyond [{p.lo:g}, {p.hi:g}]"
            )
    result = CalibrationResult(
        profile=result_profile,
        points=[PointResult(p, y) for p, y in zip(mine, preds, strict=True)],
        params=params,
        success=bool(sol.success),
        message=str(sol.message),
        warnings=warnings,
        derived=derived,
    )
    if result.rms_rel_error > RMS_WARNING:
        warnings.append(f"poor fit: RMS relative error {result.rms_rel_error:.1%} is over {RMS_WARNING:.0%}")
    return result


def _halton(count: int, dims: int) -> list[np.ndarray]:
    """The first ``count`` points of the Halton sequence in [0, 1)^dims (bases: the first primes)."""
    primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37][:dims]
    out = []
    for i in range(1, count + 1):
        point = []
        for b in primes:
            f, r, n = 1.0, 0.0, i
            while n:
                f /= b
                r += f * (n % b)
                n //= b
            point.append(r)
        out.append(np.array(point))
    return out


def _uncertainties(jac: np.ndarray, fun: np.ndarray, warnings: list[str]) -> list[float]:
    """One-sigma relative uncertainty of each parameter (the fit works in log space, so a
    standard deviation of x is a relative one of the value): ``sigma^2 (J^T J)^-1``, with sigma
    the residual RMS when there are more points than parameters, and never less than
    :data:`ASSUMED_REL_ERROR` (published figures are rounded: "about a minute")."""
    m, n = jac.shape
    sigma2 = max(float(fun @ fun) / (m - n) if m > n else 0.0, ASSUMED_REL_ERROR**2)
    jtj = jac.T @ jac
    if np.linalg.matrix_rank(jtj) < n:
        warnings.append("underdetermined: some parameters do not change any prediction (singular Jacobian)")
        return [math.inf] * n
    cov = sigma2 * np.linalg.inv(jtj)
    return [float(math.sqrt(max(c, 0.0))) for c in np.diag(cov)]
