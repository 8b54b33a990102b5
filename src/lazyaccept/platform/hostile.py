"""Hostile hosts: :class:`~lazyaccept.platform.host.HostPolicy` replaced.

The host is outside the trust boundary of a TDX or SEV-SNP guest: it can refuse to back memory,
take pages back, re-add them, move them, lie in its answers and forge what it hands the firmware.
Each class here overrides one decision of the policy; the guest and its firmware are unchanged
and must stop safely (or, for denial of service, which is outside the threat model, at least never
use or corrupt memory behind their own back).
"""

from __future__ import annotations

from ..base.units import PAGE_SIZE
from ..formats.hob import RESOURCE_MEMORY_UNACCEPTED, TDX_RESOURCE_ATTRIBUTES, ResourceDescriptor
from .host import HostPolicy, PscAnswer
from .snp import SnpPlatform
from .tdx import TdxPlatform


class RefuseToBack(HostPolicy):
    """Never backs the pages of ``[start, end)``: TDX never AUGs them (the guest's accept exits
    again and again), SNP never assigns them."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__()
        self.start, self.end = start, end

    def back(self, start: int, end: int, requested_level: int) -> int | None:
        if start < self.end and self.start < end:
            return None
        return super().back(start, end, requested_level)


class RemoveAndReadd(HostPolicy):
    """TDX: TDH.MEM.PAGE.REMOVE of pages the guest accepted, then TDH.MEM.PAGE.AUG of fresh ones at
    the same GPAs: the guest finds zeroed PENDING pages where its data was."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__()
        self.start, self.end = start, end

    def strike(self, platform: object) -> None:
        assert isinstance(platform, TdxPlatform)
        platform.host_remove(self.start, self.end)
        platform.host_aug(self.start, self.end)


class RemapPage(HostPolicy):
    """SEV-SNP: moves the validated page at ``old`` to the guest address ``new`` (RMPUPDATE with the
    new GPA, which clears Validated); whatever backs ``old`` afterwards is not validated either."""

    def __init__(self, old: int, new: int) -> None:
        super().__init__()
        self.old, self.new = old, new

    def strike(self, platform: object) -> None:
        assert isinstance(platform, SnpPlatform)
        platform.host_rmpupdate(self.old, self.old + PAGE_SIZE)
        platform.host_rmpupdate(self.new, self.new + PAGE_SIZE)


class PscHost(HostPolicy):
    """Answers SEV-SNP page-state changes with ``answers`` in turn, then with the last one."""

    def __init__(self, *answers: PscAnswer) -> None:
        super().__init__()
        self.answers = list(answers)
        self.asked = 0

    def psc_answer(self, cur_entry: int, end_entry: int) -> PscAnswer:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer


class ForgedHob(HostPolicy):
    """TDX: writes extra unaccepted-memory resources (type 7) into the TD HOB over ``ranges``, e.g.
    memory it added and measured at build time (EDK2 Bugzilla 4363)."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        super().__init__()
        self.ranges = list(ranges)

    def td_hob_resources(self, resources: list[ResourceDescriptor]) -> list[ResourceDescriptor]:
        forged = [
            ResourceDescriptor(RESOURCE_MEMORY_UNACCEPTED, TDX_RESOURCE_ATTRIBUTES, s, e - s) for s, e in self.ranges
        ]
        return sorted(resources + forged, key=lambda r: r.start)
