"""``lazyaccept drain``: run inside a guest and make it accept its unaccepted memory in the
background at a bounded cost (see :mod:`lazyaccept.scenario.drain_agent`).

Exit status 0 when drained, stopped by SIGTERM, or done with ``--total``; 2 for bad options or a
machine that is not a confidential guest (unless ``--force``); 130 on Ctrl-C (memory released).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from types import FrameType

import click

from ..base.errors import ConfigError
from ..base.units import parse_size
from ..scenario.drain_agent import DrainAgent, DrainBudget, Progress, StopReason
from ..scenario.live import probe


def _size(option: str, text: str, *, zero: bool) -> int:
    if zero and text.strip() == "0":
        return 0
    value = parse_size(text)
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{option} {text}: must be {'0 or more' if zero else 'more than 0'}")
    return value


@click.command("drain")
@click.option("--root", default="/", show_default=True, metavar="DIR",
              help="Read /proc under DIR (tests give a folder with proc/vmstat, proc/meminfo, proc/pressure/memory).")
@click.option("--rate", default="256M", show_default=True, metavar="SIZE",
              help="At most SIZE faulted per second (0: no limit but --cpu).")
@click.option("--cpu", "cpu_percent", type=float, default=25.0, show_default=True, metavar="PERCENT",
              help="At most PERCENT of one CPU.")
@click.option("--chunk", default="64M", show_default=True, metavar="SIZE", help="Fault SIZE at a time.")
@click.option("--keep-free", default="512M", show_default=True, metavar="SIZE",
              help="Give everything back when MemAvailable would fall under SIZE.")
@click.option("--hold-max", default="0", show_default=True, metavar="SIZE",
              help="Give everything back when holding SIZE (0: only --keep-free limits it).")
@click.option("--psi-limit", type=float, default=10.0, show_default=True, metavar="PERCENT",
              help="Back off (give everything back, wait) while memory PSI 'some avg10' is over PERCENT.")
@click.option("--total", default="0", show_default=True, metavar="SIZE",
              help="Stop after faulting SIZE in all (0: until nr_unaccepted is 0 or SIGTERM).")
@click.option("--every", "every_s", type=float, default=5.0, show_default=True, metavar="SECONDS",
              help="Print progress every SECONDS.")
@click.option("--force", is_flag=True, help="Run on a machine that is not a confidential guest (a test).")
@click.option("--json", "as_json", is_flag=True, help="Progress as one JSON document per line.")
def drain_cmd(root: str, rate: str, cpu_percent: float, chunk: str, keep_free: str, hold_max: str,
              psi_limit: float, total: str, every_s: float, force: bool, as_json: bool) -> None:
    """Accept this guest's unaccepted memory in the background, within a rate and CPU budget."""
    if not os.path.isdir(root):
        raise ConfigError(f"--root {root}: not a folder")
    if not (math.isfinite(cpu_percent) and 0 < cpu_percent <= 100):
        raise ConfigError(f"--cpu {cpu_percent:g}: a percentage of one CPU, more than 0 and at most 100")
    if not (math.isfinite(every_s) and 0 < every_s <= 3600):
        raise ConfigError(f"--every {every_s:g}: more than 0 and at most 3600 seconds")
    if not (math.isfinite(psi_limit) and 0 <= psi_limit <= 100):
        raise ConfigError(f"--psi-limit {psi_limit:g}: a percentage from 0 to 100")
    budget = DrainBudget(rate=float(_size("--rate", rate, zero=True)), cpu=cpu_percent / 100,
                         chunk=_size("--chunk", chunk, zero=False),
                         keep_free=_size("--keep-free", keep_free, zero=True),
                         hold_max=_size("--hold-max", hold_max, zero=True), psi_limit=psi_limit,
                         total=_size("--total", total, zero=True))
    if budget.chunk % 4096:
        raise ConfigError(f"--chunk {chunk}: a whole number of 4 KiB pages")
    status = probe(root)
    if not status.confidential and not force:
        raise ConfigError(f"{'this machine' if root == '/' else root} is not a TDX or SEV-SNP guest: it has no "
                          "unaccepted memory to drain (--force runs the agent anyway)")

    def show(p: Progress) -> None:
        if as_json:
            click.echo(json.dumps({"t_s": round(p.elapsed_s, 3), "state": p.state, "faulted_bytes": p.faulted_bytes,
                                  "held_bytes": p.held_bytes, "unaccepted_bytes": p.unaccepted_bytes,
                                  "rate_bytes_per_s": p.rate_bytes_per_s, "eta_s": p.eta_s,
                                  "cpu_fraction": round(p.cpu_fraction, 4)}))
        else:
            click.echo(p.line())
        sys.stdout.flush()

    agent = DrainAgent(root, budget, show, every_s)

    def on_term(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        reason = agent.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if reason is StopReason.NO_MEMORY:
        click.echo("lazyaccept: warning: the kernel refused a mapping; stopped, holding nothing", err=True)
