"""Logs of several boots, and the journal's formats.

Every kernel message here is a real line of tests/data/real-logs/, rewritten into each format
as dmesg, kern.log and journalctl (systemd journalctl(1), --output) print them.  The log of
three boots is: boot 1 = the NVIDIA issue's first lines (tdx: Guest detected, Linux version
6.2.0-...) then the tdx-tools issue's e820 excerpt; boot 2 = the same first lines then the
tdx-linux issue 5 zones excerpt; boot 3 = the same first lines then the tdx-linux issue 1 zones
excerpt.  What each boot holds was read by hand in tests/test_kernel_text.py: e820 usable
6,466,977,792 bytes in boot 1; 13 node ranges summing to 1,047,779 pages in boot 2; 7 node
ranges in boot 3, the last from 0x7d19c000 to 0x7d1b7000.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lazyaccept.base.errors import FormatError
from lazyaccept.cli import cli
from lazyaccept.formats.kernel_text import DmesgInfo, parse_dmesg, parse_dmesg_boots

LOGS = Path(__file__).resolve().parent / "data" / "real-logs"
_LINE = re.compile(r"^\[ *(\d+\.\d+)\] (?:\[ *[TC]\d+\] )?(.*)$")

Entry = tuple[float, str]


def _real(name: str) -> list[Entry]:
    """(seconds, message) of every time-stamped line of a real log, comments dropped."""
    path = LOGS / name
    # The logs ship with the repository: one missing is a broken checkout, not a reason to skip.
    assert path.is_file(), f"{path}: a shipped fixture is missing"
    out = []
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            out.append((float(m[1]), m[2]))
    return out


def _boots() -> list[list[Entry]]:
    start = _real("tdx_guest_boot_start_NVIDIA_nvtrust_issue46.txt")
    return [
        start + _real("tdx_guest_e820_intel_tdx-tools_issue524.txt"),
        start + _real("tdx_guest_zones_intel_tdx-linux_issue5.txt"),
        start + _real("tdx_guest_zones_intel_tdx-linux_issue1.txt"),
    ]


BOOT_IDS = ["6b3e9c2f0d8a4f1e9a7c5b3d1e0f2a4c", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "a1b2c3d4e5f60718293a4b5c6d7e8f90"]
# Wall-clock start of each boot (seconds into 30 Nov 2026, 10:00:00 UTC) for the wall-clock formats.
WALL = [0, 600, 1200]


def _hms(boot: int, seconds: float) -> tuple[int, int, int, int]:
    t = WALL[boot] + seconds
    whole = int(t)
    return whole // 3600 + 10, whole // 60 % 60, whole % 60, round((t - whole) * 1e6)


def _dmesg(boot: int, s: float, msg: str) -> str:
    return f"[{s:12.6f}] {msg}"


def _short(boot: int, s: float, msg: str) -> str:
    h, m, sec, _ = _hms(boot, s)
    return f"Nov 30 {h:02d}:{m:02d}:{sec:02d} tdx-guest kernel: {msg}"


def _short_precise(boot: int, s: float, msg: str) -> str:
    h, m, sec, us = _hms(boot, s)
    return f"Nov 30 {h:02d}:{m:02d}:{sec:02d}.{us:06d} tdx-guest kernel: {msg}"


def _short_iso(boot: int, s: float, msg: str) -> str:
    h, m, sec, _ = _hms(boot, s)
    return f"2026-11-30T{h:02d}:{m:02d}:{sec:02d}+0000 tdx-guest kernel: {msg}"


def _short_iso_precise(boot: int, s: float, msg: str) -> str:
    h, m, sec, us = _hms(boot, s)
    return f"2026-11-30T{h:02d}:{m:02d}:{sec:02d}.{us:06d}+00:00 tdx-guest kernel: {msg}"


def _short_full(boot: int, s: float, msg: str) -> str:
    h, m, sec, _ = _hms(boot, s)
    return f"Mon 2026-11-30 {h:02d}:{m:02d}:{sec:02d} UTC tdx-guest kernel: {msg}"


def _short_monotonic(boot: int, s: float, msg: str) -> str:
    return f"[{s:12.6f}] tdx-guest kernel: {msg}"


def _short_delta(boot: int, s: float, msg: str) -> str:
    return f"[{s:12.6f} <{0.0:12.6f}>] tdx-guest kernel: {msg}"


def _short_unix(boot: int, s: float, msg: str) -> str:
    return f"{1796032800 + WALL[boot] + s:.6f} tdx-guest kernel: {msg}"


def _kern_log(boot: int, s: float, msg: str) -> str:
    # rsyslog's kern.log keeps the kernel's own time stamp after "kernel:".
    h, m, sec, _ = _hms(boot, s)
    return f"Nov 30 {h:02d}:{m:02d}:{sec:02d} tdx-guest kernel: [{s:12.6f}] {msg}"


def _text_log(fmt: Callable[[int, float, str], str], markers: bool) -> str:
    lines = []
    if markers:
        lines.append("-- Logs begin at Mon 2026-11-30 10:00:00 UTC, end at Mon 2026-11-30 10:20:01 UTC. --")
    for b, entries in enumerate(_boots()):
        if markers and b:
            lines.append(f"-- Boot {BOOT_IDS[b]} --")
        lines += [fmt(b, s, msg) for s, msg in entries]
    return "\n".join(lines) + "\n"


def _json_record(b: int, s: float, msg: str, boot_id: bool) -> dict[str, Any]:
    usec = str(round(s * 1e6))
    record = {
        "__REALTIME_TIMESTAMP": str((1796032800 + WALL[b]) * 10**6 + int(usec)),
        "__MONOTONIC_TIMESTAMP": str(int(usec) + 1500),
        "_TRANSPORT": "kernel",
        "SYSLOG_IDENTIFIER": "kernel",
        "PRIORITY": "6",
        "_HOSTNAME": "tdx-guest",
        "_SOURCE_MONOTONIC_TIMESTAMP": usec,
        "MESSAGE": msg,
    }
    if boot_id:
        record["_BOOT_ID"] = BOOT_IDS[b]
    return record


def _json_log(boot_id: bool = True, style: str = "json") -> str:
    records = [_json_record(b, s, msg, boot_id) for b, entries in enumerate(_boots()) for s, msg in entries]
    if style == "json-pretty":
        return "".join(json.dumps(r, indent=8) + "\n" for r in records)
    if style == "json-seq":
        return "".join("\x1e" + json.dumps(r) + "\n" for r in records)
    return "".join(json.dumps(r) + "\n" for r in records)


FORMATS: dict[str, Callable[[], str]] = {
    "dmesg (logs appended)": lambda: _text_log(_dmesg, markers=False),
    "short": lambda: _text_log(_short, markers=True),
    "short-precise": lambda: _text_log(_short_precise, markers=True),
    "short-iso": lambda: _text_log(_short_iso, markers=True),
    "short-iso-precise": lambda: _text_log(_short_iso_precise, markers=True),
    "short-full": lambda: _text_log(_short_full, markers=True),
    "short-monotonic": lambda: _text_log(_short_monotonic, markers=True),
    "short-monotonic without boot lines": lambda: _text_log(_short_monotonic, markers=False),
    "short-delta": lambda: _text_log(_short_delta, markers=True),
    "short-unix": lambda: _text_log(_short_unix, markers=True),
    "kern.log": lambda: _text_log(_kern_log, markers=False),
    "json": lambda: _json_log(),
    "json without _BOOT_ID": lambda: _json_log(boot_id=False),
    "json-pretty": lambda: _json_log(style="json-pretty"),
    "json-seq": lambda: _json_log(style="json-seq"),
}

E820_USABLE = 6_466_977_792


def _facts(info: DmesgInfo) -> tuple[object, ...]:
    return (info.kernel_version, info.platform, info.e820_total("usable"), len(info.node_ranges),
            info.zones.get("Normal"), info.lines_parsed)


@pytest.mark.parametrize("name", list(FORMATS))
def test_three_boots_in_every_format(name: str) -> None:
    boots = parse_dmesg_boots(FORMATS[name]())
    assert len(boots) == 3, [len(b.node_ranges) for b in boots]
    one, two, three = boots
    for b in boots:
        assert b.kernel_version == "6.2.0-mvp10v1+8-generic"
        assert b.platform == "tdx"
    assert one.e820_total("usable") == E820_USABLE and not one.node_ranges
    assert two.e820 == [] and len(two.node_ranges) == 13
    assert sum(end - start for _, start, end in two.node_ranges) == 1_047_779 * 4096
    assert two.zones["Normal"] == (0x100000000, 0x180000000)
    assert three.e820 == [] and len(three.node_ranges) == 7
    assert three.node_ranges[-1] == (0, 0x7D19C000, 0x7D1B7000)
    # Every format gives exactly what plain dmesg gives: same messages, same lines recognised.
    reference = parse_dmesg_boots(FORMATS["dmesg (logs appended)"]())
    assert [_facts(b) for b in boots] == [_facts(b) for b in reference]


def test_without_time_stamps_the_banner_splits() -> None:
    # "dmesg -t" (no time stamps, no journal lines): only the "Linux version" banner tells the
    # boots apart, so the lines a kernel prints before it ("tdx: Guest detected", "TDX: Enabled
    # TDX guest device filter") count with the boot before, as the docstring says.
    text = _text_log(lambda b, s, msg: msg, markers=False)
    one, two, three = parse_dmesg_boots(text)
    assert [b.kernel_version for b in (one, two, three)] == ["6.2.0-mvp10v1+8-generic"] * 3
    assert one.e820_total("usable") == E820_USABLE
    assert (len(two.node_ranges), len(three.node_ranges)) == (13, 7)
    assert (one.platform, two.platform, three.platform) == ("tdx", "tdx", None)


def test_each_boot_alone_is_one_boot() -> None:
    for entries in _boots():
        text = "\n".join(_dmesg(0, s, msg) for s, msg in entries) + "\n"
        assert len(parse_dmesg_boots(text)) == 1


def test_real_logs_are_one_boot_each() -> None:
    # "tdx: Guest detected" comes before "Linux version" in the NVIDIA log: still one boot.
    for path in sorted(LOGS.glob("*.txt")):
        assert len(parse_dmesg_boots(path.read_text())) == 1, path.name


def test_choose_a_boot() -> None:
    text = FORMATS["short-monotonic"]()
    last = parse_dmesg(text)
    assert (last.boots, last.boot_index, len(last.node_ranges)) == (3, 3, 7)
    first = parse_dmesg(text, boot=1)
    assert (first.boot_index, first.e820_total("usable")) == (1, E820_USABLE)
    assert len(parse_dmesg(text, boot=-2).node_ranges) == 13
    for bad in (0, 4, -4):
        with pytest.raises(FormatError, match="the log holds 3 boots"):
            parse_dmesg(text, boot=bad)


def test_journal_json_details() -> None:
    # Byte-array messages (how the export writes non-UTF-8 text), a systemd line written to
    # kmsg, and a record cut off at the end of the file.
    records = [
        {"MESSAGE": list(b"tdx: Guest detected"), "_BOOT_ID": BOOT_IDS[0], "SYSLOG_IDENTIFIER": "kernel"},
        {"MESSAGE": "Detected confidential virtualization tdx.", "SYSLOG_IDENTIFIER": "systemd",
         "SYSLOG_PID": "1", "_BOOT_ID": BOOT_IDS[0]},
    ]
    text = "".join(json.dumps(r) + "\n" for r in records) + '{"MESSAGE": "Linux vers'
    (info,) = parse_dmesg_boots(text)
    assert info.platform == "tdx"
    assert info.lines_parsed == 2 and info.lines_ignored == 1


# -- the command line -------------------------------------------------------------------------


def _inspect(*args: str) -> Any:
    return CliRunner().invoke(cli, ["inspect", *args])


@pytest.mark.parametrize("name", ["short", "short-monotonic", "json"])
def test_cli_reports_the_last_boot_and_the_count(tmp_path: Path, name: str) -> None:
    path = tmp_path / "journal.txt"
    path.write_text(FORMATS[name]())
    r = _inspect("--json", str(path))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)["files"][0]
    assert doc["kind"] == "dmesg"
    assert (doc["boots"], doc["boot_index"]) == (3, 3)
    assert len(doc["node_ranges"]) == 7 and doc["e820"] == []
    doc = json.loads(_inspect("--json", "--boot", "1", str(path)).stdout)["files"][0]
    assert (doc["boot_index"], doc["memory"]["usable_bytes"]) == (1, E820_USABLE)
    doc = json.loads(_inspect("--json", "--boot", "-2", str(path)).stdout)["files"][0]
    assert doc["boot_index"] == 2 and len(doc["node_ranges"]) == 13
    human = _inspect(str(path)).stdout
    assert "boots in the log" in human and "3; this is the last" in human


def test_cli_bad_boot_numbers(tmp_path: Path) -> None:
    path = tmp_path / "journal.txt"
    path.write_text(FORMATS["short"]())
    for n in ("4", "0", "x"):
        r = subprocess.run([sys.executable, "-m", "lazyaccept", "inspect", "--boot", n, str(path)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_cli_warns_when_nothing_is_recognised(tmp_path: Path) -> None:
    # Real kernel lines, none of which inspect reads: a journal excerpt that says nothing about memory maps.
    # (Its command line and CPU count lines are read since --like takes them: left out here.)
    entries = [(s, msg) for s, msg in _real("tdx_guest_nosave_intel_tdx-linux_issue1.txt")
               if not msg.startswith(("Kernel command line:", "setup_percpu:"))]
    path = tmp_path / "journal.txt"
    path.write_text("\n".join(_short(0, s, msg) for s, msg in entries) + "\n")
    r = subprocess.run([sys.executable, "-m", "lazyaccept", "inspect", "--json", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert json.loads(r.stdout)["files"][0]["lines_parsed"] == 0
    assert r.stderr.strip() == f"lazyaccept: warning: {path}: no kernel lines recognised"
