"""Sizing a sandbox: the smallest guest that boots and leaves a workload its memory.

A guest "works" for a workload of ``limit`` bytes when the modelled boot succeeds and its
``MemAvailable`` after the boot is at least ``limit``.  The search runs over sizes in steps of
``step`` (2 MiB: a host huge page; Kata sizes VMs in whole MiB).  It is not a plain bisection:
the overhead jumps where the kernel rounds to a power of two (the SWIOTLB buffer's slabs, the
hash tables), so a larger guest can leave less than a smaller one.  What the search relies on
instead is that the overhead (VM size less MemAvailable) never shrinks as the guest grows: then
any guest of size ``m'`` that works has ``m' >= limit + overhead(m') >= limit + overhead(m)``
for every ``m <= m'``, and the search jumps from ``m`` straight to that bound.  It returns the
first size that works, and each size it skipped is below a bound no smaller guest can beat.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..base.errors import ConfigError, GuestFailure
from ..base.units import PAGE_SIZE, MiB, align_up, format_size
from ..scenario.build import build_record
from ..scenario.config import MAX_MEMORY, MIN_MEMORY, GuestRequest
from ..scenario.memory_budget import MemoryBudget, memory_budget
from ..scenario.runtime import RunConfig
from ..scenario.workloads import Workload, WorkloadKind
from .profile import CostProfile
from .run import BootResult, resolve, run
from .runtime import simulate_run

#: Guest sizes are tried in 2 MiB steps (a host huge page).
STEP = 2 * MiB


@dataclass(frozen=True)
class Tried:
    """One size the search booted: how much it left for the workload (None: the guest failed)."""

    memory: int
    available: int | None
    failure: str | None = None


def available_after_boot(request: GuestRequest, profile: CostProfile) -> tuple[MemoryBudget | None, str | None]:
    """The memory budget of ``request`` booted (no time needed: the record alone), or why it failed."""
    try:
        return memory_budget(build_record(resolve(request, profile))), None
    except GuestFailure as exc:
        return None, " ".join(str(exc).split())


def smallest_guest(request: GuestRequest, profile: CostProfile, limit: int,
                   step: int = STEP) -> tuple[int, list[Tried]]:
    """The smallest multiple of ``step`` at or above 512 MiB whose guest (``request`` at that size)
    boots and leaves ``limit`` bytes available, and every size tried on the way."""
    if step <= 0 or step % PAGE_SIZE:
        raise ConfigError(f"the step must be a whole number of 4 KiB pages, not {step}")
    m = align_up(max(limit, MIN_MEMORY), step)
    tried: list[Tried] = []
    while m <= MAX_MEMORY:
        budget, failure = available_after_boot(replace(request, memory=m), profile)
        if budget is None:
            tried.append(Tried(m, None, failure))
            m += step
            continue
        tried.append(Tried(m, budget.mem_available))
        if budget.mem_available >= limit:
            return m, tried
        overhead = m - budget.mem_available
        m = max(m + step, align_up(limit + overhead, step))
    raise ConfigError(f"no guest of at most {format_size(MAX_MEMORY)} leaves {format_size(limit)} to a workload")


@dataclass(frozen=True)
class Sizing:
    """The answer for one workload: the guest, what it sees, what the host commits."""

    limit: int
    step: int
    boot: BootResult
    budget: MemoryBudget
    tried: tuple[Tried, ...]
    #: Host memory committed when the boot reaches its shell, and once the workload has touched
    #: all of its ``limit`` (None, with the reason, when the modelled run fails).
    committed_at_boot: int
    committed_steady: int | None
    steady_failure: str | None

    @property
    def vm_bytes(self) -> int:
        return self.budget.vm_bytes


def size_guest(request: GuestRequest, profile: CostProfile, limit: int, step: int = STEP) -> Sizing:
    """Size a guest for a workload of ``limit`` bytes: the smallest that works, its boot timed,
    and its host memory at steady state from a run whose workload touches all ``limit`` bytes
    (``touch:LIMIT``: every page the workload may use, accepted and committed)."""
    m, tried = smallest_guest(request, profile, limit, step)
    config = resolve(replace(request, memory=m), profile)
    boot = run(config, profile)
    touch = Workload(WorkloadKind.TOUCH, size=limit, text=f"touch:{limit // MiB}M" if limit % MiB == 0
                     else f"touch:{limit}B")
    steady: int | None = None
    why = None
    try:
        result = simulate_run(RunConfig(config, (touch,)), profile, baseline=False, ranges=False)
        steady = result.record.boot.platform.host_committed
    except GuestFailure as exc:
        why = " ".join(str(exc).split())
    return Sizing(limit, step, boot, memory_budget(boot.record), tuple(tried), boot.record.platform.host_committed,
                  steady, why)
