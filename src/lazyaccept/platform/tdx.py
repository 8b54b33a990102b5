"""The Intel TDX module: Secure-EPT page states and TDG.MEM.PAGE.ACCEPT.

Reference: firmware-and-platform.md §6 (SEPT states, AUG/ADD, the ACCEPT outcome table, status
codes), §6.7 (KVM's handling of an accept on a page it has not AUGed), §2.2-2.3 (EDK2's split and
TdAcceptPages), linux-kernel.md §5.1 (tdx_accept_memory).

State (all as coalesced ranges, never per page):

* every 4 KiB page is FREE (never added), PENDING (AUGed, not accepted) or MAPPED (accepted, or
  added before finalize);
* a backed page sits in a 4 KiB leaf or in a 2 MiB leaf (``mapped_2m()``); a 2 MiB leaf is
  always wholly PENDING or wholly MAPPED.  A 2 MiB block whose pages are all FREE has no leaf at
  all; one with any 4 KiB leaf is a page table at the 2 MiB level (a 2 MiB accept there gets
  PAGE_SIZE_MISMATCH).  Model simplification: a block whose 4 KiB pages the host all removed
  counts as wholly FREE again (KVM would keep the empty SEPT page; nothing observable changes
  except that a later 2 MiB accept exits instead of returning PAGE_SIZE_MISMATCH).

The module version modelled accepts 4 KiB and 2 MiB only: a 1 GiB accept returns
TDX_OPERAND_INVALID (§6.4).

Outcome of one TDCALL (``tdcall_accept``), checked in this order: bad level, misaligned GPA or GPA
at or above ``gpa_limit`` -> OPERAND_INVALID; GPA in ``busy_pages`` -> OPERAND_BUSY (a concurrent
holder of the SEPT entry lock); then the SEPT walk:

=====================================  ========================================================
2 MiB request, block has a 2 MiB leaf  MAPPED -> PAGE_ALREADY_ACCEPTED; PENDING -> SUCCESS
2 MiB request, block wholly FREE       TD exit (EPT violation, ACCEPT); the host backs it
2 MiB request, block has 4 KiB leaves  PAGE_SIZE_MISMATCH
4 KiB request inside a 2 MiB leaf      MAPPED -> PAGE_ALREADY_ACCEPTED; PENDING -> TD exit, the
                                       host demotes the leaf to 512 PENDING 4 KiB leaves
4 KiB request, 4 KiB level             MAPPED -> PAGE_ALREADY_ACCEPTED; PENDING -> SUCCESS;
                                       FREE -> TD exit; the host AUGs the page at 4 KiB
=====================================  ========================================================

On a TD exit the guest re-executes the same TDCALL after resume (§6.7).  On an exit the host asks
its :class:`~lazyaccept.platform.host.HostPolicy` (4 KiB or 2 MiB, never larger than the request)
and AUGs the faulting page (4 KiB) or block (2 MiB); a refusal is ``SafetyViolation("host-refused")``.
A successful accept zeroes the page(s) under the TD key and makes them MAPPED.

Accept routines (``accept(routine=...)``):

* ``"linux"``: tdx_accept_memory.  At each address try 1 GiB (aligned and >= 1 GiB left), then
  2 MiB (aligned and >= 2 MiB left), then 4 KiB; any non-zero status means "try smaller"; a
  failure at 4 KiB panics ("TDX: Failed to accept memory").
* ``"tdvf"``: EDK2 BspAcceptMemoryResourceRange + TdAcceptPages.  4 KiB pages up to the first
  2 MiB boundary; a 2 MiB-aligned body at 2 MiB only when the remaining length is *strictly*
  greater than 2 MiB (so an aligned range of exactly 2 MiB is 512 x 4 KiB); the tail at 4 KiB.
  PAGE_SIZE_MISMATCH at 2 MiB -> 512 x 4 KiB; OPERAND_BUSY -> retry, at most 3 times (a page
  in ``busy_pages`` stays busy, so it fails after the retries, like Linux's first BUSY).
* ``"tdvf-ap"``: the per-chunk loop of EDK2's MP accept on an application processor:
  TdAcceptPages over ``min(32 MiB, end - addr) / 2 MiB`` pages at 2 MiB, with no BSP split (an
  aligned 2 MiB chunk is one 2 MiB accept); unaligned edges, which the BSP handles, at 4 KiB.
  EDK2 only warns on PAGE_ALREADY_ACCEPTED; this model treats every second acceptance as a
  violation because the project's sanitizer forbids it.

Violations raised by ``accept`` (the guest dies there; everything before the failing page has
been done, nothing after): ``"double-accept"`` when a page is already accepted (the status was
PAGE_ALREADY_ACCEPTED), ``"accept-failed"`` for any other fatal status (OPERAND_BUSY at 4 KiB
for Linux or after 3 retries for EDK2, OPERAND_INVALID beyond ``gpa_limit``), ``"host-refused"``.

Counting convention (``AcceptStats``), identical for ``tdcall_accept`` and ``accept``:

* ``calls_4k`` / ``calls_2m`` / ``calls_1g``: every TDCALL executed, by requested size, including
  the ones that ended in a TD exit and were re-executed, failed and fell back, or were retried;
* ``exits``: TD exits (EPT violations of type ACCEPT), including the ones where the host only
  demoted a 2 MiB PENDING leaf;
* ``host_backed_4k`` / ``host_backed_2m``: TDH.MEM.PAGE.AUG by size; ``host_zeroed_bytes``: bytes
  the host allocated and zeroed for them (guest_memfd);
* ``accept_zeroed_bytes``: bytes the module zeroed (every successful accept);
* ``size_mismatch``: 2 MiB TDCALLs that returned PAGE_SIZE_MISMATCH;
* ``bytes_accepted``: bytes newly MAPPED.

Example (hand-derived, tested): Linux accepting one FREE, aligned 2 MiB unit on a 4 KiB-only host
is 2M TDCALL -> exit, AUG one 4 KiB page; 2M again -> PAGE_SIZE_MISMATCH; 4K on the first page ->
SUCCESS; then 511 x (4K -> exit + AUG, 4K -> SUCCESS): calls_2m=2, calls_4k=1+2*511=1023,
exits=512, host_backed_4k=512, size_mismatch=1.

``accept`` is range-batched: it computes these counts with per-range arithmetic (cost
O(number of state segments in the range)), and gives exactly the result of running the same
routine TDCALL by TDCALL through ``tdcall_accept`` (a property test checks this).

Hostile host: ``host_remove`` (TDH.MEM.PAGE.REMOVE: pages become FREE, guest data lost) and
``host_aug`` (AUG before the guest asked).  After a remove, a guest touch is a violation; a
guest *re-accept* of such a page is, for the real module, an accept of a FREE page: TD exit, the
host AUGs a fresh page, the re-executed TDCALL returns TDX_SUCCESS and the guest sees zeros where
its data was.  The module cannot tell; this model does the same and records those pages in
``reaccepted()`` (and the removed-but-not-re-accepted ones in ``lost()``) for the sanitizer.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from ..base.choices import AcceptRoutine, Tee
from ..base.errors import ConfigError, SafetyViolation
from ..base.ranges import RangeSet
from ..base.record import AcceptStats
from ..base.units import PAGE_SIZE, SIZE_1G, SIZE_2M, align_down, align_up, is_aligned
from .base import Platform, check_range
from .host import HostVMM

# TDX status codes (RAX), class in bits 63:32 (§6.5; Linux tdx_errno.h, EDK2 Tdx.h).
TDX_SUCCESS = 0
TDX_OPERAND_INVALID = 0xC000010000000000
TDX_OPERAND_BUSY = 0x8000020000000000
TDX_PAGE_ALREADY_ACCEPTED = 0x00000B0A00000000
TDX_PAGE_SIZE_MISMATCH = 0xC0000B0B00000000

#: TDG.MEM.PAGE.ACCEPT level codes (RCX bits 2:0) and their page sizes.
LEVEL_4K, LEVEL_2M, LEVEL_1G = 0, 1, 2
LEVEL_SIZE = {LEVEL_4K: PAGE_SIZE, LEVEL_2M: SIZE_2M, LEVEL_1G: SIZE_1G}

_PAGES_PER_2M = SIZE_2M // PAGE_SIZE

@dataclass
class TdxResult:
    """The outcome of one TDG.MEM.PAGE.ACCEPT.

    ``td_exit`` is true when the TDCALL caused a TD exit (EPT violation, type ACCEPT): it did not
    complete, ``status`` is ``None`` and the guest re-executes it (``retry``).  Otherwise
    ``status`` is the value left in RAX.  ``stats`` counts this one TDCALL, host work included.
    """

    gpa: int
    level: int
    status: int | None
    td_exit: bool = False
    stats: AcceptStats = field(default_factory=AcceptStats)

    @property
    def retry(self) -> bool:
        return self.td_exit

    @property
    def ok(self) -> bool:
        return self.status == TDX_SUCCESS


@dataclass
class _Run:
    """One call of ``accept``: who runs it, and the counts so far."""

    actor: str
    vcpu: int
    stats: AcceptStats


class TdxPlatform(Platform):
    """The TDX module with its host.  See the module docstring for the rules and counts."""

    tee = Tee.TDX
    routines = (AcceptRoutine.LINUX, AcceptRoutine.TDVF, AcceptRoutine.TDVF_AP)

    def __init__(self, host: HostVMM | None = None, gpa_limit: int = 1 << 52) -> None:
        if gpa_limit <= 0 or not is_aligned(gpa_limit, SIZE_1G):
            raise ConfigError(f"gpa_limit must be a positive multiple of 1 GiB: {gpa_limit:#x}")
        self.host = host if host is not None else HostVMM()
        self.gpa_limit = gpa_limit
        #: GPAs whose SEPT entry lock is held by someone else: a TDCALL at that GPA gets BUSY.
        self.busy_pages: set[int] = set()
        self.finalized = False
        self._mapped = RangeSet()
        self._pending = RangeSet()
        self._leaf2m = RangeSet()
        self._lost = RangeSet()
        self._reaccepted = RangeSet()
        self._written = RangeSet()

    # -- queries ---------------------------------------------------------------------------
    def accepted(self) -> RangeSet:
        """MAPPED memory (accepted, or added at build time)."""
        return self._mapped.copy()

    def is_accepted(self, start: int, end: int) -> bool:
        return self._mapped.contains(start, end)

    def pending(self) -> RangeSet:
        """PENDING memory: AUGed by the host, not accepted."""
        return self._pending.copy()

    def mapped_2m(self) -> RangeSet:
        """Blocks the host maps with a 2 MiB Secure-EPT leaf (PENDING or MAPPED)."""
        return self._leaf2m.copy()

    def sept_state(self, gpa: int) -> str:
        """``"FREE"``, ``"PENDING"`` or ``"MAPPED"`` for the page holding ``gpa``."""
        page = align_down(gpa, PAGE_SIZE)
        if self._mapped.contains(page, page + PAGE_SIZE):
            return "MAPPED"
        if self._pending.contains(page, page + PAGE_SIZE):
            return "PENDING"
        return "FREE"

    def mapping_size(self, gpa: int) -> int | None:
        """Size of the Secure-EPT leaf mapping ``gpa`` (4 KiB or 2 MiB), ``None`` when FREE."""
        page = align_down(gpa, PAGE_SIZE)
        if self._leaf2m.contains(page, page + PAGE_SIZE):
            return SIZE_2M
        return None if self.sept_state(page) == "FREE" else PAGE_SIZE

    # -- build time --------------------------------------------------------------------------
    def add_at_build(self, start: int, end: int) -> None:
        """TDH.MEM.PAGE.ADD of ``[start, end)`` (4 KiB leaves, MAPPED); only before ``finalize``."""
        check_range(start, end)
        if self.finalized:
            raise ConfigError("TDH.MEM.PAGE.ADD after TDH.MR.FINALIZE: the TD is already finalized")
        if self._mapped.overlaps(start, end) or self._pending.overlaps(start, end):
            raise ConfigError(f"TDH.MEM.PAGE.ADD of [{start:#x}, {end:#x}): SEPT entry not FREE")
        self.host.add_at_build(start, end)
        self._mapped.add(start, end)

    def finalize(self) -> None:
        """TDH.MR.FINALIZE: the measurement is final; no more ADDs."""
        self.finalized = True

    # -- one TDCALL ----------------------------------------------------------------------------
    def tdcall_accept(self, gpa: int, level: int, vcpu: int = 0, *, actor: str = "guest") -> TdxResult:
        """Execute one TDG.MEM.PAGE.ACCEPT of ``gpa`` at ``level`` (0 = 4K, 1 = 2M, 2 = 1G)."""
        stats = AcceptStats()
        size = LEVEL_SIZE.get(level)
        if size == PAGE_SIZE:
            stats.calls_4k = 1
        elif size == SIZE_2M:
            stats.calls_2m = 1
        elif size == SIZE_1G:
            stats.calls_1g = 1

        def done(status: int | None) -> TdxResult:
            return TdxResult(gpa, level, status, status is None, stats)

        if size is None or size == SIZE_1G or gpa < 0 or not is_aligned(gpa, size) or gpa >= self.gpa_limit:
            return done(TDX_OPERAND_INVALID)
        if gpa in self.busy_pages:
            return done(TDX_OPERAND_BUSY)
        block = align_down(gpa, SIZE_2M)
        in_leaf2m = self._leaf2m.contains(block, block + SIZE_2M)
        if size == SIZE_2M:
            if in_leaf2m:
                if self._mapped.contains(block, block + SIZE_2M):
                    return done(TDX_PAGE_ALREADY_ACCEPTED)
                self._accept_ok(block, block + SIZE_2M, stats)
                return done(TDX_SUCCESS)
            if self._mapped.overlaps(block, block + SIZE_2M) or self._pending.overlaps(
                block, block + SIZE_2M
            ):
                stats.size_mismatch = 1
                return done(TDX_PAGE_SIZE_MISMATCH)
            # Wholly FREE block: EPT violation; the host backs the block or the faulting page.
            stats.exits = 1
            backed = self.host.decide(block, block + SIZE_2M, SIZE_2M)
            if backed is None:
                raise SafetyViolation("host-refused", actor, vcpu, gpa, "host did not AUG the page")
            if backed == SIZE_2M:
                self._aug(block, block + SIZE_2M, SIZE_2M, stats)
            else:
                self._aug(gpa, gpa + PAGE_SIZE, PAGE_SIZE, stats)
            return done(None)
        # 4 KiB request.
        if in_leaf2m:
            if self._mapped.contains(block, block + SIZE_2M):
                return done(TDX_PAGE_ALREADY_ACCEPTED)
            # The walk stops at a larger, not guest-accessible leaf: exit; the host demotes it.
            stats.exits = 1
            self._leaf2m.remove(block, block + SIZE_2M)
            return done(None)
        if self._mapped.contains(gpa, gpa + PAGE_SIZE):
            return done(TDX_PAGE_ALREADY_ACCEPTED)
        if self._pending.contains(gpa, gpa + PAGE_SIZE):
            self._accept_ok(gpa, gpa + PAGE_SIZE, stats)
            return done(TDX_SUCCESS)
        stats.exits = 1
        if self.host.decide(gpa, gpa + PAGE_SIZE, PAGE_SIZE) is None:
            raise SafetyViolation("host-refused", actor, vcpu, gpa, "host did not AUG the page")
        self._aug(gpa, gpa + PAGE_SIZE, PAGE_SIZE, stats)
        return done(None)

    # -- the accept routines, range-batched ---------------------------------------------------
    def accept(self, start: int, end: int, *, routine: AcceptRoutine, actor: str, vcpu: int) -> AcceptStats:
        """Run the guest's accept routine (``linux``, ``tdvf`` or ``tdvf-ap``) over ``[start, end)``;
        see the module docstring for the rules and the counts."""
        check_range(start, end)
        routine = self.check_routine(routine)
        run = _Run(actor, vcpu, AcceptStats())
        if end == start:
            return run.stats
        # The split into a 4 KiB head, 2 MiB body and 4 KiB tail.
        head_end = min(align_up(start, SIZE_2M), end)
        body_end = max(align_down(end, SIZE_2M), head_end)
        if routine is AcceptRoutine.TDVF and end - head_end <= SIZE_2M:
            body_end = head_end  # EDK2: a body only if more than 2 MiB remains
        if routine is AcceptRoutine.LINUX:
            # A 1 GiB TDCALL (OPERAND_INVALID on this module) at each 1 GiB-aligned body address
            # with at least 1 GiB left; it changes nothing, so it is only counted.
            first = align_up(head_end, SIZE_1G)
            if body_end > head_end and first <= end - SIZE_1G:
                run.stats.calls_1g += (end - SIZE_1G - first) // SIZE_1G + 1
        pieces = [(start, head_end, PAGE_SIZE), (head_end, body_end, SIZE_2M), (body_end, end, PAGE_SIZE)]
        for a, b, size in pieces:
            if a >= b:
                continue
            if a >= self.gpa_limit:
                self._fatal("accept-failed", run, a, "TDX_OPERAND_INVALID: GPA beyond GPAW")
            clipped = min(b, self.gpa_limit)  # gpa_limit is 1 GiB aligned: no block straddles it
            if size == PAGE_SIZE:
                self._accept_4k(a, clipped, run)
            else:
                self._accept_2m_blocks(a, clipped, run)
            if clipped < b:
                self._fatal("accept-failed", run, clipped, "TDX_OPERAND_INVALID: GPA beyond GPAW")
        return run.stats

    def _accept_4k(self, a: int, b: int, run: _Run) -> None:
        """4 KiB TDCALLs on every page of ``[a, b)`` (both routines behave the same here)."""
        stop, rule, detail = b, "", ""
        mapped = self._mapped.intersection(a, b)
        if mapped:
            stop, rule, detail = mapped[0][0], "double-accept", "TDX_PAGE_ALREADY_ACCEPTED"
        busy = self._first_busy(a, stop + PAGE_SIZE if rule else b)
        if busy is not None and busy <= stop:
            stop, rule, detail = busy, "accept-failed", "TDX_OPERAND_BUSY"
        pos = a
        for s, e in self._pending.intersection(a, stop):
            if pos < s:
                self._accept_free_4k(pos, s, run)
            self._accept_pending_4k(s, e, run)
            pos = e
        if pos < stop:
            self._accept_free_4k(pos, stop, run)
        if rule:
            self._fatal(rule, run, stop, detail)

    def _accept_pending_4k(self, s: int, e: int, run: _Run) -> None:
        """PENDING pages: one successful TDCALL each, plus one exit per 2 MiB leaf to demote."""
        leaves = self._leaf2m.intersection(align_down(s, SIZE_2M), align_up(e, SIZE_2M))
        demoted = sum((y - x) // SIZE_2M for x, y in leaves)
        for x, y in leaves:
            self._leaf2m.remove(x, y)
        run.stats.calls_4k += (e - s) // PAGE_SIZE + demoted
        run.stats.exits += demoted
        self._accept_ok(s, e, run.stats)

    def _accept_free_4k(self, s: int, e: int, run: _Run) -> None:
        """FREE pages: TDCALL -> exit -> AUG at 4 KiB -> TDCALL succeeds; two calls, one exit each."""
        if self.host.decide(s, e, PAGE_SIZE) is None:
            self._fatal("host-refused", run, s, "host did not AUG the page")
        n = (e - s) // PAGE_SIZE
        run.stats.calls_4k += 2 * n
        run.stats.exits += n
        self._aug(s, e, PAGE_SIZE, run.stats)
        self._accept_ok(s, e, run.stats)

    def _accept_2m_blocks(self, a: int, b: int, run: _Run) -> None:
        """2 MiB TDCALLs on every block of ``[a, b)``, falling back to 4 KiB per block.

        Blocks are taken in runs of identical blocks: between two state boundaries every whole
        block is in the same state, so a run costs the same arithmetic as one block.  Blocks
        that hold a boundary are done one by one.
        """
        bounds = self._boundaries(a, b)
        pos = a
        while pos < b:
            i = bisect_right(bounds, pos)
            nxt = bounds[i] if i < len(bounds) else b
            if nxt >= pos + SIZE_2M:
                run_end = min(align_down(nxt, SIZE_2M), b)
                self._accept_uniform_blocks(pos, run_end, run)
                pos = run_end
            else:
                self._accept_one_block(pos, run)
                pos += SIZE_2M

    def _accept_uniform_blocks(self, s: int, e: int, run: _Run) -> None:
        """Blocks ``[s, e)`` all in one state (no busy page among them)."""
        k = (e - s) // SIZE_2M
        st = run.stats
        if self._mapped.contains(s, s + PAGE_SIZE):
            # 2M -> ALREADY_ACCEPTED or SIZE_MISMATCH; the 4K TDCALL at s -> ALREADY_ACCEPTED.
            self._fatal("double-accept", run, s, "TDX_PAGE_ALREADY_ACCEPTED")
        if self._pending.contains(s, s + PAGE_SIZE):
            st.calls_2m += k
            if not self._leaf2m.contains(s, s + PAGE_SIZE):
                # 4 KiB leaves: SIZE_MISMATCH, then 512 PENDING pages at 4 KiB.
                st.size_mismatch += k
                st.calls_4k += _PAGES_PER_2M * k
            self._accept_ok(s, e, st)
            return
        # Wholly FREE blocks: each 2M TDCALL exits and the host backs the block or its first page.
        backed = self.host.decide(s, e, SIZE_2M)
        if backed is None:
            self._fatal("host-refused", run, s, "host did not AUG the page")
        if backed == SIZE_2M:
            st.calls_2m += 2 * k
            st.exits += k
            self._aug(s, e, SIZE_2M, st)
            self._accept_ok(s, e, st)
            return
        # 4 KiB host: per block, 2M -> exit + AUG of the first page, 2M -> SIZE_MISMATCH, then
        # the first page succeeds and the other 511 each exit once.
        if self.host.decide(s + PAGE_SIZE, e, PAGE_SIZE) is None:
            self._aug(s, s + PAGE_SIZE, PAGE_SIZE, st)
            self._accept_ok(s, s + PAGE_SIZE, st)
            self._fatal("host-refused", run, s + PAGE_SIZE, "host did not AUG the page")
        st.calls_2m += 2 * k
        st.size_mismatch += k
        st.exits += _PAGES_PER_2M * k
        st.calls_4k += (1 + 2 * (_PAGES_PER_2M - 1)) * k
        self._aug(s, e, PAGE_SIZE, st)
        self._accept_ok(s, e, st)

    def _accept_one_block(self, blk: int, run: _Run) -> None:
        """One 2 MiB block in any state: the 2M TDCALL, then the 4 KiB fallback if needed."""
        end = blk + SIZE_2M
        st = run.stats
        if blk in self.busy_pages:
            # Linux: 2M BUSY -> 4K BUSY -> panic.  EDK2: 2M BUSY four times -> error.
            self._fatal("accept-failed", run, blk, "TDX_OPERAND_BUSY")
        if self._leaf2m.contains(blk, end):
            if self._mapped.contains(blk, end):
                self._fatal("double-accept", run, blk, "TDX_PAGE_ALREADY_ACCEPTED")
            st.calls_2m += 1
            self._accept_ok(blk, end, st)
            return
        st.calls_2m += 1
        if not (self._mapped.overlaps(blk, end) or self._pending.overlaps(blk, end)):
            st.exits += 1
            backed = self.host.decide(blk, end, SIZE_2M)
            if backed is None:
                self._fatal("host-refused", run, blk, "host did not AUG the page")
            st.calls_2m += 1
            if backed == SIZE_2M:
                self._aug(blk, end, SIZE_2M, st)
                self._accept_ok(blk, end, st)
                return
            self._aug(blk, blk + PAGE_SIZE, PAGE_SIZE, st)
        st.size_mismatch += 1
        self._accept_4k(blk, end, run)

    # -- state changes -------------------------------------------------------------------------
    def _aug(self, s: int, e: int, page_size: int, stats: AcceptStats) -> None:
        """TDH.MEM.PAGE.AUG: FREE -> PENDING, host memory allocated and zeroed."""
        stats += self.host.allocate(s, e, page_size)
        self._pending.add(s, e)
        if page_size == SIZE_2M:
            self._leaf2m.add(s, e)

    def _accept_ok(self, s: int, e: int, stats: AcceptStats) -> None:
        """A successful accept: the module zeroes the pages; PENDING -> MAPPED."""
        self._pending.remove(s, e)
        self._mapped.add(s, e)
        stats.bytes_accepted += e - s
        stats.accept_zeroed_bytes += e - s
        self._note_accepted_again(s, e)

    def _free_gaps(self, a: int, b: int) -> list[tuple[int, int]]:
        """The FREE pieces of ``[a, b)``, in address order."""
        return [g for s, e in self._pending.gaps(a, b) for g in self._mapped.gaps(s, e)]

    def _first_busy(self, a: int, b: int) -> int | None:
        hits = [p for p in self.busy_pages if a <= p < b]
        return min(hits) if hits else None

    def _boundaries(self, a: int, b: int) -> list[int]:
        """Every address in ``(a, b)`` where the page state may change."""
        points: set[int] = set()
        for rs in (self._mapped, self._pending, self._leaf2m):
            for s, e in rs.intersection(a, b):
                points.add(s)
                points.add(e)
        for p in self.busy_pages:
            points.add(p)
            points.add(p + PAGE_SIZE)
        return sorted(x for x in points if a < x < b)

    def _fatal(self, rule: str, run: _Run, address: int, detail: str) -> None:
        raise SafetyViolation(rule, run.actor, run.vcpu, address, detail)

    # -- touching memory -------------------------------------------------------------------
    def touch(self, start: int, end: int, *, actor: str, vcpu: int) -> None:
        """Guest access: every page must be MAPPED.  A PENDING or FREE page is, with
        SEPT_VE_DISABLE, a TD exit KVM treats as fatal (§6.6)."""
        if end <= start:
            return
        gaps = self._mapped.gaps(align_down(start, PAGE_SIZE), align_up(end, PAGE_SIZE))
        if gaps:
            addr = max(gaps[0][0], start)
            state = self.sept_state(addr)
            detail = f"SEPT state {state}"
            if self._lost.contains(align_down(addr, PAGE_SIZE), align_down(addr, PAGE_SIZE) + PAGE_SIZE):
                detail += ", removed by the host"
            raise SafetyViolation("touch-unaccepted", actor, vcpu, addr, detail)
        self._note_written(start, end)

    # -- the hostile host ------------------------------------------------------------------
    def host_remove(self, start: int, end: int) -> None:
        """TDH.MEM.PAGE.REMOVE of every backed page in ``[start, end)``: back to FREE, host
        memory released, guest data lost.  A 2 MiB leaf partly inside is demoted first."""
        check_range(start, end)
        for x, y in self._mapped.intersection(start, end):
            self._lost.add(x, y)
        # 2 MiB leaves wholly inside go; the ones straddling an edge are demoted to 4 KiB leaves
        # (TDH.MEM.PAGE.DEMOTE) so that only the pages inside the range are removed.
        self._leaf2m.remove(align_down(start, SIZE_2M), align_up(end, SIZE_2M))
        self._mapped.remove(start, end)
        self._pending.remove(start, end)
        self.host.release(start, end)

    def host_aug(self, start: int, end: int, page_size: int = PAGE_SIZE) -> None:
        """The host AUGs the FREE pages of ``[start, end)`` before the guest asked (they become
        PENDING): at 2 MiB for whole FREE aligned blocks when ``page_size`` is 2 MiB, else 4 KiB."""
        check_range(start, end)
        if page_size not in (PAGE_SIZE, SIZE_2M):
            raise ConfigError(f"TDH.MEM.PAGE.AUG page size must be 4 KiB or 2 MiB: {page_size}")
        scratch = AcceptStats()
        for s, e in self._free_gaps(start, end):
            if page_size == SIZE_2M:
                bs, be = align_up(s, SIZE_2M), align_down(e, SIZE_2M)
                if bs < be:
                    self._aug(s, bs, PAGE_SIZE, scratch)
                    self._aug(bs, be, SIZE_2M, scratch)
                    self._aug(be, e, PAGE_SIZE, scratch)
                    continue
            self._aug(s, e, PAGE_SIZE, scratch)
