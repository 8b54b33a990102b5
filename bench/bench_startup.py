"""CPU time of ``lazyaccept --help`` (start-up: Python, click and the command list; target < 0.15 s).

    python bench/bench_startup.py [--runs N]

Each run a fresh process with bytecode caches as a pip install has them (one warm-up run writes
them).  Prints the median and best CPU seconds; exit status 1 if the median misses the target.
"""

from __future__ import annotations

import argparse
import sys

from cpu import LAZYACCEPT, load, measure, median_cpu

TARGET_S = 0.15


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cmd = [*LAZYACCEPT, "--help"]
    measure(cmd)  # writes the bytecode caches
    runs = [measure(cmd) for _ in range(args.runs)]
    med = median_cpu(runs)
    print(f"command: lazyaccept --help   ({load()})")
    print(f"runs: {args.runs}   CPU median {med:.3f} s   best {min(u.cpu_s for u in runs):.3f} s   "
          f"peak RSS {max(u.rss_bytes for u in runs) / 2**20:.0f} MiB   target < {TARGET_S} s   "
          f"{'OK' if med < TARGET_S else 'MISSED'}")
    return 0 if med < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
