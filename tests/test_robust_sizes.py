"""Sizes as QEMU's -m reads them: plain numbers in MiB, binary suffixes, absurd input refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lazyaccept.base.errors import ConfigError
from lazyaccept.base.units import GiB, KiB, MiB, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # QEMU: "-m 4096" is 4096 MiB (a plain number gets an "M" appended).
        ("4096", 4096 * MiB),
        ("512", 512 * MiB),
        # Suffixes are binary and case-insensitive; "B" alone means bytes.
        ("4G", 4 * GiB),
        ("4g", 4 * GiB),
        ("4GiB", 4 * GiB),
        ("4gib", 4 * GiB),
        ("4 GB", 4 * GiB),
        ("4096B", 4096),
        ("4096b", 4096),
        ("1T", 1 << 40),
        ("2E", 2 << 60),
        # Fractions are exact: 1.5 GiB = 1536 MiB; 0.5K = 512 bytes.
        ("1.5G", 1536 * MiB),
        ("0.5K", 512),
        ("1.50000000000000000000000000000000000G", 1536 * MiB),
        # Hexadecimal stays a byte count.
        ("0x1000", 4096),
        ("0XFFFFFFFFFFFFFFFF", 2**64 - 1),
        (" 64G ", 64 * GiB),
        (4096, 4096),  # an int is already bytes
    ],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


def test_byte_semantics_on_request() -> None:
    assert parse_size("4096", default_unit=1) == 4096
    assert parse_size("4", default_unit=KiB) == 4096
    assert parse_size("4M", default_unit=1) == 4 * MiB


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1" * 400, "too large"),
        ("9" * 5000, "too large"),  # past Python's 4300-digit int conversion limit
        ("0x" + "f" * 17, "too large"),
        ("16E", "too large"),  # 2**64 bytes: one more than a uint64_t holds
        ("18446744073709551616B", "too large"),
        ("1e400G", "not a size"),
        ("1e3", "not a size"),
        ("inf", "not a size"),
        ("nan", "not a size"),
        ("-1G", "not a size"),
        ("\u0664G", "not a size"),  # an Arabic-Indic four: not an ASCII digit
        ("4iB", "not a size"),
        ("1.1M", "not a whole number of bytes"),  # 1153433.6 bytes
        ("0." + "1" * 100 + "E", "not a whole number of bytes"),
        ("0", "must be positive"),
        ("0x0", "must be positive"),
    ],
)
def test_bad_sizes(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        parse_size(text)
    assert len(str(info.value)) < 200  # one short line even for a 5000-digit input


def test_format_size_never_raises() -> None:
    assert format_size(4 * GiB) == "4 GiB"
    assert format_size(3 * GiB // 2) == "1.50 GiB"
    # Too large for a float: a whole number of PiB, no OverflowError.
    assert format_size(10**400) == f"{10**400 // (1 << 50)} PiB"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazyaccept", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("memory", ["1" * 400, "1e400G", "0x" + "f" * 40, "nan"])
def test_absurd_memory_is_one_line_and_exit_2(memory: str) -> None:
    r = _cli("boot", "--memory", memory)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lazyaccept: error: "), r.stderr
    assert "Traceback" not in r.stderr


def test_plain_memory_is_mib_and_option_values_ignore_case() -> None:
    r = _cli("boot", "--memory", "4096", "--platform", "TDX", "--host-mapping", "2M", "--policy", "Lazy",
             "--kernel", "MAINLINE", "--json")
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)["config"]
    assert config["memory_bytes"] == 4 * GiB
    assert (config["platform"], config["host_mapping"], config["policy"]) == ("tdx", "2m", "lazy")
