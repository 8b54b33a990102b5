"""``status --prometheus FILE``: node-exporter textfile metrics of a (fixture) guest draining."""

from __future__ import annotations

import re

import pytest

import lazyaccept.commands.status as status_cmd
from cli_helpers import run_cli


def write_guest(root, pages: int) -> None:
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu hypervisor tdx_guest\n\n")
    (proc / "meminfo").write_text("MemTotal:       8000000 kB\nMemFree:        7000000 kB\n"
                                  f"Unaccepted:     {pages * 4} kB\n")
    (proc / "vmstat").write_text(f"nr_free_pages 1750000\nnr_unaccepted {pages}\n")


def metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_of_a_draining_guest(tmp_path, monkeypatch):
    write_guest(tmp_path, 1_000_000)
    clock = iter([0.0, 2.0, 4.0])
    steps = iter([900_000, 800_000])
    monkeypatch.setattr(status_cmd, "_clock", lambda: next(clock))
    monkeypatch.setattr(status_cmd, "_sleep", lambda s: write_guest(tmp_path, next(steps)))
    prom = tmp_path / "lazyaccept.prom"
    r = run_cli("status", "--root", str(tmp_path), "--samples", "3", "--watch", "2", "--prometheus", str(prom))
    assert r.code == 0, r.err
    text = prom.read_text()
    # Every sample is a HELP and a TYPE line, then the value.
    assert all(re.match(r"^(# (HELP|TYPE) lazyaccept_\w+ .+|lazyaccept_\w+(\{[^}]*\})? \S+)$", line)
               for line in text.splitlines())
    m = metrics(text)
    assert m['lazyaccept_confidential_guest{platform="tdx"}'] == 1
    assert m["lazyaccept_unaccepted_bytes"] == 800_000 * 4096
    assert m["lazyaccept_host_committed_bytes"] == 8_000_000 * 1024 - 800_000 * 4096
    # 200,000 pages in 4 s; 800,000 left at that rate: 16 s.
    assert m["lazyaccept_drain_rate_bytes_per_second"] == pytest.approx(200_000 * 4096 / 4)
    assert m["lazyaccept_drain_eta_seconds"] == pytest.approx(16.0)


def test_metrics_of_a_machine_that_is_not_a_guest(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu\n\n")
    (tmp_path / "proc" / "meminfo").write_text("MemTotal:       8000000 kB\nMemFree:        7000000 kB\n")
    r = run_cli("status", "--root", str(tmp_path), "--prometheus", "-")
    assert r.code == 0, r.err
    m = metrics(r.out)
    assert m == {'lazyaccept_confidential_guest{platform="none"}': 0}
