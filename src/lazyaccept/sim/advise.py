"""Advice: which change to a guest's configuration makes it ready before its deadlines.

The search starts from the user's configuration (the *baseline*) and moves one lever at a time
(:class:`Lever`: the acceptance policy, the firmware's accept amount, build options, the vCPU
count, guest patches, the kernel release, the host's private mapping, THP), on a coarse set of
values per lever, timing each change as a coarse run (fewer, larger batches after the shell:
``RunConfig.coarse``) without its range.  The changes whose milestones meet every deadline are
then timed in full with their one-sigma ranges (the range from coarse runs with each fitted
parameter moved), cheapest first, until one meets every deadline by the upper end of its range;
when none meets even coarsely, those that come closest are.  When no single change is enough,
pairs of the best single changes of different levers are tried.  The timeout itself is a lever too:
the smallest timeout each missed deadline would need is the baseline's upper end.

The recommendation is the *cheapest* change that meets every deadline: levers are ordered by
what it takes to change them (:data:`EFFORT`: a kernel command-line option before a firmware
build, a kernel build, a kernel release, and a host change last), then by when the guest is
ready.  What moved is said by the boot phase (or stage) whose time changed most.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ..base.choices import FirmwareAccept, HostMapping, Tee
from ..guest.policies import Policy
from ..guest.rules import KERNELS
from ..scenario.config import GuestRequest
from ..scenario.runtime import RunConfig
from ..scenario.stages import Stage
from ..scenario.workloads import Workload
from .deadlines import Deadline, Verdict, evaluate
from .deadlines import Stage as Milestone
from .milestones import run_milestones
from .profile import CostProfile
from .run import resolve
from .runtime import RunResult, simulate_run


class Lever(StrEnum):
    """What a user can change, and the option that changes it."""

    POLICY = "--policy"
    THP = "--thp"
    VCPUS = "--vcpus"
    FIRMWARE = "--firmware-accept"
    KCONFIG = "--kconfig"
    PATCH = "--patch"
    KERNEL = "--kernel"
    HOST_MAPPING = "--host-mapping"
    TIMEOUT = "timeout"


#: What it takes to change a lever, least first: a kernel command-line option or the VM's shape;
#: the orchestrator's own setting; a firmware build option; a kernel build option; a kernel
#: patch; another kernel release; the host's KVM.
EFFORT: dict[Lever, int] = {
    Lever.POLICY: 0, Lever.THP: 0, Lever.VCPUS: 1, Lever.TIMEOUT: 2, Lever.FIRMWARE: 3, Lever.KCONFIG: 4,
    Lever.PATCH: 5, Lever.KERNEL: 6, Lever.HOST_MAPPING: 7,
}
#: Kernel releases tried: one per change of the acceptance rules that moves boot time (the
#: accepting list, the soft-lockup touch, proactive acceptance, the 6.12 fixes, mainline).
KERNEL_STEPS = ("6.5", "6.6", "6.9", "6.11", "6.12", "6.15", "mainline")
#: Host mappings that upstream KVM does not have for private memory: a what-if, said so.
NOT_UPSTREAM = {
    (Tee.TDX, HostMapping.PAGE_2M): "not in upstream KVM: the TDX huge-page series (LKML 'KVM: TDX huge page "
                                    "support', v3 of Jan 2026) is pending",
    (Tee.SNP, HostMapping.PAGE_2M): "not in upstream KVM: guest_memfd allocates 4 KiB folios; huge folios are pending",
}
#: Pairs of single changes tried when no single change is enough.
PAIRS_FROM = 4
#: Candidates timed in full with their ranges at most, cheapest first, until one meets.
RANGED = 4


@dataclass(frozen=True)
class Change:
    """One candidate: the changes it makes (lever, new value, a note) and the run it gives."""

    moves: tuple[tuple[Lever, str, str], ...]
    request: GuestRequest
    policy: Policy
    thp: bool

    @property
    def effort(self) -> int:
        return sum(EFFORT[lever] + 1 for lever, _, _ in self.moves)

    def describe(self) -> str:
        if not self.moves:
            return "as given"
        return " and ".join(f"{lever.value} {value}" for lever, value, _ in self.moves)

    @property
    def notes(self) -> list[str]:
        return [note for _, _, note in self.moves if note]


@dataclass
class Outcome:
    """A candidate timed: its run, each deadline's verdict, and whether its range was used."""

    change: Change
    result: RunResult
    verdicts: list[Verdict]
    ranged: bool

    @property
    def meets(self) -> bool:
        return all(v.met for v in self.verdicts)

    @property
    def worst_margin_s(self) -> float:
        return min((v.margin_s for v in self.verdicts), default=math.inf)

    @property
    def ready_upper_s(self) -> float:
        r = self.result
        return r.ready_range.high if self.ranged and r.ready_range is not None else r.ready_s


@dataclass
class Advice:
    """The baseline, every candidate timed (ranked), the timeouts the baseline would need, and
    the recommendation with what moved."""

    baseline: Outcome
    candidates: list[Outcome]
    timeouts: list[tuple[Deadline, float]] = field(default_factory=list)
    best: Outcome | None = None
    moved: str = ""
    slower_with_more_vcpus: str = ""


def single_changes(request: GuestRequest, policy: Policy, thp: bool, profile: CostProfile,
                   workloads: Sequence[Workload], stages: Sequence[Stage], fixed: Collection[Lever]) -> list[Change]:
    """Each lever moved alone to each of its coarse values (levers in ``fixed`` stay)."""
    vm = resolve(replace(request, policy=policy.accept_memory, patches=policy.with_patches(request.patches)), profile)
    out: list[Change] = []

    def add(lever: Lever, value: str, note: str = "", *, req: GuestRequest | None = None,
            pol: Policy | None = None, huge: bool | None = None) -> None:
        if lever not in fixed:
            out.append(Change(((lever, value, note),), req or request, pol or policy, thp if huge is None else huge))

    runs_after_shell = bool(workloads) or any(s.kind.value == "modelload" for s in stages)
    policies = ["lazy", "eager", "accept-ahead:chunks=8"]
    if runs_after_shell:  # a background thread only acts after the shell
        t = max(1, vm.vcpus // 4)
        policies.append(f"background:threads={t},rate={2 * t}G")
    for text in policies:
        p = Policy.parse(text)
        if str(p) != str(policy):
            add(Lever.POLICY, text, pol=p)
    for fw in ("below-4g", "all"):
        if str(FirmwareAccept.parse(fw)) != str(vm.firmware_accept):
            add(Lever.FIRMWARE, fw, req=replace(request, firmware_accept=FirmwareAccept.parse(fw)))
    for n in sorted({max(1, vm.vcpus // 2), min(vm.vcpus * 2, 512)} - {vm.vcpus}):
        add(Lever.VCPUS, str(n), req=replace(request, vcpus=n))
    k = vm.kconfig
    for item in (f"HZ={250 if k.hz == 1000 else 1000}",
                 f"NO_HZ_IDLE={'n' if k.no_hz_idle else 'y'}",
                 f"DEFERRED_STRUCT_PAGE_INIT={'n' if k.deferred_struct_page_init else 'y'}"):
        add(Lever.KCONFIG, item, req=replace(request, kconfig=(*request.kconfig, item)))
    have = {p.value for p in vm.patches}
    for patch in ("accepted-reserve", "late-swiotlb-convert"):
        if patch not in have:
            add(Lever.PATCH, patch, "a guest patch, not in any release",
                req=replace(request, patches=tuple(sorted(have | {patch}))))
    for release in KERNEL_STEPS:
        if release in KERNELS and KERNELS[release].name != vm.kernel.name:
            add(Lever.KERNEL, release, req=replace(request, kernel=release))
    for mapping in HostMapping:
        if mapping is not vm.host_mapping:
            add(Lever.HOST_MAPPING, mapping.value, NOT_UPSTREAM.get((vm.tee, mapping), ""),
                req=replace(request, host_mapping=mapping))
    if workloads:
        add(Lever.THP, "never" if thp else "always", huge=not thp)
    return out


def combine(a: Change, b: Change, request: GuestRequest) -> Change:
    """Two single changes of different levers at once."""
    req = request
    for c in (a, b):
        for f in ("vcpus", "firmware_accept", "kernel", "host_mapping", "patches"):
            if getattr(c.request, f) != getattr(request, f):
                req = replace(req, **{f: getattr(c.request, f)})
        if c.request.kconfig != request.kconfig:
            req = replace(req, kconfig=(*req.kconfig, *c.request.kconfig[len(request.kconfig):]))
    pol = b.policy if b.moves[0][0] is Lever.POLICY else a.policy
    thp = b.thp if b.moves[0][0] is Lever.THP else a.thp
    return Change(a.moves + b.moves, req, pol, thp)


def advise(request: GuestRequest, policy: Policy, thp: bool, profile: CostProfile, run_config: Callable[..., RunConfig],
           held: list[Deadline], workloads: Sequence[Workload], stages: Sequence[Stage],
           fixed: Collection[Lever] = (), progress: Callable[[], None] | None = None) -> Advice:
    """Search the levers for the cheapest change that meets every deadline (module docstring).
    ``run_config(request, policy, thp)`` builds a run of the caller's workloads and stages."""
    baselines: dict[RunConfig, list[float]] = {}
    init_range = any(d.stage is Milestone.INIT for d in held)

    def time(change: Change, ranged: bool) -> Outcome:
        # The screen is coarse (fewer, larger batches); a candidate it ranks is timed in full, its
        # range from coarse runs with each fitted parameter moved.
        config = replace(run_config(change.request, change.policy, change.thp), coarse=not ranged)
        result = simulate_run(config, profile, baseline=bool(workloads), baselines=baselines, ranges=ranged,
                              coarse_ranges=True)
        marks = run_milestones(result, profile, init_range=init_range and ranged)
        if progress is not None:
            progress()
        return Outcome(change, result, evaluate(held, marks), ranged)

    base = time(Change((), request, policy, thp), True)
    singles = [time(c, False) for c in single_changes(request, policy, thp, profile, workloads, stages, fixed)]
    by_margin = sorted(singles, key=lambda o: (-o.worst_margin_s, o.change.effort))
    pool = list(singles)
    if not any(o.meets for o in singles):
        helpful = [o for o in by_margin if o.worst_margin_s > base.worst_margin_s][:PAIRS_FROM]
        for i, a in enumerate(helpful):
            for b in helpful[i + 1:]:
                if a.change.moves[0][0] is not b.change.moves[0][0]:
                    pool.append(time(combine(a.change, b.change, request), False))
    # The most promising by nominal margin, cheapest first among those that meet nominally, get
    # their ranges: a deadline is met only by the upper end.
    nominal_ok = sorted((o for o in pool if o.meets), key=lambda o: (o.change.effort, o.ready_upper_s))
    rest = sorted((o for o in pool if not o.meets), key=lambda o: -o.worst_margin_s)
    # Cheapest first, until one meets every deadline by its range (or RANGED were timed).
    ranged: dict[int, Outcome] = {}
    for o in (nominal_ok + rest)[:RANGED]:
        ranged[id(o)] = full = time(o.change, True)
        if full.meets:
            break
    timed = [ranged.get(id(o), o) for o in pool]
    timed.sort(key=lambda o: (not (o.ranged and o.meets), o.ready_upper_s))
    meeting = [o for o in timed if o.ranged and o.meets]
    best = min(meeting, key=lambda o: (o.change.effort, o.ready_upper_s), default=None)
    timeouts = [(v.deadline, v.milestone.upper_s) for v in base.verdicts if not v.met]
    advice = Advice(base, timed, timeouts, best)
    if best is not None and best.change.moves:
        advice.moved = what_moved(base.result, best.result)
    more = [o for o in timed if o.change.moves and o.change.moves[0][0] is Lever.VCPUS and len(o.change.moves) == 1
            and (o.change.request.vcpus or 0) > (base.result.record.config.vm.vcpus)]
    if more and more[0].result.ready_s > base.result.ready_s:
        advice.slower_with_more_vcpus = (f"more vCPUs are slower here: {more[0].change.describe()} is ready at "
                                         f"{more[0].result.ready_s:.1f} s; {what_moved(base.result, more[0].result)}")
    return advice


def what_moved(before: RunResult, after: RunResult) -> str:
    """The boot phase or stage whose time changed most from ``before`` to ``after``, in words."""
    def spans(r: RunResult) -> dict[str, float]:
        out = {p.name: p.duration for p in r.timeline.phases if p.name != "workload"}
        out |= {f"stage {s.name}": s.duration_s for s in r.stages}
        return out

    a, b = spans(before), spans(after)
    deltas = {k: b.get(k, 0.0) - a.get(k, 0.0) for k in set(a) | set(b)}
    name = max(deltas, key=lambda k: abs(deltas[k]))
    d = deltas[name]
    return (f"the {name} phase went from {a.get(name, 0.0):.1f} s to {b.get(name, 0.0):.1f} s "
            f"({'shorter' if d < 0 else 'longer'} by {abs(d):.1f} s)")
