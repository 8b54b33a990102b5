"""Many guests on one host: 64 guests of 64 GiB booting together on one host (and each distinct
guest once alone, for the contention), in a fresh process, start-up included.  Target: < 10 s of
CPU (user + system).

    python bench/bench_host.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys

from cpu import report_repeated

TARGET_S = 10.0
ARGS = ["host", "--guest", "64x64G", "--json"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    return report_repeated(ARGS, args.runs, TARGET_S)


if __name__ == "__main__":
    sys.exit(main())
