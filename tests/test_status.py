"""``lazyaccept status`` on fixture trees built from real logs and from ``boot --dump`` outputs, and
on this machine."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

import lazyaccept.commands.status as status_cmd
from cli_helpers import run_cli
from lazyaccept.scenario.live import read_kmsg

LOGS = Path(__file__).parent / "data" / "real-logs"
FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2"


def _tree(root: Path, *, flags: str = FLAGS, cmdline: str | None = "console=ttyS0", meminfo: str | None = None,
          vmstat: str | None = None, dmesg: str | None = None, kmsg: str | None = None) -> Path:
    (root / "proc" / "sys" / "kernel").mkdir(parents=True)
    cpu = "processor\t: {n}\nflags\t\t: {flags}\n"
    (root / "proc" / "cpuinfo").write_text(cpu.format(n=0, flags=flags) + "\n" + cpu.format(n=1, flags=flags))
    (root / "proc" / "sys" / "kernel" / "osrelease").write_text("6.8.0-test\n")
    if cmdline is not None:
        (root / "proc" / "cmdline").write_text(cmdline + "\n")
    for name, text in (("meminfo", meminfo), ("vmstat", vmstat)):
        if text is not None:
            (root / "proc" / name).write_text(text)
    if dmesg is not None:
        (root / "var" / "log").mkdir(parents=True)
        (root / "var" / "log" / "dmesg").write_text(dmesg)
    if kmsg is not None:
        (root / "dev").mkdir()
        (root / "dev" / "kmsg").write_text(kmsg)
    return root


def _as_kmsg(log: str) -> str:
    """A dmesg text as /dev/kmsg records (prio,seq,usec,flags;message), as the kernel writes them."""
    out = []
    for seq, m in enumerate(re.finditer(r"^\[ *(\d+)\.(\d{6})\](?: \[ *T\d+\])? (.*)$", log, re.MULTILINE)):
        usec = int(m[1]) * 1_000_000 + int(m[2])
        out.append(f"6,{seq},{usec},-;{m[3]}\n SUBSYSTEM=test\n")
    return "".join(out)


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dump") / "d"
    r = run_cli("boot", "--memory", "16G", "--vcpus", "2", "--dump", str(out))
    assert r.code == 0, r.err
    return out


def test_this_machine_says_what_it_is() -> None:
    flags = Path("/proc/cpuinfo").read_text()
    r = run_cli("status")
    assert r.code == 0, r.err
    if re.search(r"\btdx_guest\b", flags):
        assert "Intel TDX guest" in r.out
    else:
        assert "not a confidential guest" in r.out
        doc = json.loads(run_cli("status", "--json").out)
        assert doc["confidential"] is False and doc["platform"] is None


def test_tdx_guest_from_a_dump(tmp_path: Path, dump: Path) -> None:
    meminfo, vmstat, dmesg = ((dump / n).read_text() for n in ("meminfo", "vmstat", "dmesg.txt"))
    root = _tree(tmp_path / "root", flags=FLAGS + " hypervisor tdx_guest", cmdline="console=ttyS0 accept_memory=lazy",
                 meminfo=meminfo, vmstat=vmstat, dmesg=dmesg)
    r = run_cli("status", "--root", str(root), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["confidential"] and doc["platform"] == "tdx"
    assert {e["source"] for e in doc["evidence"]} == {"/proc/cpuinfo", "/var/log/dmesg"}
    assert doc["accept_memory"] == {"cmdline": "lazy", "effective": "lazy"}
    unaccepted_kb = int(re.search(r"^Unaccepted:\s+(\d+) kB", meminfo, re.MULTILINE)[1])
    pages = int(re.search(r"^nr_unaccepted (\d+)", vmstat, re.MULTILINE)[1])
    assert doc["unaccepted"]["unaccepted_kb"] == unaccepted_kb and doc["unaccepted"]["nr_unaccepted"] == pages
    assert doc["unaccepted"]["agree"] is (unaccepted_kb == 4 * pages) is True
    # At boot: the Unaccepted ranges of the EFI map the dump's log prints.
    at_boot = sum(int(b, 16) + 1 - int(a, 16) for a, b in
                  re.findall(r"\[Unaccepted[^\]]*\] range=\[(0x[0-9a-f]+)-(0x[0-9a-f]+)\]", dmesg))
    assert at_boot > 0 and doc["unaccepted_at_boot_bytes"] == at_boot
    human = run_cli("status", "--root", str(root))
    assert "This is an Intel TDX guest." in human.out and "agree to the page" in human.out


def test_snp_guest_from_its_kernel_log_as_kmsg(tmp_path: Path) -> None:
    log = (LOGS / "snp_guest_boot_lkml_20260309_bp.txt").read_text()
    root = _tree(tmp_path / "root", flags=FLAGS + " hypervisor", kmsg=_as_kmsg(log),
                 meminfo="MemTotal:        4000000 kB\nMemFree:         3000000 kB\nUnaccepted:      1048576 kB\n",
                 vmstat="nr_free_pages 750000\nnr_unaccepted 262144\n")
    r = run_cli("status", "--root", str(root), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["platform"] == "snp" and doc["kernel_log"] == "/dev/kmsg"
    (ev,) = doc["evidence"]
    assert ev["says"] == "Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP"
    assert doc["accept_memory"]["effective"] == "lazy" and doc["accept_memory"]["cmdline"] is None
    assert doc["unaccepted"]["unaccepted_bytes"] == 262144 * 4096 and doc["unaccepted"]["agree"] is True


def test_tdx_from_the_log_alone(tmp_path: Path) -> None:
    log = (LOGS / "tdx_guest_detected_SUSE_img-proof_pr437.txt").read_text()
    root = _tree(tmp_path / "root", dmesg=log, meminfo="MemTotal: 1000 kB\n", vmstat="nr_free_pages 1\n")
    doc = json.loads(run_cli("status", "--root", str(root), "--json").out)
    assert doc["platform"] == "tdx"
    assert doc["unaccepted"]["unaccepted_kb"] is None  # no Unaccepted field in this meminfo


def test_an_snp_host_is_not_a_guest(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", flags=FLAGS + " sev sev_es sev_snp", meminfo="MemTotal: 1000 kB\n")
    r = run_cli("status", "--root", str(root), "--json")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["confidential"] is False
    assert "an SEV-SNP host" in doc["evidence"][0]["says"]
    assert "not a confidential guest" in run_cli("status", "--root", str(root)).out


def test_counters_that_disagree_are_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", flags=FLAGS + " hypervisor tdx_guest",
                 meminfo="MemTotal: 8000000 kB\nUnaccepted: 1000 kB\n", vmstat="nr_free_pages 1\nnr_unaccepted 300\n")
    r = run_cli("status", "--root", str(root), "--json")
    doc = json.loads(r.out)
    assert doc["unaccepted"]["agree"] is False  # 1000 kB is not 300 pages of 4 kB
    assert any("disagree" in n for n in doc["notes"])
    assert "NO" in run_cli("status", "--root", str(root)).out


def _write_counters(root: Path, pages: int) -> None:
    (root / "proc" / "meminfo").write_text(f"MemTotal:       16000000 kB\nMemFree:        15000000 kB\n"
                                           f"Unaccepted:     {pages * 4:8d} kB\n")
    (root / "proc" / "vmstat").write_text(f"nr_free_pages 3750000\nnr_unaccepted {pages}\n")


def test_watch_samples_a_draining_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path / "root", flags=FLAGS + " hypervisor tdx_guest")
    pages = [2_097_152, 1_572_864, 786_432, 0]  # 8 GiB, 6 GiB, 3 GiB, drained
    _write_counters(root, pages[0])
    clock = {"t": 100.0, "step": 0}

    def sleep(seconds: float) -> None:
        assert seconds == 0.5
        clock["t"] += 2.0  # each sample two (fake) seconds after the one before
        clock["step"] += 1
        _write_counters(root, pages[clock["step"]])

    monkeypatch.setattr(status_cmd, "_sleep", sleep)
    monkeypatch.setattr(status_cmd, "_clock", lambda: clock["t"])
    csv_path, png = tmp_path / "drain.csv", tmp_path / "drain.png"
    r = run_cli("status", "--root", str(root), "--watch", "0.5", "--csv", str(csv_path), "--plot", str(png), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    # Without --samples, sampling stops once drained.
    assert [s["nr_unaccepted"] for s in doc["samples"]] == pages
    assert [s["t_s"] for s in doc["samples"]] == [0.0, 2.0, 4.0, 6.0]
    expected_rates = [None] + [(a - b) * 4096 / 2.0 for a, b in zip(pages, pages[1:], strict=False)]
    assert [s["drain_bytes_per_s"] for s in doc["samples"]] == expected_rates
    assert doc["drain"]["drained_bytes"] == pages[0] * 4096
    assert doc["drain"]["rate_bytes_per_s"] == pages[0] * 4096 / 6.0
    assert doc["drain"]["remaining_bytes"] == 0 and doc["drain"]["eta_s"] == 0.0
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [int(row["nr_unaccepted"]) for row in rows] == pages
    assert [row["agree"] for row in rows] == ["true"] * 4
    assert png.read_bytes().startswith(b"\x89PNG")


def test_watch_in_real_time_with_a_sample_count(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", flags=FLAGS + " hypervisor tdx_guest")
    _write_counters(root, 1000)
    r = run_cli("status", "--root", str(root), "--watch", "0.05", "--samples", "3", "--csv", "-")
    assert r.code == 0, r.err
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert len(rows) == 3
    times = [float(row["t_s"]) for row in rows]
    assert times[0] == 0.0 and all(b - a >= 0.045 for a, b in zip(times, times[1:], strict=False))
    assert {row["unaccepted_kb"] for row in rows} == {"4000"}
    assert "Intel TDX guest" in r.err  # the report went to stderr, the CSV to stdout


def test_nothing_to_watch_writes_nothing(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", meminfo="MemTotal: 1000 kB\n", vmstat="nr_free_pages 1\n")
    out = tmp_path / "s.csv"
    r = run_cli("status", "--root", str(root), "--watch", "0.05", "--samples", "5", "--csv", str(out), "--json")
    assert r.code == 0
    doc = json.loads(r.out)
    assert len(doc["samples"]) == 1 and not out.exists()
    assert any("CSV and plot not written" in n for n in doc["notes"])


@pytest.mark.parametrize("args,needle", [
    (["--watch", "0"], "more than 0"),
    (["--watch", "nan"], "more than 0"),
    (["--watch", "-1"], "more than 0"),
    (["--samples", "0"], "between 1"),
    (["--root", "/nonexistent/dir"], "not a folder"),
    (["--csv", "-", "--json"], "both write to standard output"),
    (["--plot", "x.gif"], "PNG, SVG or PDF"),
])
def test_bad_options(args: list[str], needle: str) -> None:
    r = run_cli("status", *args)
    assert r.code == 2 and len(r.err_lines) == 1 and needle in r.err and r.out == ""


def test_read_kmsg_records(tmp_path: Path) -> None:
    path = tmp_path / "kmsg"
    path.write_text("6,0,0,-;Linux version 6.8.0 (x)\n SUBSYSTEM=cpu\n4,1,1500000,c;tdx: Guest detected\n"
                    "6,2,2000001,-;a \\x1b tab\nnot a record\n")
    assert read_kmsg(path).splitlines() == ["[    0.000000] Linux version 6.8.0 (x)",
                                            "[    1.500000] tdx: Guest detected", "[    2.000001] a \x1b tab"]


def test_read_kmsg_of_this_machine_does_not_block() -> None:
    kmsg = Path("/dev/kmsg")
    try:
        text = read_kmsg(kmsg)
    except OSError:
        pytest.skip("/dev/kmsg is not readable here")
    assert text == "" or text.startswith("[")
