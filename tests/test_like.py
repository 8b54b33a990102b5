"""``--like LOG``: a guest configured from its own kernel log.

Expected values are computed here from the log text with regular expressions of the test's own
(the lines a person would read), never from the parser under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import run_cli

GiB = 1 << 30
LOGS = Path(__file__).parent / "data" / "real-logs"
REAL_LOGS = sorted(p.name for p in LOGS.glob("*.txt"))


def _text(name: str) -> str:
    return (LOGS / name).read_text()


def _expected_memory(text: str) -> int | None:
    """QEMU q35: RAM above 4 GiB means 2 GiB below it; the top of RAM read from the e820 or zone lines."""
    tops = [int(m[1], 16) + 1 for m in re.finditer(r"BIOS-e820: \[mem 0x[0-9a-f]+-(0x[0-9a-f]+)\] usable", text)]
    tops += [int(m[1], 16) + 1 for m in re.finditer(r"  Normal   \[mem 0x[0-9a-f]+-(0x[0-9a-f]+)\]", text)]
    tops += [int(m[1], 16) + 1 for m in re.finditer(r"node   0: \[mem 0x[0-9a-f]+-(0x[0-9a-f]+)\]", text)]
    if not tops:
        return None
    top = max(tops)
    assert top > 4 * GiB  # every shipped log that shows RAM shows RAM above 4 GiB
    return top - 4 * GiB + 2 * GiB


def _expected_platform(text: str) -> str | None:
    if "tdx: Guest detected" in text or "Features active: Intel TDX" in text:
        return "tdx"
    if re.search(r"(SEV: Status|Features active):.*SEV-SNP", text):
        return "snp"
    return None


def _taken(doc: dict) -> dict[str, str]:
    return {f["field"]: f["value"] for f in doc["like"]["taken"]}


@pytest.mark.parametrize("name", REAL_LOGS)
def test_every_real_log_works_or_says_what_is_missing(name: str) -> None:
    text = _text(name)
    r = run_cli("boot", "--like", str(LOGS / name), "--json")
    if "virt/tdx:" in text:
        assert r.code == 2 and len(r.err_lines) == 1
        assert "TDX host's log" in r.err_lines[0] and r.out == ""
        return
    memory = _expected_memory(text)
    if memory is None:
        assert r.code == 2 and r.out == ""
        assert len(r.err_lines) == 1
        assert r.err_lines[0] == (f"lazyaccept: error: {LOGS / name}: the log does not say how much memory the "
                                  "guest has (no BIOS-e820 or EFI memory map lines, no Normal zone or early memory "
                                  "node ranges); give --memory")
        return
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["config"]["memory_bytes"] == memory
    assert _taken(doc)["memory"] in ("4G", "8G")
    platform = _expected_platform(text)
    if platform is None:
        assert "platform" in {f["field"] for f in doc["like"]["assumed"]}
    else:
        assert _taken(doc)["platform"] == platform


@pytest.mark.parametrize("name", [n for n in REAL_LOGS if "host" not in n])
def test_every_guest_log_works_with_memory_given(name: str) -> None:
    text = _text(name)
    r = run_cli("boot", "--like", str(LOGS / name), "--memory", "4G", "--json")
    version = re.search(r"Linux version (\S+)", text)
    if version and re.match(r"6\.[0-4]\.", version[1]):
        # The log's own kernel predates lazy acceptance: a clear error naming the line, and how to go on.
        assert r.code == 2 and len(r.err_lines) == 1
        assert "cannot be modelled" in r.err and "give --kernel" in r.err and "Linux version" in r.err
        r = run_cli("boot", "--like", str(LOGS / name), "--memory", "4G", "--kernel", "6.8", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    taken = _taken(doc)
    assert doc["config"]["memory_bytes"] == 4 * GiB
    if _expected_memory(text) is None:
        assert {"field": "memory", "value": "4G", "source": "given; the log does not say"} in doc["like"]["given"]
    if _expected_platform(text):
        assert taken["platform"] == doc["config"]["platform"] == _expected_platform(text)
    cpus = re.search(r"nr_cpu_ids:(\d+)", text)
    if cpus:
        assert taken["vcpus"] == cpus[1] and doc["config"]["vcpus"] == int(cpus[1])
    if re.search(r"[Cc]ommand line: ", text) and "accept_memory=" not in text:
        assert taken["policy"] == "lazy" and "without accept_memory=" in _source(doc, "policy")
    oops = re.search(r"Not tainted (\S+) #", text)
    if oops and not version:
        assert taken["kernel"] == oops[1] == doc["config"]["kernel"]
        assert "oops header" in _source(doc, "kernel")
    # The milestones the log time-stamps, at the times it gives.
    rows = {m["key"]: m for m in doc["like"]["milestones"]}
    for key, pattern in (("mem-encrypt-active", r"Memory Encryption Features active"),
                         ("smp-start", r"smp: Bringing up secondary CPUs"), ("kernel-start", r"Linux version")):
        m = re.search(r"\[ *(\d+\.\d+)\](?: \[ *T\d+\])? " + pattern, text)
        assert rows[key]["log_s"] == (float(m[1]) if m else None)
        assert rows[key]["model_s"] is not None and rows[key]["model_s"] >= 0


def _source(doc: dict, field: str) -> str:
    return next(f["source"] for f in doc["like"]["taken"] if f["field"] == field)


def test_options_win_over_the_log() -> None:
    log = str(LOGS / "tdx_guest_e820_intel_tdx-tools_issue524.txt")
    r = run_cli("boot", "--like", log, "--memory", "2G", "--vcpus", "2", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["config"]["memory_bytes"] == 2 * GiB and doc["config"]["vcpus"] == 2
    over = {o["field"]: o for o in doc["like"]["overridden"]}
    assert over["memory"]["value"] == "8G" and over["memory"]["option"] == "2G"
    assert "memory" not in _taken(doc)


def test_human_output_names_what_it_took_and_assumed() -> None:
    log = LOGS / "tdx_guest_zones_intel_tdx-linux_issue5.txt"
    r = run_cli("boot", "--like", str(log))
    assert r.code == 0, r.err
    rows = {line.split("│")[1].strip(): line for line in r.out.splitlines() if line.startswith("│ ")
            and line.split("│")[1].strip() in ("memory", "platform", "host mapping")}
    assert "4G" in rows["memory"] and " log " in rows["memory"] and "Normal zone from line 4" in rows["memory"]
    assert " assumed " in rows["platform"] and " assumed " in rows["host mapping"]
    assert "Milestones" in r.out


def _dump_and_like(tmp_path: Path, *args: str) -> tuple[dict, dict]:
    out = tmp_path / "dump"
    first = run_cli("boot", *args, "--dump", str(out), "--json")
    assert first.code == 0, first.err
    again = run_cli("boot", "--like", str(out / "dmesg.txt"), "--json")
    assert again.code == 0, again.err
    return json.loads(first.out), json.loads(again.out)


@pytest.mark.parametrize("args", [
    ("--memory", "16G", "--vcpus", "8", "--firmware-accept", "6G", "--kernel", "6.8"),
    ("--memory", "12G", "--platform", "snp", "--policy", "eager", "--vcpus", "2"),
    ("--memory", "3G", "--firmware-accept", "all", "--kernel", "6.12"),
])
def test_a_dump_of_the_model_gives_back_its_configuration(tmp_path: Path, args: tuple[str, ...]) -> None:
    original, like = _dump_and_like(tmp_path, *args)
    for key in ("memory_bytes", "platform", "vcpus", "kernel", "policy", "firmware_accept"):
        assert like["config"][key] == original["config"][key], key
    taken = {f["field"] for f in like["like"]["taken"]}
    assert taken == {"memory", "platform", "vcpus", "kernel", "policy", "firmware_accept"}
    assert [f["field"] for f in like["like"]["assumed"]] == ["host_mapping"]
    assert like["boot_s"] == pytest.approx(original["boot_s"])
    # The dump's time stamps are the model's instants: every milestone agrees to the microsecond.
    for row in like["like"]["milestones"]:
        if row["key"] == "deferred-pages-done" and row["log_s"] is None:
            continue
        assert row["log_s"] == pytest.approx(row["model_s"], abs=1e-6), row


def test_journal_export_of_a_log(tmp_path: Path) -> None:
    # The e820 log as journalctl -o json would export it: the same memory.
    lines = [m for m in _text("tdx_guest_e820_intel_tdx-tools_issue524.txt").splitlines() if m.startswith("[")]
    records = []
    for line in lines:
        m = re.match(r"\[ *(\d+)\.(\d+)\] (.*)", line)
        assert m
        records.append({"MESSAGE": m[3], "_SOURCE_MONOTONIC_TIMESTAMP": str(int(m[1]) * 10**6 + int(m[2])),
                        "SYSLOG_IDENTIFIER": "kernel"})
    path = tmp_path / "journal.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    r = run_cli("boot", "--like", str(path), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["config"]["memory_bytes"] == 8 * GiB


def test_compare_like_takes_the_memory_size() -> None:
    log = str(LOGS / "tdx_guest_e820_intel_tdx-tools_issue524.txt")
    r = run_cli("compare", "--like", log, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert [row["memory_bytes"] for row in doc["comparisons"][0]["rows"]] == [8 * GiB]
    assert _taken(doc)["memory"] == "8G"
    assert "policy" not in {f["field"] for f in doc["like"]["assumed"] + doc["like"]["taken"]}


def test_compare_like_without_memory_is_one_error() -> None:
    log = str(LOGS / "snp_guest_boot_lkml_20260309_bp.txt")
    r = run_cli("compare", "--like", log)
    assert r.code == 2 and len(r.err_lines) == 1 and "give --memory" in r.err
    r = run_cli("compare", "--like", log, "--memory", "4G", "--memory", "8G", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["comparisons"][0]["platform"] == "snp" and doc["comparisons"][0]["profile"] == "snp"


def test_like_of_a_missing_or_odd_file_is_one_error(tmp_path: Path) -> None:
    for path, needle in ((tmp_path / "none", "no such file"), (tmp_path, "is a directory")):
        r = run_cli("boot", "--like", str(path))
        assert r.code == 2 and len(r.err_lines) == 1 and needle in r.err
    bad = tmp_path / "bin"
    bad.write_bytes(b"\x00\x01\x02" * 100)
    r = run_cli("boot", "--like", str(bad))
    assert r.code == 2 and len(r.err_lines) == 1 and "binary data" in r.err


def test_kernel_text_reads_cpus_command_line_and_milestones() -> None:
    from lazyaccept.formats.kernel_text import parse_dmesg

    log = "\n".join([
        "[    0.000000] Linux version 6.8.0-45-generic (buildd@host) (gcc 13) #45-Ubuntu SMP",
        "[    0.000000] Command line: BOOT_IMAGE=/vmlinuz ro accept_memory=lazy",
        "[    0.010000] smpboot: Allowing 8 CPUs, 2 hotplug CPUs",
        "[    0.020000] Kernel command line: BOOT_IMAGE=/vmlinuz ro accept_memory=lazy accept_memory=eager",
        "[    0.300000] Memory: 1000K/2000K available (10K kernel code, 990K reserved)",
        "[    0.400000] smp: Bringing up secondary CPUs ...",
        "[    0.500000] smp: Brought up 1 node, 6 CPUs",
        "[    0.600000] node 0 deferred pages initialised in 12ms",
        "[    1.500000] Freeing unused kernel image (initmem) memory: 4096K",
        "[    1.600000] Run /sbin/init as init process",
        "[    2.000000] Run /init as init process",
    ]) + "\n"
    info = parse_dmesg(log)
    assert (info.cpus_allowed, info.cpus_hotplug, info.cpus_brought_up) == (8, 2, 6)
    assert info.command_line == "BOOT_IMAGE=/vmlinuz ro accept_memory=lazy accept_memory=eager"  # the later line
    assert info.command_line_param("accept_memory") == "eager"  # the kernel takes the last
    assert info.milestones == {"kernel-start": 0.0, "memory-available": 0.3, "smp-start": 0.4, "smp-done": 0.5,
                               "deferred-pages-done": 0.6, "free-initmem": 1.5, "run-init": 1.6}
    assert info.lines_ignored == 0
