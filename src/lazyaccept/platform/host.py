"""The host VMM (KVM + QEMU): backs guest memory lazily, when an accept asks for it.

Reference: firmware-and-platform.md §8 (guest_memfd allocates and zeroes a page on first use;
only the TDVF sections / SNP pre-validated pages are populated before the guest runs), §6.7 (KVM
TDX AUGs the page on the EPT violation an accept causes, at 4 KiB only upstream), §7.5 (SNP:
the page-state change makes the host assign and back the page).

Two pieces:

* :class:`HostPolicy` is the *one* interface through which the host decides anything: at which
  page size to back a range the guest's accept faulted on, or whether to refuse; how to answer
  an SEV-SNP page-state change; what to write into the TD HOB; and whether to take, re-add or move
  the guest's pages behind its back.  Tests and hostile hosts (platform/hostile.py) replace it.
* :class:`HostVMM` does what was decided: it commits host memory (``committed``), zeroes it, and
  counts what it did.  It never decides.

The platforms ask the policy once per *run* of identical faults when they work range-batched
(see :meth:`HostPolicy.back`), and once per fault when driven instruction by instruction; the two
agree for any policy whose answer for a range is its answer for every block of that range.
"""

from __future__ import annotations

from enum import StrEnum

from ..base.choices import HostMapping
from ..base.errors import ConfigError
from ..base.ranges import RangeSet
from ..base.record import AcceptStats
from ..base.units import PAGE_SIZE, SIZE_2M, is_aligned
from ..formats.hob import ResourceDescriptor

#: Page sizes a host can map private guest memory with (TDX Secure-EPT leaves, SNP RMP entries).
HOST_PAGE_SIZES = (PAGE_SIZE, SIZE_2M)


class HostPolicy:
    """How the host backs memory the guest's accept faulted on.

    ``mapping="4k"`` is upstream KVM: private memory is mapped at 4 KiB only ("TODO: handle large
    pages", §6.7), so every accept fault is backed by one 4 KiB page.  ``mapping="2m"`` is the
    proposed huge-page design (Yan Zhao, LKML 2025-06, not merged): the host maps at 2 MiB when
    the guest's request is 2 MiB and the whole 2 MiB GPA block is still unbacked, else at 4 KiB.
    """

    def __init__(self, mapping: HostMapping | str = HostMapping.PAGE_4K, prefault_on_psc: bool = False) -> None:
        #: SEV-SNP: QEMU pre-faults each range a page-state change makes private
        #: (KVM_PRE_FAULT_MEMORY in kvm_handle_hc_map_gpa_range(), T. Lendacky, 2025), so the
        #: guest's PVALIDATE no longer exits once per 4 KiB page for the host to back it.
        self.prefault_on_psc = prefault_on_psc
        try:
            self.mapping = HostMapping(str(mapping).lower())
        except ValueError:
            known = ", ".join(m.value for m in HostMapping)
            raise ConfigError(f"host mapping must be one of {known}: {mapping!r}") from None

    def back(self, start: int, end: int, requested_level: int) -> int | None:
        """Page size (4 KiB or 2 MiB) to back ``[start, end)`` with, or ``None`` to refuse.

        ``requested_level`` is the page size *in bytes* the guest's request asked for (the TDX
        accept level, the SNP page-state-change entry size).  The host only asks about memory that
        is entirely unbacked, and the answer applies to every ``requested_level`` block of the
        range: with ``requested_level == 2 MiB`` and a 2 MiB-aligned range, the range is made of
        whole unbacked 2 MiB blocks.  A 2 MiB answer is only valid for such ranges.
        """
        if (
            self.mapping is HostMapping.PAGE_2M
            and requested_level >= SIZE_2M
            and is_aligned(start, SIZE_2M)
            and is_aligned(end, SIZE_2M)
        ):
            return SIZE_2M
        return PAGE_SIZE

    # -- the other decisions a host makes; an honest host's answers.  A hostile host
    # (platform/hostile.py) overrides them: the check catalogue's hostile-host scenarios.
    def psc_answer(self, cur_entry: int, end_entry: int) -> PscAnswer:
        """How to answer an SEV-SNP page-state-change request whose header says entries
        ``cur_entry..end_entry`` remain (GHCB NAE event, platform/snp_psc.py)."""
        return PscAnswer.PROCESS

    def td_hob_resources(self, resources: list[ResourceDescriptor]) -> list[ResourceDescriptor]:
        """The resource descriptors the host (QEMU) writes into the TD HOB, given the true ones."""
        return resources

    def strike(self, platform: object) -> None:
        """Act behind the guest's back (remove, re-add or move its pages) at a point where a
        scenario lets the host run.  An honest host does nothing.  ``platform`` is the guest's
        :class:`~lazyaccept.platform.base.Platform` (typed ``object`` here: the platform holds its
        host, so this module does not import it); each hostile host checks the kind it acts on."""

    def __repr__(self) -> str:
        return f"HostPolicy(mapping={self.mapping.value!r})"


class PscAnswer(StrEnum):
    """What a host does with a page-state-change request (GHCB specification, Page State Change;
    arch/x86/kvm/svm/sev.c snp_begin_psc())."""

    #: Make the entries private (RMPUPDATE, assigned, Validated clear) and move ``cur_entry`` past
    #: ``end_entry``.
    PROCESS = "process"
    #: Say it is done (``cur_entry`` past ``end_entry``, no error) without changing the RMP.
    CLAIM_DONE = "claim-done"
    #: Move ``cur_entry`` back by one entry, without an error (the first time, with nothing to go
    #: back from, do half of the request: partial progress, as an honest host may).
    REWIND = "rewind"
    #: Rewrite the header backwards past the request: ``cur_entry`` back to 0 and ``end_entry``
    #: beyond the last entry the guest sent.
    BACKWARDS = "backwards"
    #: Refuse: an error in ``sw_exit_info_2`` (VMGEXIT_PSC_ERROR_GENERIC).
    FAIL = "fail"


class HostVMM:
    """The host: commits and zeroes memory for the guest, as its :class:`HostPolicy` decides.

    ``committed`` is the host memory backing the guest (guest-physical ranges); build-time
    additions (TDVF sections, SNP launch pages) are committed too.  Counters: ``backed_4k`` /
    ``backed_2m`` (pages allocated, zeroed and mapped for the guest on demand: TDH.MEM.PAGE.AUG or
    the RMP assignment of a page-state change), ``zeroed_bytes`` (bytes guest_memfd zeroed on
    first use), ``added_bytes`` (populated before the guest ran), ``released_bytes`` (taken back
    by the host) and ``refusals`` (requests the policy refused).
    """

    def __init__(self, policy: HostPolicy | None = None) -> None:
        self.policy = policy if policy is not None else HostPolicy()
        self.committed = RangeSet()
        self.backed_4k = 0
        self.backed_2m = 0
        self.zeroed_bytes = 0
        self.added_bytes = 0
        self.released_bytes = 0
        self.refusals = 0

    @property
    def committed_bytes(self) -> int:
        return self.committed.total()

    def decide(self, start: int, end: int, requested_level: int) -> int | None:
        """Ask the policy how to back the unbacked range ``[start, end)`` faulted on at
        ``requested_level`` bytes; check the answer is one a real host could give.

        Raises :class:`ConfigError` for an impossible answer: a size other than 4 KiB / 2 MiB, a
        size larger than requested (the TDX guest would fault again forever; an SNP 4 KiB entry
        cannot make a 2 MiB RMP entry), or 2 MiB for a range that is not whole unbacked 2 MiB
        blocks.
        """
        size = self.policy.back(start, end, requested_level)
        if size is None:
            self.refusals += 1
            return None
        if size not in HOST_PAGE_SIZES:
            raise ConfigError(f"host policy answered page size {size}; only 4 KiB and 2 MiB exist")
        if size > requested_level:
            raise ConfigError(f"host policy answered {size} bytes for a {requested_level}-byte request")
        if size == SIZE_2M and (
            not is_aligned(start, SIZE_2M)
            or not is_aligned(end, SIZE_2M)
            or self.committed.overlaps(start, end)
        ):
            raise ConfigError(
                f"host policy answered 2 MiB for [{start:#x}, {end:#x}), "
                "which is not whole unbacked 2 MiB blocks"
            )
        return size

    def allocate(self, start: int, end: int, page_size: int) -> AcceptStats:
        """Back ``[start, end)`` with fresh zeroed pages of ``page_size`` (guest_memfd allocation on
        first use, then AUG / RMPUPDATE).  Returns the host's share of the accept counts."""
        if end <= start:
            return AcceptStats()
        if page_size not in HOST_PAGE_SIZES or not (
            is_aligned(start, page_size) and is_aligned(end, page_size)
        ):
            raise ConfigError(f"cannot back [{start:#x}, {end:#x}) with {page_size}-byte pages")
        if self.committed.overlaps(start, end):
            raise ConfigError(f"host memory for [{start:#x}, {end:#x}) is already committed")
        self.committed.add(start, end)
        n = (end - start) // page_size
        self.zeroed_bytes += end - start
        if page_size == SIZE_2M:
            self.backed_2m += n
            return AcceptStats(host_backed_2m=n, host_zeroed_bytes=end - start)
        self.backed_4k += n
        return AcceptStats(host_backed_4k=n, host_zeroed_bytes=end - start)

    def add_at_build(self, start: int, end: int) -> None:
        """Populate ``[start, end)`` before the guest runs (content copied in, not zeroed)."""
        if self.committed.overlaps(start, end):
            raise ConfigError(f"host memory for [{start:#x}, {end:#x}) is already committed")
        self.committed.add(start, end)
        self.added_bytes += max(end - start, 0)

    def release(self, start: int, end: int) -> int:
        """Take back whatever host memory backs ``[start, end)``; returns the bytes released."""
        freed = self.committed.covered(start, end)
        self.committed.remove(start, end)
        self.released_bytes += freed
        return freed

    def __repr__(self) -> str:
        return f"HostVMM({self.policy!r}, committed={self.committed_bytes:#x})"
