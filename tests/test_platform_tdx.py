"""The TDX module model: TDG.MEM.PAGE.ACCEPT outcomes, the Linux and TDVF accept routines, counts.

Expected values come from the outcome table (firmware-and-platform.md §6.4), the host behaviour
of §6.7, the EDK2 split of §2.2-2.3 and Linux's tdx_accept_memory (linux-kernel.md §5.1); every
count is derived by hand in a comment.  The main check of the range-batched arithmetic is the
property test at the end: it must equal the same routine run TDCALL by TDCALL.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazyaccept.base.choices import AcceptRoutine
from lazyaccept.base.errors import ConfigError, SafetyViolation
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptStats
from lazyaccept.base.units import GiB, MiB, TiB
from lazyaccept.platform.host import HostPolicy, HostVMM
from lazyaccept.platform.tdx import (
    LEVEL_1G,
    LEVEL_2M,
    LEVEL_4K,
    TDX_OPERAND_BUSY,
    TDX_OPERAND_INVALID,
    TDX_PAGE_ALREADY_ACCEPTED,
    TDX_PAGE_SIZE_MISMATCH,
    TDX_SUCCESS,
    TdxPlatform,
)
from platform_harness import (
    K4,
    M2,
    NPAGES,
    PROPERTY_SETTINGS,
    Harness,
    Layout,
    Refuse,
    Stepper,
    busy_lists,
    host_policies,
    layouts,
)

BASE = 1 * GiB  # 1 GiB aligned, so block arithmetic below is easy to follow


def tdx(mapping: str = "4k", **kw) -> TdxPlatform:
    return TdxPlatform(HostVMM(HostPolicy(mapping)), **kw)


# -- the routines, driven one TDCALL at a time (the reference the batched code must equal) --------
class TdcallStepper(Stepper[TdxPlatform]):
    """Runs a guest accept routine through ``tdcall_accept`` only, summing each TDCALL's counts."""

    def run(self, start: int, end: int, routine: str) -> AcceptStats:
        return {"linux": self.linux, "tdvf": self.tdvf}[routine](start, end)

    def tdcall(self, gpa: int, level: int) -> int:
        """One TDCALL as the guest sees it: re-executed after a TD exit."""
        for _ in range(3):
            r = self.p.tdcall_accept(gpa, level, self.vcpu, actor=self.actor)
            self.stats += r.stats
            if not r.td_exit:
                assert r.status is not None
                return r.status
        raise AssertionError("a TDCALL exited more than twice")

    def fail_status(self, status: int, gpa: int) -> None:
        self.fail("double-accept" if status == TDX_PAGE_ALREADY_ACCEPTED else "accept-failed", gpa)

    def linux(self, start: int, end: int) -> AcceptStats:
        """tdx_accept_memory: 1G, then 2M, then 4K; any non-zero status means try smaller."""
        a = start
        while a < end:
            for level, size in ((LEVEL_1G, GiB), (LEVEL_2M, M2), (LEVEL_4K, K4)):
                if a % size == 0 and end - a >= size:
                    status = self.tdcall(a, level)
                    if status == TDX_SUCCESS:
                        a += size
                        break
                    if level == LEVEL_4K:
                        self.fail_status(status, a)
        return self.stats

    def td_accept_pages(self, addr: int, npages: int, size: int) -> None:
        """EDK2 TdAcceptPages (MdePkg/Library/TdxLib/AcceptPages.c), ALREADY_ACCEPTED fatal."""
        level = LEVEL_4K if size == K4 else LEVEL_2M
        for _ in range(npages):
            retried = 0
            while True:
                status = self.tdcall(addr, level)
                if status == TDX_SUCCESS:
                    break
                if status == TDX_PAGE_SIZE_MISMATCH and level == LEVEL_2M:
                    self.td_accept_pages(addr, 512, K4)
                    break
                if status == TDX_OPERAND_BUSY:
                    retried += 1
                    if retried <= 3:
                        continue
                self.fail_status(status, addr)
            addr += size

    def tdvf(self, start: int, end: int) -> AcceptStats:
        """BspAcceptMemoryResourceRange: 4K head to the 2M boundary, 2M body only if > 2M left."""
        total = end - start
        length1 = 0
        if start % M2:
            length1 = min(-start % M2, total)
        rest = total - length1
        length2 = rest - rest % M2 if rest > M2 else 0
        length3 = rest - length2
        if length1:
            self.td_accept_pages(start, length1 // K4, K4)
        if length2:
            self.td_accept_pages(start + length1, length2 // M2, M2)
        if length3:
            self.td_accept_pages(start + length1 + length2, length3 // K4, K4)
        return self.stats


def backed(p: TdxPlatform) -> RangeSet:
    """SEPT-backed pages: accepted (MAPPED) or AUGed and not yet accepted (PENDING)."""
    out = p.accepted()
    out.update(p.pending())
    return out


HARNESS = Harness(TdcallStepper, ("pending", "mapped_2m"), backed)


# -- single TDCALL outcomes (§6.4 table, §6.7 host) ---------------------------------------------
def test_status_constants_are_the_real_values():
    # §6.5 / EDK2 Tdx.h / Linux tdx_errno.h
    assert TDX_SUCCESS == 0
    assert TDX_OPERAND_INVALID == 0xC000010000000000
    assert TDX_OPERAND_BUSY == 0x8000020000000000
    assert TDX_PAGE_ALREADY_ACCEPTED == 0x00000B0A00000000
    assert TDX_PAGE_SIZE_MISMATCH == 0xC0000B0B00000000


def test_4k_accept_of_free_page_exits_then_succeeds():
    p = tdx()
    r = p.tdcall_accept(BASE, LEVEL_4K)
    # FREE leaf at the requested level -> TD exit; the host AUGs the page -> PENDING.
    assert r.td_exit and r.retry and r.status is None
    assert r.stats == AcceptStats(calls_4k=1, exits=1, host_backed_4k=1, host_zeroed_bytes=K4)
    assert p.sept_state(BASE) == "PENDING" and p.host_committed == K4
    r = p.tdcall_accept(BASE, LEVEL_4K)
    assert r.status == TDX_SUCCESS and not r.td_exit
    assert r.stats == AcceptStats(calls_4k=1, bytes_accepted=K4, accept_zeroed_bytes=K4)
    assert p.sept_state(BASE) == "MAPPED"
    # A guest-accessible leaf at the requested level -> ALREADY_ACCEPTED.
    assert p.tdcall_accept(BASE, LEVEL_4K).status == TDX_PAGE_ALREADY_ACCEPTED


def test_2m_accept_on_4k_host_exits_then_size_mismatch():
    p = tdx("4k")
    r = p.tdcall_accept(BASE, LEVEL_2M)
    assert r.td_exit
    # KVM maps private memory at 4 KiB only: one 4K page AUGed at the faulting GPA.
    assert p.pending() == RangeSet([(BASE, BASE + K4)])
    assert p.mapping_size(BASE) == K4
    r = p.tdcall_accept(BASE, LEVEL_2M)
    # At the 2M level there is now a non-leaf entry -> PAGE_SIZE_MISMATCH.
    assert r.status == TDX_PAGE_SIZE_MISMATCH and r.stats.size_mismatch == 1


def test_2m_accept_on_2m_host_succeeds_at_2m():
    p = tdx("2m")
    assert p.tdcall_accept(BASE, LEVEL_2M).td_exit
    assert p.mapped_2m() == RangeSet([(BASE, BASE + M2)])
    r = p.tdcall_accept(BASE, LEVEL_2M)
    assert r.status == TDX_SUCCESS and r.stats.bytes_accepted == M2 and r.stats.accept_zeroed_bytes == M2
    # Any 4K request inside a MAPPED 2M leaf stops early at a guest-accessible leaf.
    assert p.tdcall_accept(BASE + 7 * K4, LEVEL_4K).status == TDX_PAGE_ALREADY_ACCEPTED
    assert p.tdcall_accept(BASE, LEVEL_2M).status == TDX_PAGE_ALREADY_ACCEPTED


def test_4k_accept_inside_pending_2m_leaf_exits_and_host_demotes():
    p = tdx("2m")
    p.host_aug(BASE, BASE + M2, M2)
    r = p.tdcall_accept(BASE + 3 * K4, LEVEL_4K)
    # Walk stops early at a non-accessible 2M leaf -> TD exit; no new host memory.
    assert r.td_exit and r.stats.host_backed_4k == 0 and r.stats.host_backed_2m == 0
    assert p.mapped_2m() == RangeSet() and p.pending() == RangeSet([(BASE, BASE + M2)])
    assert p.tdcall_accept(BASE + 3 * K4, LEVEL_4K).status == TDX_SUCCESS
    assert p.sept_state(BASE) == "PENDING"


def test_1g_and_invalid_operands():
    p = tdx(gpa_limit=4 * GiB)
    r = p.tdcall_accept(BASE, LEVEL_1G)
    # This module version accepts 4K and 2M only; no walk, no exit.
    assert r.status == TDX_OPERAND_INVALID and not r.td_exit and r.stats == AcceptStats(calls_1g=1)
    assert p.tdcall_accept(BASE + K4, LEVEL_2M).status == TDX_OPERAND_INVALID  # misaligned for 2M
    assert p.tdcall_accept(4 * GiB, LEVEL_4K).status == TDX_OPERAND_INVALID  # beyond GPAW
    assert p.tdcall_accept(BASE, 5).status == TDX_OPERAND_INVALID
    assert p.host_committed == 0


def test_busy_page():
    p = tdx()
    p.busy_pages.add(BASE)
    assert p.tdcall_accept(BASE, LEVEL_4K).status == TDX_OPERAND_BUSY
    assert p.tdcall_accept(BASE, LEVEL_2M).status == TDX_OPERAND_BUSY
    assert p.sept_state(BASE) == "FREE"


# -- the hand-derived example of the brief -----------------------------------------------------
def test_linux_2m_unit_on_4k_host_becomes_512_4k_accepts():
    p = tdx("4k")
    stats = p.accept(BASE, BASE + M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # 2M TDCALL -> FREE -> exit, AUG one 4K page; 2M again -> SIZE_MISMATCH  (calls_2m = 2)
    # 4K on page 0: PENDING -> success (1 call); pages 1..511: exit + success (2 calls each)
    # calls_4k = 1 + 2*511 = 1023; exits = 1 + 511 = 512; AUGs = 1 + 511 = 512 (4K).
    assert stats == AcceptStats(
        bytes_accepted=M2,
        calls_2m=2,
        calls_4k=1023,
        size_mismatch=1,
        exits=512,
        host_backed_4k=512,
        host_zeroed_bytes=M2,
        accept_zeroed_bytes=M2,
    )
    assert p.accepted() == RangeSet([(BASE, BASE + M2)])
    assert p.mapped_2m() == RangeSet()


def test_linux_2m_unit_on_2m_host():
    p = tdx("2m")
    stats = p.accept(BASE, BASE + M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # 2M -> exit, host AUGs the whole block at 2M; 2M again -> success.
    assert stats == AcceptStats(
        bytes_accepted=M2, calls_2m=2, exits=1, host_backed_2m=1, host_zeroed_bytes=M2, accept_zeroed_bytes=M2
    )
    assert p.mapped_2m() == RangeSet([(BASE, BASE + M2)])


def test_linux_many_units_on_4k_host_scale_by_block():
    p = tdx("4k")
    stats = p.accept(BASE, BASE + 10 * M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # ten independent blocks, each as in the example above
    assert (stats.calls_2m, stats.calls_4k, stats.exits, stats.host_backed_4k, stats.size_mismatch) == (
        20,
        10230,
        5120,
        5120,
        10,
    )


def test_linux_tries_1g_first_at_1g_aligned_addresses():
    p = tdx("2m")
    stats = p.accept(BASE, BASE + 2 * GiB, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # 1G TDCALLs at BASE and BASE+1G (>= 1G left at each) -> OPERAND_INVALID, then 2M.
    # 1024 blocks x (2M exit + 2M success) on the 2M host.
    assert stats.calls_1g == 2
    assert (stats.calls_2m, stats.exits, stats.host_backed_2m, stats.calls_4k) == (2048, 1024, 1024, 0)
    q = tdx("2m")
    stats = q.accept(BASE, BASE + 2 * GiB - M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # at BASE+1G only 1G-2M is left: no 1G attempt there
    assert stats.calls_1g == 1


def test_1g_path_matches_tdcall_by_tdcall():
    # (the 4K-host behaviour per block is covered by the property test at the end)
    rng = (BASE - 2 * M2 + 5 * K4, BASE + GiB + M2)
    got = HARNESS.check(lambda: tdx("2m"), *rng, AcceptRoutine.LINUX, actor="guest", vcpu=0)
    assert got[0] == "ok" and got[1].calls_1g == 1 and got[1].bytes_accepted == rng[1] - rng[0]


# -- TDVF split ---------------------------------------------------------------------------------
def test_tdvf_exactly_2m_aligned_is_512_4k_accepts():
    p = tdx("2m")
    stats = p.accept(BASE, BASE + M2, routine=AcceptRoutine.TDVF, actor="firmware", vcpu=0)
    # Part 2 only if the remaining length is > 2M: exactly 2M is Part 3, 512 x 4K.
    # Each FREE 4K page: exit + AUG 4K, then success -> 2 calls.  No 2M TDCALL at all.
    assert stats.calls_2m == 0 and stats.calls_4k == 1024 and stats.exits == 512
    assert stats.host_backed_4k == 512 and stats.host_backed_2m == 0


def test_tdvf_head_body_tail_split():
    p = tdx("2m")
    start, end = BASE + 1 * MiB, BASE + 5 * MiB + K4
    stats = p.accept(start, end, routine=AcceptRoutine.TDVF, actor="firmware", vcpu=0)
    # head [1M, 2M): 256 pages x 2 calls; remaining 3M+4K > 2M -> body [2M, 4M) one 2M block
    # (exit + AUG 2M + success = 2 calls); tail [4M, 5M+4K): 257 pages x 2 calls.
    assert stats.calls_4k == 2 * (256 + 257)
    assert stats.calls_2m == 2
    assert stats.exits == 256 + 1 + 257
    assert (stats.host_backed_4k, stats.host_backed_2m) == (513, 1)
    assert stats.bytes_accepted == end - start


def test_tdvf_body_on_4k_host_falls_back_per_block():
    p = tdx("4k")
    stats = p.accept(BASE, BASE + 4 * MiB, routine=AcceptRoutine.TDVF, actor="firmware", vcpu=0)
    # 4M > 2M: two 2M blocks, each like Linux's: 2 calls_2m, 1023 calls_4k, 512 exits
    assert (stats.calls_2m, stats.calls_4k, stats.exits, stats.size_mismatch) == (4, 2046, 1024, 2)


def test_tdvf_busy_retries_then_fails():
    p = tdx()
    p.busy_pages.add(BASE + M2)
    with pytest.raises(SafetyViolation) as e:
        p.accept(BASE, BASE + 3 * M2, routine=AcceptRoutine.TDVF, actor="firmware", vcpu=2)
    assert (e.value.rule, e.value.address, e.value.vcpu) == ("accept-failed", BASE + M2, 2)
    # the first block was done before the busy one
    assert p.accepted() == RangeSet([(BASE, BASE + M2)])


def test_linux_busy_at_4k_panics():
    p = tdx()
    p.busy_pages.add(BASE + 5 * K4)
    with pytest.raises(SafetyViolation) as e:
        p.accept(BASE + 4 * K4, BASE + 8 * K4, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    assert (e.value.rule, e.value.address) == ("accept-failed", BASE + 5 * K4)
    assert p.accepted() == RangeSet([(BASE + 4 * K4, BASE + 5 * K4)])


# -- safety --------------------------------------------------------------------------------------
@pytest.mark.parametrize("routine", ["linux", "tdvf"])
def test_second_accept_of_a_4k_page_is_double_accept(routine):
    p = tdx()
    p.accept(BASE, BASE + K4, routine=routine, actor="kernel", vcpu=0)
    with pytest.raises(SafetyViolation) as e:
        p.accept(BASE, BASE + K4, routine=routine, actor="kernel", vcpu=3)
    assert (e.value.rule, e.value.actor, e.value.vcpu, e.value.address) == (
        "double-accept",
        "kernel",
        3,
        BASE,
    )


@pytest.mark.parametrize("routine", ["linux", "tdvf"])
def test_overlapping_accept_stops_at_first_accepted_page(routine):
    p = tdx()
    p.accept(BASE + 8 * K4, BASE + 10 * K4, routine=routine, actor="kernel", vcpu=0)
    with pytest.raises(SafetyViolation) as e:
        p.accept(BASE, BASE + 16 * K4, routine=routine, actor="kernel", vcpu=0)
    assert e.value.address == BASE + 8 * K4
    # pages before the violation were accepted, pages after it were not
    assert p.accepted() == RangeSet([(BASE, BASE + 10 * K4)])


@pytest.mark.parametrize("routine", ["linux", "tdvf"])
def test_accept_of_build_time_added_page_is_double_accept(routine):
    p = tdx()
    p.add_at_build(BASE + M2, BASE + M2 + 3 * K4)
    p.finalize()
    with pytest.raises(SafetyViolation) as e:
        p.accept(BASE, BASE + 4 * M2, routine=routine, actor="kernel", vcpu=0)
    assert (e.value.rule, e.value.address) == ("double-accept", BASE + M2)


def test_touch():
    p = tdx()
    p.accept(BASE, BASE + 2 * K4, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    p.touch(BASE, BASE + 2 * K4, actor="kernel", vcpu=0)
    p.touch(BASE + 100, BASE + 200, actor="kernel", vcpu=0)
    with pytest.raises(SafetyViolation) as e:
        p.touch(BASE + K4, BASE + 4 * K4, actor="workload", vcpu=1)
    assert (e.value.rule, e.value.actor, e.value.vcpu, e.value.address) == (
        "touch-unaccepted",
        "workload",
        1,
        BASE + 2 * K4,
    )
    # PENDING is not accepted either
    p.host_aug(BASE + 4 * K4, BASE + 5 * K4)
    with pytest.raises(SafetyViolation) as e:
        p.touch(BASE + 4 * K4 + 8, BASE + 4 * K4 + 16, actor="kernel", vcpu=0)
    assert e.value.address == BASE + 4 * K4 + 8


def test_add_at_build_then_finalize():
    p = tdx()
    p.add_at_build(0x800000, 0x806000)
    assert p.is_accepted(0x800000, 0x806000) and p.host_committed == 0x6000
    p.touch(0x800000, 0x806000, actor="firmware", vcpu=0)
    p.finalize()
    with pytest.raises(ConfigError):
        p.add_at_build(0x900000, 0x901000)


def test_bad_arguments():
    p = tdx()
    with pytest.raises(ConfigError):
        p.accept(BASE + 1, BASE + K4, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    with pytest.raises(ConfigError):
        p.accept(BASE, BASE + K4, routine=AcceptRoutine.OVMF, actor="kernel", vcpu=0)
    with pytest.raises(ConfigError):
        TdxPlatform(gpa_limit=3 * MiB)
    assert p.accept(BASE, BASE, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0) == AcceptStats()


def test_accept_beyond_gpaw_fails_there():
    p = tdx(gpa_limit=4 * GiB)
    with pytest.raises(SafetyViolation) as e:
        p.accept(4 * GiB - M2, 4 * GiB + M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    assert (e.value.rule, e.value.address) == ("accept-failed", 4 * GiB)
    assert p.accepted() == RangeSet([(4 * GiB - M2, 4 * GiB)])
    for routine in ("linux", "tdvf"):
        rng = (4 * GiB - 2 * M2 + K4, 4 * GiB + 3 * M2)
        got = HARNESS.check(lambda: tdx(gpa_limit=4 * GiB), *rng, routine, actor="kernel", vcpu=0)
        assert got == ("violation", "accept-failed", 4 * GiB, "kernel", 0)


# -- host memory --------------------------------------------------------------------------------
@pytest.mark.parametrize("mapping", ["4k", "2m"])
def test_host_commits_only_what_is_accepted(mapping):
    p = tdx(mapping)
    p.add_at_build(0x800000, 0x810000)
    assert p.host_committed == 0x10000
    ranges = [(BASE + 3 * K4, BASE + 9 * K4), (BASE + 4 * M2, BASE + 7 * M2), (2 * GiB, 2 * GiB + M2 + K4)]
    expected = 0x10000
    for s, e in ranges:
        p.accept(s, e, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
        expected += e - s
        assert p.host_committed == expected
    assert p.host.committed == RangeSet([(0x800000, 0x810000), *ranges])
    assert p.pending() == RangeSet()


def test_16_tib_in_one_call_exact_counts():
    n_pages = 16 * TiB // K4  # 2**32
    n_blocks = 16 * TiB // M2  # 2**23
    start = 4 * GiB
    p = tdx("4k")
    s = p.accept(start, start + 16 * TiB, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # every block as in the 2M example: 512 exits, 2 calls_2m, 1023 calls_4k; 1G tries at each GiB
    assert s.exits == n_pages == 2**32
    assert s.host_backed_4k == n_pages and s.size_mismatch == n_blocks
    assert s.calls_2m == 2 * n_blocks and s.calls_4k == 1023 * n_blocks
    assert s.calls_1g == 16 * TiB // GiB == 16384
    assert s.bytes_accepted == s.accept_zeroed_bytes == s.host_zeroed_bytes == 16 * TiB
    assert p.host_committed == 16 * TiB
    q = tdx("2m")
    s = q.accept(start, start + 16 * TiB, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    assert s.exits == n_blocks == 16 * TiB // M2
    assert s.host_backed_2m == n_blocks and s.calls_2m == 2 * n_blocks and s.calls_4k == 0
    r = tdx("2m").accept(start, start + 16 * TiB, routine=AcceptRoutine.TDVF, actor="firmware", vcpu=0)
    assert r.exits == n_blocks and r.calls_1g == 0


# -- hostile host ---------------------------------------------------------------------------------
def test_host_remove_then_touch_and_reaccept():
    p = tdx()
    p.accept(BASE, BASE + 4 * K4, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    p.host_remove(BASE + K4, BASE + 2 * K4)
    assert p.sept_state(BASE + K4) == "FREE" and p.host_committed == 3 * K4
    assert p.lost() == RangeSet([(BASE + K4, BASE + 2 * K4)])
    with pytest.raises(SafetyViolation) as e:
        p.touch(BASE, BASE + 4 * K4, actor="kernel", vcpu=0)
    assert (e.value.rule, e.value.address) == ("touch-unaccepted", BASE + K4)
    # The real module sees a FREE page: exit, fresh AUG, TDX_SUCCESS -- data silently zeroed.
    s = p.accept(BASE + K4, BASE + 2 * K4, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    assert (s.calls_4k, s.exits, s.bytes_accepted) == (2, 1, K4)
    assert p.reaccepted() == RangeSet([(BASE + K4, BASE + 2 * K4)]) and p.lost() == RangeSet()


def test_host_remove_part_of_2m_leaf_demotes_it():
    p = tdx("2m")
    p.accept(BASE, BASE + M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    p.host_remove(BASE, BASE + K4)
    assert p.mapped_2m() == RangeSet()
    assert p.accepted() == RangeSet([(BASE + K4, BASE + M2)])
    assert p.host_committed == M2 - K4


def test_host_aug_before_the_guest_asked():
    p = tdx()
    p.host_aug(BASE, BASE + 8 * K4)
    s = p.accept(BASE, BASE + 8 * K4, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    # already PENDING: one successful TDCALL per page, no exit, no host work in the accept
    assert s == AcceptStats(bytes_accepted=8 * K4, calls_4k=8, accept_zeroed_bytes=8 * K4)
    q = tdx("4k")
    q.host_aug(BASE, BASE + M2, M2)
    s = q.accept(BASE, BASE + M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    assert (s.calls_2m, s.exits, s.calls_4k) == (1, 0, 0)


def test_host_refusal():
    p = TdxPlatform(HostVMM(Refuse()))
    with pytest.raises(SafetyViolation) as e:
        p.accept(BASE + M2, BASE + 2 * M2, routine=AcceptRoutine.LINUX, actor="kernel", vcpu=0)
    assert (e.value.rule, e.value.address) == ("host-refused", BASE + M2)
    assert p.host_committed == 0


# -- batched == TDCALL by TDCALL ------------------------------------------------------------------
POLICIES = host_policies("4k")  # the refuse-4k host backs 2M requests at 4K, as upstream KVM
# Weighted so that whole uniform blocks, runs of such blocks and violation-free ranges are common.
BLOCK_KINDS = ["free", "free", "free", "pending-4k", "leaf-pending", "leaf-mapped", "mapped-4k", "mixed", "mixed"]
PAGE_STATES = ["FREE", "FREE", "PENDING", "PENDING", "MAPPED"]
UNIFORM = {"pending-4k": "PENDING", "mapped-4k": "MAPPED"}


def build(layout: Layout, policy: str) -> TdxPlatform:
    p = TdxPlatform(HostVMM(POLICIES[policy]()))
    for i, block in enumerate(layout.blocks):
        blk = BASE + i * M2
        if block.kind in ("leaf-pending", "leaf-mapped"):
            p.host_aug(blk, blk + M2, M2)
            if block.kind == "leaf-mapped":
                assert p.tdcall_accept(blk, LEVEL_2M).status == TDX_SUCCESS
        for a, b, state in block.runs:
            if state == "MAPPED":
                p.add_at_build(blk + a * K4, blk + b * K4)
            elif state == "PENDING":
                p.host_aug(blk + a * K4, blk + b * K4)
    assert all(i < NPAGES for i in layout.busy)
    p.busy_pages.update(BASE + i * K4 for i in layout.busy)
    return p


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(
    layouts(BLOCK_KINDS, PAGE_STATES, UNIFORM, busy=busy_lists),
    st.sampled_from(sorted(POLICIES)),
    st.sampled_from(["linux", "tdvf"]),
)
def test_batched_accept_equals_tdcall_by_tdcall(layout, policy, routine):
    # Same outcome (stats or violation: rule, address, actor, vCPU), same SEPT and host state, and
    # the host backs exactly the SEPT-backed pages.
    HARNESS.check(lambda: build(layout, policy), *layout.span(BASE), routine, actor="kernel", vcpu=1)
