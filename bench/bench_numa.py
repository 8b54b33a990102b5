"""CPU time of a 4 TiB guest with 8 NUMA nodes and 64 vCPUs, lazy and eager (target < 2 s CPU each):
``lazyaccept boot --memory 4T --vcpus 64 --numa 8 [--policy eager]``.

Runs each command as a fresh subprocess several times (Python start-up and imports included,
bytecode caches as a pip install has them) and prints the median and best CPU seconds (user +
system) and the peak RSS.  Exit status 1 if a median misses the target, 2 if a command failed.

    python bench/bench_numa.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys

from cpu import report_repeated

TARGET_S = 2.0
COMMAND = ["boot", "--memory", "4T", "--vcpus", "64", "--numa", "8"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    return max(report_repeated(COMMAND, args.runs, TARGET_S),
               report_repeated([*COMMAND, "--policy", "eager"], args.runs, TARGET_S))


if __name__ == "__main__":
    sys.exit(main())
