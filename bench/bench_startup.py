"""CPU time of ``lazyaccept --help`` (start-up: Python, click and the command list; target < 0.15 s).

    python bench/bench_startup.py [--runs N]

Each run a fresh process with bytecode caches as a pip install has them (one warm-up run writes
them).  Prints the median and best CPU seconds; exit status 1 if the median misses the target.
"""

from __future__ import annotations

import argparse
import sys

from cpu import report_repeated

TARGET_S = 0.15


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    return report_repeated(["--help"], args.runs, TARGET_S)

if __name__ == "__main__":
    sys.exit(main())
