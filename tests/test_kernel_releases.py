"""Fixes in the release that shipped them, stable backports by sublevel, and the soft-lockup touch.

Expected values come from the kernel history, not from the code:

* torvalds/linux: 7cd34dd3c9bf ("efi/unaccepted: do not let /proc/vmcore try to access unaccepted
  memory") and its kcore companion (Adrian Hunter's series of Sep 2023) in v6.7; 1c5a1627f481
  ("efi/unaccepted: touch soft lockup during memory accept", efi urgent after v6.9-rc5) in v6.9;
  the TDX kexec series ("x86/mm: Make e820__end_ram_pfn() cover E820_TYPE_ACPI ranges", "x86/mm:
  Do not zap page table entries mapping unaccepted memory table during kdump", tip x86/cc, Jun
  2024) in v6.11; "mm: Accept memory in __alloc_pages_bulk()" in v6.12; 800f1059c99e in v6.14;
  "memblock: Accept allocated memory before use in memblock_double_array()" (in stable 6.14.7)
  and Yan Zhao's kexec segments fix (PATCHv3, Mar 2025) in v6.15.
* stable@vger.kernel.org review mails: the off-by-one fix as [PATCH 6.6 100/134] of 6.6.5-rc1,
  807174a93d24 as [PATCH 6.6 226/341] of 6.6.48-rc1, 1c5a1627f481 as [PATCH 6.6 374/386] of
  6.6.55-rc1 (whose note says 7cd34dd3c9bf is missing from 6.6.y), 800f1059c99e as [PATCH 6.6
  11/26] of 6.6.86-rc1 and [PATCH 6.12 077/116] of 6.12.21-rc1, the memblock fix as [PATCH 6.14
  126/197] of 6.14.7-rc1.
* drivers/firmware/efi/unaccepted_memory.c at v6.9: ``list_del(&range.list);
  touch_softlockup_watchdog(); spin_unlock_irqrestore(...)`` at the end of accept_memory().
"""

from __future__ import annotations

import pytest

from lazyaccept.base.units import GiB
from lazyaccept.guest.policies import Policy
from lazyaccept.guest.rules import kernel_rules, resolve_kernel
from lazyaccept.scenario.check import triggers_boot, triggers_mini
from lazyaccept.scenario.check.findings import Detector
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.scenario.runtime import RunConfig
from lazyaccept.scenario.workloads import Workload
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import resolve
from lazyaccept.sim.runtime import simulate_run

#: Each catalogue fix and the first mainline release carrying it (module docstring).
FIRST_RELEASE = {
    "table_memblock_add": "6.6",  # 8dbe33956d96, with the table in ACPI reclaim memory
    "vmcore_skips_unaccepted": "6.7",
    "kcore_skips_unaccepted": "6.7",
    "touch_softlockup_after_accept": "6.9",
    "e820_end_ram_covers_acpi": "6.11",
    "kdump_keeps_acpi_pmd": "6.11",
    "bulk_alloc_accepts": "6.12",
    "isolation_accepts": "6.12",  # "mm: page_isolation: Handle unaccepted memory isolation"
    "zero_wmark_accepts_one": "6.14",
    "memblock_double_array_accepts": "6.15",
    "kexec_accepts_segments": "6.15",
}
RELEASES = ("6.5", "6.6", "6.7", "6.8", "6.9", "6.10", "6.11", "6.12", "6.13", "6.14", "6.15", "6.19", "7.0")


def _minor(release: str) -> tuple[int, int]:
    major, minor = release.split(".")
    return int(major), int(minor)


@pytest.mark.parametrize("release", RELEASES)
def test_each_fix_is_on_from_the_release_that_shipped_it(release: str) -> None:
    rules = kernel_rules(release)
    for rule, first in FIRST_RELEASE.items():
        assert getattr(rules, rule) is (_minor(release) >= _minor(first)), (release, rule)


def test_614_is_its_own_rule_set_and_615_adds_only_what_615_merged() -> None:
    """6.14 = 6.12 + 800f1059c99e; 6.15 = 6.14 + d54d610243a4 + the memblock and kexec fixes."""
    v612, v614, v615 = kernel_rules("6.12"), kernel_rules("6.14"), kernel_rules("6.15")
    assert v614.name == "6.14" and kernel_rules("6.14.0-rc1").name == "6.14"
    differ = {f for f in v612.__dataclass_fields__ if f != "name" and getattr(v612, f) != getattr(v614, f)}
    assert differ == {"zero_wmark_accepts_one"}
    differ = {f for f in v614.__dataclass_fields__ if f != "name" and getattr(v614, f) != getattr(v615, f)}
    assert differ == {"snp_stub_msr_protocol", "memblock_double_array_accepts", "kexec_accepts_segments"}


@pytest.mark.parametrize(
    ("release", "rule", "value"),
    [
        ("6.6.4", "overlap_off_by_one", True),
        ("6.6.5", "overlap_off_by_one", False),
        ("6.6.47", "proactive_accept", False),
        ("6.6.48", "proactive_accept", True),
        ("6.6.54", "touch_softlockup_after_accept", False),
        ("6.6.55", "touch_softlockup_after_accept", True),
        ("6.6.85", "zero_wmark_accepts_one", False),
        ("6.6.86", "zero_wmark_accepts_one", True),
        ("6.12.20", "zero_wmark_accepts_one", False),
        ("6.12.21", "zero_wmark_accepts_one", True),
        ("6.14.6", "memblock_double_array_accepts", False),
        ("6.14.7", "memblock_double_array_accepts", True),
        # never backported to 6.6.y: the 6.6.55 backport of 1c5a1627f481 names 7cd34dd3c9bf missing
        ("6.6.200", "vmcore_skips_unaccepted", False),
        # a distribution's 6.8.0-45 is sublevel 0: the plain 6.8 rules
        ("6.8.0-45-generic", "touch_softlockup_after_accept", False),
    ],
)
def test_stable_sublevels_take_the_backports_of_their_line(release: str, rule: str, value: bool) -> None:
    assert getattr(kernel_rules(release), rule) is value


def test_the_resolve_line_names_the_backports_applied() -> None:
    rules, why = resolve_kernel("6.6.50")
    assert "off-by-one (6.6.5)" in why and "endless-reclaim (6.6.48)" in why and "softlockup" not in why
    assert rules.name != "6.6"  # a stable kernel is not the plain 6.6 rule set
    assert "no modelled fix was backported" in resolve_kernel("6.6.1")[1]
    assert "sublevel unverified" in resolve_kernel("6.8.12")[1]  # the 6.8 review's cover letter is not found


@pytest.mark.parametrize(("release", "caught"), [("6.14", True), ("6.15", False)])
def test_kexec_before_615_copies_into_unaccepted_memory(release: str, caught: bool) -> None:
    """kernel/kexec_core.c: the segments' destinations are accepted only since the v6.15 fix."""
    obs = triggers_boot.kexec_segments_unaccepted(kernel_rules(release))
    assert bool(obs.findings) is caught
    assert all(f.detector is Detector.SAFETY for f in obs.findings)


@pytest.mark.parametrize(("release", "caught"), [("6.10", True), ("6.11", False)])
def test_a_crash_kernel_before_611_cannot_map_the_table(release: str, caught: bool) -> None:
    """arch/x86/kernel/e820.c and arch/x86/mm/init_64.c: the two v6.11 kdump fixes."""
    assert bool(triggers_boot.table_loader_data(kernel_rules(release)).findings) is caught


@pytest.mark.parametrize(("release", "caught"), [("6.11", True), ("6.12", False)])
def test_bulk_allocation_drains_accepted_memory_in_611_only(release: str, caught: bool) -> None:
    """mm/page_alloc.c: 6.11 counts unaccepted memory as free (807174a93d24) but its
    __alloc_pages_bulk() does not accept; v6.12 adds cond_accept_memory() there."""
    obs = triggers_mini.bulk_alloc_no_accept(kernel_rules(release))
    assert bool(obs.findings) is caught


@pytest.mark.parametrize(("release", "caught"), [("6.14", True), ("6.14.7", False), ("6.15", False)])
def test_memblock_double_array(release: str, caught: bool) -> None:
    assert bool(triggers_mini.memblock_double_array(kernel_rules(release)).findings) is caught


def _touch_run(kernel: str, thresh: float):  # noqa: ANN202
    prof = load_profile("tdx")
    req = GuestRequest(4 * GiB, prof.tee, Policy().accept_memory, vcpus=1, kernel=kernel)
    cfg = RunConfig(resolve(req, prof), (Workload.parse("touch:1G"),), Policy(), watchdog_thresh=thresh)
    return simulate_run(cfg, prof, baseline=False)


def test_the_touch_at_the_end_of_accept_memory_hides_a_long_call_from_the_watchdog() -> None:
    """v6.9 drivers/firmware/efi/unaccepted_memory.c: touch_softlockup_watchdog() just before
    spin_unlock_irqrestore().  One vCPU never spins, so from 6.9 the watchdog sees nothing of a
    call however long; 6.8 shows it the whole call.  A threshold below one chunk's accept makes
    the call "long"."""
    before = _touch_run("6.8", 1e-4)
    assert before.irqs_off_max_s > 2e-4  # one call is longer than twice the threshold
    assert before.watchdog_stretch_max_s == pytest.approx(before.irqs_off_max_s)
    assert before.soft_lockup
    after = _touch_run("6.9", 1e-4)
    assert after.irqs_off_max_s == pytest.approx(before.irqs_off_max_s, rel=0.05)  # IRQs still off as long
    assert after.watchdog_stretch_max_s == 0.0
    assert not after.soft_lockup
    assert not _touch_run("6.6.55", 1e-4).soft_lockup  # the 6.6.y backport


def test_boot_json_says_which_backports_a_stable_kernel_runs():
    import json

    from click.testing import CliRunner

    from lazyaccept.cli import cli

    r = CliRunner().invoke(cli, ["boot", "--memory", "4G", "--kernel", "6.6.50", "--json"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)["config"]
    assert "off-by-one (6.6.5)" in cfg["kernel_resolved"] and "endless-reclaim (6.6.48)" in cfg["kernel_resolved"]
