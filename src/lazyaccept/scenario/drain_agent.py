"""The drain agent: make a running guest accept its unaccepted memory in the background, at a
bounded cost (``lazyaccept drain``).

Linux accepts memory only when the page allocator runs short of accepted free pages
(``cond_accept_memory()`` in mm/page_alloc.c accepts up to the zone's high watermark), so a page
freed goes back *accepted* and the next allocation takes it again.  Touching memory and freeing it
at once would therefore accept a few MiB and then cycle through the same pages.  The agent does
what the simulator's ``userspace-drain`` policy models: it faults memory in chunks and *holds*
it, so each chunk must come from memory not accepted before, and it gives everything back:

* when the guest's available memory (``MemAvailable``, which counts unaccepted memory as free)
  falls under ``keep_free``, or what it holds reaches ``hold_max``: all of it is unmapped at once
  and the agent goes on (freed pages stay accepted, so the next chunks find unaccepted memory
  only once those are used again);
* under memory pressure (PSI ``/proc/pressure/memory``, ``some avg10`` over ``psi_limit``): all
  is unmapped and the agent waits until the pressure falls;
* when ``nr_unaccepted`` (``/proc/vmstat``) is 0, on SIGTERM or SIGINT, or after ``total`` bytes:
  all is unmapped and the agent stops, holding nothing.

A chunk is an anonymous private mapping (``mmap``), faulted with ``madvise(MADV_POPULATE_WRITE)``
(Linux 5.14) or, where the kernel refuses that, by writing one byte per page.  The budgets: after
each chunk the agent sleeps until the bytes faulted so far fit ``rate`` and the CPU time it used
(``time.process_time()``) fits ``cpu`` (a fraction of one CPU).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..base.units import PAGE_SIZE

_PROT_READ, _PROT_WRITE = 0x1, 0x2
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
#: include/uapi/asm-generic/mman-common.h
MADV_POPULATE_WRITE = 23
_MAP_FAILED = ctypes.c_void_p(-1).value
_PSI = re.compile(r"^some avg10=([0-9.]+)", re.M)
_READ_LIMIT = 1 << 20


class StopReason(StrEnum):
    """Why the agent stopped."""

    DRAINED = "drained"  # nr_unaccepted is 0
    SIGNAL = "signal"  # SIGTERM / SIGINT
    TOTAL = "total"  # faulted the bytes it was asked to
    NO_MEMORY = "no-memory"  # the kernel refused the mapping


@dataclass(frozen=True)
class DrainBudget:
    """What the agent may spend: bytes faulted per second (0: no limit), a fraction of one CPU,
    the chunk it faults at a time, and when it gives memory back."""

    rate: float = 0.0
    cpu: float = 0.25
    chunk: int = 64 << 20
    keep_free: int = 512 << 20
    hold_max: int = 0  # 0: no limit but keep_free
    psi_limit: float = 10.0
    total: int = 0  # 0: until drained or stopped


@dataclass
class Progress:
    """One progress report."""

    elapsed_s: float
    faulted_bytes: int
    held_bytes: int
    unaccepted_bytes: int | None
    rate_bytes_per_s: float | None  # acceptance rate (nr_unaccepted falling), else faulting rate
    eta_s: float | None
    cpu_fraction: float
    state: str

    def line(self) -> str:
        def size(n: float) -> str:
            for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
                if abs(n) >= 1 << shift:
                    return f"{n / (1 << shift):.1f} {unit}"
            return f"{n:.0f} B"

        rate = "-" if self.rate_bytes_per_s is None else f"{size(self.rate_bytes_per_s)}/s"
        left = "unknown" if self.unaccepted_bytes is None else size(self.unaccepted_bytes)
        eta = "-" if self.eta_s is None else f"{self.eta_s:.0f} s"
        return (f"drain: {self.elapsed_s:7.1f} s  {self.state:<9} rate {rate:>12}  unaccepted {left:>10}  "
                f"ETA {eta:>7}  faulted {size(self.faulted_bytes)}  holding {size(self.held_bytes)}  "
                f"cpu {self.cpu_fraction:.0%}")


def _read(root: str, path: str) -> str | None:
    try:
        with open(Path(root) / path.lstrip("/"), "rb") as fh:
            return fh.read(_READ_LIMIT).decode("ascii", errors="replace")
    except OSError:
        return None


def read_unaccepted(root: str) -> int | None:
    """Unaccepted bytes (``nr_unaccepted`` in /proc/vmstat, 4 KiB pages); None without the counter."""
    text = _read(root, "/proc/vmstat")
    m = re.search(r"^nr_unaccepted ([0-9]+)$", text or "", re.M)
    return int(m.group(1)) * PAGE_SIZE if m else None


def read_available(root: str) -> int | None:
    """``MemAvailable`` in bytes; None without it."""
    m = re.search(r"^MemAvailable: +([0-9]+) kB$", _read(root, "/proc/meminfo") or "", re.M)
    return int(m.group(1)) * 1024 if m else None


def read_pressure(root: str) -> float | None:
    """``some avg10`` of /proc/pressure/memory (percent); None without PSI."""
    m = _PSI.search(_read(root, "/proc/pressure/memory") or "")
    return float(m.group(1)) if m else None


class _Memory:
    """Anonymous mappings through libc, so nothing in Python holds a reference to them."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.libc = libc
        self.populate = True  # until the kernel says EINVAL (before 5.14)

    def fault(self, size: int) -> int | None:
        """Map ``size`` bytes and fault every page; the address, or None when the kernel refuses."""
        addr = self.libc.mmap(None, size, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
        if addr in (None, _MAP_FAILED):
            return None
        if self.populate and self.libc.madvise(addr, size, MADV_POPULATE_WRITE) != 0:
            if ctypes.get_errno() in (22, 95):  # EINVAL / EOPNOTSUPP: an older kernel; touch instead
                self.populate = False
            else:
                self.libc.munmap(addr, size)  # ENOMEM / EFAULT: the memory is not there
                return None
        if not self.populate:
            for off in range(0, size, PAGE_SIZE):
                ctypes.memset(addr + off, 1, 1)
        return int(addr)

    def release(self, addr: int, size: int) -> None:
        self.libc.munmap(addr, size)


@dataclass
class DrainAgent:
    """The agent's loop (see the module docstring); :meth:`run` returns why it stopped."""

    root: str = "/"
    budget: DrainBudget = field(default_factory=DrainBudget)
    report: Callable[[Progress], None] = lambda p: None
    report_every_s: float = 5.0
    #: Set by :meth:`stop` (from a signal handler: a plain flag, polled every 50 ms of a sleep).
    stopping: bool = False
    held: list[tuple[int, int]] = field(default_factory=list)
    faulted: int = 0
    _mem: _Memory | None = field(default=None, init=False, repr=False)

    @property
    def held_bytes(self) -> int:
        return sum(size for _, size in self.held)

    def stop(self) -> None:
        """Ask the loop to stop (a signal handler calls this)."""
        self.stopping = True

    def release_all(self) -> None:
        """Unmap everything held (the pages go back to the guest's free lists, accepted)."""
        if self._mem is not None:
            for addr, size in self.held:
                self._mem.release(addr, size)
        self.held.clear()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and (left := end - time.monotonic()) > 0:
            time.sleep(min(0.05, left))

    def run(self) -> StopReason:
        b = self.budget
        self._mem = _Memory()
        start, cpu0 = time.monotonic(), time.process_time()
        first_unaccepted = read_unaccepted(self.root)
        last_report = -math.inf
        state = "faulting"
        reason = StopReason.SIGNAL
        try:
            while True:
                now = time.monotonic() - start
                unaccepted = read_unaccepted(self.root)
                if now - last_report >= self.report_every_s:
                    self.report(self._progress(now, unaccepted, first_unaccepted, cpu0, state))
                    last_report = now
                if self.stopping:
                    reason = StopReason.SIGNAL
                    break
                if unaccepted == 0:
                    reason = StopReason.DRAINED
                    break
                if b.total and self.faulted >= b.total:
                    reason = StopReason.TOTAL
                    break
                pressure = read_pressure(self.root)
                if pressure is not None and pressure > b.psi_limit:
                    if self.held:
                        self.release_all()
                    state = "backing off"
                    self._sleep(1.0)
                    continue
                available = read_available(self.root)
                chunk = b.chunk if not b.total else min(b.chunk, b.total - self.faulted)
                low = available is not None and available - chunk < b.keep_free
                if low or (b.hold_max and self.held_bytes + chunk > b.hold_max):
                    self.release_all()  # the pages go back accepted; go on from there
                    again = read_available(self.root)
                    if low and again is not None and again - chunk < b.keep_free:
                        state = "waiting"  # no room even with nothing held
                        self._sleep(1.0)
                        continue
                state = "faulting"
                addr = self._mem.fault(chunk)
                if addr is None:
                    reason = StopReason.NO_MEMORY
                    break
                self.held.append((addr, chunk))
                self.faulted += chunk
                # The budgets: not before the bytes fit the rate and the CPU time fits its share.
                elapsed = time.monotonic() - start
                due = 0.0
                if b.rate:
                    due = max(due, self.faulted / b.rate)
                if b.cpu:
                    due = max(due, (time.process_time() - cpu0) / b.cpu)
                self._sleep(due - elapsed)
        finally:
            self.release_all()
        now = time.monotonic() - start
        self.report(self._progress(now, read_unaccepted(self.root), first_unaccepted, cpu0, f"stopped ({reason})"))
        return reason

    def _progress(self, now: float, unaccepted: int | None, first: int | None, cpu0: float, state: str) -> Progress:
        short = now < 0.05  # too soon to say a rate or a CPU share
        if short:
            rate: float | None = None
        elif unaccepted is not None and first is not None:
            rate = max(0.0, (first - unaccepted) / now)
        else:
            rate = self.faulted / now
        eta = None
        if unaccepted is not None:
            eta = 0.0 if unaccepted == 0 else (unaccepted / rate if rate else None)
        cpu = 0.0 if short else (time.process_time() - cpu0) / now
        return Progress(now, self.faulted, self.held_bytes, unaccepted, rate, eta, cpu, state)
