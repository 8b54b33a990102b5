"""The host VMM: its policy (the one place host decisions are made) and its memory accounting."""

from __future__ import annotations

import pytest

from lazyaccept.base.choices import AcceptRoutine
from lazyaccept.base.errors import ConfigError, SafetyViolation
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptStats
from lazyaccept.base.units import GiB, MiB
from lazyaccept.platform import HostPolicy, HostVMM, SnpPlatform, TdxPlatform

K4 = 4096
M2 = 2 * MiB
B = 1 * GiB


def test_4k_policy_is_upstream_kvm():
    pol = HostPolicy()
    assert pol.mapping == "4k"
    # private memory mapped at 4 KiB only, whatever the guest asked
    assert pol.back(B, B + M2, M2) == K4
    assert pol.back(B, B + K4, K4) == K4


def test_2m_policy_maps_whole_2m_requests_at_2m():
    pol = HostPolicy("2M")
    assert pol.back(B, B + 4 * M2, M2) == M2
    assert pol.back(B, B + K4, K4) == K4  # a 4K request is never mapped larger
    assert pol.back(B, B + M2, K4) == K4
    assert pol.back(B + K4, B + M2, M2) == K4  # not a whole block


def test_unknown_mapping():
    with pytest.raises(ConfigError):
        HostPolicy("1g")


class Answer(HostPolicy):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def back(self, start, end, requested_level):
        return self.size


def test_decide_rejects_impossible_answers():
    with pytest.raises(ConfigError):
        HostVMM(Answer(1 * GiB)).decide(B, B + GiB, M2)  # no 1 GiB mappings
    with pytest.raises(ConfigError):
        HostVMM(Answer(M2)).decide(B, B + M2, K4)  # larger than the request
    with pytest.raises(ConfigError):
        HostVMM(Answer(M2)).decide(B + K4, B + M2 + K4, M2)  # not whole blocks
    h = HostVMM(Answer(M2))
    h.allocate(B, B + K4, K4)
    with pytest.raises(ConfigError):
        h.decide(B, B + M2, M2)  # block partly backed already
    h = HostVMM(Answer(None))
    assert h.decide(B, B + K4, K4) is None and h.refusals == 1


def test_allocate_add_release_accounting():
    h = HostVMM()
    s = h.allocate(B, B + 3 * K4, K4)
    assert s == AcceptStats(host_backed_4k=3, host_zeroed_bytes=3 * K4)
    s = h.allocate(B + M2, B + 3 * M2, M2)
    assert s == AcceptStats(host_backed_2m=2, host_zeroed_bytes=2 * M2)
    h.add_at_build(0x800000, 0x810000)
    assert h.committed == RangeSet([(0x800000, 0x810000), (B, B + 3 * K4), (B + M2, B + 3 * M2)])
    assert h.committed_bytes == 0x10000 + 3 * K4 + 2 * M2
    assert (h.backed_4k, h.backed_2m, h.zeroed_bytes, h.added_bytes) == (3, 2, 3 * K4 + 2 * M2, 0x10000)
    with pytest.raises(ConfigError):
        h.allocate(B + 2 * K4, B + 4 * K4, K4)  # already committed
    with pytest.raises(ConfigError):
        h.allocate(B + K4, B + M2 + K4, M2)  # misaligned 2M pages
    assert h.release(B, B + M2 + K4) == 3 * K4 + K4
    assert h.committed_bytes == 0x10000 + 2 * M2 - K4 and h.released_bytes == 4 * K4


class Recording(HostPolicy):
    """Records every question the platform asks; answers like the 2m policy."""

    def __init__(self):
        super().__init__("2m")
        self.asked = []

    def back(self, start, end, requested_level):
        self.asked.append((start, end, requested_level))
        return super().back(start, end, requested_level)


def test_platforms_ask_the_policy_and_use_the_given_host():
    pol = Recording()
    host = HostVMM(pol)
    p = TdxPlatform(host)
    p.accept(B, B + M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # one accept fault at the 2M level on a whole unbacked block
    assert pol.asked == [(B, B + M2, M2)]
    assert p.mapped_2m() == RangeSet([(B, B + M2)]) and host.committed_bytes == p.host_committed == M2
    pol2 = Recording()
    q = SnpPlatform(HostVMM(pol2))
    q.accept(B + M2 - K4, B + 2 * M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # a 4K entry for the head page, then one 2M entry
    assert pol2.asked == [(B + M2 - K4, B + M2, K4), (B + M2, B + 2 * M2, M2)]
    assert q.rmp_2m() == RangeSet([(B + M2, B + 2 * M2)])


def test_refusing_host_is_a_violation_on_both_platforms():
    for p in (TdxPlatform(HostVMM(Answer(None))), SnpPlatform(HostVMM(Answer(None)))):
        with pytest.raises(SafetyViolation) as e:
            p.accept(B, B + K4, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=4)
        assert (e.value.rule, e.value.address, e.value.vcpu) == ("host-refused", B, 4)
        assert p.host_committed == 0
