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

from cpu import report_repeated

TARGET_S = 0.3
COMMAND = ["compare", "--memory", "4G", "--memory", "64G", "--profile", "tdx-seed", "--profile", "tdx"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    return report_repeated(COMMAND, args.runs, TARGET_S)

if __name__ == "__main__":
    sys.exit(main())
