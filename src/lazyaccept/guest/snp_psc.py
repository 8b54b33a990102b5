"""Linux's SEV-SNP acceptance, request by request: ``__set_pages_state()``, ``vmgexit_psc()`` and
``pvalidate_pages()`` (arch/x86/coco/sev/core.c; GHCB specification, Page State Change).

:meth:`~lazyaccept.platform.snp.SnpPlatform.accept` computes the same work range-batched for an
honest host.  This module runs it one VMGEXIT at a time, so that a hostile host's answers meet the
guest's own checks:

* ``__set_pages_state()``: at most VMGEXIT_PSC_MAX_ENTRY (64) entries per descriptor, 2 MiB where
  the address is 2 MiB aligned and at least 2 MiB remain, else 4 KiB; the header starts zeroed
  (``cur_entry`` 0);
* ``vmgexit_psc()``: copy the descriptor into the GHCB, remember ``cur_entry`` and ``end_entry``,
  then VMGEXIT until ``cur_entry > end_entry``.  An error in ``sw_exit_info_2``, a reserved bit set
  in the header, or the header going backwards -- ``end_entry`` above the remembered one or
  ``cur_entry`` below it (WARN "PSC processing going backward") -- terminates the guest with
  ``GHCB_TERM_PSC``.  Because the remembered ``cur_entry`` is where the request started (0), a host
  that moves it back but not below 0 is not caught: the guest just exits again (the host can keep it
  looping: denial of service, outside the threat model; the model stops after MAX_PSC_EXITS);
* ``pvalidate_pages()``: PVALIDATE every entry of the guest's *own* descriptor (not the shared copy
  the host may have rewritten); FAIL_SIZEMISMATCH at 2 MiB is redone as 512 x 4 KiB; any other
  failure, and CF=1 (the page was already validated: PVALIDATE_FAIL_NOUPDATE) terminates the guest
  with ``GHCB_TERM_PVALIDATE``.  A PVALIDATE of a page the host never assigned faults (#NPF to the
  host, which cannot make it succeed without assigning it); the model reports it to the guest as
  a failed PVALIDATE, so the guest terminates rather than stays stuck.
"""

from __future__ import annotations

from ..base.errors import GuestStopped
from ..base.record import AcceptStats
from ..base.units import PAGE_SIZE, SIZE_2M, is_aligned
from ..platform.snp import PVALIDATE_FAIL_SIZEMISMATCH, SnpPlatform
from ..platform.snp_psc import PscDescriptor, host_handle_psc
from .unaccepted import UnacceptedMemory

#: arch/x86/include/asm/sev-common.h: Linux's termination reason set and codes.
SEV_TERM_SET_LINUX = 1
GHCB_TERM_PSC = 1
GHCB_TERM_PVALIDATE = 2
#: Entries per descriptor (arch/x86/include/asm/sev.h, reduced from 253 to fit on the stack).
VMGEXIT_PSC_MAX_ENTRY = 64
#: Where the model stops a host that keeps the guest exiting (not a kernel constant).
MAX_PSC_EXITS = 64


def _terminate(code: int, detail: str, address: int | None = None) -> GuestStopped:
    name = {GHCB_TERM_PSC: "GHCB_TERM_PSC", GHCB_TERM_PVALIDATE: "GHCB_TERM_PVALIDATE"}[code]
    return GuestStopped("linux", name, f"sev_es_terminate(SEV_TERM_SET_LINUX, {name}): {detail}", address)


def psc_entries(start: int, end: int) -> list[list[tuple[int, int]]]:
    """The descriptors ``__set_pages_state()`` builds for ``[start, end)``, in order."""
    out: list[list[tuple[int, int]]] = []
    addr = start
    while addr < end:
        entries: list[tuple[int, int]] = []
        while addr < end and len(entries) < VMGEXIT_PSC_MAX_ENTRY:
            size = SIZE_2M if is_aligned(addr, SIZE_2M) and end - addr >= SIZE_2M else PAGE_SIZE
            entries.append((addr, size))
            addr += size
        out.append(entries)
    return out


def vmgexit_psc(platform: SnpPlatform, entries: list[tuple[int, int]], *, actor: str, vcpu: int) -> AcceptStats:
    """The VMGEXIT loop for one descriptor, with Linux's checks of the host's answers."""
    shared = PscDescriptor(list(entries), cur_entry=0, end_entry=len(entries) - 1)
    cur_entry, end_entry = shared.cur_entry, shared.end_entry
    stats = AcceptStats(psc_entries=len(entries))
    while shared.cur_entry <= shared.end_entry:
        if shared.exits >= MAX_PSC_EXITS:
            raise GuestStopped(
                "linux", "psc-no-progress",
                f"the host kept answering without finishing ({shared.exits} VMGEXITs): no progress, no corruption",
                entries[0][0],
            )
        exit_info_2, work = host_handle_psc(platform, shared, actor=actor, vcpu=vcpu)
        work.psc_entries = 0
        stats += work
        if exit_info_2:
            raise _terminate(GHCB_TERM_PSC, f"PSC failed ret=0 exit_info_2={exit_info_2:#x}", entries[0][0])
        if shared.reserved:
            raise _terminate(GHCB_TERM_PSC, "Reserved bit is set in the PSC header", entries[0][0])
        if shared.end_entry > end_entry or cur_entry > shared.cur_entry:
            raise _terminate(
                GHCB_TERM_PSC,
                f"PSC processing going backward, end_entry {end_entry} (got {shared.end_entry}) "
                f"cur_entry {cur_entry} (got {shared.cur_entry})",
                entries[0][0],
            )
    return stats


def pvalidate_pages(platform: SnpPlatform, entries: list[tuple[int, int]], *, actor: str, vcpu: int) -> AcceptStats:
    """PVALIDATE each entry of the guest's own descriptor."""
    stats = AcceptStats()
    for gpa, size in entries:
        if size == SIZE_2M:
            stats.calls_2m += 1
            r = platform.pvalidate(gpa, True, actor=actor, vcpu=vcpu)
            if r.rc == PVALIDATE_FAIL_SIZEMISMATCH:
                stats.size_mismatch += 1
                pages = [(gpa + i * PAGE_SIZE) for i in range(SIZE_2M // PAGE_SIZE)]
            else:
                pages = []
                _check(r.ok, r.rc, r.cf, r.fault, gpa)
        else:
            pages = [gpa]
        for page in pages:
            stats.calls_4k += 1
            r = platform.pvalidate(page, False, actor=actor, vcpu=vcpu)
            _check(r.ok, r.rc, r.cf, r.fault, page)
        stats.bytes_accepted += size
    return stats


def _check(ok: bool, rc: int, cf: bool, fault: bool, gpa: int) -> None:
    if ok:
        return
    if fault:
        why = "PVALIDATE faulted: the page is not assigned to the guest in the RMP"
    elif cf:
        why = "PVALIDATE left CF=1 (PVALIDATE_FAIL_NOUPDATE): the page was already validated"
    else:
        why = f"PVALIDATE failed rc={rc}"
    raise _terminate(GHCB_TERM_PVALIDATE, why, gpa)


def set_pages_private(platform: SnpPlatform, start: int, end: int, *, actor: str, vcpu: int = 0) -> AcceptStats:
    """``snp_accept_memory()``: page-state change to private, then PVALIDATE, per descriptor."""
    stats = AcceptStats()
    for entries in psc_entries(start, end):
        stats += vmgexit_psc(platform, entries, actor=actor, vcpu=vcpu)
        stats += pvalidate_pages(platform, entries, actor=actor, vcpu=vcpu)
    return stats


class SnpProtocolMemory(UnacceptedMemory):
    """``accept_memory()`` whose architecture accept runs the SNP protocol request by request."""

    def arch_accept(self, start: int, end: int, actor: str, vcpu: int) -> AcceptStats:
        assert isinstance(self.platform, SnpPlatform)
        return set_pages_private(self.platform, start, end, actor=actor, vcpu=vcpu)
