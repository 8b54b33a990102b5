"""``lazyaccept attribute``: a modelled boot's dump is explained exactly, a changed one where it
changed, a host trace's extra time is the guest's lost clock, a real shipped log as far as it goes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.formats.host_trace import Interval, format_host_trace, parse_host_trace
from lazyaccept.sim.profile import load_profile

LOGS = Path(__file__).resolve().parent / "data" / "real-logs"


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    out = tmp_path_factory.mktemp("att") / "dump"
    r = run_cli("boot", "--memory", "8G", "--vcpus", "4", "--json", "--dump", str(out))
    assert r.code == 0, r.err
    return out, json.loads(r.out)


def attribute_json(*args: str) -> dict:
    r = run_cli("attribute", "--json", *args)
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_a_dump_is_explained_exactly(dump):
    out, boot = dump
    doc = attribute_json("--guest-log", str(out / "dmesg.txt"), "--host-trace", str(out / "host-trace.txt"))
    rows = {r["mechanism"]: r for r in doc["mechanisms"]}
    for r in doc["mechanisms"]:
        if r["measured_s"] is not None:
            assert abs(r["diff_s"]) < 1e-5, r  # the log's stamps are rounded to the microsecond
            assert r["verdict"] == "as modelled"
    assert rows["firmware accept"]["measured_s"] is None  # before the kernel's clock
    # Before the watermarks exist, each of the 256 early allocations (BootFootprint.pre_watermark_allocs)
    # accepts a whole 4 MiB chunk: 256 x 1024 faults on guest memory in the trace, in that stretch.
    storm = next(s for s in doc["segments"] if s["from"] == "deferred-pages-done")
    assert storm["host_trace"]["fault_exits"] == 256 * 1024
    assert doc["clock_lost_s"] == 0.0
    # The dump's trace times each AUG at the profile's host path per page: read back.
    path_us = load_profile("tdx").params["host.path_fault_4k"].value
    (cost,) = doc["host_costs"]
    assert (cost["operation"], cost["profile_key"]) == ("TDH.MEM.PAGE.AUG", "host.path_fault_4k")
    assert cost["trace_us"] == pytest.approx(path_us, rel=1e-3) and cost["profile_us"] == pytest.approx(path_us)
    # The model's rows add up to its own boot up to "Run /init" (the start of user space), as boot --json says.
    phases = {p["name"]: p for p in boot["phases"]}
    assert sum(r["model_s"] for r in doc["mechanisms"]) == pytest.approx(phases["userspace"]["start_s"], abs=1e-9)
    assert doc["measured_total_s"] == pytest.approx(phases["userspace"]["start_s"] - phases["early-init"]["start_s"],
                                                    abs=2e-6)


def _shift_after(text: str, after_s: float, by_s: float) -> str:
    def shift(m: re.Match[str]) -> str:
        t = float(m.group(1))
        return f"[{t + by_s if t > after_s else t:12.6f}]"

    return re.sub(r"^\[ *([0-9]+\.[0-9]+)\]", shift, text, flags=re.M)


def test_a_slower_stretch_is_named(dump, tmp_path):
    out, _ = dump
    base = attribute_json("--guest-log", str(out / "dmesg.txt"))
    seg = next(s for s in base["segments"] if s["from"] == "memory-available")
    # One second more between "Memory:" and the next milestone: every later stamp moves by 1 s.
    slow = tmp_path / "slow.txt"
    slow.write_text(_shift_after((out / "dmesg.txt").read_text(), seg["log_s"][0] + 1e-7, 1.0))
    doc = attribute_json("--guest-log", str(slow))
    longer = [r for r in doc["mechanisms"] if r["diff_s"] is not None and abs(r["diff_s"]) > 1e-5]
    assert sum(r["diff_s"] for r in longer) == pytest.approx(1.0, abs=1e-5)
    for r in longer:
        assert r["segments"] == [f"memory-available..{seg['to']}"] and "longer than modelled" in r["verdict"]
    # Each mechanism of the stretch grows in proportion to its share of the model's stretch.
    model_len = seg["model_s"][1] - seg["model_s"][0]
    for name, s in seg["model_by"].items():
        r = next(r for r in longer if r["mechanism"] == name)
        assert r["diff_s"] == pytest.approx(s / model_len, rel=1e-4)


def test_time_the_host_saw_and_the_guest_did_not_is_the_lost_clock(dump, tmp_path):
    out, _ = dump
    tr = parse_host_trace((out / "host-trace.txt").read_text())
    # 3 s of guest activity (tick exits, no faults) inserted at 4.0 s, during the SWIOTLB conversion:
    # the host saw the boot take 3 s more than the guest's log says.
    at = 40
    extra = [Interval(0, {77: 5}) for _ in range(30)]
    tr.intervals[at:at] = extra
    for k, x in enumerate(tr.intervals):
        x.t_ns = (k + 1) * 100_000_000
    path = tmp_path / "trace.txt"
    path.write_text(format_host_trace(tr))
    doc = attribute_json("--guest-log", str(out / "dmesg.txt"), "--host-trace", str(path))
    assert doc["clock_lost_s"] == pytest.approx(3.0, abs=0.11)
    lost = next(r for r in doc["mechanisms"] if r["mechanism"] == "guest clock lost (host trace)")
    assert lost["model_s"] == 0 and lost["measured_s"] == doc["clock_lost_s"]
    # Placed in the stretch it was inserted into (4.0 s is inside the model's memory-available..
    # mem-encrypt-active, 2.662..5.921 s from power-on).
    assert lost["segments"] == ["memory-available..mem-encrypt-active"]


def test_a_real_log_as_far_as_it_goes(tmp_path):
    log = LOGS / "snp_guest_boot_lkml_20260309_bp.txt"
    plot = tmp_path / "att.png"
    r = run_cli("attribute", "--guest-log", str(log), "--memory", "4G", "--plot", str(plot))
    assert r.code == 0, r.err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = attribute_json("--guest-log", str(log), "--memory", "4G")
    # The log stamps "Memory Encryption Features active" at 3.134372 s and "smp: Bringing up" at 3.326860 s.
    segs = [(s["from"], s["to"], s["log_s"]) for s in doc["segments"]]
    assert segs == [("kernel-start", "mem-encrypt-active", [0.0, 3.134372]),
                    ("mem-encrypt-active", "smp-start", [3.134372, 3.32686])]
    # What the log measures adds up to its last stamp (firmware and the EFI stub are not in it).
    assert sum(r["measured_s"] for r in doc["mechanisms"] if r["measured_s"] is not None) == pytest.approx(3.32686)
    assert any("Run /init" in a for a in doc["assumptions"])
    assert any("printk time 0" in a for a in doc["assumptions"])
    names = {r["mechanism"]: r for r in doc["mechanisms"]}
    assert names["firmware accept"]["measured_s"] is None
    # The model has nothing between mem_encrypt_init() and SMP bring-up: the log's 0.19 s there is named so.
    assert names["not in the model"]["measured_s"] == pytest.approx(3.32686 - 3.134372, abs=1e-6)


@pytest.mark.parametrize("text, words", [
    ("[    0.000000] tdx: Guest detected\n[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000007fffffff]"
     " usable\n", "time-stamps none"),
])
def test_a_log_with_nothing_to_line_up_is_refused(tmp_path, text, words):
    log = tmp_path / "log.txt"
    log.write_text(text)
    r = run_cli("attribute", "--guest-log", str(log))
    assert r.code == 2 and len(r.err_lines) == 1 and words in r.err


def test_a_broken_trace_is_refused_naming_it(dump, tmp_path):
    out, _ = dump
    bad = tmp_path / "bad-trace.txt"
    bad.write_text("lazyaccept-host-trace 1 interval_ms=100\n@t: 5\n@t: 4\n")
    r = run_cli("attribute", "--guest-log", str(out / "dmesg.txt"), "--host-trace", str(bad))
    assert r.code == 2 and len(r.err_lines) == 1 and "bad-trace.txt" in r.err and "does not follow" in r.err


def test_an_instant_is_placed_on_the_host_clock_by_the_faults_counted():
    from lazyaccept.sim.host_clock import host_time

    # The model: 100 faults in its first second, none until 3 s, 100 more by 4 s.  The host saw the
    # same faults, but the quiet stretch lasted until 6 s.
    model = [(0.0, 0.0), (1.0, 100.0), (3.0, 100.0), (4.0, 200.0)]
    host = [(0.0, 0.0), (1.0, 100.0), (6.0, 100.0), (7.0, 200.0)]
    assert host_time(host, model, 0.5) == pytest.approx(0.5)  # inside a burst: where the 50th fault is
    assert host_time(host, model, 2.0) == pytest.approx(3.5)  # halfway through the quiet stretch
    assert host_time(host, model, 3.5) == pytest.approx(6.5)  # the 150th fault
    assert host_time(host, model, 0.0) is None  # no fault yet: nothing to place it by
