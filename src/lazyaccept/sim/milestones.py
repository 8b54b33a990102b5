"""The named milestones of one simulated boot, each with its one-sigma range, for deadlines.

``init`` is when the kernel runs /init (the start of the user-space phase), ``boot`` the end of
the boot (the shell: ``boot_s``); :func:`~lazyaccept.sim.deadlines.milestones` adds ``ready``
and any later stage by name.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base.choices import BootPhase
from ..base.record import Phase
from .deadlines import LaterStage, Milestone, milestones
from .engine import Host
from .profile import CostProfile
from .runtime import RunResult
from .timeline import Timeline, simulate
from .uncertainty import Range, predict_range


def init_time(timeline: Timeline) -> float:
    """When the kernel runs /init: the start of the user-space phase."""
    return timeline.phase(BootPhase.USERSPACE).start


def boot_milestones(phases: list[Phase], timeline: Timeline, boot_s: float, boot_range: Range | None,
                    profile: CostProfile, *, host: Host | None = None, init_range: bool = True,
                    later: Sequence[LaterStage] = ()) -> dict[str, Milestone]:
    """The milestones of a boot whose ``phases`` ``timeline`` times with ``profile``; the range of
    ``init`` re-times the phases once per fitted parameter, as the boot's own range does (only
    with ``init_range``: a caller with no deadline on ``init`` skips that work)."""
    at = init_time(timeline)
    rng = None
    if init_range:
        rng = predict_range(lambda p: init_time(simulate(phases, p, host=host)), profile, at)
    return milestones(Milestone(at, rng), Milestone(boot_s, boot_range), later)


def run_milestones(result: RunResult, profile: CostProfile, *, init_range: bool = True) -> dict[str, Milestone]:
    """The milestones of a run: its boot's, and each stage from the shell to ready."""
    boot_phases = [p for p in result.record.boot.phases if p.name != BootPhase.WORKLOAD]
    later = [LaterStage(st.name, st.start_s, st.end_s, st.end_range) for st in result.stages]
    return boot_milestones(boot_phases, result.timeline, result.boot_s, result.boot_range, profile,
                           host=None, init_range=init_range, later=later)
