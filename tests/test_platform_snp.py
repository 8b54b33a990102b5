"""The SEV-SNP model: RMP states, page-state-change batching, PVALIDATE and its 2M -> 4K fallback.

Expected values come from firmware-and-platform.md §3.3 and §7 and linux-kernel.md §5.2
(64-entry GHCB PSC in Linux, 253 in OVMF, one 4 KiB page per MSR request); every count is derived
by hand in a comment.  The property test at the end checks the range-batched arithmetic against
the same routine run request by request and instruction by instruction.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazyaccept.base.errors import ConfigError, SafetyViolation
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptStats
from lazyaccept.base.units import GiB, TiB
from lazyaccept.platform.host import HostPolicy, HostVMM
from lazyaccept.platform.snp import (
    PVALIDATE_FAIL_INPUT,
    PVALIDATE_FAIL_SIZEMISMATCH,
    PVALIDATE_SUCCESS,
    PvalidateResult,
    SnpPlatform,
)
from platform_harness import (
    K4,
    M2,
    PROPERTY_SETTINGS,
    Harness,
    Layout,
    Refuse,
    Stepper,
    host_policies,
    layouts,
)

BASE = 4 * GiB  # above 4 GiB, where OVMF leaves memory unaccepted


def snp(mapping: str = "4k") -> SnpPlatform:
    return SnpPlatform(HostVMM(HostPolicy(mapping)))


def accept(p: SnpPlatform, start: int, end: int, routine: str = "linux", vcpu: int = 0) -> AcceptStats:
    return p.accept(start, end, routine=routine, actor="kernel", vcpu=vcpu)


# -- the routines, request by request (the reference the batched code must equal) ---------------
class PscStepper(Stepper[SnpPlatform]):
    """set_pages_state / InternalSetPageState / the MSR protocol, one PSC and one PVALIDATE at a time."""

    BATCH = {"linux": 64, "ovmf": 253, "msr": 1}

    def run(self, start: int, end: int, routine: str) -> AcceptStats:
        entries = []
        a = start
        while a < end:
            if routine != "msr" and a % M2 == 0 and end - a >= M2:
                entries.append((a, M2))
                a += M2
            else:
                entries.append((a, K4))
                a += K4
        per = self.BATCH[routine]
        for i in range(0, len(entries), per):
            batch = entries[i : i + per]
            self.stats += self.p.page_state_change(batch, actor=self.actor, vcpu=self.vcpu)
            for gpa, size in batch:
                self.pvalidate(gpa, size)
        return self.stats

    def pvalidate(self, gpa: int, size: int) -> None:
        r = self.p.pvalidate(gpa, size == M2)
        if size == M2:
            self.stats.calls_2m += 1
            if r.rc == PVALIDATE_FAIL_SIZEMISMATCH:
                self.stats.size_mismatch += 1
                for q in range(gpa, gpa + M2, K4):
                    self.stats.calls_4k += 1
                    self.check(self.p.pvalidate(q, False), q, K4)
                return
        else:
            self.stats.calls_4k += 1
        self.check(r, gpa, size)

    def check(self, r: PvalidateResult, gpa: int, size: int) -> None:
        if r.cf:
            self.fail("double-accept", gpa)
        if r.rc != PVALIDATE_SUCCESS or r.fault:
            self.fail("accept-failed", gpa)
        self.stats.bytes_accepted += size


#: The host backs exactly the pages assigned to the guest in the RMP (validated or not).
HARNESS = Harness(PscStepper, ("assigned", "rmp_2m"), SnpPlatform.assigned)


# -- PVALIDATE -----------------------------------------------------------------------------------
def test_pvalidate_outcomes():
    p = snp("4k")
    r = p.pvalidate(BASE, False)
    assert r.fault and not r.ok  # not assigned to the guest: the RMP check faults
    p.page_state_change([(BASE, M2)])
    assert p.rmp_state(BASE) == "assigned"
    assert p.pvalidate(BASE + 1, False).rc == PVALIDATE_FAIL_INPUT
    assert p.pvalidate(BASE + K4, True).rc == PVALIDATE_FAIL_INPUT  # not 2M aligned
    # 4K host -> 4K RMP entries: a 2M PVALIDATE does not match
    assert p.pvalidate(BASE, True).rc == PVALIDATE_FAIL_SIZEMISMATCH
    r = p.pvalidate(BASE, False)
    assert (r.rc, r.cf, r.ok) == (PVALIDATE_SUCCESS, False, True)
    assert p.rmp_state(BASE) == "validated"
    r = p.pvalidate(BASE, False)  # validated twice: nothing changes, CF=1
    assert (r.rc, r.cf, r.ok) == (PVALIDATE_SUCCESS, True, False)
    r = p.pvalidate(BASE, False, validate=False)  # rescind
    assert r.ok and p.rmp_state(BASE) == "assigned"
    assert p.pvalidate(BASE, False, validate=False).cf


def test_pvalidate_2m_rmp_entry():
    p = snp("2m")
    p.page_state_change([(BASE, M2)])
    assert p.rmp_2m() == RangeSet([(BASE, BASE + M2)])
    assert p.pvalidate(BASE + K4, False).rc == PVALIDATE_FAIL_SIZEMISMATCH  # 4K inside a 2M entry
    assert p.pvalidate(BASE, True).ok
    assert p.accepted() == RangeSet([(BASE, BASE + M2)])
    assert p.pvalidate(BASE, True).cf


# -- counts, derived by hand ---------------------------------------------------------------------
def test_linux_2m_unit_on_4k_host():
    p = snp("4k")
    s = accept(p, BASE, BASE + M2)
    # one 2M PSC entry in one GHCB request; the host backs it with 512 4K pages (4K RMP entries);
    # PVALIDATE 2M -> FAIL_SIZEMISMATCH -> 512 x 4K.  PVALIDATE zeroes nothing.
    assert s == AcceptStats(
        bytes_accepted=M2,
        calls_2m=1,
        calls_4k=512,
        size_mismatch=1,
        exits=1,
        psc_requests=1,
        psc_entries=1,
        host_backed_4k=512,
        npf_exits=512,  # each backed 4K page is a nested page fault first (no prefault)
        host_zeroed_bytes=M2,
        accept_zeroed_bytes=0,
    )


def test_linux_2m_unit_on_2m_host():
    s = accept(snp("2m"), BASE, BASE + M2)
    # whole unbacked block, 2M entry -> 2M RMP entry -> one 2M PVALIDATE succeeds
    assert s == AcceptStats(
        bytes_accepted=M2,
        calls_2m=1,
        exits=1,
        psc_requests=1,
        psc_entries=1,
        host_backed_2m=1,
        npf_exits=1,  # the 2 MiB page is backed on one nested page fault
        host_zeroed_bytes=M2,
    )


def test_msr_protocol_is_one_4k_page_per_request():
    s = accept(snp("2m"), BASE, BASE + M2, "msr")
    # 512 pages, each: one MSR PSC request (VMGEXIT) + one 4K PVALIDATE; 4K requests -> 4K backing
    assert s == AcceptStats(
        bytes_accepted=M2,
        calls_4k=512,
        exits=512,
        psc_requests=512,
        psc_entries=512,
        host_backed_4k=512,
        npf_exits=512,  # each backed 4K page is a nested page fault first (no prefault)
        host_zeroed_bytes=M2,
    )


@pytest.mark.parametrize("routine, requests", [("linux", 2), ("ovmf", 1)])
def test_batches_of_2m_entries(routine, requests):
    s = accept(snp("2m"), BASE, BASE + 65 * M2, routine)
    # 65 2M entries: Linux 64 + 1 -> 2 requests; OVMF up to 253 -> 1 request
    assert (s.psc_entries, s.psc_requests, s.exits, s.calls_2m, s.host_backed_2m) == (
        65,
        requests,
        requests,
        65,
        65,
    )


@pytest.mark.parametrize("routine, requests", [("linux", 5), ("ovmf", 2), ("msr", 300)])
def test_batches_of_4k_entries(routine, requests):
    start = BASE + K4  # unaligned, and the range ends before the next 2M boundary: all 4K entries
    s = accept(snp(), start, start + 300 * K4, routine)
    # ceil(300/64) = 5; ceil(300/253) = 2; one page per MSR request = 300
    assert (s.psc_entries, s.psc_requests, s.calls_4k, s.calls_2m) == (300, requests, 300, 0)


def test_head_body_tail_entries():
    start, end = BASE + M2 - 3 * K4, BASE + 3 * M2 + 5 * K4
    s = accept(snp("4k"), start, end)
    # head 3 x 4K, body 2 x 2M (each 4K RMP -> mismatch -> 512 x 4K), tail 5 x 4K: 10 entries
    assert s.psc_entries == 10 and s.psc_requests == 1
    assert (s.calls_2m, s.size_mismatch, s.calls_4k) == (2, 2, 3 + 5 + 1024)
    assert s.host_backed_4k == 3 + 1024 + 5


# -- safety --------------------------------------------------------------------------------------
@pytest.mark.parametrize("routine", ["linux", "ovmf", "msr"])
def test_second_accept_of_a_4k_page_is_double_accept(routine):
    p = snp()
    accept(p, BASE, BASE + K4, routine)
    with pytest.raises(SafetyViolation) as e:
        p.accept(BASE, BASE + K4, routine=routine, actor="kernel", vcpu=2)
    assert (e.value.rule, e.value.actor, e.value.vcpu, e.value.address) == (
        "double-accept",
        "kernel",
        2,
        BASE,
    )


@pytest.mark.parametrize(
    "routine, assigned_pages",
    [
        ("linux", 100),  # batches of 64: entries 64..99 had their PSC before PVALIDATE hit page 70
        ("ovmf", 100),  # one batch of 100 entries
        ("msr", 71),  # PSC and PVALIDATE alternate page by page: stops at page 70
    ],
)
def test_double_accept_mid_batch(routine, assigned_pages):
    p = snp()
    start = BASE + K4
    p.add_at_build(start + 70 * K4, start + 71 * K4)  # page 70 is validated already
    with pytest.raises(SafetyViolation) as e:
        accept(p, start, start + 100 * K4, routine)
    assert (e.value.rule, e.value.address) == ("double-accept", start + 70 * K4)
    # pages 0..69 were validated before the CF=1 on page 70; page 70 was validated at launch
    assert p.accepted() == RangeSet([(start, start + 71 * K4)])
    assert p.assigned() == RangeSet([(start, start + assigned_pages * K4)])


def test_touch():
    p = snp()
    accept(p, BASE, BASE + 2 * K4)
    p.touch(BASE, BASE + 2 * K4, actor="kernel", vcpu=0)
    with pytest.raises(SafetyViolation) as e:
        p.touch(BASE + K4, BASE + 3 * K4, actor="workload", vcpu=5)
    assert (e.value.rule, e.value.actor, e.value.vcpu, e.value.address) == (
        "touch-unaccepted",
        "workload",
        5,
        BASE + 2 * K4,
    )
    # assigned but not validated is not accepted either (#VC 0x404)
    p.page_state_change([(BASE + 8 * K4, K4)])
    with pytest.raises(SafetyViolation) as e:
        p.touch(BASE + 8 * K4 + 16, BASE + 8 * K4 + 32, actor="kernel", vcpu=0)
    assert e.value.address == BASE + 8 * K4 + 16 and "0x404" in e.value.detail


def test_add_at_build():
    p = snp()
    p.add_at_build(0x800000, 0x80A000)
    assert p.is_accepted(0x800000, 0x80A000) and p.host_committed == 0xA000
    with pytest.raises(SafetyViolation):
        accept(p, 0x800000, 0x801000, "ovmf")
    p.finalize()
    with pytest.raises(ConfigError):
        p.add_at_build(0x900000, 0x901000)
    with pytest.raises(ConfigError):
        accept(p, BASE, BASE + K4, "tdvf")


@pytest.mark.parametrize("mapping", ["4k", "2m"])
def test_host_commits_only_what_is_accepted(mapping):
    p = snp(mapping)
    p.add_at_build(0x800000, 0x810000)
    ranges = [(BASE + 3 * K4, BASE + 9 * K4), (BASE + 4 * M2, BASE + 7 * M2), (2 * BASE, 2 * BASE + M2 + K4)]
    expected = 0x10000
    for s, e in ranges:
        for routine in ("linux",):
            accept(p, s, e, routine)
        expected += e - s
        assert p.host_committed == expected
    assert p.host.committed == RangeSet([(0x800000, 0x810000), *ranges])
    assert p.assigned() == p.accepted()


def test_16_tib_in_one_call_exact_counts():
    n_blocks = 16 * TiB // M2  # 2**23 2M entries
    p = snp("4k")
    s = accept(p, BASE, BASE + 16 * TiB)
    assert s.psc_entries == n_blocks and s.psc_requests == s.exits == n_blocks // 64 == 2**17
    assert s.calls_2m == s.size_mismatch == n_blocks
    assert s.calls_4k == s.host_backed_4k == 16 * TiB // K4
    assert s.bytes_accepted == s.host_zeroed_bytes == p.host_committed == 16 * TiB
    q = snp("2m")
    s = accept(q, BASE, BASE + 16 * TiB, "ovmf")
    assert s.psc_requests == -(-n_blocks // 253) == 33157  # 2**23 / 253 = 33156.6
    assert s.calls_2m == s.host_backed_2m == n_blocks and s.calls_4k == 0
    s = accept(snp("4k"), BASE, BASE + 16 * TiB, "msr")
    assert s.psc_requests == s.exits == s.calls_4k == 16 * TiB // K4


# -- hostile host ----------------------------------------------------------------------------------
def test_host_rmpupdate_behind_the_guests_back():
    p = snp("2m")
    accept(p, BASE, BASE + M2)
    p.host_rmpupdate(BASE + K4, BASE + 2 * K4)
    assert p.rmp_state(BASE + K4) == "assigned" and p.rmp_2m() == RangeSet()  # smashed to 4K
    assert p.lost() == RangeSet([(BASE + K4, BASE + 2 * K4)])
    with pytest.raises(SafetyViolation) as e:
        p.touch(BASE, BASE + M2, actor="kernel", vcpu=0)
    assert (e.value.rule, e.value.address) == ("touch-unaccepted", BASE + K4)
    # Validating it again succeeds on the hardware (CF=0): the attack of §7.6; it is recorded.
    s = accept(p, BASE + K4, BASE + 2 * K4)
    assert (s.calls_4k, s.psc_requests, s.host_backed_4k, s.bytes_accepted) == (1, 1, 0, K4)
    assert p.reaccepted() == RangeSet([(BASE + K4, BASE + 2 * K4)]) and p.lost() == RangeSet()
    p.touch(BASE, BASE + M2, actor="kernel", vcpu=0)


def test_host_refusal_after_earlier_batches_validated():
    p = SnpPlatform(HostVMM(Refuse()))
    start = BASE + K4
    p.host_rmpupdate(start, start + 100 * K4)  # pages 0..99 assigned; 100.. are not
    with pytest.raises(SafetyViolation) as e:
        accept(p, start, start + 200 * K4)
    # Linux batches of 64: batches 1 (pages 0..63) validated; batch 2 PSC refused at page 100
    assert (e.value.rule, e.value.address) == ("host-refused", start + 100 * K4)
    assert p.accepted() == RangeSet([(start, start + 64 * K4)])


# -- batched == request by request -------------------------------------------------------------
POLICIES = host_policies("2m")  # the refuse-4k host backs 2M entries as the huge-page host does
BLOCK_KINDS = [
    "shared", "shared", "shared", "assigned-4k", "rmp2m-assigned", "rmp2m-validated", "validated-4k", "mixed", "mixed",
]
PAGE_STATES = ["shared", "shared", "assigned", "assigned", "lost", "validated"]
UNIFORM = {"assigned-4k": "assigned", "validated-4k": "validated"}


def build(layout: Layout, policy: str) -> SnpPlatform:
    p = SnpPlatform(HostVMM(HostPolicy("2m")))
    for i, block in enumerate(layout.blocks):
        blk = BASE + i * M2
        if block.kind.startswith("rmp2m"):
            p.page_state_change([(blk, M2)])
            if block.kind == "rmp2m-validated":
                assert p.pvalidate(blk, True).ok
        for a, b, state in block.runs:
            s, e = blk + a * K4, blk + b * K4
            if state in ("validated", "lost"):
                p.add_at_build(s, e)
            if state in ("assigned", "lost"):
                p.host_rmpupdate(s, e)
    p.host.policy = POLICIES[policy]()
    return p


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(layouts(BLOCK_KINDS, PAGE_STATES, UNIFORM), st.sampled_from(sorted(POLICIES)),
       st.sampled_from(["linux", "ovmf", "msr"]))
def test_batched_accept_equals_request_by_request(layout, policy, routine):
    # Same outcome (stats or violation: rule, address, actor, vCPU), same RMP and host state, and
    # the host backs exactly the assigned pages.
    HARNESS.check(lambda: build(layout, policy), *layout.span(BASE), routine, actor="kernel", vcpu=1)
