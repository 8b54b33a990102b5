"""Hostile hosts (lazyaccept check, kind "hostile-host"): the host's policy replaced, the guest is
today's kernel, and the guest must stop (or, for denial of service, stall) without any silent
data loss.  Controls show the silent-data-loss detector fires when a guest would re-accept."""

from __future__ import annotations

import pytest

from lazyaccept.base.choices import AcceptRoutine, Tee
from lazyaccept.base.errors import GuestStopped, SafetyViolation
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.units import PAGE_SIZE
from lazyaccept.firmware.td_hob_check import HobCheck, hob_problems
from lazyaccept.firmware.tdvf import BUILTIN_IMAGE, build_td_hob, load_tdvf, qemu_td_hob_resources
from lazyaccept.formats.tdvf import TdvfSectionType
from lazyaccept.guest.snp_psc import GHCB_TERM_PSC, psc_entries, set_pages_private
from lazyaccept.platform.host import HostPolicy, PscAnswer
from lazyaccept.platform.hostile import ForgedHob, PscHost, RemoveAndReadd
from lazyaccept.scenario.check import detectors
from lazyaccept.scenario.check.catalogue import run_hostile
from lazyaccept.scenario.check.hostile import HOSTILE, Fate, probe
from lazyaccept.scenario.check.mini import BASE, UNIT, make_platform, mini_guest
from lazyaccept.scenario.check.mutants import correct_rules
from lazyaccept.scenario.sanitizer import silent_data_losses

BY_NAME = {h.name: h for h in HOSTILE}
REQUIRED = ("tdx-remove-readd", "tdx-refuse-aug", "tdx-forged-hob", "snp-rmp-remap", "snp-psc-lies",
            "snp-psc-backwards", "snp-refuse")

EXPECTED_FATES = {
    "tdx-remove-readd": [Fate.STOPPED],
    "tdx-refuse-aug": [Fate.STUCK],
    "tdx-forged-hob": [Fate.REFUSED, Fate.VIOLATION, Fate.VIOLATION],
    "snp-rmp-remap": [Fate.STOPPED, Fate.STOPPED],
    "snp-psc-lies": [Fate.STOPPED],
    "snp-psc-backwards": [Fate.STOPPED, Fate.CONTINUED],
    "snp-refuse": [Fate.STOPPED],
}


def test_the_catalogue_has_the_seven_hostile_hosts():
    assert set(REQUIRED) <= set(BY_NAME)
    assert {h.tee for h in HOSTILE} == {Tee.TDX, Tee.SNP}


@pytest.mark.parametrize("name", REQUIRED)
def test_hostile_host_ends_as_expected_with_no_silent_data_loss(name):
    probes = BY_NAME[name].probes(correct_rules())
    assert [p.fate for p in probes] == EXPECTED_FATES[name], [p.detail for p in probes]
    assert all(p.silent_loss_bytes == 0 for p in probes)
    result = run_hostile(BY_NAME[name])
    assert result.ok and result.silent_data_losses == 0


def test_remove_readd_stops_at_the_pending_page():
    (p,) = BY_NAME["tdx-remove-readd"].probes(correct_rules())
    assert "at 0x100005000 (SEPT state PENDING, removed by the host)" in p.detail
    assert "did not re-accept" in p.detail


def test_snp_remap_stops_at_the_old_address_with_vc_404_and_cf1_terminates():
    moved, twice = BY_NAME["snp-rmp-remap"].probes(correct_rules())
    assert "at 0x100005000 (#VC 0x404" in moved.detail
    assert "GHCB_TERM_PVALIDATE" in twice.detail and "CF=1" in twice.detail


def test_psc_refusal_and_backwards_header_terminate_with_ghcb_term_psc():
    (refused,) = BY_NAME["snp-refuse"].probes(correct_rules())
    backwards, rewind = BY_NAME["snp-psc-backwards"].probes(correct_rules())
    assert "GHCB_TERM_PSC" in refused.detail and "exit_info_2=0x10000000000" in refused.detail
    assert "PSC processing going backward, end_entry 2 (got 3)" in backwards.detail
    # A rewind after partial progress (cur_entry 1 -> 0) is not below the start: Linux asks again.
    assert "after 3 VMGEXITs, every page validated once" in rewind.detail


def test_lying_psc_host_makes_pvalidate_fail():
    (lies,) = BY_NAME["snp-psc-lies"].probes(correct_rules())
    assert "GHCB_TERM_PVALIDATE" in lies.detail and "not assigned" in lies.detail


def test_refused_unit_stays_marked_unaccepted_and_unit_0_intact():
    (p,) = BY_NAME["tdx-refuse-aug"].probes(correct_rules())
    assert "at 0x100200000 (host did not AUG the page)" in p.detail
    assert "outside the TDX threat model" in p.detail


def test_forged_hob_is_refused_before_any_accept_only_with_the_metadata_check():
    meta = load_tdvf(BUILTIN_IMAGE)
    bfv = next(s for s in meta.sections if s.type == TdvfSectionType.BFV)
    hob_sec = next(s for s in meta.sections if s.type == TdvfSectionType.TD_HOB)
    ram = RangeSet([(0, 512 << 20)])
    added = [(s.memory_address, s.memory_address + s.memory_size) for s in meta.sections
             if ram.overlaps(s.memory_address, s.memory_address + s.memory_size)]
    forged = ForgedHob([(bfv.memory_address, bfv.memory_address + bfv.memory_size)])
    honest_hob = build_td_hob(hob_sec, qemu_td_hob_resources(ram, added))
    forged_hob = build_td_hob(hob_sec, forged.td_hob_resources(qemu_td_hob_resources(ram, added)))
    for check in HobCheck:
        assert hob_problems(meta, honest_hob, check) == []
    # A HOB that forgets to carve the TEMP_MEM sections out fails both checks, as upstream's would.
    sloppy = build_td_hob(hob_sec, qemu_td_hob_resources(ram, []))
    assert hob_problems(meta, sloppy, HobCheck.TEMP_MEM) and hob_problems(meta, sloppy, HobCheck.METADATA)
    assert hob_problems(meta, forged_hob, HobCheck.NONE) == []
    assert hob_problems(meta, forged_hob, HobCheck.TEMP_MEM) == []  # the BFV is not TEMP_MEM
    (problem,) = hob_problems(meta, forged_hob, HobCheck.METADATA)
    assert "overlaps TDVF section BFV" in problem
    refused = BY_NAME["tdx-forged-hob"].probes(correct_rules())[0]
    assert refused.fate is Fate.REFUSED and "tdvf-hob-refused" in refused.detail
    without = BY_NAME["tdx-forged-hob"].probes(correct_rules())[2]
    assert f"double-accept: firmware on vCPU 0 at {bfv.memory_address:#x}" in without.detail


# -- the silent-data-loss detector fires -----------------------------------------------------------
def test_a_guest_that_re_accepts_the_re_added_page_loses_its_data_silently():
    # Control: a guest that, finding the page PENDING, accepts it again (the re-accept the issue
    # forbids: "re-accepting zeroes data") goes on with zeros where its data was.
    page = BASE + 5 * PAGE_SIZE
    g = mini_guest(correct_rules(), units=4, policy=RemoveAndReadd(page, page + PAGE_SIZE))

    def naive_guest() -> str:
        g.mem.accept_memory(BASE, UNIT - PAGE_SIZE, actor="page_alloc")
        g.platform.touch(BASE, BASE + UNIT - PAGE_SIZE, actor="guest", vcpu=0)
        g.platform.host.policy.strike(g.platform)
        try:
            g.platform.touch(page, page + 64, actor="guest", vcpu=0)
        except SafetyViolation:
            g.platform.accept(page, page + PAGE_SIZE, routine=AcceptRoutine.LINUX, actor="#VE handler", vcpu=0)
            g.platform.touch(page, page + 64, actor="guest", vcpu=0)
        return "went on"

    p = probe("naive guest", Fate.STOPPED, g.platform, naive_guest)
    assert p.fate is Fate.CONTINUED and not p.ok
    assert p.silent_loss_bytes == PAGE_SIZE
    assert [f.rule for f in p.findings] == ["silent-data-loss"]
    assert silent_data_losses(g.platform) == RangeSet([(page, page + PAGE_SIZE)])


def test_re_accepting_a_page_never_written_is_a_double_accept_not_a_data_loss():
    p = make_platform(Tee.TDX)
    p.accept(BASE, BASE + 2 * PAGE_SIZE, routine=AcceptRoutine.LINUX, actor="k", vcpu=0)
    p.host_remove(BASE, BASE + PAGE_SIZE)
    p.host_aug(BASE, BASE + PAGE_SIZE)
    p.accept(BASE, BASE + PAGE_SIZE, routine=AcceptRoutine.LINUX, actor="k", vcpu=0)
    f = detectors.guest_data(p)
    assert f is not None and f.rule == "double-accept"
    assert silent_data_losses(p) == RangeSet()


def test_host_taking_a_page_back_is_memory_lost():
    p = make_platform(Tee.SNP)
    p.accept(BASE, BASE + 2 * PAGE_SIZE, routine=AcceptRoutine.LINUX, actor="k", vcpu=0)
    p.host_rmpupdate(BASE, BASE + PAGE_SIZE)
    f = detectors.guest_data(p)
    assert f is not None and (f.rule, f.address) == ("memory-lost", BASE)


# -- the SNP protocol with an honest host ----------------------------------------------------------
def test_psc_descriptors_follow_linux():
    # 2 MiB entries where aligned with >= 2 MiB left, else 4 KiB; at most 64 entries each.
    entries = psc_entries(BASE + UNIT - 2 * PAGE_SIZE, BASE + 3 * UNIT + PAGE_SIZE)
    flat = [e for d in entries for e in d]
    assert flat == [(BASE + UNIT - 2 * PAGE_SIZE, PAGE_SIZE), (BASE + UNIT - PAGE_SIZE, PAGE_SIZE),
                    (BASE + UNIT, UNIT), (BASE + 2 * UNIT, UNIT), (BASE + 3 * UNIT, PAGE_SIZE)]
    assert [len(d) for d in psc_entries(BASE, BASE + 100 * PAGE_SIZE)] == [64, 36]


def test_honest_host_protocol_matches_the_batched_accept():
    p, q = make_platform(Tee.SNP), make_platform(Tee.SNP)
    start, end = BASE + UNIT - 3 * PAGE_SIZE, BASE + 4 * UNIT + 5 * PAGE_SIZE
    one = set_pages_private(p, start, end, actor="k")
    two = q.accept(start, end, routine=AcceptRoutine.LINUX, actor="k", vcpu=0)
    assert p.accepted() == q.accepted() == RangeSet([(start, end)])
    assert (one.psc_requests, one.psc_entries, one.calls_4k, one.calls_2m) == (
        two.psc_requests, two.psc_entries, two.calls_4k, two.calls_2m)


def test_refusing_host_terminates_the_guest_before_any_validation():
    p = make_platform(Tee.SNP, PscHost(PscAnswer.FAIL))
    with pytest.raises(GuestStopped) as e:
        set_pages_private(p, BASE, BASE + UNIT, actor="k")
    assert e.value.reason == "GHCB_TERM_PSC" and GHCB_TERM_PSC == 1
    assert p.accepted() == RangeSet()


def test_honest_policy_answers_are_the_defaults():
    h = HostPolicy()
    assert h.psc_answer(0, 3) is PscAnswer.PROCESS
    assert h.td_hob_resources([]) == []
    assert h.strike(make_platform(Tee.TDX)) is None
