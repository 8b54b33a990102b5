"""--kernel takes any release string and applies the rules in force at that release.

Expected rule values come from the kernel history, not from the code: 6.6 replaced the global
accept lock by the accepting list (50e782a86c98) with an off-by-one that 6.7 fixed ("efi/
unaccepted: Fix off-by-one when checking for overlapping ranges"), 6.11 made acceptance proactive
("mm: fix endless reclaim on machines with unaccepted memory"), 6.12 moved the target to the
promo watermark, 6.14 brought the zero-watermark fix (800f1059c99e: its stable backports to
6.12.y and 6.13.y were reviewed on stable@vger.kernel.org on 25 Mar 2025, the day after v6.14), 6.15
the SNP stub's MSR protocol (d54d610243a4, tip x86-urgent-2025-04-18), and the February 2026 table
fixes are only in the mainline rules.  A stable sublevel before the line's first backport runs the
plain rules of its release (6.6.4: the off-by-one fix reached 6.6.y in 6.6.5).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lazyaccept.base.errors import ConfigError
from lazyaccept.guest.rules import kernel_rules, resolve_kernel

FIELDS = ("global_accept_lock", "overlap_off_by_one", "proactive_accept", "accept_target",
          "zero_wmark_accepts_one", "snp_stub_msr_protocol", "page_align_request", "table_reserve_fixed")
V6_5 = (True, False, False, "high", False, False, False, True)
V6_6 = (False, True, False, "high", False, False, False, False)
V6_7 = (False, False, False, "high", False, False, False, False)
V6_11 = (False, False, True, "high", False, False, False, False)
V6_12 = (False, False, True, "promo", False, False, False, False)
V6_14 = (False, False, True, "promo", True, False, False, False)
V6_15 = (False, False, True, "promo", True, True, False, False)
MAINLINE = (False, False, True, "promo", True, True, True, True)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("6.5", V6_5),
        ("6.5.0", V6_5),
        ("6.5.0-1004-azure", V6_5),
        ("6.6", V6_6),
        ("6.6.4", V6_6),
        ("6.7", V6_7),
        ("6.8", V6_7),  # Ubuntu 24.04
        ("6.8.0-45-generic", V6_7),
        ("v6.10", V6_7),
        ("6.11", V6_11),
        ("6.11-rc3", V6_11),
        ("6.12", V6_12),
        ("6.13", V6_12),
        ("6.14", V6_14),
        ("6.14.3", V6_14),
        ("6.15", V6_15),
        ("6.19", V6_15),
        ("linux-6.17.1", V6_15),
        ("7.0", MAINLINE),
        ("mainline", MAINLINE),
        ("latest", MAINLINE),
        ("Mainline", MAINLINE),
        ("LATEST", MAINLINE),
    ],
)
def test_release_strings(name: str, expected: tuple[object, ...]) -> None:
    rules = kernel_rules(name)
    assert tuple(getattr(rules, f) for f in FIELDS) == expected
    assert rules.guard_unit  # in every release (§3.3)


def test_resolve_kernel_says_what_was_applied() -> None:
    rules, why = resolve_kernel("6.8.0-45-generic")
    assert rules.name == "6.7"
    assert why.startswith("6.8.0-45-generic:") and "Linux 6.8" in why and "6.7 rules" in why
    rules, why = resolve_kernel("7.0")
    assert rules.name == "mainline" and "unverified" in why
    assert resolve_kernel("6.12")[1] == "6.12: the modelled 6.12 rules"


@pytest.mark.parametrize("name", ["6.1", "6.4.99", "5.15.0-91-generic", "4.19", "v6.2"])
def test_releases_before_unaccepted_memory_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unaccepted memory support arrived in Linux 6.5"):
        kernel_rules(name)


@pytest.mark.parametrize("name", ["", "6", "six", "6.x", "1" * 1000, "6.8 generic"])
def test_nonsense_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown kernel") as info:
        kernel_rules(name)
    assert len(str(info.value)) < 300


def test_cli_accepts_a_distribution_release() -> None:
    r = subprocess.run([sys.executable, "-m", "lazyaccept", "boot", "--memory", "4G", "--kernel", "6.8.0-45-generic",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
