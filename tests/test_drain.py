"""The drain agent, for real on this (non-confidential) Linux machine: budgets measured from the
outside (/proc/PID), memory given back, SIGTERM, a fixture guest whose nr_unaccepted reaches 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli
from lazyaccept.scenario.drain_agent import DrainAgent, DrainBudget, StopReason

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the agent drives Linux mm")
MiB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def fixture_root(tmp: Path, *, guest: bool, unaccepted_pages: int | None = 262144, psi: float = 0.0) -> Path:
    proc = tmp / "proc"
    (proc / "pressure").mkdir(parents=True)
    flags = "fpu vme hypervisor" + (" tdx_guest" if guest else "")
    (proc / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n\n")
    (proc / "meminfo").write_text("MemTotal:       8000000 kB\nMemFree:        7000000 kB\n"
                                  "MemAvailable:   7000000 kB\nUnaccepted:     1048576 kB\n")
    set_unaccepted(tmp, unaccepted_pages)
    set_psi(tmp, psi)
    return tmp


def set_unaccepted(root: Path, pages: int | None) -> None:
    text = "nr_free_pages 1750000\n" + (f"nr_unaccepted {pages}\n" if pages is not None else "")
    tmp = root / "proc" / "vmstat.new"
    tmp.write_text(text)
    os.replace(tmp, root / "proc" / "vmstat")  # the agent never reads half a file


def set_psi(root: Path, avg10: float) -> None:
    (root / "proc" / "pressure" / "memory").write_text(
        f"some avg10={avg10:.2f} avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lazyaccept", "drain", "--every", "0.2", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_line(p: subprocess.Popen[str]) -> str:
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("drain:"), (line, p.stderr.read() if p.stderr else "")
    return line


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss(pid: int | str) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def finish(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=10)
    return p.returncode, out, err


def test_refuses_a_machine_that_is_not_a_guest(tmp_path):
    root = fixture_root(tmp_path, guest=False)
    r = run_cli("drain", "--root", str(root))
    assert r.code == 2 and len(r.err_lines) == 1
    assert "not a TDX or SEV-SNP guest" in r.err and "--force" in r.err


def test_rate_budget_holds_measured_by_rss():
    rate = 32 * MiB
    p = start("--force", "--rate", "32M", "--chunk", "2M", "--cpu", "100")
    try:
        first_line(p)
        r0, t0 = rss(p.pid), time.monotonic()
        time.sleep(1.5)
        r1, t1 = rss(p.pid), time.monotonic()
    finally:
        p.send_signal(signal.SIGTERM)
    code, out, _ = finish(p)
    grown = (r1 - r0) / (t1 - t0)
    # It holds what it faults, so RSS grows at the faulting rate: never past the budget (one chunk
    # of slack for the window's edges), and not far under it (it does work, on a shared machine).
    assert 0.25 * rate < grown <= rate + 2 * MiB / (t1 - t0) + 1 * MiB
    assert code == 0 and "stopped (signal)" in out.splitlines()[-1] and "holding 0 B" in out.splitlines()[-1]


def test_cpu_budget_holds_measured_by_proc_stat():
    # No rate limit: only the CPU budget (10% of one CPU) slows it; it gives back every 32 MiB.
    p = start("--force", "--rate", "0", "--cpu", "10", "--chunk", "8M", "--hold-max", "32M")
    try:
        first_line(p)
        c0, t0 = cpu_seconds(p.pid), time.monotonic()
        time.sleep(2.0)
        c1, t1 = cpu_seconds(p.pid), time.monotonic()
    finally:
        p.send_signal(signal.SIGTERM)
    finish(p)
    share = (c1 - c0) / (t1 - t0)
    # Clock ticks are 1/TICK s: over 2 s, +-1 tick is 0.5% at 100 Hz.
    assert 0.01 < share <= 0.10 + 2 / TICK / (t1 - t0) + 0.02


def test_stops_on_sigterm_holding_nothing():
    p = start("--force", "--rate", "64M", "--chunk", "4M")
    first_line(p)
    time.sleep(0.4)
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    code, out, err = finish(p)
    assert time.monotonic() - t < 2.0
    assert code == 0, err
    last = out.splitlines()[-1]
    assert "stopped (signal)" in last and "holding 0 B" in last


def test_stops_when_the_fixture_guest_is_drained(tmp_path):
    root = fixture_root(tmp_path, guest=True)
    p = start("--root", str(root), "--rate", "16M", "--chunk", "1M")  # a guest: no --force needed
    first_line(p)
    time.sleep(0.5)
    assert p.poll() is None  # still draining
    set_unaccepted(root, 0)
    code, out, err = finish(p)
    assert code == 0, err
    assert "stopped (drained)" in out.splitlines()[-1] and "unaccepted        0 B" in out.splitlines()[-1]


def test_gives_back_everything_it_held(tmp_path):
    root = fixture_root(tmp_path, guest=True)
    agent = DrainAgent(str(root), DrainBudget(rate=96 * MiB, cpu=1.0, chunk=4 * MiB, keep_free=0))
    before = rss("self")
    th = threading.Thread(target=lambda: setattr(agent, "reason", agent.run()))
    th.start()
    time.sleep(0.6)
    during = rss("self")
    set_unaccepted(root, 0)
    th.join(5)
    after = rss("self")
    assert not th.is_alive() and agent.reason is StopReason.DRAINED
    assert during - before >= 32 * MiB  # ~57 MiB faulted and held at 96 MiB/s
    assert agent.held == [] and after - before < 4 * MiB


def test_backs_off_under_memory_pressure(tmp_path):
    root = fixture_root(tmp_path, guest=True, psi=40.0)
    agent = DrainAgent(str(root), DrainBudget(rate=64 * MiB, cpu=1.0, chunk=1 * MiB, keep_free=0, psi_limit=10.0))
    th = threading.Thread(target=agent.run)
    th.start()
    time.sleep(0.5)
    assert agent.faulted == 0  # pressure over the limit: nothing faulted
    set_psi(root, 0.0)
    time.sleep(1.5)  # it looks again within a second
    assert agent.faulted > 0
    agent.stop()
    th.join(5)
    assert not th.is_alive() and agent.held == []


def test_the_unit_file_runs_the_agent_with_options_it_has():
    unit = Path(__file__).resolve().parent.parent / "tools" / "lazyaccept-drain.service"
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            assert current is not None
            current[key] = value
    assert set(sections) == {"Unit", "Service", "Install"}
    service = sections["Service"]
    assert service["KillSignal"] == "SIGTERM" and service["RestartPreventExitStatus"] == "2"
    words = service["ExecStart"].split()
    assert words[0].endswith("/lazyaccept") and words[1] == "drain"
    helptext = run_cli("drain", "--help").out
    for w in words[2:]:
        if w.startswith("--"):
            assert w in helptext, w
    # The options' values are ones the agent takes: a dry run of them refuses only the non-guest.
    r = run_cli("drain", *words[2:], "--root", str(Path(__file__).parent))
    assert r.code == 2 and "not a TDX or SEV-SNP guest" in r.err
