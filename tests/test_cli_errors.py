"""Bad input to boot / compare / calibrate: one line on stderr, exit status 2, no output file."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    (["boot", "--memory", "banana"], "not a size: 'banana'"),
    (["boot", "--memory", "100M"], "between 512 MiB and 64 TiB"),
    (["boot", "--memory", "4G", "--vcpus", "0"], "vcpus must be between 1"),
    (["boot", "--memory", "4G", "--kernel", "5.0"], "unaccepted memory support arrived in Linux 6.5"),
    (["boot", "--memory", "4G", "--kernel", "6.1"], "kernel '6.1' cannot be modelled"),
    (["boot", "--memory", "4G", "--kernel", "banana"], "unknown kernel 'banana'"),
    (["boot", "--memory", "4G", "--firmware", "{missing}"], "no such file"),
    (["boot", "--memory", "4G", "--firmware-accept", "1M"], "firmware accepts too little memory"),
    (["boot", "--memory", "4G", "--plot", "{missing}/x.png"], "does not exist"),
    (["compare", "--memory", "4G", "--memory", "x"], "not a size: 'x'"),
    (["calibrate", "--data", "{missing}"], "no such file"),
    (["boot", "--memory", "4G", "--profile", "bogus"], "no profile named 'bogus'"),
]


@pytest.mark.parametrize("args,message", CASES)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    missing = str(tmp_path / "missing")
    argv = [a.replace("{missing}", missing) for a in args]
    r = subprocess.run([sys.executable, "-m", "lazyaccept", *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_modelled_guest_failure_is_exit_3_not_2():
    # Not bad input but a modelled kernel bug: the 2026 table-reservation fault is fatal.
    r = subprocess.run([sys.executable, "-m", "lazyaccept", "boot", "--memory", "67000M", "--kernel", "6.12",
                        "--firmware-accept", "below-4g"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lazyaccept: guest failed: table-reservation: kernel on vCPU 0")


def test_dump_into_a_file_path_writes_nothing(tmp_path):
    target = tmp_path / "not-a-folder"
    target.write_text("keep me")
    r = subprocess.run([sys.executable, "-m", "lazyaccept", "boot", "--memory", "4G", "--dump", str(target)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is not a folder" in r.stderr
    assert target.read_text() == "keep me"


def test_dump_that_cannot_be_written_is_refused_before_any_file(tmp_path):
    out = tmp_path / "dump"
    (out / "meminfo").mkdir(parents=True)
    r = subprocess.run([sys.executable, "-m", "lazyaccept", "boot", "--memory", "4G", "--dump", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"lazyaccept: error: {out / 'meminfo'}: is a directory, not a file"
    assert sorted(p.name for p in out.iterdir()) == ["meminfo"]
