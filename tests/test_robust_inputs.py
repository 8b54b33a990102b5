"""Odd input files: FIFOs, devices, sockets, huge and sparse files; text that looks like markup.

Each must give one error line naming the file (exit status 2) promptly, or be shown as the text
it is, never hang, exhaust memory or print a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lazyaccept.base.errors import FormatError
from lazyaccept.base.fileio import DEFAULT_LIMIT, open_input, read_input
from lazyaccept.formats.kernel_text import format_meminfo, parse_dmesg, parse_meminfo, parse_vmstat
from lazyaccept.scenario.inspect import SIZE_LIMITS, inspect_file

MiB, GiB = 1 << 20, 1 << 30


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazyaccept", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _one_error_line(r: subprocess.CompletedProcess[str], path: Path, needle: str) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"lazyaccept: error: {path}: "), lines[0]
    assert needle in lines[0], lines[0]


# -- not regular files ------------------------------------------------------------------------


def test_fifo_without_writer_returns_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    _one_error_line(_cli("inspect", str(fifo)), fifo, "is a FIFO (named pipe), not a regular file")
    _one_error_line(_cli("boot", "--memory", "4G", "--firmware", str(fifo)), fifo, "is a FIFO")
    assert time.monotonic() - started < 60  # the timeout of _cli would have raised long before a hang


def test_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "OVMF.fd"
    link.symlink_to("/dev/zero")
    _one_error_line(_cli("inspect", str(link)), link, "is a character device (a symbolic link to /dev/zero)")
    _one_error_line(_cli("boot", "--memory", "4G", "--firmware", str(link)), link, "character device")


def test_socket_directory_and_broken_link(tmp_path: Path) -> None:
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(FormatError, match="is a socket, not a regular file"):
            read_input(sock_path)
    with pytest.raises(FormatError, match="is a directory, not a file"):
        read_input(tmp_path)
    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "gone")
    with pytest.raises(FormatError, match="no such file .a broken symbolic link"):
        read_input(broken)


# -- size limits ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sparse_3_gib_file_is_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(3 * GiB)  # a hole: no disk used, reads as zeros
    started = time.monotonic()
    _one_error_line(_cli("inspect", str(big)), big, "file is 3 GiB, over the 64 MiB limit for binary files")
    _one_error_line(_cli("boot", "--memory", "4G", "--firmware", str(big)), big, "over the 64 MiB limit")
    # Text in the first 64 KiB makes it a would-be log: the text limit applies, and is named.
    log = tmp_path / "big.log"
    with open(log, "wb") as fh:
        fh.write(b"[    0.000000] tdx: Guest detected\n" * 3000)  # 105 KB
        fh.truncate(3 * GiB)
    _one_error_line(_cli("inspect", str(log)), log, "file is 3 GiB, over the 256 MiB limit for text files")
    forced = _cli("inspect", "--kind", "meminfo", str(log))
    _one_error_line(forced, log, "over the 16 MiB limit for meminfo files")
    assert time.monotonic() - started < 30


def test_limit_of_the_detected_kind(tmp_path: Path) -> None:
    # 17 MiB of real meminfo lines: under the text limit, over the meminfo one.
    line = format_meminfo({"MemTotal": 8135076})
    path = tmp_path / "meminfo"
    path.write_text(line * (17 * MiB // len(line) + 1))
    with pytest.raises(FormatError, match=r"over the 16 MiB limit for meminfo files"):
        inspect_file(path)


def test_binary_e820_limit(tmp_path: Path) -> None:
    table = tmp_path / "e820.bin"
    with open(table, "wb") as fh:
        fh.truncate(2 * MiB)  # 2 MiB of 20-byte entries would be 104,857 entries; the kernel keeps 3200 at most
    _one_error_line(_cli("inspect", "--kind", "E820", str(table)), table,
                    "file is 2 MiB, over the 1 MiB limit for binary e820 tables")


def test_limits_are_what_the_module_says() -> None:
    assert SIZE_LIMITS["firmware"][0] == 64 * MiB and DEFAULT_LIMIT == 64 * MiB
    assert SIZE_LIMITS["dmesg"][0] == 256 * MiB
    assert SIZE_LIMITS["meminfo"][0] == SIZE_LIMITS["vmstat"][0] == 16 * MiB
    assert SIZE_LIMITS["unaccepted-table"][0] == 64 * MiB + 24  # 24-byte header (struct efi_unaccepted_memory)


def test_file_growing_past_its_reported_size(tmp_path: Path) -> None:
    # /proc and /sys report 0 or 4096 bytes whatever they hold: the limit counts bytes read.
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    with open_input(path) as f:
        f.size = 0  # as /proc reports
        with pytest.raises(FormatError, match="file is more than 4 KiB, over the 4 KiB limit for tests"):
            f.read(4096, "tests")


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="no /proc/meminfo")
def test_proc_meminfo_reports_size_0_and_is_read() -> None:
    assert os.stat("/proc/meminfo").st_size == 0
    doc = inspect_file("/proc/meminfo")
    assert doc["kind"] == "meminfo" and doc["fields"]["MemTotal"] > 0


def test_each_file_is_opened_and_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "meminfo"
    path.write_text(format_meminfo({"MemTotal": 4, "MemFree": 2}) * 1)
    opened: list[Any] = []
    read: list[int] = []
    real_open, real_read = os.open, os.read

    def counting_open(p: Any, *args: Any, **kwargs: Any) -> int:
        fd = real_open(p, *args, **kwargs)
        if os.fspath(p) == str(path):
            opened.append(fd)
        return fd

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        if fd in opened:
            read.append(len(data))
        return data

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(os, "read", counting_read)
    inspect_file(path)
    assert len(opened) == 1
    assert sum(read) == path.stat().st_size  # every byte once, then end of file


# -- values that cannot be real ---------------------------------------------------------------


def test_values_past_64_bits_are_format_errors() -> None:
    with pytest.raises(FormatError, match="goes past 64-bit addresses"):
        parse_dmesg("[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x1ffffffffffffffff] usable\n")
    # The top of the 64-bit space is a real address: inclusive end 0xffffffffffffffff.
    top = parse_dmesg("[    0.000000] BIOS-e820: [mem 0xfffffffffffff000-0xffffffffffffffff] reserved\n")
    assert top.e820 == [(2**64 - 4096, 2**64, "reserved")]
    with pytest.raises(FormatError, match="does not fit in 64 bits"):
        parse_meminfo(f"MemTotal: {2**64} kB\n")
    with pytest.raises(FormatError, match="does not fit in 64 bits"):
        parse_meminfo("MemTotal: " + "9" * 5000 + " kB\n")  # past int()'s 4300-digit limit
    with pytest.raises(FormatError, match="does not fit in 64 bits"):
        parse_vmstat("nr_free_pages " + "9" * 5000 + "\n")


# -- text from files is text ------------------------------------------------------------------


def test_markup_in_files_is_shown_as_text(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8135076 kB\n[/]:                   3 kB\n[bold red]x:            4 kB\n")
    r = _cli("inspect", str(meminfo))
    assert r.returncode == 0, r.stderr
    assert "[/]" in r.stdout and "[bold red]x" in r.stdout
    log = tmp_path / "dmesg.txt"
    log.write_text("[    0.000000] Linux version [/]6.8.0:smile: (builder@host)\n"
                   "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] [red]usable\n")
    r = _cli("inspect", str(log))
    assert r.returncode == 0, r.stderr
    assert "[/]6.8.0:smile:" in r.stdout  # neither markup nor an emoji code
    assert "[red]usable" in r.stdout
    path_like_markup = tmp_path / "[bold]log.txt"
    path_like_markup.write_text(log.read_text())
    r = _cli("inspect", str(path_like_markup))
    assert r.returncode == 0 and "[bold]log.txt" in r.stdout


def test_escape_sequences_in_files_do_not_reach_the_terminal(tmp_path: Path) -> None:
    log = tmp_path / "dmesg.txt"
    # An OSC window-title sequence and a bell inside the version, a CSI colour in a type name.
    log.write_text("[    0.000000] Linux version 6.8\x1b]0;owned\x07-x (b@h)\n"
                   "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] us\x1b[31mable\r\n")
    r = _cli("inspect", str(log))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "6.8-x" in r.stdout  # what is left once the sequence is gone
    # JSON keeps the exact text, escaped as JSON escapes it.
    doc = json.loads(_cli("inspect", "--json", str(log)).stdout)["files"][0]
    assert doc["kernel_version"] == "6.8\x1b]0;owned\x07-x"
