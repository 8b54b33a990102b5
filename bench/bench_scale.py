"""One eager and one lazy boot at 1G, 16G, 256G, 1T, 4T and 16T (the profile's vCPUs), and a 16 TiB
boot and a 64 TiB boot with 4096 vCPUs, each in a fresh subprocess.

Prints the wall and CPU time (Python start-up included) and the peak resident memory of each run.
Targets for 16 TiB (and 16 TiB with 4096 vCPUs): < 10 s and < 1 GiB; for 64 TiB with 4096 vCPUs
(the largest guest the model takes): < 2 s of CPU and < 1 GiB.  Exit status 1 if one misses them.

    python bench/bench_scale.py [--platform tdx|snp] [--sizes 1G,16G,...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SIZES = ["1G", "16G", "256G", "1T", "4T", "16T"]
TARGET_S = 10.0
TARGET_RSS = 1 << 30
TARGET_64T_CPU_S = 2.0

CHILD = """
import sys
from lazyaccept.base.choices import AcceptPolicy, Tee
from lazyaccept.base.units import parse_size
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import resolve, run
platform, size, policy, vcpus = sys.argv[1:5]
prof = load_profile(platform)
n = int(vcpus) if vcpus != "-" else None
request = GuestRequest(parse_size(size), Tee(platform), AcceptPolicy(policy), vcpus=n)
res = run(resolve(request, prof), prof)
print(f"{res.boot_s:.6f} {res.accept_s:.6f}")
"""


def one(platform: str, size: str, policy: str, vcpus: str = "-") -> tuple[float, float, int, float]:
    """Wall and CPU seconds, peak RSS bytes and simulated boot seconds of one run in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, platform, size, policy, vcpus], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{platform} {size} {policy} failed:\n{err}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss * 1024, float(out.split()[0])  # ru_maxrss is in KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--platform", choices=["tdx", "snp"], default="tdx")
    ap.add_argument("--sizes", default=",".join(SIZES))
    args = ap.parse_args()
    print(f"platform {args.platform}; each run a fresh Python process (start-up included)")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'memory':>8} {'policy':>11} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13} {'simulated boot s':>17}")
    ok = True
    runs = [(size, policy, "-") for size in args.sizes.split(",") for policy in ("eager", "lazy")]
    runs += [("16T", "lazy", "4096"), ("16T", "eager", "4096"), ("64T", "lazy", "4096"), ("64T", "eager", "4096")]
    for size, policy, vcpus in runs:
        wall, cpu, rss, boot = one(args.platform, size, policy, vcpus)
        label = policy if vcpus == "-" else f"{policy}/{vcpus}v"
        print(f"{size:>8} {label:>11} {wall:8.2f} {cpu:7.2f} {rss / 2**20:13.1f} {boot:17.2f}")
        if size.upper().startswith("16T") and (wall >= TARGET_S or rss >= TARGET_RSS):
            ok = False
        if size.upper().startswith("64T") and (cpu >= TARGET_64T_CPU_S or rss >= TARGET_RSS):
            ok = False
    print(f"targets: 16 TiB < {TARGET_S:.0f} s, 64 TiB with 4096 vCPUs < {TARGET_64T_CPU_S:.0f} s CPU, "
          f"each < {TARGET_RSS >> 30} GiB: {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
