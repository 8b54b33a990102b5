"""Many guests on one host: each guest's boot and run on one clock and one set of host resources
(:func:`~lazyaccept.sim.timeline.simulate_many`), the host memory they commit together against
the host's RAM, and what each guest's company cost it (its times alone on the same host beside
its times together).

Times of a guest are from its own start (``boot_s`` as ``run`` gives it); the host's series are
in host seconds (guest ``k`` starts at its ``start``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from ..base.choices import HostPath
from ..base.errors import GuestFailure
from ..scenario.build import build_record
from ..scenario.runtime import RunConfig, RunThreads
from .engine import Host
from .host_features import HostFeatures
from .profile import CostProfile
from .run import check_profile_fits
from .runtime import RunResult, measure_run
from .timeline import GuestBoot, LivePhase, Series, simulate_many


@dataclass(frozen=True)
class HostGuest:
    """One guest on the host: a name, what it runs, and when it starts (host seconds)."""

    name: str
    config: RunConfig
    start: float = 0.0


@dataclass
class GuestOnHost:
    """What one guest did on the host (``result`` in host seconds) and, if asked, alone."""

    guest: HostGuest
    result: RunResult
    alone: RunResult | None = None

    @property
    def boot_s(self) -> float:
        return self.result.boot_s - self.guest.start

    @property
    def end_s(self) -> float | None:
        """When its last workload ended, from its start (``None``: no workload)."""
        if not self.result.workloads:
            return None
        return max(w.end_s for w in self.result.workloads) - self.guest.start

    @property
    def boot_alone_s(self) -> float | None:
        return None if self.alone is None else self.alone.boot_s

    @property
    def end_alone_s(self) -> float | None:
        if self.alone is None or not self.alone.workloads:
            return None
        return max(w.end_s for w in self.alone.workloads)

    @property
    def committed(self) -> Series:
        return self.result.timeline.committed_bytes


@dataclass(frozen=True)
class OutOfMemory:
    """The host's RAM ran out: when, which guest's commit crossed it, and what was committed then."""

    t: float
    guest: str
    committed: int


@dataclass
class HostResult:
    guests: list[GuestOnHost]
    host: Host
    path: HostPath
    #: The host's RAM (``None``: not given), and host memory committed by all guests over time.
    host_memory: int | None
    committed: Series = field(default_factory=list)
    out_of_memory: OutOfMemory | None = None
    features: HostFeatures = field(default_factory=HostFeatures)
    #: Host memory the TEE keeps whatever the guests do (TDX's static PAMT): not the guests'.
    reserved_bytes: int = 0

    @property
    def peak_committed(self) -> int:
        return max((b for _, b in self.committed), default=0)


def simulate_host(guests: list[HostGuest], profile: CostProfile, *, host_cpus: int | None = None,
                  host_memory: int | None = None, alone: bool = True, path: HostPath = HostPath.SHARED,
                  features: HostFeatures | None = None) -> HostResult:
    """Boot and run ``guests`` together on one host priced by ``profile`` (``host_cpus`` physical
    CPUs for all their vCPUs, ``None``: one each; ``path``: one serialised path for all guests, or
    one each; ``features``: the host's what-ifs); with ``alone``, each distinct guest is also timed
    alone on the same host, for the contention the others cost it."""
    features = features if features is not None else HostFeatures()
    host = profile.host
    if host_cpus is not None:
        host = Host(host.memory_bandwidth, host.vcpu_bandwidth, host_cpus)
    guests = [replace(g, config=replace(g.config, vm=features.guest(g.config.vm))) for g in guests]
    for g in guests:
        check_profile_fits(g.config.vm, profile)
    together = _run(guests, profile, host, path, features)
    solo: dict[RunConfig, RunResult] = {}
    out = []
    for g, result in zip(guests, together, strict=True):
        by_itself = None
        if alone:
            if g.config not in solo:
                [solo[g.config]] = _run([replace(g, start=0.0)], profile, host, path, features)
            by_itself = solo[g.config]
        out.append(GuestOnHost(g, result, by_itself))
    reserved = features.static_bytes(host_memory, profile.tee) if host_memory is not None else 0
    limit = host_memory - reserved if host_memory is not None else None
    committed, oom = committed_sum([(g.guest.name, g.committed) for g in out], limit)
    return HostResult(out, host, path, host_memory, committed, oom, features, reserved)


def _run(guests: list[HostGuest], profile: CostProfile, host: Host, path: HostPath,
         features: HostFeatures) -> list[RunResult]:
    """``guests`` booted and run together, each measured as ``run`` measures one."""
    boots: list[GuestBoot] = []
    threads: list[RunThreads] = []
    for g in guests:
        with _named(g.name):
            boot = build_record(g.config.vm)
            th = RunThreads(g.config, boot)
        live = LivePhase(th.phase, th.busy_vcpus, _named_work(th.next_work, g.name), th.shared_fifos)
        boots.append(GuestBoot(boot.phases, profile, boot.platform.host.added_bytes, live, g.start, features.pricing()))
        threads.append(th)
    timelines = simulate_many(boots, host, path)
    out = []
    for g, th, tl in zip(guests, threads, timelines, strict=True):
        with _named(g.name):
            out.append(measure_run(th.finish(), tl))
    return out


@contextmanager
def _named(name: str) -> Iterator[None]:
    """A guest's modelled failure says which guest failed (``g3: ...``)."""
    try:
        yield
    except GuestFailure as exc:
        if exc.args and isinstance(exc.args[0], str) and not exc.args[0].startswith(f"{name}: "):
            exc.args = (f"{name}: {exc.args[0]}", *exc.args[1:])
        raise


def _named_work(next_work: Callable[[int, float], int | None], name: str) -> Callable[[int, float], int | None]:
    def work(vcpu: int, t: float) -> int | None:
        with _named(name):
            return next_work(vcpu, t)

    return work


def committed_sum(series: list[tuple[str, Series]], limit: int | None = None) -> tuple[Series, OutOfMemory | None]:
    """The sum of step series (each ``(t, cumulative bytes)``, held until its next point), and the
    first step past ``limit`` with the name of the series whose step crossed it (at one instant,
    in the order given)."""
    steps: list[tuple[float, int, int]] = []
    for k, (_, s) in enumerate(series):
        before = 0
        for t, b in s:
            steps.append((t, k, b - before))
            before = b
    steps.sort()
    out: Series = []
    total = 0
    oom = None
    for t, k, d in steps:
        total += d
        if oom is None and limit is not None and total > limit:
            oom = OutOfMemory(t, series[k][0], total)
        if out and out[-1][0] == t:
            out[-1] = (t, total)
        else:
            out.append((t, total))
    return out, oom
