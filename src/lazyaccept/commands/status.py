"""``lazyaccept status``: the platform and unaccepted memory of the guest this runs on (or of a
folder of its files), and with ``--watch`` how fast unaccepted memory drains.

Exit status 0, also on a machine that is not a confidential guest (it says so); 2 for bad options.
"""

from __future__ import annotations

import math
import os
import sys
import time

import click

from ..base.errors import ConfigError
from ..base.fileio import STDOUT, write_output
from ..presentation.console import json_text, make_console
from ..presentation.prometheus import prometheus_text
from ..presentation.status_report import plot_drain, print_status, samples_csv, status_document
from ..scenario.live import Sample, drain, probe, take_sample
from .options import check_output_file, check_plot_file, check_stdout_once

#: The pause between samples and the clock (tests replace them).
_sleep = time.sleep
_clock = time.monotonic
MAX_INTERVAL = 3600.0
MAX_SAMPLES = 1_000_000
#: Watching until drained stops after this many samples in a row without any change: a guest whose
#: unaccepted memory stands still (nothing allocates, or a copied tree of files) would be watched for
#: ever.  --samples N watches longer.
STILL_SAMPLES = 30


def _check_watch(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_INTERVAL):
        raise click.BadParameter(f"the interval must be more than 0 and at most {MAX_INTERVAL:g} seconds",
                                 ctx=ctx, param=param)
    return value


def _check_samples(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_SAMPLES:
        raise click.BadParameter(f"between 1 and {MAX_SAMPLES:,}", ctx=ctx, param=param)
    return value


@click.command("status")
@click.option("--root", default="/", show_default=True, metavar="DIR",
              help="Read /proc, /sys, /dev/kmsg and /var/log/dmesg under DIR (a copy of a guest's files).")
@click.option("--watch", "interval", type=float, default=None, callback=_check_watch, metavar="SECONDS",
              help="Sample unaccepted memory every SECONDS until it is drained (or --samples are taken).")
@click.option("--samples", type=int, default=None, callback=_check_samples, metavar="N",
              help="Take N samples (with --watch: its interval; alone: one second apart).")
@click.option("--csv", "csv_file", default=None, metavar="FILE", help="Write the samples as CSV (- for stdout).")
@click.option("--plot", "plot_file", default=None, metavar="FILE",
              help="Plot unaccepted memory and its drain rate (.png, .svg, .pdf; - for PNG on stdout).")
@click.option("--prometheus", "prom_file", default=None, metavar="FILE",
              help="Write node-exporter textfile metrics (unaccepted bytes, drain rate, ETA, host memory committed).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status_cmd(root: str, interval: float | None, samples: int | None, csv_file: str | None, plot_file: str | None,
               as_json: bool, prom_file: str | None = None) -> None:
    """Is this a TDX or SEV-SNP guest, how does it accept memory, how much is still unaccepted?"""
    check_output_file(csv_file, stdout=True)
    check_output_file(prom_file, stdout=True)
    check_plot_file(plot_file)
    check_stdout_once(("--json", as_json), ("--csv -", csv_file == STDOUT), ("--plot -", plot_file == STDOUT),
                      ("--prometheus -", prom_file == STDOUT))
    if not os.path.isdir(root):
        raise ConfigError(f"--root {root}: not a folder")
    status = probe(root)
    watching = interval is not None or samples is not None
    count = samples if samples is not None else (None if watching else 1)
    pause = interval if interval is not None else 1.0
    taken: list[Sample] = []
    interrupted = False
    start = _clock()
    still = 0
    if count is None and sys.stderr.isatty():
        click.echo(f"lazyaccept: watching unaccepted memory every {pause:g} s until it is drained (or stands still "
                   f"for {STILL_SAMPLES} samples); Ctrl-C stops", err=True)
    try:
        while count is None or len(taken) < count:
            if taken:
                _sleep(pause)
            s = take_sample(root, _clock() - start if taken else 0.0)
            if s is None:
                status.notes.append("/proc/meminfo: not readable: no unaccepted-memory counters")
                break
            taken.append(s)
            if s.unaccepted_bytes is None:
                if watching:
                    status.notes.append("no Unaccepted: or nr_unaccepted counter: nothing to watch")
                break
            if count is None and s.unaccepted_bytes == 0:
                break  # drained
            still = still + 1 if len(taken) > 1 and s.unaccepted_bytes == taken[-2].unaccepted_bytes else 0
            if count is None and still >= STILL_SAMPLES:
                status.notes.append(f"unaccepted memory did not change in {still} samples ({still * pause:g} s): "
                                    "stopped watching; --samples N watches longer")
                break
    except KeyboardInterrupt:
        interrupted = True
        status.notes.append(f"interrupted after {len(taken)} sample(s)")
    counted = [s for s in taken if s.unaccepted_bytes is not None]
    result = drain(taken)
    for s in taken:
        if s.agree is False:
            status.notes.append(f"at {s.t:.2f} s meminfo Unaccepted ({s.unaccepted_kb} kB) and vmstat nr_unaccepted "
                                f"({s.nr_unaccepted} pages) disagree")
            break
    if csv_file is not None or plot_file is not None:
        if counted:
            if csv_file is not None:
                write_output(csv_file, samples_csv(taken))
            if plot_file is not None:
                plot_drain(taken, plot_file, f"Unaccepted memory, {status.platform or 'not a confidential'} guest")
        else:
            status.notes.append("no samples with unaccepted-memory counters: CSV and plot not written")
    if prom_file is not None:
        write_output(prom_file, prometheus_text(status, taken, result))
    if as_json:
        click.echo(json_text(status_document(status, taken, result)))
    else:
        print_status(make_console(stderr=STDOUT in (csv_file, plot_file, prom_file)), status, taken, result)
    if interrupted:
        raise KeyboardInterrupt
