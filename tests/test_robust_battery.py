"""A battery of bad inputs: sizes, options, files of every odd kind, profiles and output paths.

Each must end with one line on stderr and exit status 2 (3 for a modelled guest failure), never
a traceback, a hang, output on stdout or a half-written file.  Most run in this process (as
``main()`` runs them); those that touch FIFOs or devices run in a subprocess with a timeout, so a
bug that opened one would fail the case instead of hanging the suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli

SRC = str(Path(__file__).resolve().parent.parent / "src")
LOG = str(Path(__file__).parent / "data" / "real-logs" / "tdx_guest_e820_intel_tdx-tools_issue524.txt")
NO_SIZE_LOG = str(Path(__file__).parent / "data" / "real-logs" / "snp_guest_boot_lkml_20260309_bp.txt")

# -- the cases --------------------------------------------------------------------------------

BAD_SIZES = [
    "banana", "", " ", "0", "-1", "-4G", "1.5.3G", "4GB!", "100M", "511M", "65T", "100P", "1e3", "inf", "nan",
    "NaN", "4Q", "G", "4..G", "0x", "0xZZ", "18446744073709551616", "9" * 400, "4G4G", "\u0664G", "1/2G",
    "4,5G", "+", "4 G 5", "4096K1", "12345678901234567890T", "0.0001K", "four gigabytes", "4\u200bG",
]
BAD_SMALL_SIZES = ["banana", "-1", "1.5.3G", "4Q", "nan", "9" * 400, "0x", "1/2G"]  # --shell-footprint
BAD_FIRMWARE_ACCEPT = ["below-5g", "some", "-1G", "1.5.3G", "nan", "4Q", "\u0664G"]

#: What each bad size must be told: most are not sizes at all; some are sizes out of range.
SIZE_ERRORS = {"0": "size must be positive", "100M": "memory must be between 512 MiB and 64 TiB",
               "511M": "memory must be between 512 MiB and 64 TiB", "65T": "memory must be between 512 MiB and 64 TiB",
               "100P": "memory must be between 512 MiB and 64 TiB", "18446744073709551616": "is too large",
               "9" * 400: "is too large", "12345678901234567890T": "is too large",
               "0.0001K": "is not a whole number of bytes"}
FIRMWARE_ACCEPT_ERROR = 'firmware accept must be "below-4g", "all" or a size'

#: (args, expected exit status, a piece of the error line).  {x} names a file of the zoo, in the
#: arguments and in the piece of the error line alike.
CASES: list[tuple[list[str], int, str]] = []
for size in BAD_SIZES:
    CASES.append((["boot", "--memory", size], 2, SIZE_ERRORS.get(size, "not a size")))
    CASES.append((["compare", "--memory", "4G", "--memory", size], 2, SIZE_ERRORS.get(size, "not a size")))
for size in BAD_SMALL_SIZES:
    CASES.append((["boot", "--memory", "4G", "--shell-footprint", size], 2, SIZE_ERRORS.get(size, "not a size")))
for value in BAD_FIRMWARE_ACCEPT:
    CASES.append((["boot", "--memory", "4G", "--firmware-accept", value], 2, FIRMWARE_ACCEPT_ERROR))
    CASES.append((["compare", "--memory", "4G", "--firmware-accept", value], 2, FIRMWARE_ACCEPT_ERROR))

CASES += [
    # options
    (["boot", "--memory", "4G", "--vcpus", "0"], 2, "vcpus must be between 1"),
    (["boot", "--memory", "4G", "--vcpus", "-3"], 2, "vcpus"),
    (["boot", "--memory", "4G", "--vcpus", "5000"], 2, "vcpus must be between 1"),
    (["boot", "--memory", "4G", "--vcpus", "four"], 2, "not a valid integer"),
    (["boot", "--memory", "4G", "--vcpus", "1.5"], 2, "not a valid integer"),
    (["boot", "--memory", "4G", "--vcpus", "99999999999999999999999"], 2, "vcpus"),
    (["compare", "--memory", "4G", "--vcpus", "0"], 2, "vcpus must be between 1"),
    (["boot", "--memory", "4G", "--platform", "sgx"], 2, "'sgx' is not one of"),
    (["boot", "--memory", "4G", "--platform", ""], 2, "is not one of"),
    (["boot", "--memory", "4G", "--host-mapping", "1g"], 2, "is not one of"),
    (["boot", "--memory", "4G", "--policy", "sometimes"], 2, "is not one of"),
    (["boot", "--memory", "4G", "--kernel", "5.15"], 2, "arrived in Linux 6.5"),
    (["boot", "--memory", "4G", "--kernel", "6.1"], 2, "cannot be modelled"),
    (["boot", "--memory", "4G", "--kernel", "banana"], 2, "unknown kernel"),
    (["boot", "--memory", "4G", "--kernel", ""], 2, "kernel"),
    (["boot", "--memory", "4G", "--kernel", "6."], 2, "kernel"),
    (["boot", "--memory", "4G", "--kernel", "6" * 100], 2, "unknown kernel"),
    (["boot", "--memory", "4G", "--kernel", "../../etc/passwd"], 2, "unknown kernel"),
    (["compare", "--memory", "4G", "--kernel", "4.19"], 2, "6.5"),
    (["boot", "--memory", "4G", "--kconfig", "HZ=7"], 2, "HZ"),
    (["boot", "--memory", "4G", "--kconfig", "FOO=y"], 2, "FOO"),
    (["boot", "--memory", "4G", "--kconfig", "HZ"], 2, "NAME=VALUE"),
    (["boot", "--memory", "4G", "--kconfig", "=y"], 2, "expected NAME=VALUE"),
    (["boot", "--memory", "4G", "--kconfig", "DEFERRED_STRUCT_PAGE_INIT=maybe"], 2, "DEFERRED_STRUCT_PAGE_INIT"),
    (["boot", "--memory", "4G", "--patch", "bogus"], 2, "bogus"),
    (["compare", "--memory", "4G", "--patch", "bogus"], 2, "bogus"),
    (["boot", "--memory", "4G", "--frobnicate"], 2, "No such option"),
    (["boot", "--memory"], 2, "requires an argument"),
    (["boot"], 2, "Missing option '--memory'"),
    (["compare"], 2, "Missing option '--memory'"),
    (["frobnicate"], 2, "No such command"),
    (["boot", "--memory", "4G", "--platform", "snp", "--profile", "tdx"], 2, "is for tdx, not snp"),
    (["compare", "--memory", "4G", "--platform", "snp", "--profile", "tdx"], 2, "is for tdx, not snp"),
    (["boot", "--memory", "4G", "--platform", "snp", "--firmware", "{garbage}"], 2, "not an OVMF"),
    (["boot", "--memory", "4G", "--firmware-accept", "1M"], 2, "firmware accepts too little"),
    (["boot", "--memory", "4G", "--profile", "bogus"], 2, "no profile named 'bogus'"),
    (["calibrate", "--profile", "bogus"], 2, "no profile named 'bogus'"),
    (["inspect"], 2, "Missing argument"),
    (["inspect", "--kind", "weird", LOG], 2, "is not one of"),
    (["inspect", "--boot", "0", LOG], 2, "boots count from 1"),
    (["inspect", "--boot", "2", LOG], 2, "there is no boot 2"),
    (["inspect", "--boot", "x", LOG], 2, "not a valid integer"),
    (["inspect", "--kind", "meminfo", LOG], 2, "meminfo"),
    (["inspect", "--kind", "vmstat", LOG], 2, "vmstat"),
    (["inspect", "--kind", "efi-memmap", LOG], 2, f"{LOG}: efi-memmap: not an EFI memory map"),
    (["inspect", "--kind", "hob-list", LOG], 2, f"{LOG}: hob-list: HOB at offset 0x0"),
    (["inspect", "--kind", "firmware", LOG], 2, f"{LOG}: firmware: no OVMF GUIDed table footer"),
    (["inspect", "--kind", "unaccepted-table", LOG], 2, f"{LOG}: unaccepted-table:"),
    (["status", "--watch", "0"], 2, "more than 0"),
    (["status", "--watch", "-5"], 2, "more than 0"),
    (["status", "--watch", "inf"], 2, "more than 0"),
    (["status", "--watch", "abc"], 2, "not a valid float"),
    (["status", "--samples", "0"], 2, "between 1"),
    (["status", "--samples", "-2"], 2, "between 1"),
    (["status", "--root", "{missing}"], 2, "not a folder"),
    (["status", "--root", "{empty}"], 2, "not a folder"),
    # --like
    (["boot", "--like", NO_SIZE_LOG], 2, "give --memory"),
    (["compare", "--like", NO_SIZE_LOG], 2, "give --memory"),
    (["boot", "--like", LOG, "--kernel", "6.1"], 2, "cannot be modelled"),
    (["boot", "--like", LOG, "--memory", "1M"], 2, "between 512 MiB"),
    (["boot", "--like", "{textjunk}"], 2, "no kernel log line"),
    (["boot", "--like", "{hostlog}"], 2, "TDX host's log"),
    (["boot", "--like", "{oldkernel}", "--memory", "4G"], 2, "give --kernel"),
    # profiles
    (["boot", "--memory", "4G", "--profile", "{bad_toml}"], 2, "not valid TOML"),
    (["boot", "--memory", "4G", "--profile", "{empty_toml}"], 2, "{empty_toml}: file is empty"),
    (["boot", "--memory", "4G", "--profile", "{wrong_types}"], 2, "{wrong_types}: [profile] name: missing"),
    (["boot", "--memory", "4G", "--profile", "{no_params}"], 2, "{no_params}: [defaults]: missing section"),
    (["boot", "--memory", "4G", "--profile", "{latin1_toml}"], 2, "profile"),
    (["boot", "--memory", "4G", "--profile", "{huge_toml}"], 2, "limit for profiles"),
    (["boot", "--memory", "4G", "--profile", "{missing}.toml"], 2, "no such profile file"),
    (["compare", "--memory", "4G", "--profile", "{bad_toml}"], 2, "not valid TOML"),
    (["calibrate", "--profile", "{bad_toml}"], 2, "not valid TOML"),
    # calibration tables
    (["calibrate", "--data", "{bad_csv}"], 2, "{bad_csv}: not a calibration table: missing column(s)"),
    (["calibrate", "--data", "{empty}"], 2, "empty"),
    (["calibrate", "--data", "{garbage}"], 2, "{garbage}: not a text (UTF-8) file"),
    (["calibrate", "--data", "{sparse}"], 2, "limit"),
    # output paths
    (["boot", "--memory", "4G", "--plot", "{adir}"], 2, "a plot is written as PNG"),
    (["boot", "--memory", "4G", "--plot", "{dir_png}"], 2, "is a directory"),
    (["boot", "--memory", "4G", "--plot", "{plotlink}"], 2, "is a symbolic link"),
    (["boot", "--memory", "4G", "--plot", "{missing}/x.png"], 2, "does not exist"),
    (["boot", "--memory", "4G", "--plot", "{tmp}/x.gif"], 2, "PNG, SVG or PDF"),
    (["boot", "--memory", "4G", "--plot", "{tmp}/x"], 2, "PNG, SVG or PDF"),
    (["boot", "--memory", "4G", "--plot", "-", "--json"], 2, "both write to standard output"),
    (["compare", "--memory", "4G", "--plot", "{tmp}/x.jpeg"], 2, "PNG, SVG or PDF"),
    (["compare", "--memory", "4G", "--plot", "{plotlink}"], 2, "is a symbolic link"),
    (["boot", "--memory", "4G", "--dump", "{afile}"], 2, "is not a folder"),
    (["boot", "--memory", "4G", "--dump", "{olddump}"], 2, "folder is not empty"),
    (["boot", "--memory", "4G", "--dump", "{homedir}", "--force"], 2, "not a dump's"),
    (["boot", "--memory", "4G", "--dump", "{dirlink}"], 2, "is a symbolic link"),
    (["boot", "--memory", "4G", "--dump", "-"], 2, "name a folder"),
    (["boot", "--memory", "4G", "--dump", "{missing}/sub/dump"], 2, "does not exist"),
    (["boot", "--memory", "4G", "--dump", "{dumpwithdir}"], 2, "is a directory, not a file"),
    (["calibrate", "--profile", "tdx", "--out", "{missing}/p.toml"], 2, "does not exist"),
    (["calibrate", "--profile", "tdx", "--out", "{plotlink}"], 2, "is a symbolic link"),
    (["calibrate", "--out", "{tmp}/one.toml"], 2, "with several profiles"),
    (["calibrate", "--out", "-"], 2, "with several profiles"),
    (["calibrate", "--profile", "tdx", "--out", "-", "--json"], 2, "both write to standard output"),
    (["status", "--csv", "{adir}"], 2, "is a directory"),
    (["status", "--csv", "{plotlink}"], 2, "is a symbolic link"),
    (["status", "--plot", "{tmp}/d.bmp"], 2, "PNG, SVG or PDF"),
    (["status", "--csv", "-", "--plot", "-"], 2, "both write to standard output"),
    # modelled failures: exit 3
    (["boot", "--memory", "67000M", "--kernel", "6.12", "--firmware-accept", "below-4g"], 3, "table-reservation"),
    (["boot", "--memory", "1G", "--shell-footprint", "2G"], 3, "out of memory"),
    (["boot", "--memory", "1G", "--shell-footprint", "2G", "--plot", "{tmp}/never.png"], 3, "out of memory"),
    (["compare", "--memory", "67000M", "--kernel", "6.12", "--firmware-accept", "below-4g"], 3, "table-reservation"),
]

#: Odd files, and the commands that read a file.
ODD = ["missing", "adir", "empty", "garbage", "sparse", "badutf", "broken", "nul_text", "sock"]
READERS = [
    ["inspect", "{f}"],
    ["boot", "--like", "{f}"],
    ["boot", "--memory", "4G", "--firmware", "{f}"],
    ["calibrate", "--data", "{f}"],
    ["compare", "--like", "{f}"],
    ["boot", "--memory", "4G", "--profile", "{f}"],
]
#: What reading each odd file must say, by file; (reader, file) pairs that say something else.
ODD_ERRORS = {"missing": "no such", "adir": "is a directory, not a file", "empty": "file is empty",
              "sparse": "file is 300 MiB, over the", "broken": "no such file (a broken symbolic link",
              "sock": "is a socket, not a regular file"}
BY_READER = {
    "inspect": {"garbage": "cannot tell what kind of file", "badutf": "cannot tell what kind of file",
                "nul_text": "cannot tell what kind of file"},
    "--like": {"garbage": "dmesg: binary data, not text", "badutf": "dmesg: binary data, not text",
               "nul_text": "dmesg: binary data, not text"},
    "--firmware": {"garbage": "no OVMF GUIDed table footer", "badutf": "no OVMF GUIDed table footer",
                   "nul_text": "36 bytes is too small to be an OVMF/TDVF firmware image"},
    "--data": {"garbage": "not a text (UTF-8) file", "badutf": "not a text (UTF-8) file",
               "nul_text": "not a calibration table"},
    "--profile": {"garbage": "cannot read profile", "badutf": "cannot read profile", "nul_text": "not valid TOML"},
}
for odd in ODD:
    for reader in READERS:
        which = next(k for k in BY_READER if k in reader)
        needle = "{" + odd + "}: " + BY_READER[which].get(odd, ODD_ERRORS.get(odd, ""))
        CASES.append(([a.replace("{f}", "{" + odd + "}") for a in reader], 2, needle))

#: Cases with FIFOs and devices: in a subprocess, with a timeout.
DEVICES = ["fifo", "devzero", "devnull", "zerolink", "fifo_png"]
SUBPROCESS_CASES: list[tuple[list[str], int, str]] = [
    (["inspect", "{fifo}"], 2, "FIFO"),
    (["boot", "--like", "{fifo}"], 2, "FIFO"),
    (["boot", "--like", "/dev/zero"], 2, "character device"),
    (["boot", "--memory", "4G", "--firmware", "{zerolink}"], 2, "character device"),
    (["calibrate", "--data", "{fifo}"], 2, "FIFO"),
    (["boot", "--memory", "4G", "--profile", "{fifo_toml}"], 2, "FIFO"),
    (["boot", "--memory", "4G", "--profile", "/dev/zero"], 2, "character device"),
    (["boot", "--memory", "4G", "--plot", "{fifo_png}"], 2, "FIFO"),
    (["boot", "--memory", "4G", "--plot", "/dev/null"], 2, "PNG, SVG or PDF"),
    (["boot", "--memory", "4G", "--plot", "{nulllink_png}"], 2, "symbolic link"),
    (["calibrate", "--profile", "tdx", "--out", "/dev/null"], 2, "character device"),
    (["status", "--csv", "{fifo}"], 2, "FIFO"),
    (["status", "--root", "{tmp}", "--csv", "/dev/full"], 2, "character device"),
    (["boot", "--memory", "4G", "--dump", "/dev/null"], 2, "is not a folder"),
]


# -- the zoo of odd files -----------------------------------------------------------------------


def _zoo(tmp: Path) -> dict[str, str]:
    z: dict[str, str] = {"tmp": str(tmp), "missing": str(tmp / "missing")}
    (tmp / "adir").mkdir()
    z["adir"] = str(tmp / "adir")
    (tmp / "dir.png").mkdir()
    z["dir_png"] = str(tmp / "dir.png")
    for name, data in {
        "empty": b"", "garbage": bytes(range(256)) * 8, "badutf": b"\xff\xfe\xfa not utf-8 \xc3\x28\n" * 20,
        "nul_text": b"[    0.000000] Linux version 6.8\x00\x00\x00\n", "textjunk": b"hello world\nthis is a note\n",
        "bad_toml": b"this is = not [toml", "empty_toml": b"", "wrong_types": b"[profile]\nname = 1\n",
        "no_params": b'[profile]\nname = "x"\nplatform = "tdx"\ndescription = "d"\n',
        "latin1_toml": "[profile]\nname = \"caf\xe9\"\n".encode("latin-1"),
        "bad_csv": b"a,b\n1,2\n", "afile": b"keep me\n",
        "hostlog": (b"[    9.3] virt/tdx: CMR: [0x100000, 0x77800000)\n"
                    b"[   36.3] virt/tdx: 8396820 KB allocated for PAMT\n"),
        "oldkernel": b"[    0.000000] Linux version 6.2.0-old (x)\n",
    }.items():
        path = tmp / (name + (".toml" if name.endswith("toml") or name in ("wrong_types", "no_params") else ""))
        path.write_bytes(data)
        z[name] = str(path)
    huge = tmp / "huge.toml"
    with open(huge, "wb") as fh:
        fh.truncate(8 << 20)  # sparse: 8 MiB of zeros, over the 1 MiB profile limit
    z["huge_toml"] = str(huge)
    sparse = tmp / "sparse"
    with open(sparse, "wb") as fh:
        fh.truncate(300 << 20)  # over every text limit, costs no disk
    z["sparse"] = str(sparse)
    (tmp / "broken").symlink_to(tmp / "gone")
    z["broken"] = str(tmp / "broken")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp / "sock"))
    z["sock"] = str(tmp / "sock")
    os.mkfifo(tmp / "fifo")
    z["fifo"] = str(tmp / "fifo")
    os.mkfifo(tmp / "fifo.png")
    z["fifo_png"] = str(tmp / "fifo.png")
    os.mkfifo(tmp / "fifo.toml")
    z["fifo_toml"] = str(tmp / "fifo.toml")
    (tmp / "zerolink").symlink_to("/dev/zero")
    z["zerolink"] = str(tmp / "zerolink")
    (tmp / "null.png").symlink_to("/dev/null")
    z["nulllink_png"] = str(tmp / "null.png")
    (tmp / "real.png").write_bytes(b"real")
    (tmp / "link.png").symlink_to(tmp / "real.png")
    z["plotlink"] = str(tmp / "link.png")
    (tmp / "realdir").mkdir()
    (tmp / "dirlink").symlink_to(tmp / "realdir")
    z["dirlink"] = str(tmp / "dirlink")
    (tmp / "olddump").mkdir()
    (tmp / "olddump" / "meminfo").write_text("MemTotal: 1 kB\n")
    z["olddump"] = str(tmp / "olddump")
    (tmp / "home").mkdir()
    (tmp / "home" / "notes.txt").write_text("precious\n")
    z["homedir"] = str(tmp / "home")
    (tmp / "dwd").mkdir()
    (tmp / "dwd" / "vmstat").mkdir()
    z["dumpwithdir"] = str(tmp / "dwd")
    return z


def _snapshot(tmp: Path) -> dict[str, tuple[int, int]]:
    """Every path under tmp with its type and size: what a case must leave as it was."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size)
    return out


def _fill(args: list[str], zoo: dict[str, str]) -> list[str]:
    return [a.format(**zoo) if "{" in a else a for a in args]


def _check(code: int, out: bytes, err: str, expected: int, needle: str, results_on_stdout: bool = False) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert code == expected, (code, err)
    assert len(lines) == 1, err
    prefix = "lazyaccept: guest failed: " if expected == 3 else "lazyaccept: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert needle in lines[0], (needle, lines[0])
    if not results_on_stdout:
        assert out == b"", out[:200]


def _id(case: tuple[list[str], int, str]) -> str:
    return " ".join(a if len(a) < 24 else a[:20] + "..." for a in case[0]).encode("unicode_escape").decode()


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_bad_input(tmp_path: Path, case: tuple[list[str], int, str]) -> None:
    args, expected, needle = case
    zoo = _zoo(tmp_path)
    before = _snapshot(tmp_path)
    r = run_cli(*_fill(args, zoo))
    needle = _fill([needle], zoo)[0]
    # A comparison in which one size failed still prints the rows that completed.
    _check(r.code, r.out_bytes, r.err, expected, needle, results_on_stdout=expected == 3 and args[0] == "compare")
    assert _snapshot(tmp_path) == before  # nothing written, nothing half-written, nothing replaced


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[_id(c) for c in SUBPROCESS_CASES])
def test_bad_input_in_a_subprocess(tmp_path: Path, case: tuple[list[str], int, str]) -> None:
    args, expected, needle = case
    zoo = _zoo(tmp_path)
    before = _snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "lazyaccept", *_fill(args, zoo)], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=env)
    needle = _fill([needle], zoo)[0]
    _check(r.returncode, r.stdout, r.stderr.decode(errors="replace"), expected, needle)
    assert _snapshot(tmp_path) == before


def test_the_battery_is_large_and_names_every_error() -> None:
    assert len(CASES) + len(SUBPROCESS_CASES) >= 200
    assert [c for c in CASES + SUBPROCESS_CASES if not c[2]] == []  # each case names the error it must give
