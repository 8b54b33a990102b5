"""lazyaccept as a library: boot, run, compare and sweep results as typed records.

For notebooks and scripts.  Each function does what the command of the same name does and
returns what its ``--json`` prints, as frozen dataclasses (``.document`` keeps the whole JSON
document for anything a record does not name).  Records are stable as the JSON is: fields are
added, never renamed or removed without a new version.

    >>> from lazyaccept import api
    >>> b = api.boot("64G", vcpus=8)                 # the tdx profile's defaults otherwise
    >>> round(b.boot_s, 1), b.phases[0].name
    >>> api.compare(["4G", "64G"], profile="tdx-seed").rows[1].speedup
    >>> api.run("64G", ["touch:32G"], policy="background:threads=1,rate=2G").stalls.p99_s
    >>> df = api.sweep_frame("fleet.jsonl")          # pip install 'lazyaccept[pandas]'

Sizes are bytes (``int``) or text as the command line reads it (``"64G"``, ``"4096M"``; a plain
number is MiB).  Bad input raises :class:`ConfigError`; a guest the model says fails (a crash,
an out-of-memory at boot) raises a :class:`GuestFailure` whose ``as_dict()`` is the failure of
the JSON (``compare`` records a failed size as a :class:`FailedSize` instead).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base.choices import AcceptPolicy, FirmwareAccept, HostMapping, Tee
from .base.errors import ConfigError, GuestFailure
from .base.units import parse_size
from .guest.footprint import BootFootprint
from .guest.policies import Policy
from .presentation.boot_report import boot_summary
from .presentation.compare_report import compare_document
from .scenario.config import GuestRequest
from .scenario.runtime import RunConfig
from .scenario.workloads import Workload
from .sim.fleet.results import read_results
from .sim.profile import CostProfile, load_profile
from .sim.run import resolve
from .sim.run import run as simulate_boot
from .sim.runtime import run_document, simulate_run
from .sim.sweep import CompareRow, compare_policies

if TYPE_CHECKING:
    import pandas

__all__ = [
    "Boot", "Comparison", "ComparisonRow", "ConfigError", "FailedSize", "GuestFailure", "Phase", "Run", "Stalls",
    "SweepRun", "WorkloadResult", "boot", "compare", "read_sweep", "run", "sweep_frame",
]

Size = int | str


@dataclass(frozen=True)
class Phase:
    """One boot phase on the simulated clock."""

    name: str
    actor: str
    start_s: float
    end_s: float
    #: vCPU-seconds spent accepting memory in the phase (lock spinning included).
    accept_s: float
    #: vCPU-seconds work waited on the host's serialised path.
    host_path_wait_s: float
    #: Timer exits the idle vCPUs took.
    idle_exits: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Boot:
    """One boot (``lazyaccept boot --json``)."""

    config: dict[str, Any]
    boot_s: float
    #: vCPU-seconds accepting memory, and the wall seconds during which any vCPU was.
    accept_s: float
    accept_wall_s: float
    phases: tuple[Phase, ...]
    #: Bytes accepted by ``firmware``, ``efi stub`` and ``kernel``.
    accepted_bytes: dict[str, int]
    exits: int
    host_committed_bytes: int
    unaccepted_after_boot_bytes: int
    document: dict[str, Any]


@dataclass(frozen=True)
class Stalls:
    """First touches that waited for acceptance: how many, and quantiles of the wait (s)."""

    count: int
    p50_s: float | None
    p99_s: float | None
    p999_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class WorkloadResult:
    name: str
    start_s: float
    end_s: float
    #: The same workload on a guest booted with ``accept_memory=eager``, and duration over it.
    baseline_s: float | None
    slowdown: float | None


@dataclass(frozen=True)
class Run:
    """A boot and the workloads after it (``lazyaccept run --json``)."""

    config: dict[str, Any]
    boot_s: float
    workloads: tuple[WorkloadResult, ...]
    stalls: Stalls
    irqs_off_max_s: float | None
    soft_lockup: bool
    fully_accepted_s: float | None
    host_committed_bytes: int
    document: dict[str, Any]


@dataclass(frozen=True)
class ComparisonRow:
    """One memory size booted eager and lazy."""

    memory_bytes: int
    eager_s: float
    lazy_s: float
    #: Wall seconds during which any vCPU was accepting memory, eager and lazy.
    eager_accept_wall_s: float
    lazy_accept_wall_s: float

    @property
    def speedup(self) -> float:
        """Eager boot over lazy boot."""
        return self.eager_s / self.lazy_s


@dataclass(frozen=True)
class FailedSize:
    """A memory size whose guest failed under ``policy``: ``failure`` is the JSON's record."""

    memory_bytes: int
    policy: str
    failure: dict[str, Any]


@dataclass(frozen=True)
class Comparison:
    """Eager against lazy at each size, for one profile (``lazyaccept compare --json``)."""

    profile: str
    config: dict[str, Any]
    rows: tuple[ComparisonRow | FailedSize, ...]
    document: dict[str, Any]


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep's results file (``kind: run``), its fields typed."""

    key: str
    profile: str
    #: The run's policy as the grid names it (``background:threads=1,rate=2G``), not only its
    #: ``accept_memory=``.
    policy: str
    memory_bytes: int
    vcpus: int
    platform: str
    kernel: str
    firmware_accept: str
    host_mapping: str
    ok: bool
    failure: str | None
    failure_kind: str | None
    boot_s: float | None
    accept_s: float | None
    accept_wall_s: float | None
    accepted_bytes: int | None
    exits: int | None
    host_committed_bytes: int | None
    unaccepted_after_boot_bytes: int | None
    #: Grid coordinates and fixed values, canonical (sizes in bytes).
    point: dict[str, Any]
    #: ``{name, duration_s, slowdown, stalls, stalls_s, fully_accepted_s, irqs_off_max_s}`` or None.
    workload: dict[str, Any] | None


def _size(value: Size, what: str = "memory") -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{what} must be bytes (an int) or a size like '64G', not {value!r}")
    return parse_size(value)


def _request(
    memory: Size, *, profile: CostProfile, policy: AcceptPolicy, vcpus: int | None, kernel: str | None,
    firmware_accept: Size | None, host_mapping: str | None, kconfig: Sequence[str], patches: Sequence[str] | None,
    shell_footprint: Size | None,
) -> GuestRequest:
    if vcpus is not None and (isinstance(vcpus, bool) or not isinstance(vcpus, int)):
        raise ConfigError(f"vcpus must be a whole number, not {vcpus!r}")
    accept = None
    if firmware_accept is not None:
        accept = FirmwareAccept.parse(str(firmware_accept) if isinstance(firmware_accept, str)
                                      else f"{_size(firmware_accept, 'firmware_accept')}B")
    return GuestRequest(
        memory=_size(memory),
        tee=Tee(profile.tee),
        policy=policy,
        vcpus=vcpus,
        host_mapping=HostMapping(host_mapping.lower()) if host_mapping is not None else None,
        firmware_accept=accept,
        kernel=kernel,
        kconfig=tuple(kconfig),
        patches=tuple(patches) if patches is not None else None,
        footprint=BootFootprint() if shell_footprint is None
        else BootFootprint(shell_footprint=_size(shell_footprint, "shell_footprint")),
    )


def _profile(profile: str | CostProfile) -> CostProfile:
    return profile if isinstance(profile, CostProfile) else load_profile(profile)


def _phases(doc: dict[str, Any]) -> tuple[Phase, ...]:
    return tuple(Phase(p["name"], p["actor"], p["start_s"], p["end_s"], p["accept_s"], p["host_path_wait_s"],
                       p["idle_exits"]) for p in doc["phases"])


def boot(
    memory: Size, *, profile: str | CostProfile = "tdx", policy: str = "lazy", vcpus: int | None = None,
    kernel: str | None = None, firmware_accept: Size | None = None, host_mapping: str | None = None,
    kconfig: Sequence[str] = (), patches: Sequence[str] | None = None, shell_footprint: Size | None = None,
) -> Boot:
    """Model and simulate one boot, as ``lazyaccept boot``; unset options take the profile's
    defaults (a profile is a packaged name such as ``"snp"``, a TOML path, or a loaded one)."""
    prof = _profile(profile)
    request = _request(memory, profile=prof, policy=AcceptPolicy(policy.lower()), vcpus=vcpus, kernel=kernel,
                       firmware_accept=firmware_accept, host_mapping=host_mapping, kconfig=kconfig, patches=patches,
                       shell_footprint=shell_footprint)
    result = simulate_boot(resolve(request, prof), prof)
    doc = boot_summary(result, prof.name)
    return Boot(doc["config"], doc["boot_s"], doc["accept_s"], doc["accept_wall_s"], _phases(doc),
                dict(doc["accepted_bytes"]), doc["exits"], doc["host_committed_bytes"],
                doc["unaccepted_after_boot_bytes"], doc)


def run(
    memory: Size, workloads: Iterable[str], *, profile: str | CostProfile = "tdx", policy: str = "lazy",
    vcpus: int | None = None, kernel: str | None = None, firmware_accept: Size | None = None,
    host_mapping: str | None = None, kconfig: Sequence[str] = (), thp: bool = False,
    host_cpus: int | None = None, watchdog_thresh: float = 10.0,
) -> Run:
    """Boot, then run ``workloads`` (``"touch:32G"``, ``"drain,workers=4@60"`` ...) on the same
    clock, as ``lazyaccept run``; ``policy`` is any of the command's (``background:...``)."""
    if isinstance(workloads, str):
        raise ConfigError("workloads is a list of workloads, e.g. ['touch:32G']")
    if not (isinstance(watchdog_thresh, int | float) and math.isfinite(watchdog_thresh) and watchdog_thresh > 0):
        raise ConfigError(f"watchdog_thresh must be a positive number of seconds, not {watchdog_thresh!r}")
    prof = _profile(profile)
    pol = Policy.parse(policy)
    parsed = tuple(Workload.parse(w) for w in workloads)
    request = _request(memory, profile=prof, policy=pol.accept_memory, vcpus=vcpus, kernel=kernel,
                       firmware_accept=firmware_accept, host_mapping=host_mapping, kconfig=kconfig, patches=None,
                       shell_footprint=None)
    request = replace(request, patches=pol.with_patches(request.patches))
    config = RunConfig(resolve(request, prof), parsed, pol, thp, host_cpus, float(watchdog_thresh))
    doc = run_document(simulate_run(config, prof), prof)
    st = doc["stalls"]
    return Run(
        doc["config"], doc["boot_s"],
        tuple(WorkloadResult(w["name"], w["start_s"], w["end_s"], w["baseline_s"], w["slowdown"])
              for w in doc["workloads"]),
        Stalls(st["count"], st["p50_s"], st["p99_s"], st["p999_s"], st["max_s"]),
        doc["irqs_off_max_s"], bool(doc["soft_lockup"]), doc["fully_accepted_s"], doc["host_committed_bytes"], doc,
    )


def compare(
    memories: Iterable[Size], *, profile: str | CostProfile = "tdx", vcpus: int | None = None,
    kernel: str | None = None, firmware_accept: Size | None = None, host_mapping: str | None = None,
    kconfig: Sequence[str] = (), patches: Sequence[str] | None = None,
) -> Comparison:
    """Boot each size eager and lazy, as ``lazyaccept compare`` does for one profile."""
    if isinstance(memories, str | int):
        raise ConfigError("memories is a list of sizes, e.g. ['4G', '64G']")
    sizes = [_size(m) for m in memories]
    if not sizes:
        raise ConfigError("compare needs at least one memory size")
    prof = _profile(profile)
    request = _request(sizes[0], profile=prof, policy=AcceptPolicy.LAZY, vcpus=vcpus, kernel=kernel,
                       firmware_accept=firmware_accept, host_mapping=host_mapping, kconfig=kconfig, patches=patches,
                       shell_footprint=None)
    config, rows = compare_policies(request, sizes, prof)
    doc = compare_document(config, rows, prof)
    out: list[ComparisonRow | FailedSize] = []
    for r in rows:
        if isinstance(r, CompareRow):
            out.append(ComparisonRow(r.memory_bytes, r.eager_s, r.lazy_s, r.eager_accept_wall_s, r.lazy_accept_wall_s))
        else:
            out.append(FailedSize(r.memory_bytes, r.policy.value, r.failure.as_dict()))
    config_doc = {k: v for k, v in doc.items() if k not in ("rows", "failed")}
    return Comparison(prof.name, config_doc, tuple(out), doc)


def _optional_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _optional_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _sweep_run(r: dict[str, Any]) -> SweepRun:
    point = dict(r.get("point") or {})
    c = r["config"]
    return SweepRun(
        key=str(r["key"]), profile=str(r["profile"]["ref"]),
        policy=str(point["policy"]) if "policy" in point else str(c["policy"]),
        memory_bytes=int(c["memory_bytes"]), vcpus=int(c["vcpus"]), platform=str(c["platform"]),
        kernel=str(c["kernel"]), firmware_accept=str(c["firmware_accept"]), host_mapping=str(c["host_mapping"]),
        ok=bool(r["ok"]), failure=r.get("failure"), failure_kind=r.get("failure_kind"),
        boot_s=_optional_float(r.get("boot_s")), accept_s=_optional_float(r.get("accept_s")),
        accept_wall_s=_optional_float(r.get("accept_wall_s")), accepted_bytes=_optional_int(r.get("accepted_bytes")),
        exits=_optional_int(r.get("exits")), host_committed_bytes=_optional_int(r.get("host_committed_bytes")),
        unaccepted_after_boot_bytes=_optional_int(r.get("unaccepted_after_boot_bytes")),
        point=point, workload=r.get("workload") if isinstance(r.get("workload"), dict) else None,
    )


def read_sweep(*paths: str | Path) -> list[SweepRun]:
    """Every run of one or more results files of ``lazyaccept sweep`` (a key once), in file order."""
    if not paths:
        raise ConfigError("read_sweep needs at least one results file")
    return [_sweep_run(r) for r in read_results(paths).runs.values()]


#: Columns of :func:`sweep_frame`, in order (then ``workload_*`` when runs had workloads).
FRAME_COLUMNS = (
    "key", "profile", "platform", "memory_bytes", "vcpus", "policy", "kernel", "firmware_accept", "host_mapping",
    "ok", "failure_kind", "failure", "boot_s", "accept_s", "accept_wall_s", "accepted_bytes", "exits",
    "host_committed_bytes", "unaccepted_after_boot_bytes",
)


def sweep_frame(*paths: str | Path) -> pandas.DataFrame:
    """:func:`read_sweep` as a pandas DataFrame, one row per run, columns :data:`FRAME_COLUMNS`
    (and ``workload_slowdown``, ``workload_duration_s``, ``workload_stalls``,
    ``workload_fully_accepted_s`` when any run had a workload).  Needs the ``pandas`` extra."""
    try:
        import pandas
    except ImportError:
        raise ImportError("sweep_frame needs pandas: pip install 'lazyaccept[pandas]'") from None
    runs = read_sweep(*paths)
    records: list[dict[str, Any]] = []
    with_workload = any(r.workload is not None for r in runs)
    for r in runs:
        row = {c: getattr(r, c) for c in FRAME_COLUMNS}
        if with_workload:
            w = r.workload or {}
            row |= {"workload_slowdown": w.get("slowdown"), "workload_duration_s": w.get("duration_s"),
                    "workload_stalls": w.get("stalls"), "workload_fully_accepted_s": w.get("fully_accepted_s")}
        records.append(row)
    columns = list(FRAME_COLUMNS) + ([c for c in records[0] if c.startswith("workload_")] if with_workload else [])
    return pandas.DataFrame.from_records(records, columns=columns)
