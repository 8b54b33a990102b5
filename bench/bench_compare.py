"""Wall time of ``lazyaccept compare --memory 4G --memory 64G --profile tdx-seed --profile tdx`` (target < 1 s).

Runs the command as a fresh subprocess several times (Python start-up and imports included)
and prints the best and median wall times.  Exit status 1 if the median misses the target.

    python bench/bench_compare.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_S = 1.0
COMMAND = ["compare", "--memory", "4G", "--memory", "64G", "--profile", "tdx-seed", "--profile", "tdx"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    exe = shutil.which("lazyaccept")
    cmd = [exe, *COMMAND] if exe else [sys.executable, "-c", "from lazyaccept.cli import main; main()", *COMMAND]
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 2
    med = statistics.median(times)
    print(f"command: lazyaccept {' '.join(COMMAND)}")
    print(f"runs: {args.runs}   best: {min(times):.3f} s   median: {med:.3f} s   target: < {TARGET_S:.1f} s   "
          f"{'OK' if med < TARGET_S else 'MISSED'}")
    return 0 if med < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
