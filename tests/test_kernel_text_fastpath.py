"""The kernel-log reader's shortcuts give the answers of the long way round.

``_strip_prefixes`` matches all the line prefixes in one pattern instead of one after the
other, and ``_parse_message`` turns a message away by how it begins before trying its
patterns; both are checked here against the plain way on real logs and on made-up lines.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from lazyaccept.formats import kernel_text as kt

REAL_LOGS = sorted((Path(__file__).parent / "data" / "real-logs").glob("*.txt"))


def _strip_one_by_one(line: str) -> tuple[str, bool, float | None]:
    """The prefixes tried in turn, each on what the ones before left (the reference)."""
    shaped, seconds = False, None
    for pattern in kt._PREFIXES:
        m = pattern.match(line)
        if m:
            line = line[m.end():]
            shaped |= pattern is not kt._MAIL_QUOTE
            if m.re.groups and m[1] is not None:
                seconds = float(f"{m[1]}.{m[2]}")
    return line, shaped, seconds


_HEADS = ["", "> ", "> > ", "Nov 30 10:00:00 host kernel: ", "2026-11-30T10:00:00.123456+0000 host kernel: ",
          "[    1.234567] host kernel: ", "1606730400.123456 host kernel:", "kern  :info  : ", "<6>",
          "[    0.000000] ", "[Mon Nov 30 10:00:00 2026] ", "[    T1] ", "[  C12] ",
          "Mon 2026-11-30 10:00:00 UTC h kernel: ", "[ 5.5 <    0.1>] h kernel: ", "Nov 30 10:00:00 host systemd[1]: "]
_TAILS = ["tdx: Guest detected", "BIOS-e820: [mem 0x0-0xfff] usable", "", "  ", "[    2.0] again", "> quoted",
          "Linux version 6.8.0 (x)", "<4>odd"]


def test_one_pattern_strips_what_the_patterns_in_turn_strip() -> None:
    lines = [a + b + c for a, b, c in itertools.product(_HEADS, _HEADS, _TAILS)]
    for path in REAL_LOGS:
        lines += path.read_text(errors="replace").splitlines()
    assert len(lines) > 2000
    for line in lines:
        assert kt._strip_prefixes(line) == _strip_one_by_one(line), line


def _starts(items: list) -> list[str]:
    """The literal texts a parsed pattern (``re._parser``) can begin with: one per branch."""
    from re import _constants as c

    out = [""]
    for op, arg in items:
        if op is c.AT:
            continue
        if op is c.LITERAL:
            out = [s + chr(arg) for s in out]
            continue
        if op is c.SUBPATTERN:
            inner = _starts(list(arg[3]))
            out = [s + t for s in out for t in inner]
            if any(not t for t in inner):
                break
            continue
        if op is c.BRANCH:
            return [s + t for s in out for b in arg[1] for t in _starts(list(b))]
        if op is c.MAX_REPEAT and arg[0] >= 1:
            out = [s + t for s in out for t in _starts(list(arg[2]))]
        break  # anything else: the literal start ends here
    return out


_MESSAGE_PATTERNS = [v for k, v in vars(kt).items() if isinstance(v, re.Pattern) and k not in
                     {"_CONTROL", "_SYSLOG", "_FACILITY", "_LEVEL", "_MAIL_QUOTE", "_TIMESTAMP", "_TIMESTAMP_HUMAN",
                      "_CALLER", "_CSI", "_BOOT_MARKER", "_JSON_GAP", "_JSON_START", "_FIELD", "_VALUE",
                      "_NODE_FIELD", "_VMSTAT", "_PREFIX_CHAIN"}]


@pytest.mark.parametrize("pattern", _MESSAGE_PATTERNS + [p for _, p in kt.MILESTONES], ids=lambda p: p.pattern[:40])
def test_every_message_pattern_begins_with_a_known_start(pattern: re.Pattern[str]) -> None:
    from re import _parser

    starts = _starts(list(_parser.parse(pattern.pattern)))
    assert starts and all(starts), pattern.pattern
    for start in starts:
        assert start.startswith(kt._KNOWN_STARTS), (start, pattern.pattern)


def test_a_message_turned_away_early_is_one_no_pattern_knows() -> None:
    info = kt.DmesgInfo()
    for line in ["audit: type=1400", "EXT4-fs (vda1): mounted", "Memory:x", "efi: EFI v2.7", "node0: x"]:
        assert not kt._parse_message(info, line, 1)
    assert kt._parse_message(info, "Memory: 100K/200K available", 1)


@pytest.mark.parametrize(("starts", "patterns"), [
    (kt._MILESTONE_STARTS, [p for _, p in kt.MILESTONES]),
    (kt._CPUS_AND_CMDLINE_STARTS, [kt._CPUS_ALLOWING, kt._CPUS_BROUGHT_UP, kt._NR_CPU_IDS, kt._COMMAND_LINE]),
], ids=["milestones", "cpus-and-cmdline"])
def test_each_group_of_patterns_is_tried_on_every_message_it_can_match(
    starts: tuple[str, ...], patterns: list[re.Pattern[str]]
) -> None:
    from re import _parser

    for pattern in patterns:
        for start in _starts(list(_parser.parse(pattern.pattern))):
            assert start and start.startswith(starts), (start, pattern.pattern)
