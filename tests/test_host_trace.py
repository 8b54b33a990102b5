"""The host trace: the bpftrace script's format read and written, and a modelled boot's trace round-trips."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.base.choices import Tee
from lazyaccept.base.errors import FormatError
from lazyaccept.base.record import AcceptEvent, ConvertEvent
from lazyaccept.formats.host_trace import Counter, format_host_trace, parse_host_trace
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.sim.host_trace import model_host_trace
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import resolve, run

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "lazyaccept-host.bt"

# What bpftrace prints: its own "Attaching" line, a keyed map followed by a blank line, scalars.
PRINTED = """Attaching 14 probes...
lazyaccept-host-trace 1 interval_ms=100 pid=4242
@t: 100000123
@exit[48]: 10
@exit[77]: 3

@fault: 10
@aug: 10
@aug_ns: 12345
@t: 200000456
@t: 300000789
@exit[1]: 2

@enter: 7
@enter_ns: 900
"""


def test_printed_trace_reads_as_written():
    tr = parse_host_trace(PRINTED)
    assert (tr.interval_ms, tr.pid, tr.platform) == (100, 4242, None)
    assert [i.t_ns for i in tr.intervals] == [100000123, 200000456, 300000789]
    assert tr.exits() == {1: 2, 48: 10, 77: 3}
    assert tr.total(Counter.AUG_NS) == 12345 and tr.total(Counter.ENTER) == 7
    assert tr.intervals[1].exits == {} and not tr.intervals[1].counters
    # Active from the start of the first interval with counts (100 ms before its end) to the last's end.
    assert tr.span_ns() == (123, 300000789)
    again = format_host_trace(tr)
    assert parse_host_trace(again) == tr
    assert format_host_trace(parse_host_trace(again)) == again


@pytest.mark.parametrize("text, words", [
    ("@t: 1\n", "header"),
    ("lazyaccept-host-trace 2 interval_ms=100\n", "version 2"),
    ("lazyaccept-host-trace 1\n", "interval_ms"),
    ("lazyaccept-host-trace 1 interval_ms=100\n@fault: 3\n", "before the first"),
    ("lazyaccept-host-trace 1 interval_ms=100\n@t: 5\n@t: 5\n", "does not follow"),
    ("lazyaccept-host-trace 1 interval_ms=100\n@t: 5\n@exit: 3\n", "needs a reason"),
    ("lazyaccept-host-trace 1 interval_ms=100\n@t: 5\nfault 3\n", "not '@name: N'"),
    ("lazyaccept-host-trace 1 interval_ms=100\n@t: 5\nLost 12 events\n", "lost events"),
])
def test_malformed_traces_are_named(text, words):
    with pytest.raises(FormatError, match=words):
        parse_host_trace(text)


def test_inspect_reads_a_trace_and_refuses_a_broken_one(tmp_path):
    good = tmp_path / "trace.txt"
    good.write_text(PRINTED)
    r = run_cli("inspect", "--json", str(good))
    assert r.code == 0, r.err
    doc = json.loads(r.out)["files"][0]
    assert doc["kind"] == "host-trace"
    assert doc["totals"]["fault"] == 10
    assert [(e["reason"], e["count"]) for e in doc["exits"]] == [(1, 2), (48, 10), (77, 3)]
    bad = tmp_path / "bad.txt"
    bad.write_text(PRINTED.replace("@t: 300000789", "@t: 3"))
    r = run_cli("inspect", str(bad))
    assert r.code == 2 and len(r.err_lines) == 1 and "does not follow" in r.err


@pytest.mark.parametrize("platform, profile", [("tdx", "tdx"), ("snp", "snp")])
def test_modelled_trace_counts_what_the_record_did(platform, profile):
    prof = load_profile(profile)
    res = run(resolve(GuestRequest(memory=6 << 30, tee=Tee(platform), vcpus=4), prof), prof)
    tr = model_host_trace(res.record, res.timeline, prof)
    events = [e for p in res.record.phases for e in p.events]
    accepts = [e for e in events if isinstance(e, AcceptEvent)]
    backed = sum(e.stats.host_backed_4k + e.stats.host_backed_2m for e in accepts)
    idle = sum(s.idle_exits for s in res.timeline.phases)
    converts = sum(1 for e in events if isinstance(e, ConvertEvent))
    assert backed > 0
    exits = tr.exits()
    if platform == "tdx":
        assert tr.total(Counter.AUG) == backed == tr.total(Counter.FAULT)
        assert exits[48] == sum(e.stats.exits for e in accepts)
        # TDCALL exits: idle ticks (rounded once, over the whole trace) and one MapGPA per conversion.
        assert abs(exits.get(77, 0) - (round(idle) + converts)) <= 1
    else:
        assert tr.total(Counter.FAULT) == sum(e.stats.npf_exits for e in accepts) == exits.get(0x400, 0)
        assert tr.total(Counter.PSC) == sum(e.stats.psc_requests for e in accepts)
    # Every interval is 100 ms and the last one holds the end of the boot.
    assert [i.t_ns for i in tr.intervals] == [(k + 1) * 100_000_000 for k in range(len(tr.intervals))]
    assert tr.intervals[-1].t_ns / 1e9 >= res.timeline.total_s > tr.intervals[-1].t_ns / 1e9 - 0.1
    text = format_host_trace(tr)
    assert format_host_trace(parse_host_trace(text)) == text


def test_boot_dump_writes_the_trace_that_reads_back(tmp_path):
    out = tmp_path / "dump"
    r = run_cli("boot", "--memory", "5G", "--vcpus", "2", "--dump", str(out))
    assert r.code == 0, r.err
    tr = parse_host_trace((out / "host-trace.txt").read_text())
    assert tr.platform == "tdx" and tr.total(Counter.AUG) > 0


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace not installed")
def test_script_parses():
    # A dry run parses the whole script; on a machine without the kvm module it then stops at the
    # first kvm tracepoint, which is fine: a syntax error would be reported first.
    r = subprocess.run(["bpftrace", "-d", str(SCRIPT), "1"], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert "syntax error" not in out and "unexpected" not in out
    assert r.returncode == 0 or "tracepoint not found: kvm:" in out or "RLIMIT_MEMLOCK" in out
