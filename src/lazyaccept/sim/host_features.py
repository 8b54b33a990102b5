"""Host features pending upstream, as what-ifs of ``lazyaccept host`` (``--host-feature NAME``).

* ``tdx-2m``: KVM maps TD private memory at 2 MiB when the guest accepts 2 MiB (the proposed
  huge-page design, Y. Zhao, LKML 2025-06): the guest's ``host_mapping`` becomes ``2m``, as
  ``--host-mapping 2m`` does.
* ``snp-prefault``: QEMU pre-faults the ranges an SNP page-state change makes private
  (KVM_PRE_FAULT_MEMORY, T. Lendacky, 2025): the guest's ``snp_prefault``, as ``--snp-prefault``.
* ``tdx-dpamt``: TDX Dynamic PAMT (K. Shutemov, R. Edgecombe, "TDX: Enable Dynamic PAMT", LKML
  2025-2026).  Without it the TDX module's PAMT is allocated when TDX initialises, about 0.4% of
  the host's memory, whether guests use it or not; with it only a bitmap is (about 0.004%), and the
  4 KiB level is added per 2 MiB region when a TD first uses memory of it, as a page pair handed
  to ``TDH.PHYMEM.PAMT.ADD``.  So a guest commits, beside each 2 MiB region it first has AUGed at
  4 KiB, 8 KiB more host memory, and the fault that AUGs it does one SEAMCALL more.
* ``gmem-1g``: guest_memfd backed by 1 GiB HugeTLB pages (A. Tng et al., "1G page support for
  guest_memfd", RFC, LKML 2024-2025).  The private mapping stays what the TEE maps (4 KiB or 2 MiB
  AUGs and RMP entries), but the host allocates, zeroes and commits a whole 1 GiB page on the first
  fault into it: a guest's host memory grows in 1 GiB steps, and the first accept into each 1 GiB
  pays the zeroing of all of it.  The pages the host added at build time are counted as before
  (a few MiB, not rounded up to their 1 GiB pages).

Every figure below has its source or says ``assumed:`` and why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..base.choices import HostFeature, HostMapping, Tee
from ..base.errors import ConfigError
from ..base.record import AcceptEvent, Event
from ..base.units import PAGE_SIZE, SIZE_2M
from ..scenario.config import VMConfig
from .engine import WorkItem
from .pricing import price
from .profile import CostProfile
from .timeline import Pricing

#: Host memory of the static PAMT, as a fraction of the host's memory: "approximately 0.4% of the
#: system memory" (R. Edgecombe, "[PATCH v4 04/16] x86/virt/tdx: Allocate page bitmap for Dynamic
#: PAMT", LKML, Nov 2025); 16 bytes of PAMT_4K entry per 4 KiB page is that 0.39%.
STATIC_PAMT_FRACTION = 16 / 4096
#: With Dynamic PAMT, the static part is the PAMT_PAGE_BITMAP, one bit per 4 KiB page ("currently
#: it is 1"; "approximately 0.004%", same patch).
DPAMT_STATIC_FRACTION = 1 / (8 * 4096)
#: The 4 KiB level of one 2 MiB region: "a page pair" that "will cover specified 2M region"
#: (K. Shutemov, "[RFC] TDX: Dynamic PAMT", kvm list, May 2025).
DPAMT_BYTES_PER_2M = 2 * PAGE_SIZE
#: Host-path seconds of one TDH.PHYMEM.PAMT.ADD in the fault path.  assumed: one SEAMCALL taking
#: a page pair from a pre-allocated pool ("These code paths use pre-allocated PAMT memory pools",
#: TDX: Enable Dynamic PAMT v2 cover letter, June 2025), a few us as the other SEAMCALLs the
#: profiles price (page_remove: a handful of SEAMCALLs of a few us each); on the path, with the AUG
#: it precedes.
DPAMT_ADD_S = 2e-6

#: A guest_memfd HugeTLB page: 1 GiB (x86-64 PUD size).
GMEM_PAGE = 1 << 30

_TDX_ONLY = {HostFeature.TDX_DPAMT, HostFeature.TDX_2M}
_SNP_ONLY = {HostFeature.SNP_PREFAULT}


@dataclass(frozen=True)
class HostFeatures:
    """The what-ifs a host runs with."""

    features: frozenset[HostFeature] = frozenset()

    @classmethod
    def parse(cls, names: tuple[str, ...], tee: Tee) -> HostFeatures:
        out = set()
        for name in names:
            try:
                f = HostFeature(name.strip().lower())
            except ValueError:
                known = ", ".join(x.value for x in HostFeature)
                raise ConfigError(f"--host-feature {name!r}: not a host feature (known: {known})") from None
            if (f in _TDX_ONLY and tee is not Tee.TDX) or (f in _SNP_ONLY and tee is not Tee.SNP):
                raise ConfigError(f"--host-feature {f.value}: a feature of {'TDX' if f in _TDX_ONLY else 'SEV-SNP'} "
                                  f"hosts, and this host's profile is {tee.value}")
            out.add(f)
        return cls(frozenset(out))

    def __contains__(self, f: HostFeature) -> bool:
        return f in self.features

    def guest(self, vm: VMConfig) -> VMConfig:
        """A guest as this host runs it (its mapping, its page-state-change prefault)."""
        if HostFeature.TDX_2M in self:
            vm = replace(vm, host_mapping=HostMapping.PAGE_2M)
        if HostFeature.SNP_PREFAULT in self:
            vm = replace(vm, snp_prefault=True)
        return vm

    def static_bytes(self, host_memory: int, tee: Tee) -> int:
        """Host memory the host's TEE keeps for itself whatever the guests do (TDX: the PAMT)."""
        if tee is not Tee.TDX:
            return 0
        fraction = DPAMT_STATIC_FRACTION if HostFeature.TDX_DPAMT in self else STATIC_PAMT_FRACTION
        return int(host_memory * fraction)

    def pricing(self) -> Pricing:
        """How one guest's events are priced on this host (a fresh one per guest: ``gmem-1g``
        remembers which 1 GiB pages the guest has)."""
        dpamt = HostFeature.TDX_DPAMT in self
        if HostFeature.GMEM_1G not in self:
            return _dpamt_price if dpamt else price
        return _Gmem1G(_dpamt_price if dpamt else price)


class _Gmem1G:
    """Pricing with guest_memfd 1 GiB pages: an accept the host backs commits the 1 GiB pages of
    ``[start, end)`` not yet committed (zeroing them whole) instead of the pages it backed."""

    def __init__(self, inner: Pricing) -> None:
        self.inner = inner
        self.pages: set[int] = set()

    def __call__(self, profile: CostProfile, event: Event) -> WorkItem:
        item = self.inner(profile, event)
        if not isinstance(event, AcceptEvent) or not event.stats.host_backed_bytes:
            return item
        new = [p for p in range(event.start // GMEM_PAGE, (event.end - 1) // GMEM_PAGE + 1) if p not in self.pages]
        self.pages.update(new)
        extra = item.committed_bytes - event.stats.host_backed_bytes  # what the inner pricing added (PAMT)
        return replace(item, committed_bytes=len(new) * GMEM_PAGE + extra,
                       bytes=item.bytes - event.stats.host_zeroed_bytes + len(new) * GMEM_PAGE)


def _dpamt_price(profile: CostProfile, event: Event) -> WorkItem:
    """:func:`price`, plus the Dynamic PAMT of each 2 MiB region an accept has the host back at
    4 KiB: 8 KiB committed and one PAMT.ADD at the host path.  A region's 512 pages are AUGed by
    one accept of a whole chunk (the kernel accepts 2 MiB units), so its regions are its 4 KiB
    backings over 512, rounded up."""
    item = price(profile, event)
    if not isinstance(event, AcceptEvent) or not event.stats.host_backed_4k:
        return item
    regions = -(-event.stats.host_backed_4k // (SIZE_2M // PAGE_SIZE))
    return replace(item, committed_bytes=item.committed_bytes + regions * DPAMT_BYTES_PER_2M,
                   host_s=item.host_s + regions * DPAMT_ADD_S)
