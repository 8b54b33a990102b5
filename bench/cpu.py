"""Run a command as a child process and measure what it used: CPU seconds (user + system) and
peak resident memory, from the kernel's accounting of that one child (``os.wait4``).

CPU time rather than wall time: on a shared machine wall time grows with the load, CPU time
much less.  Benchmarks print the load average with their figures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import dataclass

#: Where the program is: the installed ``lazyaccept``, as a user runs it.
LAZYACCEPT = [sys.executable, "-c", "from lazyaccept.cli import main; main()"]


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    rss_bytes: int
    code: int


def measure(cmd: list[str], *, stdout: int | None = subprocess.DEVNULL) -> Usage:
    """One run of ``cmd``: CPU seconds, peak RSS and exit status."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a pip install has it
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        print(f"{' '.join(cmd)}: exit status {code}\n{err}", file=sys.stderr)
    return Usage(usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, code)


def median_cpu(runs: list[Usage]) -> float:
    return statistics.median(u.cpu_s for u in runs)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def report_repeated(args: list[str], runs: int, target_s: float) -> int:
    """Run ``lazyaccept ARGS`` once to write the bytecode caches, then ``runs`` times; print the
    median and best CPU seconds and the peak RSS against ``target_s``.  Exit status: 0 met, 1
    missed, 2 the command itself failed."""
    cmd = [*LAZYACCEPT, *args]
    if measure(cmd).code:
        return 2
    usages = [measure(cmd) for _ in range(runs)]
    med = median_cpu(usages)
    print(f"command: lazyaccept {' '.join(args)}   ({load()})")
    print(f"runs: {runs}   CPU median {med:.3f} s   best {min(u.cpu_s for u in usages):.3f} s   "
          f"peak RSS {max(u.rss_bytes for u in usages) / 2**20:.0f} MiB   target < {target_s} s   "
          f"{'OK' if med < target_s else 'MISSED'}")
    return 0 if med < target_s else 1
