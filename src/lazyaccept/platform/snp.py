"""AMD SEV-SNP: the RMP, page-state changes and PVALIDATE.

Reference: firmware-and-platform.md §7 (RMP entry, PVALIDATE, #VC 0x404, page-state change, why a
page must never be validated twice), §3.1-3.3 (OVMF's pre-validation and InternalSetPageState),
linux-kernel.md §5.2 (snp_accept_memory, the 64-entry PSC descriptor, pvalidate_pages and the MSR
protocol the EFI stub uses since 2025).

State (coalesced ranges): every 4 KiB page is *shared/unassigned*, *assigned* (private, not
validated) or *validated*; an assigned page has a 4 KiB RMP entry or lies in a 2 MiB RMP entry
(``rmp_2m()``), which exists only where the host backed a whole 2 MiB-aligned block at 2 MiB and
is always wholly validated or wholly not.

To accept (make private and validate) a range the guest runs, per batch of entries, a
page-state change (PSC) to private, then PVALIDATE of each entry:

* entries: 2 MiB where the address is 2 MiB-aligned and at least 2 MiB remains, else 4 KiB
  (``"linux"`` and ``"ovmf"``); all 4 KiB for ``"msr"``;
* batches: ``"linux"`` one GHCB PSC request of at most 64 entries (VMGEXIT_PSC_MAX_ENTRY);
  ``"ovmf"`` at most 253 entries (SNP_PAGE_STATE_MAX_ENTRY); ``"msr"`` the GHCB MSR protocol,
  one 4 KiB page per request (EFI stub and decompressor since 2025);
* the host (:class:`~lazyaccept.platform.host.HostVMM`) handles the PSC: an unassigned page is
  backed (its :class:`~lazyaccept.platform.host.HostPolicy` picks 4 KiB or 2 MiB; a 2 MiB RMP
  entry only for a 2 MiB entry over a whole unbacked block) and assigned with RMPUPDATE, which
  leaves Validated clear; a page already assigned is left as it is (private -> private is a
  no-op); a 4 KiB entry inside a 2 MiB RMP entry makes the host split it (PSMASH, which keeps
  the Validated bits) so that the 4 KiB PVALIDATE can work; a refusal is
  ``SafetyViolation("host-refused")`` (the guest terminates, GHCB_TERM_PSC);
* PVALIDATE each entry: a 2 MiB PVALIDATE of a block with 4 KiB RMP entries returns
  FAIL_SIZEMISMATCH (6) and is redone as 512 x 4 KiB; a page already validated leaves CF=1:
  Linux and EDK2 terminate the guest, here ``SafetyViolation("double-accept")``.

Outcome of one PVALIDATE (``pvalidate``), checked in this order: GPA not aligned to the size ->
FAIL_INPUT (1); page not assigned to the guest -> the instruction faults (#NPF on the RMP check;
``fault`` is set, rc is :data:`PVALIDATE_FAULT`, not a hardware code); RMP entry size differs from
the request (2 MiB on 4 KiB entries, or 4 KiB inside a 2 MiB entry) -> FAIL_SIZEMISMATCH (6);
Validated already equal to the request -> rc 0 with CF=1 (nothing changed); else rc 0, the RMP is
updated.  (The ordering of the fault and size checks is not from a read source.)

Counting convention (``AcceptStats``):

* ``psc_requests`` and ``exits``: VMGEXITs for page-state changes (GHCB requests or MSR requests;
  the host is assumed to finish each request in one VMGEXIT);
* ``psc_entries``: entries the guest sent (one per 4 KiB or 2 MiB page named); the RMPUPDATEs the
  host did are ``host_backed_4k + host_backed_2m``;
* ``calls_4k`` / ``calls_2m``: PVALIDATE instructions by size, including the 2 MiB ones that
  failed; ``size_mismatch``: 2 MiB PVALIDATEs that fell back to 512 x 4 KiB;
* ``host_backed_4k`` / ``host_backed_2m``, ``host_zeroed_bytes``: pages the host allocated,
  zeroed and assigned;
* ``accept_zeroed_bytes`` is always 0: PVALIDATE does not write the page (unlike the TDX
  module's accept, which zeroes it);
* ``bytes_accepted``: bytes newly validated.

Not modelled: the nested page faults KVM takes when the guest first touches a page (KVM allocates
from guest_memfd at fault time; here the host backs at PSC time), partial PSC progress, SVSM.

``accept`` is range-batched (cost O(number of state segments)) and gives exactly what running
the same routine request by request through ``page_state_change`` and ``pvalidate`` gives (a
property test checks this).

Hostile host: ``host_rmpupdate`` re-assigns pages behind the guest's back (Validated cleared).
The guest touching them is a violation (#VC PAGE_NOT_VALIDATED); a guest validating them again
succeeds on the hardware (CF=0) -- that is exactly the attack of §7.6, which only the guest's own
record can stop; those pages are recorded in ``reaccepted()`` for the sanitizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..base.choices import AcceptRoutine, Tee
from ..base.errors import ConfigError, SafetyViolation
from ..base.ranges import RangeSet
from ..base.record import AcceptStats
from ..base.units import PAGE_SIZE, SIZE_2M, align_down, align_up, is_aligned
from .base import Platform, check_range
from .host import HostVMM

PVALIDATE_SUCCESS = 0
PVALIDATE_FAIL_INPUT = 1
PVALIDATE_FAIL_SIZEMISMATCH = 6
#: Not a hardware return code: the PVALIDATE faulted (#NPF, page not assigned to the guest).
PVALIDATE_FAULT = -1

#: #VC error code for an access to a private page that is not validated (APM §15.36.10).
VC_PAGE_NOT_VALIDATED = 0x404

#: Entries per page-state-change request, by accept routine.
PSC_MAX_ENTRIES = {AcceptRoutine.LINUX: 64, AcceptRoutine.OVMF: 253, AcceptRoutine.MSR: 1}

_PAGES_PER_2M = SIZE_2M // PAGE_SIZE


@dataclass(frozen=True)
class PvalidateResult:
    """The outcome of one PVALIDATE: the return code in EAX, rFLAGS.CF (set when the RMP was
    already in the requested state and nothing changed), and whether the instruction faulted."""

    rc: int
    cf: bool = False
    fault: bool = False

    @property
    def ok(self) -> bool:
        """The RMP now holds the requested state *and* this instruction changed it."""
        return self.rc == PVALIDATE_SUCCESS and not self.cf and not self.fault


@dataclass
class _Plan:
    """The entries of one accept: 4 KiB head ``[start, h)``, 2 MiB body ``[h, t)``, 4 KiB tail."""

    start: int
    h: int
    t: int
    end: int

    @property
    def n_head(self) -> int:
        return (self.h - self.start) // PAGE_SIZE

    @property
    def n_body(self) -> int:
        return (self.t - self.h) // SIZE_2M

    @property
    def count(self) -> int:
        return self.n_head + self.n_body + (self.end - self.t) // PAGE_SIZE

    def index(self, addr: int) -> int:
        """Index of the entry holding ``addr``."""
        if addr < self.h:
            return (addr - self.start) // PAGE_SIZE
        if addr < self.t:
            return self.n_head + (addr - self.h) // SIZE_2M
        return self.n_head + self.n_body + (addr - self.t) // PAGE_SIZE

    def address(self, i: int) -> int:
        """Start of entry ``i`` (``end`` for ``i == count``)."""
        if i < self.n_head:
            return self.start + i * PAGE_SIZE
        if i < self.n_head + self.n_body:
            return self.h + (i - self.n_head) * SIZE_2M
        return min(self.t + (i - self.n_head - self.n_body) * PAGE_SIZE, self.end)


class SnpPlatform(Platform):
    """SEV-SNP hardware (RMP, PVALIDATE) with its host.  See the module docstring."""

    tee = Tee.SNP
    routines = (AcceptRoutine.LINUX, AcceptRoutine.MSR, AcceptRoutine.OVMF)

    def __init__(self, host: HostVMM | None = None) -> None:
        self.host = host if host is not None else HostVMM()
        self.finalized = False
        self._assigned = RangeSet()
        self._validated = RangeSet()
        self._rmp2m = RangeSet()
        self._lost = RangeSet()
        self._reaccepted = RangeSet()
        self._written = RangeSet()

    # -- queries ---------------------------------------------------------------------------
    def accepted(self) -> RangeSet:
        """Validated memory."""
        return self._validated.copy()

    def is_accepted(self, start: int, end: int) -> bool:
        return self._validated.contains(start, end)

    def assigned(self) -> RangeSet:
        """Private memory (assigned to the guest in the RMP), validated or not."""
        return self._assigned.copy()

    def rmp_2m(self) -> RangeSet:
        """Blocks held by a 2 MiB RMP entry."""
        return self._rmp2m.copy()

    def rmp_state(self, gpa: int) -> str:
        """``"shared"``, ``"assigned"`` or ``"validated"`` for the page holding ``gpa``."""
        page = align_down(gpa, PAGE_SIZE)
        if self._validated.contains(page, page + PAGE_SIZE):
            return "validated"
        if self._assigned.contains(page, page + PAGE_SIZE):
            return "assigned"
        return "shared"

    # -- build time --------------------------------------------------------------------------
    def add_at_build(self, start: int, end: int) -> None:
        """SNP_LAUNCH_UPDATE of ``[start, end)``: assigned and validated by the PSP (4 KiB entries)."""
        check_range(start, end)
        if self.finalized:
            raise ConfigError("SNP_LAUNCH_UPDATE after SNP_LAUNCH_FINISH")
        if self._assigned.overlaps(start, end):
            raise ConfigError(f"SNP_LAUNCH_UPDATE of [{start:#x}, {end:#x}): pages already assigned")
        self.host.add_at_build(start, end)
        self._assigned.add(start, end)
        self._validated.add(start, end)

    def finalize(self) -> None:
        """SNP_LAUNCH_FINISH: no more launch updates."""
        self.finalized = True

    # -- one request / one instruction ------------------------------------------------------
    def page_state_change(
        self, entries: Sequence[tuple[int, int]], *, actor: str = "guest", vcpu: int = 0
    ) -> AcceptStats:
        """One PSC VMGEXIT making ``entries`` (``(gpa, size)``, size 4 KiB or 2 MiB) private.

        A GHCB request, or with a single 4 KiB entry an MSR-protocol request (same counts).
        Returns the counts of this request (host work included)."""
        stats = AcceptStats(psc_requests=1, exits=1, psc_entries=len(entries))
        for gpa, size in entries:
            if size not in (PAGE_SIZE, SIZE_2M) or not is_aligned(gpa, size):
                raise ConfigError(f"bad page-state-change entry ({gpa:#x}, {size})")
            if size == PAGE_SIZE:
                self._psc_4k(gpa, gpa + PAGE_SIZE, stats, actor, vcpu)
            else:
                self._psc_2m(gpa, gpa + SIZE_2M, stats, actor, vcpu)
        return stats

    def pvalidate(
        self, gpa: int, size_2m: bool, validate: bool = True, *, actor: str = "guest", vcpu: int = 0
    ) -> PvalidateResult:
        """Execute one PVALIDATE of the page at ``gpa`` (2 MiB when ``size_2m``), setting or
        clearing Validated."""
        size = SIZE_2M if size_2m else PAGE_SIZE
        if gpa < 0 or not is_aligned(gpa, size):
            return PvalidateResult(PVALIDATE_FAIL_INPUT)
        if not self._assigned.contains(gpa, gpa + PAGE_SIZE):
            return PvalidateResult(PVALIDATE_FAULT, fault=True)
        block = align_down(gpa, SIZE_2M)
        if self._rmp2m.contains(block, block + SIZE_2M) != size_2m:
            return PvalidateResult(PVALIDATE_FAIL_SIZEMISMATCH)
        if self._validated.contains(gpa, gpa + PAGE_SIZE) == validate:
            return PvalidateResult(PVALIDATE_SUCCESS, cf=True)
        if validate:
            self._mark_validated(gpa, gpa + size)
        else:
            self._validated.remove(gpa, gpa + size)
        return PvalidateResult(PVALIDATE_SUCCESS)

    # -- the accept routines, range-batched ---------------------------------------------------
    def accept(self, start: int, end: int, *, routine: AcceptRoutine, actor: str, vcpu: int) -> AcceptStats:
        """Make ``[start, end)`` private and validate it with the accept routine (``linux``,
        ``ovmf`` or ``msr``); see the module docstring."""
        check_range(start, end)
        routine = self.check_routine(routine)
        stats = AcceptStats()
        if end == start:
            return stats
        if routine is AcceptRoutine.MSR:
            plan = _Plan(start, end, end, end)
        else:
            h = min(align_up(start, SIZE_2M), end)
            plan = _Plan(start, h, max(align_down(end, SIZE_2M), h), end)
        per_request = PSC_MAX_ENTRIES[routine]
        n = plan.count

        def batch_start(addr: int) -> int:
            return plan.address(plan.index(addr) // per_request * per_request)

        def batch_end(addr: int) -> int:
            return plan.address(min(n, (plan.index(addr) // per_request + 1) * per_request))

        # The first already-validated page is where PVALIDATE will leave CF=1; the batch holding
        # it has had its PSC done by then, later batches have not.
        validated = self._validated.intersection(start, end)
        first_validated = validated[0][0] if validated else None
        psc_end = end if first_validated is None else batch_end(first_validated)
        try:
            self._psc_range(plan, start, psc_end, stats, actor, vcpu)
        except SafetyViolation as refused:
            # The batches before the refused request were validated before it was sent.
            self._mark_validated(start, batch_start(refused.address))
            raise
        if first_validated is not None:
            self._mark_validated(start, first_validated)
            raise SafetyViolation(
                "double-accept", actor, vcpu, first_validated, "PVALIDATE: CF=1, already validated"
            )
        # Every entry: PSC done; now PVALIDATE.
        stats.psc_requests = stats.exits = -(-n // per_request)
        stats.psc_entries = n
        blocks_2m_rmp = self._rmp2m.covered(plan.h, plan.t) // SIZE_2M
        mismatched = plan.n_body - blocks_2m_rmp
        stats.calls_2m += plan.n_body
        stats.size_mismatch += mismatched
        stats.calls_4k += n - plan.n_body + _PAGES_PER_2M * mismatched
        self._mark_validated(start, end)
        stats.bytes_accepted += end - start
        return stats

    def _psc_range(self, plan: _Plan, a: int, b: int, stats: AcceptStats, actor: str, vcpu: int) -> None:
        """The host's PSC work for the entries of ``plan`` inside ``[a, b)``, in address order
        (a refusal raises with the work before it done)."""
        for lo, hi, size in (
            (plan.start, plan.h, PAGE_SIZE),
            (plan.h, plan.t, SIZE_2M),
            (plan.t, plan.end, PAGE_SIZE),
        ):
            lo, hi = max(lo, a), min(hi, b)
            if lo >= hi:
                continue
            if size == PAGE_SIZE:
                self._psc_4k(lo, hi, stats, actor, vcpu)
            else:
                self._psc_2m(lo, hi, stats, actor, vcpu)

    def _psc_4k(self, a: int, b: int, stats: AcceptStats, actor: str, vcpu: int) -> None:
        """4 KiB private entries for every page of ``[a, b)``."""
        pos = a
        for s, e in self._assigned.gaps(a, b) + [(b, b)]:
            # Entries on assigned pages: split any 2 MiB RMP entry they fall in (PSMASH).
            if pos < s:
                self._rmp2m.remove(align_down(pos, SIZE_2M), align_up(s, SIZE_2M))
            if s == e:
                break
            self._assign(s, e, PAGE_SIZE, stats, actor, vcpu)
            pos = e

    def _psc_2m(self, a: int, b: int, stats: AcceptStats, actor: str, vcpu: int) -> None:
        """2 MiB private entries for every block of ``[a, b)`` (2 MiB aligned)."""
        for s, e in self._assigned.gaps(a, b):
            lead = min(e, align_up(s, SIZE_2M))
            whole_end = max(align_down(e, SIZE_2M), lead)
            # Unassigned pieces of partly assigned blocks, and runs of whole unassigned blocks.
            for x, y in ((s, lead), (lead, whole_end), (whole_end, e)):
                if x < y:
                    self._assign(x, y, SIZE_2M, stats, actor, vcpu)

    def _assign(self, s: int, e: int, requested: int, stats: AcceptStats, actor: str, vcpu: int) -> None:
        """The host backs the unassigned ``[s, e)`` and RMPUPDATEs it to assigned (not validated)."""
        size = self.host.decide(s, e, requested)
        if size is None:
            raise SafetyViolation("host-refused", actor, vcpu, s, "page-state change to private failed")
        stats += self.host.allocate(s, e, size)
        if not self.host.policy.prefault_on_psc:
            stats.npf_exits += (e - s) // size  # each backed page is a nested page fault first
        self._assigned.add(s, e)
        if size == SIZE_2M:
            self._rmp2m.add(s, e)

    def _mark_validated(self, s: int, e: int) -> None:
        if e <= s:
            return
        self._validated.add(s, e)
        self._note_accepted_again(s, e)

    # -- touching memory -------------------------------------------------------------------
    def touch(self, start: int, end: int, *, actor: str, vcpu: int) -> None:
        """Guest access: every page must be validated, else #VC PAGE_NOT_VALIDATED (0x404)."""
        if end <= start:
            return
        gaps = self._validated.gaps(align_down(start, PAGE_SIZE), align_up(end, PAGE_SIZE))
        if gaps:
            addr = max(gaps[0][0], start)
            detail = f"#VC {VC_PAGE_NOT_VALIDATED:#x}, RMP state {self.rmp_state(addr)}"
            page = align_down(addr, PAGE_SIZE)
            if self._lost.contains(page, page + PAGE_SIZE):
                detail += ", re-assigned by the host"
            raise SafetyViolation("touch-unaccepted", actor, vcpu, addr, detail)
        self._note_written(start, end)

    # -- the hostile host ------------------------------------------------------------------
    def host_rmpupdate(self, start: int, end: int) -> None:
        """The host RMPUPDATEs every page of ``[start, end)`` to assigned with Validated clear,
        at 4 KiB (splitting any 2 MiB RMP entry it touches), backing pages that were not."""
        check_range(start, end)
        for x, y in self._validated.intersection(start, end):
            self._lost.add(x, y)
        self._rmp2m.remove(align_down(start, SIZE_2M), align_up(end, SIZE_2M))
        self._validated.remove(start, end)
        for s, e in self._assigned.gaps(start, end):
            self.host.allocate(s, e, PAGE_SIZE)
            self._assigned.add(s, e)
