"""The detectors: each turns what the model did into a :class:`Finding`, or says nothing.

* **safety** -- the platform raises :class:`~lazyaccept.base.errors.SafetyViolation` at the first
  touch of memory that is not accepted (TDX: a PENDING or FREE page; SNP: #VC 0x404) or the first
  second acceptance (TDX_PAGE_ALREADY_ACCEPTED, PVALIDATE CF=1); the kernel raises it for a table
  it cannot map; the sanitizer finds memory lost and pages the guest wrote that were zeroed behind
  its back (:func:`~lazyaccept.scenario.sanitizer.check_guest_data`).
* **liveness** -- an allocation that fails or comes back short, or reclaim that goes on without
  progress, *while unaccepted memory remains* (so accepting it would have served the request); a
  set of vCPUs that all spin (deadlock).
* **latency** -- structural, not timed: a vCPU that spins with IRQs off on the accept lock or an
  accepting-list entry while the work it waits for does not intersect its own range.  The wait
  lasts as long as that other work, whatever its size, so it can exceed any soft-lockup threshold
  (the soft lockups of 50e782a86c98); a wait for work that intersects one's own is the price of
  correctness and is not reported.
"""

from __future__ import annotations

from collections.abc import Callable

from ...base.errors import SafetyViolation
from ...base.units import format_size
from ...guest.page_alloc import BootFailure
from ...guest.reclaim import MAX_RECLAIM_RETRIES, ReclaimRun
from ...guest.unaccepted import UnitRange
from ...platform.base import Platform
from ..sanitizer import check_guest_data
from .findings import Detector, Finding


def safety(exc: SafetyViolation) -> Finding:
    """A safety violation the platform, the kernel or the sanitizer raised."""
    detail = f"{exc.actor}: {exc.detail}" if exc.detail else exc.actor
    return Finding(Detector.SAFETY, exc.rule, detail, exc.address)


def guest_data(platform: Platform) -> Finding | None:
    """The sanitizer's check of the guest's data: silent data loss, re-acceptance, memory lost."""
    try:
        check_guest_data(platform)
    except SafetyViolation as exc:
        return safety(exc)
    return None


def allocation_short(what: str, requested: int, got: int, unaccepted_bytes: int) -> Finding | None:
    """Liveness: ``what`` asked for ``requested`` pages and got ``got`` while memory was unaccepted."""
    if got >= requested or unaccepted_bytes <= 0:
        return None
    return Finding(
        Detector.LIVENESS, "allocation-failed",
        f"{what} got {got} of {requested} pages while {format_size(unaccepted_bytes)} was unaccepted",
    )


def boot_failure(exc: BootFailure, unaccepted_bytes: int) -> Finding | None:
    """Liveness: the page allocator failed an allocation while memory was unaccepted."""
    if unaccepted_bytes <= 0:
        return None
    return Finding(
        Detector.LIVENESS, "allocation-failed", f"{exc} while {format_size(unaccepted_bytes)} was unaccepted"
    )


def reclaim_loop(run: ReclaimRun, unaccepted_bytes: int) -> Finding | None:
    """Liveness: kswapd gave up unbalanced after rounds that freed nothing, while unaccepted
    memory would have balanced the node."""
    if not run.looping or unaccepted_bytes <= 0:
        return None
    zones = ", ".join(
        f"{name}: {free} pages counted free <= high {high}, {unacc} unaccepted" for name, free, high, unacc in run.zones
    )
    return Finding(
        Detector.LIVENESS, "reclaim-loop",
        f"kswapd reclaimed {run.reclaimed_pages} pages, then {run.failed_rounds} rounds "
        f"(MAX_RECLAIM_RETRIES {MAX_RECLAIM_RETRIES}) freed nothing and the node is still unbalanced ({zones})",
    )


def deadlock(waiters: list[str]) -> Finding:
    """Liveness: every live vCPU spins and none can make progress."""
    return Finding(Detector.LIVENESS, "deadlock", "; ".join(waiters))


def intersects(a: UnitRange, b: UnitRange) -> bool:
    return a.start < b.end and b.start < a.end


def wait_on_disjoint_work(waiter: str, own: UnitRange, holder: str, held: UnitRange, how: str) -> Finding | None:
    """Latency: ``waiter`` spins with IRQs off (``how``) while ``holder`` works on ``held``; only
    reported when ``held`` does not intersect the waiter's ``own`` units (guard unit included)."""
    if intersects(own, held):
        return None
    return Finding(
        Detector.LATENCY, "wait-on-disjoint-work",
        f"{waiter} spins with IRQs off on {how} while {holder} works on units [{held.start}, {held.end}), "
        f"which do not intersect its own units [{own.start}, {own.end}): the wait lasts as long as that "
        "work, whatever its size (soft-lockup territory)",
    )


def observe(body: Callable[[], list[Finding]], unaccepted_bytes: Callable[[], int]) -> list[Finding]:
    """Run a scenario body and turn the model's own failures into findings."""
    try:
        return body()
    except SafetyViolation as exc:
        return [safety(exc)]
    except BootFailure as exc:
        found = boot_failure(exc, unaccepted_bytes())
        if found is None:
            raise
        return [found]
