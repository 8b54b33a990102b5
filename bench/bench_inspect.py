"""``lazyaccept inspect``: an OVMF image against ``virt-fw-dump --meta``, and big inputs.

    python bench/bench_inspect.py ovmf [--image PATH] [--runs N]
    python bench/bench_inspect.py big

``ovmf``: paired runs (each pair one of each, in alternating order) of ``lazyaccept inspect
IMAGE`` and ``virt-fw-dump --meta -i IMAGE`` (PyPI ``virt-firmware``, not a dependency: install
it beside lazyaccept to compare); target: the median of the per-pair CPU ratios at most 0.5.

``big``: made-up inputs far larger than real ones, as a table and with ``--json``: a 100 MB
kernel log (one real boot, then ordinary messages), a 100 MB log of nothing but BIOS-e820
lines, a 64 MiB unaccepted-table bitmap (the largest ``inspect`` reads: 1 PiB of address space)
and a 1 MiB bitmap of alternating bits (4 M runs of one unit).  Targets: under 10 s of CPU each,
and memory under twice the input (or 8 MiB, what the 1,000 entries shown take, for a small
input): the peak RSS less the RSS of the same command on a tiny file of that kind (what the
interpreter and the modules take whatever the input).

Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from cpu import LAZYACCEPT, load, measure

OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"
RATIO_TARGET = 0.5
CPU_TARGET_S = 10.0
MIB = 1 << 20
#: What the bounded output itself may take whatever the input (the 1,000 ranges shown, as a table).
OUTPUT_ALLOWANCE = 8 * MIB


def bench_ovmf(image: str, runs: int) -> int:
    vfd = shutil.which("virt-fw-dump")
    if vfd is None:
        print("virt-fw-dump not found: pip install virt-firmware beside lazyaccept to compare", file=sys.stderr)
        return 2
    ours_cmd, theirs_cmd = [*LAZYACCEPT, "inspect", image], [vfd, "--meta", "-i", image]
    measure(ours_cmd), measure(theirs_cmd)  # warm-up: bytecode caches, page cache
    ours, theirs, ratios = [], [], []
    for i in range(runs):
        pair = (measure(ours_cmd), measure(theirs_cmd)) if i % 2 == 0 else tuple(
            reversed((measure(theirs_cmd), measure(ours_cmd))))
        ours.append(pair[0].cpu_s)
        theirs.append(pair[1].cpu_s)
        ratios.append(pair[0].cpu_s / pair[1].cpu_s)
    ratio = statistics.median(ratios)
    print(f"image: {image}   ({load()})")
    print(f"lazyaccept inspect: CPU median {statistics.median(ours):.3f} s   "
          f"virt-fw-dump --meta: CPU median {statistics.median(theirs):.3f} s")
    print(f"paired runs: {runs}   median ratio {ratio:.2f}   target <= {RATIO_TARGET}   "
          f"{'OK' if ratio <= RATIO_TARGET else 'MISSED'}")
    return 0 if ratio <= RATIO_TARGET else 1


_NOISE = [
    'audit: type=1400 audit(1700000000.123:45): apparmor="STATUS" operation="profile_load" name="x" pid=1234',
    "EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none.",
    "virtio_net virtio0 enp0s1: renamed from eth0",
    "systemd[1]: Started Journal Service.",
]


def _write_log(path: Path, size: int, boot: list[str], line: Callable[[int], str]) -> None:
    with path.open("w") as f:
        n = sum(f.write(x + "\n") for x in boot)
        i = 0
        while n < size:
            n += f.write(line(i) + "\n")
            i += 1


def _table(unit: int, bitmap: bytes) -> bytes:
    return struct.pack("<IIQQ", 1, unit, 0, len(bitmap)) + bitmap


def make_inputs(d: Path) -> None:
    boot = (d / "dump" / "dmesg.txt").read_text().splitlines()
    _write_log(d / "dmesg-100M.txt", 100 * 10**6, boot,
               lambda i: f"[{10 + i * 1.3e-5:12.6f}] {_NOISE[i % len(_NOISE)]}")
    _write_log(d / "e820-100M.txt", 100 * 10**6, [],
               lambda i: f"[    0.000000] BIOS-e820: [mem {i * 0x2000:#018x}-{i * 0x2000 + 0xfff:#018x}] usable")
    (d / "bitmap-64M.bin").write_bytes(_table(2 * MIB, b"\xff" * (32 * MIB) + b"\x00" * (16 * MIB)
                                              + b"\x0f" * (16 * MIB)))
    (d / "alternating-1M.bin").write_bytes(_table(2 * MIB, b"\x55" * MIB))


def bench_big() -> int:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        dump = d / "dump"
        if measure([*LAZYACCEPT, "boot", "--memory", "4G", "--dump", str(dump)]).code:
            return 2
        # Made in another process: a child's peak RSS counts the peak of the process it was forked from.
        subprocess.run([sys.executable, __file__, "make", str(d)], check=True)
        tiny = {"log": dump / "dmesg.txt", "table": dump / "unaccepted-table.bin"}
        cases = [("dmesg-100M.txt", "log"), ("e820-100M.txt", "log"), ("bitmap-64M.bin", "table"),
                 ("alternating-1M.bin", "table")]
        print(f"({load()})")
        print(f"{'input':>20} {'size MiB':>9} {'output':>7} {'CPU s':>7} {'peak RSS MiB':>13} {'over tiny MiB':>14}")
        for name, kind in cases:
            path = d / name
            size = path.stat().st_size
            for extra in ([], ["--json"]):
                base = measure([*LAZYACCEPT, "inspect", *extra, str(tiny[kind])])
                u = measure([*LAZYACCEPT, "inspect", *extra, str(path)])
                over = u.rss_bytes - base.rss_bytes
                good = u.code == 0 and u.cpu_s < CPU_TARGET_S and over < max(2 * size, OUTPUT_ALLOWANCE)
                ok &= good
                print(f"{name:>20} {size / MIB:9.1f} {'json' if extra else 'table':>7} {u.cpu_s:7.2f} "
                      f"{u.rss_bytes / MIB:13.0f} {over / MIB:14.0f}  {'OK' if good else 'MISSED'}")
    print(f"targets: < {CPU_TARGET_S:.0f} s CPU and < 2x the input (at least {OUTPUT_ALLOWANCE // MIB} MiB) "
          f"over a tiny file's RSS: {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=["ovmf", "big", "make"])
    ap.add_argument("dir", nargs="?", help="make: where to write the big inputs (used by big)")
    ap.add_argument("--image", default=OVMF)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    if args.which == "make":
        make_inputs(Path(args.dir))
        return 0
    return bench_ovmf(args.image, args.runs) if args.which == "ovmf" else bench_big()


if __name__ == "__main__":
    sys.exit(main())
