"""CPU time of the README's main command (target < 0.3 s CPU):
``lazyaccept compare --memory 4G --memory 64G --profile tdx-seed --profile tdx``.

Runs the command as a fresh subprocess several times (Python start-up and imports included,
bytecode caches as a pip install has them) and prints the median and best CPU seconds (user +
system) and the peak RSS.  Exit status 1 if the median misses the target.

    python bench/bench_compare.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys

from cpu import LAZYACCEPT, load, measure, median_cpu

TARGET_S = 0.3
COMMAND = ["compare", "--memory", "4G", "--memory", "64G", "--profile", "tdx-seed", "--profile", "tdx"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    cmd = [*LAZYACCEPT, *COMMAND]
    if measure(cmd).code:  # also writes the bytecode caches
        return 2
    runs = [measure(cmd) for _ in range(args.runs)]
    med = median_cpu(runs)
    print(f"command: lazyaccept {' '.join(COMMAND)}   ({load()})")
    print(f"runs: {args.runs}   CPU median {med:.3f} s   best {min(u.cpu_s for u in runs):.3f} s   "
          f"peak RSS {max(u.rss_bytes for u in runs) / 2**20:.0f} MiB   target < {TARGET_S} s   "
          f"{'OK' if med < TARGET_S else 'MISSED'}")
    return 0 if med < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
