"""Workloads after the shell, parsed once at the edge (``--workload KIND:ARGS[@SECONDS]``).

* ``touch:SIZE[,threads=N]``: allocate and write SIZE once, split over N threads (``eatmemory``);
* ``drain[,workers=N]``: N workers allocate and touch free memory until nothing is unaccepted
  (intel/lkvs ``BM/tdx-guest/tdx_mem_test.sh``: ``tail /dev/zero`` workers, polling
  ``nr_unaccepted`` in /proc/vmstat);
* ``steady:RATE,for=DURATION``: a service growing its memory at RATE bytes/s for DURATION;
* ``pretouch:SIZE``: a JVM with ``-XX:+AlwaysPreTouch`` and a SIZE heap (one pretouch thread
  per vCPU);
* ``trace:FILE.csv``: replay ``time_s,bytes,thread`` allocations;
* ``hotplug:SIZE``: the host hot-adds a SIZE DIMM and the guest onlines it (guest/hotplug.py);
* ``kexec``: ``kexec -l`` of a kernel and initrd, then ``kexec -e`` (guest/kexec.py): nothing
  after it runs in this kernel.

``@SECONDS`` starts the workload that long after the shell.  A workload is a frozen value: the
trace file is read here, once.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from enum import StrEnum

from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..base.units import parse_count, parse_size
from ..guest.hotplug import check_size

#: Longest trace file read (a trace is text: 64 MiB is millions of rows).
TRACE_LIMIT = 64 << 20


class WorkloadKind(StrEnum):
    TOUCH = "touch"
    DRAIN = "drain"
    STEADY = "steady"
    PRETOUCH = "pretouch"
    TRACE = "trace"
    HOTPLUG = "hotplug"
    KEXEC = "kexec"


@dataclass(frozen=True)
class Workload:
    """One workload: what it allocates, on how many threads, from when."""

    kind: WorkloadKind
    size: int = 0  # bytes (touch, pretouch)
    threads: int = 1  # touch threads, drain workers; pretouch: 0 = one per vCPU
    rate: int = 0  # bytes per second (steady)
    duration: float = 0.0  # seconds (steady)
    start: float = 0.0  # seconds after the shell
    #: trace rows: (seconds after the workload's start, bytes, thread)
    trace: tuple[tuple[float, int, int], ...] = ()
    text: str = ""

    @property
    def name(self) -> str:
        return self.text or self.kind.value

    @classmethod
    def parse(cls, text: str) -> Workload:
        spec, at, start_text = text.strip().partition("@")
        start = _seconds(start_text, text, "start") if at else 0.0
        # "touch:32G,threads=4" or, for drain, "drain,workers=32" (no positional argument)
        kind_text, _, args_text = spec.partition(":") if ":" in spec else spec.partition(",")
        try:
            kind = WorkloadKind(kind_text.strip().lower())
        except ValueError:
            known = ", ".join(k.value for k in WorkloadKind)
            raise ConfigError(f"--workload {text!r}: unknown workload (known: {known})") from None
        args = [a.strip() for a in args_text.split(",") if a.strip()]
        positional = [a for a in args if "=" not in a]
        keyed = dict(a.split("=", 1) for a in args if "=" in a)
        keyed = {k.strip().lower(): v.strip() for k, v in keyed.items()}

        def only(allowed: set[str], npos: int) -> None:
            extra = set(keyed) - allowed
            if extra or len(positional) != npos:
                want = {WorkloadKind.TOUCH: "touch:SIZE[,threads=N]", WorkloadKind.DRAIN: "drain[,workers=N]",
                        WorkloadKind.STEADY: "steady:RATE,for=DURATION", WorkloadKind.PRETOUCH: "pretouch:SIZE",
                        WorkloadKind.TRACE: "trace:FILE.csv", WorkloadKind.HOTPLUG: "hotplug:SIZE",
                        WorkloadKind.KEXEC: "kexec"}[kind]
                raise ConfigError(f"--workload {text!r}: expected {want}")

        if kind is WorkloadKind.TOUCH:
            only({"threads"}, 1)
            return cls(kind, size=parse_size(positional[0]), threads=_count(keyed.get("threads", "1"), text),
                       start=start, text=text)
        if kind is WorkloadKind.DRAIN:
            only({"workers"}, 0)
            return cls(kind, threads=_count(keyed.get("workers", "1"), text), start=start, text=text)
        if kind is WorkloadKind.STEADY:
            only({"for"}, 1)
            if "for" not in keyed:
                raise ConfigError(f"--workload {text!r}: steady needs for=DURATION (e.g. for=1h)")
            return cls(kind, rate=parse_size(positional[0]), duration=_seconds(keyed["for"], text, "for"),
                       start=start, text=text)
        if kind is WorkloadKind.KEXEC:
            only(set(), 0)
            return cls(kind, start=start, text=text)
        if kind is WorkloadKind.HOTPLUG:
            only(set(), 1)
            size = parse_size(positional[0])
            try:
                check_size(size)
            except ConfigError as e:
                raise ConfigError(f"--workload {text!r}: {e}") from None
            return cls(kind, size=size, start=start, text=text)
        if kind is WorkloadKind.PRETOUCH:
            only(set(), 1)
            return cls(kind, size=parse_size(positional[0]), threads=0, start=start, text=text)
        only(set(), 1)
        return cls(kind, trace=read_trace(positional[0]), start=start, text=text)


def _count(value: str, text: str) -> int:
    return parse_count(value, f"--workload {text!r}: thread count")


_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}


def _seconds(value: str, text: str, what: str) -> float:
    v = value.strip().lower()
    number = v.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = v[len(number):]
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except (KeyError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= 30 * 86400):
        raise ConfigError(f"--workload {text!r}: {what} must be a duration like 30s, 5m or 1h (up to 30 days)")
    return seconds


def read_trace(path: str) -> tuple[tuple[float, int, int], ...]:
    """Rows ``time_s,bytes,thread`` of a CSV trace (a header row is optional), time-ordered."""
    data = read_input(path, limit=TRACE_LIMIT, what="trace files")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text (UTF-8) file") from None
    rows = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (n == 1 and row[0].strip().lower().startswith("time")):
            continue
        try:
            t, nbytes, thread = float(row[0]), int(row[1]), int(row[2])
        except (ValueError, IndexError):
            raise FormatError(f"{path}: line {n}: expected time_s,bytes,thread, not {','.join(row)[:60]!r}") from None
        if not (math.isfinite(t) and t >= 0 and 0 < nbytes <= 1 << 50 and 0 <= thread < 4096):
            raise FormatError(f"{path}: line {n}: time must be >= 0, bytes positive, thread from 0 to 4095")
        rows.append((t, nbytes, thread))
    if not rows:
        raise FormatError(f"{path}: no trace rows (time_s,bytes,thread)")
    return tuple(sorted(rows))
