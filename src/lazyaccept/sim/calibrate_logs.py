"""Fit a host profile to the user's own boots: guest kernel logs (and optionally host traces) of
several boots at different sizes and vCPU counts (``lazyaccept calibrate --from-logs DIR``).

Each log gives its guest (``scenario.like``: memory, vCPUs, kernel, platform, ``accept_memory=``,
what firmware accepted) and the time stamps of its milestones since the kernel's start.  The
record of each boot is made once; every trial of the fit only re-times it with the trial's
costs and reads the milestones off the phases (``scenario.like.MILESTONE_PHASES``).  The
residuals are relative errors of each milestone's time; the fit is :mod:`.calibrate`'s bounded
least squares in log space, started from the best of the middle of the bounds and a Halton set.

A host trace beside a log corrects the log's clock first: time the host saw and the guest's
clock did not count (:func:`lazyaccept.sim.attribute.attribute`, with the profile as given) is
added to every milestone after it.

Uncertainties: one standard deviation of each parameter from the Jacobian at the optimum, scaled
by the residuals' own spread (time stamps carry the noise of the boot, not a rounded published
figure).  A parameter the milestones cannot pin down (its uncertainty over 100%, or no milestone
depends on it: an idle-tick cost from boots whose vCPUs are never idle, say) is named, and keeps
the profile's value in the profile written.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base.choices import AcceptPolicy, FirmwareAccept, Tee
from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..base.units import parse_size
from ..formats.host_trace import MAGIC, HostTrace, parse_host_trace
from ..formats.kernel_text import parse_dmesg_boots, select_boot
from ..scenario.boot_record import BootRecord
from ..scenario.build import build_record
from ..scenario.config import GuestRequest
from ..scenario.like import LOG_LIMIT, MILESTONE_PHASES, LogGuest, guest_from_log, merge
from .calibrate import RMS_WARNING, FittedParam, _halton, _round
from .profile import CostProfile
from .run import BootResult, resolve
from .timeline import simulate

#: Milestones earlier than this (seconds since the kernel's start) are not fitted: relative errors
#: of a few microseconds say nothing.
MIN_TARGET_S = 0.01
#: Starting points screened (the middle of the bounds and a Halton set).
SCREEN_POINTS = 8
#: A parameter whose relative uncertainty passes this is reported as undetermined.
UNDETERMINED = 1.0
#: The smallest relative spread of residuals assumed (time stamps have microseconds).
MIN_SIGMA = 1e-5
#: How many files a folder may hold (a folder of boots, not a disk).
MAX_FILES = 10_000


@dataclass
class LogBoot:
    """One boot: its log, the guest it describes, its milestones (clock-corrected), its trace."""

    path: str
    guest: LogGuest
    request: GuestRequest
    targets: dict[str, float]
    trace_path: str | None = None
    clock_lost_s: float = 0.0

    @property
    def label(self) -> str:
        return f"{Path(self.path).parent.name}/{Path(self.path).name}"


@dataclass
class LogPoint:
    boot: LogBoot
    milestone: str
    target: float
    prediction: float

    @property
    def rel_error(self) -> float:
        return (self.prediction - self.target) / self.target


@dataclass
class LogFitResult:
    profile: CostProfile
    boots: list[LogBoot]
    points: list[LogPoint]
    params: list[FittedParam] = field(default_factory=list)
    undetermined: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    success: bool = True
    message: str = ""

    @property
    def rms_rel_error(self) -> float:
        if not self.points:
            return 0.0
        return math.sqrt(sum(p.rel_error**2 for p in self.points) / len(self.points))


# --- reading a folder of boots ------------------------------------------------------------------


def _is_trace(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return any(line.startswith(MAGIC.encode()) for line in head.splitlines())


def find_boots(folder: str) -> list[tuple[Path, Path | None]]:
    """The guest logs under ``folder`` (any depth), each with the host trace of its boot: the only
    trace in its folder, or the one named like it (``boot1.txt`` and ``boot1.trace``)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--from-logs {folder}: not a folder")
    files: list[Path] = []
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for n in sorted(names):
            p = Path(dirpath) / n
            if n.startswith(".") or not p.is_file() or p.is_symlink():
                continue
            files.append(p)
            if len(files) > MAX_FILES:
                raise ConfigError(f"--from-logs {folder}: more than {MAX_FILES} files")
    traces = [p for p in files if _is_trace(p)]
    # Dump folders hold e820.txt, meminfo and vmstat beside dmesg.txt: those are not logs.
    others = ("meminfo", "vmstat", "e820")
    logs = [p for p in files if p not in traces and not p.name.startswith(others)
            and (p.name == "dmesg" or p.suffix in (".txt", ".log", ".json"))]
    out = []
    for log in logs:
        near = [t for t in traces if t.parent == log.parent]
        same = [t for t in near if t.stem.split(".")[0] == log.stem.split(".")[0]]
        trace = same[0] if len(same) == 1 else (near[0] if len(near) == 1 and len(
            [g for g in logs if g.parent == log.parent]) == 1 else None)
        out.append((log, trace))
    if not out:
        raise ConfigError(f"--from-logs {folder}: no guest kernel logs in it")
    return out


def _read_guest(path: Path) -> LogGuest | None:
    text = read_input(str(path), limit=LOG_LIMIT, what="kernel logs").decode("utf-8", errors="replace")
    try:
        info = select_boot(parse_dmesg_boots(text), -1)
    except FormatError:
        return None
    if not info.milestones or not info.lines_parsed:
        return None
    return guest_from_log(info, str(path))


def _request(guest: LogGuest, profile: CostProfile) -> GuestRequest:
    values = merge(guest, {}).values
    platform = Tee(values.get("platform", profile.tee.value))
    return GuestRequest(
        memory=parse_size(values["memory"]),
        tee=platform,
        policy=AcceptPolicy(values.get("policy", AcceptPolicy.LAZY.value)),
        vcpus=int(values["vcpus"]) if "vcpus" in values else None,
        kernel=values.get("kernel"),
        firmware_accept=FirmwareAccept.parse(values["firmware_accept"]) if "firmware_accept" in values else None,
    )


def platforms(folder: str) -> set[str]:
    """The platforms the guest logs under ``folder`` say they ran on (the default profile's)."""
    out = set()
    for log, _ in find_boots(folder):
        guest = _read_guest(log)
        if guest is not None and "platform" in guest.facts:
            out.add(guest.facts["platform"].value)
    return out


def read_boots(folder: str, profile: CostProfile) -> tuple[list[LogBoot], list[str]]:
    """The boots of ``folder`` that can be fitted, and why the others cannot."""
    from .attribute import attribute  # the clock correction; imported here, it needs the whole model

    boots, skipped = [], []
    for log, trace_path in find_boots(folder):
        guest = _read_guest(log)
        if guest is None:
            skipped.append(f"{log}: not a kernel log with time-stamped milestones")
            continue
        try:
            request = _request(guest, profile)
        except ConfigError as exc:
            skipped.append(f"{log}: {exc}")
            continue
        if request.tee is not profile.tee:
            skipped.append(f"{log}: a {request.tee.value} guest; profile {profile.name} is {profile.tee.value}")
            continue
        targets = {k: v for k, v in guest.milestones.items() if v >= MIN_TARGET_S}
        boot = LogBoot(str(log), guest, request, targets, str(trace_path) if trace_path else None)
        if trace_path is not None:
            trace = _read_trace(trace_path)
            record = build_record(resolve(request, profile))
            result = BootResult(record, simulate(record.phases, profile,
                                                 committed_at_start=record.platform.host.added_bytes))
            att = attribute(result, profile, guest.milestones, trace)
            boot.clock_lost_s = att.clock_lost_s
            order = [k for k, *_ in MILESTONE_PHASES]
            for seg in att.segments:
                if seg.lost_s:
                    after = order[order.index(seg.end_key):]
                    for k in after:
                        if k in boot.targets:
                            boot.targets[k] += seg.lost_s
        if not boot.targets:
            skipped.append(f"{log}: no milestone after {MIN_TARGET_S * 1000:g} ms to fit")
            continue
        boots.append(boot)
    return boots, skipped


def _read_trace(path: Path) -> HostTrace:
    text = read_input(str(path), limit=256 << 20, what="host traces").decode("utf-8", errors="replace")
    try:
        return parse_host_trace(text)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None


# --- fitting ----------------------------------------------------------------------------------------


class _Predictor:
    """Each boot recorded once; milestone times of any trial profile."""

    def __init__(self, boots: list[LogBoot], profile: CostProfile) -> None:
        self.records: list[BootRecord] = [build_record(resolve(b.request, profile)) for b in boots]
        self.keys = [sorted(b.targets, key=[k for k, *_ in MILESTONE_PHASES].index) for b in boots]

    def predict(self, profile: CostProfile) -> list[float]:
        out = []
        for rec, keys in zip(self.records, self.keys, strict=True):
            tl = simulate(rec.phases, profile, committed_at_start=rec.platform.host.added_bytes)
            spans = {p.name: (p.start, p.end) for p in tl.phases}
            zero = spans["early-init"][0]
            edges = {k: (ph.value, edge) for k, _, ph, edge in MILESTONE_PHASES}
            for k in keys:
                name, edge = edges[k]
                span = spans.get(name)
                if span is None:
                    raise ConfigError(f"the model has no {name} phase for milestone {k}")
                out.append((span[0] if edge == "start" else span[1]) - zero)
        return out


def fit_logs(profile: CostProfile, boots: list[LogBoot]) -> LogFitResult:
    """Fit ``profile``'s free parameters to the milestones of ``boots`` (module docstring)."""
    from scipy.optimize import least_squares

    if not boots:
        raise ConfigError("no boots to fit")
    predictor = _Predictor(boots, profile)
    targets = np.array([b.targets[k] for b, keys in zip(boots, predictor.keys, strict=True) for k in keys])
    free = profile.free_parameters()
    warnings: list[str] = []
    if not free:
        raise ConfigError(f"profile {profile.name} has no free parameters (fit = true) to fit")
    if len(targets) < len(free):
        warnings.append(f"underdetermined: {len(free)} free parameters but {len(targets)} time-stamped milestones")
    lo = np.array([math.log(r.lo) for r in free])
    hi = np.array([math.log(r.hi) for r in free])

    def values(x: np.ndarray) -> dict[str, float]:
        return {r.key: min(max(math.exp(xi), r.lo), r.hi) for r, xi in zip(free, x, strict=True)}

    def residuals(x: np.ndarray) -> np.ndarray:
        return (np.array(predictor.predict(profile.with_values(values(x)))) - targets) / targets

    starts = [(lo + hi) / 2] + [lo + (hi - lo) * h for h in _halton(SCREEN_POINTS, len(free))]
    x0 = min(starts, key=lambda x: float(np.sum(residuals(x) ** 2)))
    sol = least_squares(residuals, x0, bounds=(lo, hi), method="trf", x_scale=1.0, xtol=1e-12, ftol=1e-12,
                        gtol=1e-12, diff_step=1e-4)
    unc, why = _uncertainties(sol.jac, sol.fun)
    fitted = values(sol.x)
    dead = [r.key for r, w in zip(free, why, strict=True) if w == "dead"]
    tied = [r.key for r, w in zip(free, why, strict=True) if w == "tied"]
    loose = [r.key for r, u, w in zip(free, unc, why, strict=True) if w is None and u > UNDETERMINED]
    undetermined = dead + tied + loose
    for r in free:
        if r.key in dead or r.key in loose:
            fitted[r.key] = r.value  # the boots do not say: keep the profile's value
    fitted = {k: min(max(_round(v), r.lo), r.hi) for (k, v), r in zip(fitted.items(), free, strict=True)}
    labels = ", ".join(dict.fromkeys(b.label for b in boots))
    changed = {k: v for k, v in fitted.items() if k not in dead and k not in loose}
    out_profile = profile.with_values(changed, source=f"fitted to the boot logs {labels}") if changed else profile
    params = [FittedParam(r.key, r.unit, r.value, fitted[r.key], r.lo, r.hi, u) for r, u in zip(free, unc, strict=True)]
    if dead:
        warnings.append("cannot determine " + ", ".join(dead) + ": no milestone of these boots depends on it "
                        "(kept at the profile's value)")
    if tied:
        warnings.append("cannot determine " + ", ".join(tied) + " each on its own: these boots only fix a "
                        "combination of them (the values written are one of many that fit)")
    if loose:
        warnings.append("cannot determine " + ", ".join(loose) + f": uncertainty over {UNDETERMINED:.0%} "
                        "(kept at the profile's value)")
    if undetermined:
        warnings.append("boots at other sizes and vCPU counts, eager and lazy, separate the parameters")
    for p in params:
        if p.key not in undetermined and p.at_bound:
            warnings.append(f"{p.key} sits on a bound ({p.after:g} {p.unit}): the data want it beyond "
                            f"[{p.lo:g}, {p.hi:g}]")
    preds = predictor.predict(out_profile)
    points = []
    i = 0
    for b, keys in zip(boots, predictor.keys, strict=True):
        for k in keys:
            points.append(LogPoint(b, k, b.targets[k], preds[i]))
            i += 1
    result = LogFitResult(out_profile, boots, points, params, undetermined, warnings, bool(sol.success),
                          str(sol.message))
    if result.rms_rel_error > RMS_WARNING:
        warnings.append(f"poor fit: RMS relative error {result.rms_rel_error:.1%} is over {RMS_WARNING:.0%}")
    return result


def _uncertainties(jac: np.ndarray, fun: np.ndarray) -> tuple[list[float], list[str | None]]:
    """One-sigma relative uncertainty per parameter, ``sigma^2 (J^T J)^-1`` with sigma the
    residuals' own spread (at least :data:`MIN_SIGMA`), and why a parameter has none: ``"dead"``
    (no residual depends on it) or ``"tied"`` (it moves with others along a direction no residual
    sees: a singular ``J^T J``)."""
    m, n = jac.shape
    sigma2 = max(float(fun @ fun) / (m - n) if m > n else 1.0, MIN_SIGMA**2)
    jtj = jac.T @ jac
    scale = np.sqrt(np.diag(jtj))
    unc = [math.inf] * n
    why: list[str | None] = ["dead"] * n
    live = [i for i in range(n) if scale[i] > 1e-9 * max(float(scale.max()), 1e-300)]
    if not live:
        return unc, why
    sub = jtj[np.ix_(live, live)]
    # Singular directions, on the correlation matrix (so units and sizes do not decide).
    d = np.sqrt(np.diag(sub))
    corr = sub / np.outer(d, d)
    _, s, vt = np.linalg.svd(corr)
    null = vt[s < 1e-8 * s.max()]
    cov = sigma2 * np.linalg.pinv(sub)
    for j, i in enumerate(live):
        if null.size and np.any(np.abs(null[:, j]) > 1e-3):
            why[i] = "tied"
        else:
            why[i] = None
            unc[i] = float(math.sqrt(max(cov[j, j], 0.0)))
    return unc, why
