"""The SEV-SNP page-state-change request (GHCB NAE event ``SVM_VMGEXIT_PSC``, 0x80000010), host
side, one VMGEXIT at a time (GHCB specification, Page State Change; arch/x86/kvm/svm/sev.c).

The guest writes a descriptor into the GHCB shared buffer -- a header (``cur_entry``,
``end_entry``, ``reserved``) and entries (GFN, operation, page size) -- and exits.  The host works
through entries ``cur_entry..end_entry``, writes its progress back into the header, and reports an
error in ``sw_exit_info_2``; it may stop early, and the guest then exits again.  How this host
answers is its policy's choice (:meth:`~lazyaccept.platform.host.HostPolicy.psc_answer`); an honest
host makes the entries private with :meth:`~lazyaccept.platform.snp.SnpPlatform.page_state_change`
(RMPUPDATE: assigned, Validated clear).

:meth:`SnpPlatform.accept` computes the same work range-batched for honest hosts; this module is for
the guest's checks of a host's answers (guest/snp_psc.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base.record import AcceptStats
from .host import PscAnswer
from .snp import SnpPlatform

#: sw_exit_info_2 of a failed request (Linux sev-common.h GENERIC_ERROR, bit 32 << 8).
VMGEXIT_PSC_ERROR_GENERIC = 0x100 << 32


@dataclass
class PscDescriptor:
    """The shared-buffer copy of one request: private entries ``(gpa, size)`` and the header."""

    entries: list[tuple[int, int]]
    cur_entry: int = 0
    end_entry: int = -1
    reserved: int = 0
    #: How many VMGEXITs the host has answered for this descriptor.
    exits: int = field(default=0, compare=False)


def host_handle_psc(platform: SnpPlatform, desc: PscDescriptor, *, actor: str, vcpu: int) -> tuple[int, AcceptStats]:
    """The host's answer to one VMGEXIT: ``(sw_exit_info_2, host work)``; the header is updated
    in place as the host chose."""
    desc.exits += 1
    answer = platform.host.policy.psc_answer(desc.cur_entry, desc.end_entry)
    stats = AcceptStats(psc_requests=1, exits=1)
    if answer is PscAnswer.FAIL:
        return VMGEXIT_PSC_ERROR_GENERIC, stats
    if answer is PscAnswer.CLAIM_DONE:
        desc.cur_entry = desc.end_entry + 1
        return 0, stats
    if answer is PscAnswer.BACKWARDS:
        desc.cur_entry = 0
        desc.end_entry += 1
        return 0, stats
    todo = desc.entries[desc.cur_entry : desc.end_entry + 1]
    if answer is PscAnswer.REWIND:
        if desc.cur_entry > 0:
            # Progress reported back by one entry, nothing done.
            desc.cur_entry -= 1
            return 0, stats
        # Nothing to go back from yet: do the first half of the request, as a host may.
        half = max(1, len(todo) // 2)
        stats = platform.page_state_change(todo[:half], actor=actor, vcpu=vcpu)
        desc.cur_entry += half
        return 0, stats
    # page_state_change() counts one request and one exit, as this VMGEXIT.
    stats = platform.page_state_change(todo, actor=actor, vcpu=vcpu)
    desc.cur_entry = desc.end_entry + 1
    return 0, stats
