"""The check catalogue: every scenario, what it should show, what it showed, and whether the two
match (docs/check-catalogue.md).

* a **mutant** matches when its trigger, run with the mutant's rules, is caught by the detector
  that fits the bug, and the same trigger run with the correct kernel's rules finds nothing;
* a **hostile-host** scenario matches when every probe ends as expected for the guest (stopped,
  stuck without corruption, refused) and no page the guest wrote was silently zeroed;
* an **interleavings** scenario matches when, over every interleaving of the small cases and a
  seeded sample of the large ones, the correct kernel shows no violation, or a mutant's violation is
  found (with the shortest failing schedule).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...base.errors import ConfigError
from ...guest.rules import KernelRules
from .cases import SMALL_CASES, large_cases
from .findings import Detector, Finding, ScenarioKind
from .hostile import HOSTILE, HostileScenario
from .interleave import Case, explore
from .mutants import CORRECT_KERNEL, MUTANTS, Mutant, correct_rules

#: Random schedules per sampled case when the caller does not say.
DEFAULT_SCHEDULES = 500


@dataclass(frozen=True)
class CheckOptions:
    schedules: int = DEFAULT_SCHEDULES
    seed: int = 0


@dataclass
class ScenarioResult:
    """One line of the catalogue."""

    name: str
    kind: ScenarioKind
    expected: str
    observed: str
    ok: bool
    source: str = ""
    detector: str = ""
    schedule: tuple[str, ...] = ()
    explored: int = 0
    correct_violations: int = 0
    silent_data_losses: int = 0
    #: Mutants: the expected detector fired on the mutant (``ok`` also needs the correct kernel clean).
    caught: bool | None = None


@dataclass
class CheckReport:
    results: list[ScenarioResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def summary(self) -> dict[str, int | bool]:
        mutants = [r for r in self.results if r.kind is ScenarioKind.MUTANT]
        hostile = [r for r in self.results if r.kind is ScenarioKind.HOSTILE]
        return {
            "scenarios": len(self.results),
            "matched": sum(r.ok for r in self.results),
            "all_matched": self.ok,
            "mutants": len(mutants),
            "mutants_caught": sum(bool(r.caught) for r in mutants),
            "hostile": len(hostile),
            "hostile_as_expected": sum(r.ok for r in hostile),
            "interleavings_explored": sum(r.explored for r in self.results),
            "correct_kernel_violations": sum(r.correct_violations for r in self.results),
            "silent_data_losses": sum(r.silent_data_losses for r in self.results),
        }


@dataclass(frozen=True)
class Entry:
    name: str
    kind: ScenarioKind
    run: Callable[[CheckOptions], ScenarioResult]


# -- mutants ---------------------------------------------------------------------------------------
def run_mutant(m: Mutant) -> ScenarioResult:
    seen = m.trigger(m.rules())
    control = m.trigger(correct_rules())
    caught = next((f for f in seen.findings if f.detector is m.detector), None)
    observed = f"caught: {caught}" if caught is not None else (
        "not caught: " + ("; ".join(map(str, seen.findings)) or "no finding") + f" ({seen.note})"
    )
    observed += f" | {CORRECT_KERNEL}: " + ("clean (" + control.note + ")" if control.clean
                                           else "; ".join(map(str, control.findings)))
    return ScenarioResult(
        m.name, ScenarioKind.MUTANT,
        f"{m.detector.value} detector catches it ({m.bug}); clean on {CORRECT_KERNEL} [{m.scenario}]",
        observed, caught is not None and control.clean, m.source, m.detector.value,
        caught.schedule if caught is not None else (), seen.explored + control.explored, len(control.findings),
        sum(f.rule == "silent-data-loss" for f in control.findings), caught is not None,
    )


# -- hostile hosts ---------------------------------------------------------------------------------
def run_hostile(h: HostileScenario) -> ScenarioResult:
    probes = h.probes(correct_rules())
    observed = " | ".join(f"{p.label}: {p.fate.value} ({p.detail})" for p in probes)
    expected = f"host {h.host}: {h.expected}; " + ", ".join(f"{p.label}: {p.expected.value}" for p in probes)
    losses = sum(p.silent_loss_bytes > 0 for p in probes)
    return ScenarioResult(
        h.name, ScenarioKind.HOSTILE, expected, observed, all(p.ok for p in probes), h.source, "safety",
        silent_data_losses=losses,
    )


# -- interleavings ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class InterleavingTarget:
    name: str
    what: str
    rules: Callable[[], KernelRules]
    use_accepting_list: bool = True
    #: The detector that must catch the mutant; None for the correct kernel (nothing to find).
    detector: Detector | None = None


INTERLEAVING_TARGETS = (
    InterleavingTarget("interleavings-correct", CORRECT_KERNEL, correct_rules),
    InterleavingTarget("interleavings-global-accept-lock", "mutant global-accept-lock",
                       lambda: correct_rules().with_rule(global_accept_lock=True), detector=Detector.LATENCY),
    InterleavingTarget("interleavings-overlap-off-by-one", "mutant overlap-off-by-one",
                       lambda: correct_rules().with_rule(overlap_off_by_one=True), detector=Detector.LATENCY),
    InterleavingTarget("interleavings-no-accepting-list", "accepting list removed", correct_rules,
                       use_accepting_list=False, detector=Detector.SAFETY),
)


def run_interleavings(target: InterleavingTarget, options: CheckOptions) -> ScenarioResult:
    cases: Sequence[Case] = SMALL_CASES + large_cases(options.seed)
    rules = target.rules()
    explored = 0
    best: tuple[str, Finding] | None = None
    any_found = 0
    for case in cases:
        exp = explore(case, rules, schedules=options.schedules, seed=options.seed,
                      use_accepting_list=target.use_accepting_list, stop_at_first=target.detector is not None)
        explored += exp.schedules
        f = exp.finding
        if f is None:
            continue
        any_found += 1
        if target.detector is not None and f.detector is not target.detector:
            continue
        if best is None or len(f.schedule) < len(best[1].schedule):
            best = (case.name, f)
    n_all = sum(c.exhaustive for c in cases)
    scope = (f"{explored} interleavings: every one of {n_all} small cases (2-3 vCPUs), "
             f"{options.schedules} seeded schedules (seed {options.seed}) of each of {len(cases) - n_all} "
             "larger ones (4 and 8 vCPUs)")
    if target.detector is None:
        expected = "no double accept, no touch of unaccepted memory, no wait on a non-intersecting range"
        ok = best is None
        observed = f"{scope}: " + ("no violation" if ok else f"{best[1]} in {best[0]}")  # type: ignore[index]
        return ScenarioResult(
            target.name, ScenarioKind.INTERLEAVINGS, f"{target.what}: {expected}", observed, ok,
            "drivers/firmware/efi/unaccepted_memory.c accept_memory()", "safety, liveness, latency",
            best[1].schedule if best else (), explored, any_found,
        )
    expected = f"{target.what}: the {target.detector.value} detector finds it, with the shortest failing schedule"
    if best is None:
        observed = f"{scope}: not found"
        return ScenarioResult(target.name, ScenarioKind.INTERLEAVINGS, expected, observed, False,
                              detector=target.detector.value, explored=explored)
    case, f = best
    observed = f"{f} in {case}, shortest failing schedule of {len(f.schedule)} steps ({scope})"
    return ScenarioResult(
        target.name, ScenarioKind.INTERLEAVINGS, expected, observed, True,
        "drivers/firmware/efi/unaccepted_memory.c accept_memory()", target.detector.value, f.schedule, explored,
    )


# -- the whole catalogue ---------------------------------------------------------------------------
def catalogue() -> list[Entry]:
    """Every scenario, mutants first, then hostile hosts, then interleavings."""
    entries = [Entry(m.name, ScenarioKind.MUTANT, lambda _o, m=m: run_mutant(m)) for m in MUTANTS]
    entries += [Entry(h.name, ScenarioKind.HOSTILE, lambda _o, h=h: run_hostile(h)) for h in HOSTILE]
    entries += [Entry(t.name, ScenarioKind.INTERLEAVINGS, lambda o, t=t: run_interleavings(t, o))
                for t in INTERLEAVING_TARGETS]
    return entries


def select(only: Sequence[str] = ()) -> list[Entry]:
    """The entries named in ``only`` (all when empty); an unknown name is a ConfigError."""
    entries = catalogue()
    if not only:
        return entries
    known = {e.name: e for e in entries}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ConfigError(f"unknown scenario {unknown[0]!r} (known: {', '.join(known)})")
    return [e for e in entries if e.name in set(only)]


def run_check(only: Sequence[str] = (), options: CheckOptions | None = None) -> CheckReport:
    """Run the selected scenarios (all by default) and report."""
    opts = options or CheckOptions()
    if opts.schedules < 1:
        raise ConfigError(f"--schedules must be at least 1, not {opts.schedules}")
    return CheckReport([e.run(opts) for e in select(only)])
