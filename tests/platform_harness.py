"""The harness the TDX and SNP platform tests share: the batched ``Platform.accept`` must equal the
same accept routine run instruction by instruction, on random page layouts.

What is shared lives here: the :class:`Stepper` base (each platform's test module drives its own
instructions), the state :func:`snapshot` both runs are compared on, the hostile host policies,
the hypothesis strategies for page layouts and the comparison itself (:meth:`Harness.check`).
What is platform-specific stays in the test modules: how a layout's blocks are built (SEPT
states, RMP states) and how the routines issue TDCALLs or page-state changes and PVALIDATEs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, NoReturn, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from lazyaccept.base.errors import SafetyViolation
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptStats
from lazyaccept.base.units import MiB
from lazyaccept.platform.base import Platform
from lazyaccept.platform.host import HostPolicy

K4 = 4096
M2 = 2 * MiB
PAGES_PER_BLOCK = M2 // K4

P = TypeVar("P", bound=Platform)

#: Outcome of one accept: ``("ok", stats)`` or ``("violation", rule, address, actor, vcpu)``.
Outcome = tuple


# -- the reference: a routine driven one instruction (or request) at a time ----------------------
class Stepper(ABC, Generic[P]):
    """Runs a guest accept routine through the platform's single-instruction interface only,
    summing the counts of every instruction; each platform's test module subclasses it."""

    def __init__(self, p: P, actor: str, vcpu: int = 0) -> None:
        self.p, self.actor, self.vcpu = p, actor, vcpu
        self.stats = AcceptStats()

    @abstractmethod
    def run(self, start: int, end: int, routine: str) -> AcceptStats:
        """Run ``routine`` over ``[start, end)``; returns the summed counts."""

    def fail(self, rule: str, gpa: int) -> NoReturn:
        """The guest stops, as the batched code does: a violation on this actor and vCPU."""
        raise SafetyViolation(rule, self.actor, self.vcpu, gpa)


def snapshot(p: Platform, views: tuple[str, ...]) -> tuple:
    """Everything both runs must agree on: the accepted memory, the platform-specific page-state
    ``views`` (names of methods returning a RangeSet), what the host took back and what was
    accepted again, and what the host committed and did."""
    h = p.host
    return (
        p.accepted(),
        *(getattr(p, v)() for v in views),
        p.lost(),
        p.reaccepted(),
        h.committed,
        (h.backed_4k, h.backed_2m, h.zeroed_bytes, h.refusals),
    )


def outcome(fn: Callable[[], AcceptStats]) -> Outcome:
    """Run one accept; the stats, or the violation that stopped it."""
    try:
        return ("ok", fn())
    except SafetyViolation as v:
        return ("violation", v.rule, v.address, v.actor, v.vcpu)


@dataclass(frozen=True)
class Harness(Generic[P]):
    """One platform's side of the comparison: its stepper, the views of its page states that the
    snapshot compares, and what the host must have committed once an accept has run."""

    stepper: type[Stepper[P]]
    views: tuple[str, ...]
    backed: Callable[[P], RangeSet]

    def snapshot(self, p: P) -> tuple:
        return snapshot(p, self.views)

    def check(
        self, make: Callable[[], P], start: int, end: int, routine: str, *, actor: str = "kernel", vcpu: int = 1
    ) -> Outcome:
        """Accept ``[start, end)`` batched on one fresh platform and step by step on another; the
        outcomes (stats, or violation with rule, address, actor and vCPU) and the resulting states
        must be equal, and the host must back exactly what the platform says is backed.  Returns
        the (common) outcome for further checks."""
        batched, stepped = make(), make()
        got = outcome(lambda: batched.accept(start, end, routine=routine, actor=actor, vcpu=vcpu))
        want = outcome(lambda: self.stepper(stepped, actor, vcpu).run(start, end, routine))
        assert got == want
        assert self.snapshot(batched) == self.snapshot(stepped)
        assert batched.host.committed == self.backed(batched)
        return got


# -- hostile and unusual hosts -------------------------------------------------------------------
class Refuse(HostPolicy):
    """Backs nothing."""

    def back(self, start: int, end: int, requested_level: int) -> int | None:
        return None


class Refuse2M(HostPolicy):
    """Refuses 2 MiB requests, backs 4 KiB ones at 4 KiB."""

    def back(self, start: int, end: int, requested_level: int) -> int | None:
        return None if requested_level == M2 else K4


class Refuse4K(HostPolicy):
    """Refuses 4 KiB requests, backs the others as a host of ``mapping`` would."""

    def back(self, start: int, end: int, requested_level: int) -> int | None:
        return None if requested_level == K4 else super().back(start, end, requested_level)


def host_policies(refuse_4k_mapping: str) -> dict[str, Callable[[], HostPolicy]]:
    """The hosts the property tests run against, by name; ``refuse-4k`` backs 2 MiB requests as
    a host of ``refuse_4k_mapping`` does."""
    return {
        "4k": lambda: HostPolicy("4k"),
        "2m": lambda: HostPolicy("2m"),
        "refuse": Refuse,
        "refuse-2m": Refuse2M,
        "refuse-4k": lambda: Refuse4K(refuse_4k_mapping),
    }


# -- random layouts --------------------------------------------------------------------------------
NBLOCKS = 4
NPAGES = NBLOCKS * PAGES_PER_BLOCK
PROPERTY_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cuts = st.lists(st.integers(1, PAGES_PER_BLOCK - 1), max_size=4, unique=True).map(sorted)
offsets = st.one_of(st.just(0), st.just(0), st.integers(0, PAGES_PER_BLOCK - 1), st.sampled_from([1, 256, 511]))
#: A page index in [0, NPAGES], block boundaries and block edges being common.
page_index = st.builds(lambda blk, off: min(blk * PAGES_PER_BLOCK + off, NPAGES), st.integers(0, NBLOCKS), offsets)
#: Up to two pages inside the layout (TDX: pages the module reports OPERAND_BUSY on).
busy_lists = st.one_of(st.just([]), st.just([]), st.lists(page_index.filter(lambda i: i < NPAGES), max_size=2))

#: A run of pages ``[first, end)`` of one 2 MiB block (page indices in the block) and their state.
Run = tuple[int, int, str]


@dataclass(frozen=True)
class Block:
    """One 2 MiB block of a layout: its kind and, page by page, the state of its runs."""

    kind: str
    runs: list[Run] = field(default_factory=list)


@dataclass(frozen=True)
class Layout:
    """``NBLOCKS`` blocks, the accepted range ``[start, end)`` in pages, and busy pages."""

    blocks: list[Block]
    start: int
    end: int
    busy: list[int] = field(default_factory=list)

    def span(self, base: int) -> tuple[int, int]:
        """The accepted range as guest-physical addresses, the layout starting at ``base``."""
        return base + self.start * K4, base + self.end * K4


@st.composite
def layouts(
    draw: st.DrawFn,
    kinds: list[str],
    page_states: list[str],
    uniform: dict[str, str],
    busy: st.SearchStrategy[list[int]] | None = None,
) -> Layout:
    """Random layouts: each block's kind from ``kinds`` (repeat an entry to weight it); a
    ``"mixed"`` block is cut into up to five runs of ``page_states``, a kind in ``uniform`` is one
    run of that state over the whole block, any other kind has no runs (it is built as a whole).
    ``busy`` draws busy pages (none when not given)."""
    blocks = []
    for _ in range(NBLOCKS):
        kind = draw(st.sampled_from(kinds))
        runs: list[Run] = []
        if kind == "mixed":
            cut = [0, *draw(cuts), PAGES_PER_BLOCK]
            runs = [(a, b, draw(st.sampled_from(page_states))) for a, b in zip(cut, cut[1:], strict=False)]
        elif kind in uniform:
            runs = [(0, PAGES_PER_BLOCK, uniform[kind])]
        blocks.append(Block(kind, runs))
    busy_pages = draw(busy) if busy is not None else []
    a, b = draw(page_index), draw(page_index)
    return Layout(blocks, min(a, b), max(a, b), busy_pages)
