"""Fixes the stable trees took, by the stable release that first carried them
(``--kernel 6.6.50``: the 6.6 rules plus what linux-6.6.y had backported by 6.6.50).

Each row names the upstream commit, the rule change it makes and, per stable line, the first
sublevel that carried it.  The sources are the stable review mails on stable@vger.kernel.org
(``[PATCH 6.6 NNN/MMM] <subject>`` in reply to ``[PATCH 6.6 000/MMM] 6.6.X-rc1 review``).
Where the review patch was found but not its cover letter, the sublevel is the one whose review
ran that week and the row says ``verified=False``: the line ``resolve_kernel()`` prints then
says so.  Fixes of the model's rules that no stable line took are not listed: among them
``7cd34dd3c9bf`` (/proc/vmcore), which the 6.6.y backport of ``1c5a1627f481`` names as missing
from 6.6.y, and the bulk-allocation, e820 and kdump fixes, for which no stable review was found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rules import KernelRules


@dataclass(frozen=True)
class Backport:
    """One upstream fix as the stable lines took it."""

    #: Short name printed in the resolve line.
    name: str
    #: Upstream commit and subject.
    commit: str
    #: The rule change the fix makes.
    changes: Mapping[str, object]
    #: (major, minor) of a stable line -> (first sublevel carrying the fix, verified, source).
    taken: Mapping[tuple[int, int], tuple[int, bool, str]]


BACKPORTS: tuple[Backport, ...] = (
    Backport(
        "off-by-one", '01b1e3ca0e5c "efi/unaccepted: Fix off-by-one when checking for overlapping ranges"',
        {"overlap_off_by_one": False},
        {(6, 6): (5, True, "[PATCH 6.6 100/134], 6.6.5-rc1 review, 5 Dec 2023")},
    ),
    Backport(
        "endless-reclaim", '807174a93d24 "mm: fix endless reclaim on machines with unaccepted memory"',
        {"proactive_accept": True},
        {(6, 6): (48, True, "[PATCH 6.6 226/341], 6.6.48-rc1 review, 27 Aug 2024")},
    ),
    Backport(
        "softlockup-touch", '1c5a1627f481 "efi/unaccepted: touch soft lockup during memory accept"',
        {"touch_softlockup_after_accept": True},
        {
            (6, 6): (55, True, "[PATCH 6.6 374/386], 6.6.55-rc1 review, 8 Oct 2024 (CVE-2024-36936)"),
            (6, 8): (10, False, "[PATCH 6.8 042/336] of 14 May 2024; cover letter not found, 6.8.10 assumed"),
        },
    ),
    Backport(
        "zero-watermark", '800f1059c99e "mm/page_alloc: fix memory accept before watermarks gets initialized"',
        {"zero_wmark_accepts_one": True},
        {
            (6, 6): (86, True, "[PATCH 6.6 11/26], 6.6.86-rc1 review, 3 Apr 2025"),
            (6, 12): (21, True, "[PATCH 6.12 077/116], 6.12.21-rc1 review, 25 Mar 2025"),
            (6, 13): (9, False, "[PATCH 6.13 081/119] of 25 Mar 2025; cover letter not found, 6.13.9 assumed"),
        },
    ),
    Backport(
        "snp-msr-protocol", 'd54d610243a4 "x86/boot/sev: Avoid shared GHCB page for early memory acceptance"',
        {"snp_stub_msr_protocol": True},
        {(6, 6): (88, False, "[PATCH 6.6 338/393] of 23 Apr 2025; cover letter not found, 6.6.88 assumed")},
    ),
    Backport(
        "memblock-double-array", 'da8bf5daa5e5 "memblock: Accept allocated memory before use in '
        'memblock_double_array()"',
        {"memblock_double_array_accepts": True},
        {(6, 14): (7, True, "[PATCH 6.14 126/197], 6.14.7-rc1 review, 12 May 2025")},
    ),
)


def apply_backports(rules: KernelRules, line: tuple[int, int], sublevel: int) -> tuple[KernelRules, str]:
    """``rules`` with every fix stable line ``line`` carried by ``sublevel``, and a short list of
    them (``off-by-one (6.6.5), ...``; an unverified sublevel says so)."""
    changes: dict[str, object] = {}
    names: list[str] = []
    for b in BACKPORTS:
        first = b.taken.get(line)
        if first is None or sublevel < first[0]:
            continue
        # A fix the rule set already has changes nothing: list only what the backport adds.
        if all(getattr(rules, k) == v for k, v in b.changes.items()):
            continue
        changes.update(b.changes)
        names.append(f"{b.name} ({line[0]}.{line[1]}.{first[0]}{'' if first[1] else ', sublevel unverified'})")
    if not changes:
        return rules, ""
    out = replace(rules, name=f"{rules.name}+{line[0]}.{line[1]}.{sublevel}", **changes)  # type: ignore[arg-type]
    return out, ", ".join(names)
