"""Run-time benchmarks: a 1 TiB guest with a one-hour ``steady`` workload, and a 96 GiB ``drain``
with 32 workers; each in a fresh process (start-up included).  Targets: < 5 s and < 1 GiB each.

    python bench/bench_run.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

TARGET_S = 5.0
TARGET_RSS = 1 << 30
RUNS = [
    ["run", "--memory", "1T", "--workload", "steady:100M,for=1h"],
    ["run", "--memory", "96G", "--vcpus", "32", "--workload", "drain,workers=32"],
]


def main() -> int:
    ok = True
    print("each a fresh `python -m lazyaccept` process (start-up included); baselines included")
    for args in RUNS:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "lazyaccept", *args, "--json"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
        rss = usage.ru_maxrss * 1024
        good = wall < TARGET_S and rss < TARGET_RSS
        ok &= good
        print(f"{' '.join(args):60s} {wall:6.2f} s {rss / 2**20:8.1f} MiB  {'OK' if good else 'MISSED'}")
    print(f"targets: < {TARGET_S:.0f} s and < {TARGET_RSS >> 30} GiB each: {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
