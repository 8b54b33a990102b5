"""A live guest, as its own files show it: ``lazyaccept status``.

What is read, each under ``root`` (``/`` on the guest itself, a folder of copies for tests):

* ``/proc/cpuinfo``: the ``tdx_guest`` flag (X86_FEATURE_TDX_GUEST) says a TDX guest; ``sev_snp``
  with ``hypervisor`` says an SEV-SNP guest (on a host ``sev_snp`` appears without ``hypervisor``).
* ``/sys/class/misc/tdx_guest`` and ``/sys/class/misc/sev-guest``: the guest drivers' devices
  (drivers/virt/coco), present when the driver is loaded.
* the kernel log: ``/dev/kmsg`` (read without blocking, record by record), else
  ``/var/log/dmesg``; its "tdx: Guest detected", "Memory Encryption Features active", "SEV: Status"
  lines, and with ``efi=debug`` the Unaccepted ranges of the EFI map (how much was unaccepted at boot).
* ``/proc/cmdline``: ``accept_memory=`` (absent: the kernel's default, lazy).
* ``/proc/meminfo`` ``Unaccepted:`` (kB) and ``/proc/vmstat`` ``nr_unaccepted`` (pages): both
  count the same pages (mm/page_alloc.c, NR_UNACCEPTED) and must agree to the page.  On a
  running guest the two files are read at different instants; a sample reads meminfo, vmstat and
  meminfo again and keeps a pair read while nothing moved.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import FormatError
from ..base.fileio import read_input
from ..base.units import KiB, MiB
from ..formats.kernel_text import DmesgInfo, parse_dmesg_boots, parse_meminfo, parse_vmstat, select_boot

#: Size limits: /proc text files, and the kernel log (the kernel's buffer is at most 32 MiB).
PROC_LIMIT = 16 * MiB
LOG_LIMIT = 64 * MiB
PAGE_KB = 4
#: Reads of meminfo / vmstat / meminfo tried before a sample is kept as it is.
SAMPLE_TRIES = 5


@dataclass(frozen=True)
class Evidence:
    """One thing that says what the machine is: where it was read and what it says."""

    source: str
    says: str
    platform: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "says": self.says, "platform": self.platform}


@dataclass(frozen=True)
class Sample:
    """Unaccepted memory at one instant (``t`` seconds after the first sample)."""

    t: float
    unaccepted_kb: int | None
    nr_unaccepted: int | None
    mem_total_kb: int
    mem_free_kb: int | None

    @property
    def agree(self) -> bool | None:
        """meminfo's kB and vmstat's pages name the same amount (None: one of them is missing)."""
        if self.unaccepted_kb is None or self.nr_unaccepted is None:
            return None
        return self.unaccepted_kb == self.nr_unaccepted * PAGE_KB

    @property
    def unaccepted_bytes(self) -> int | None:
        if self.nr_unaccepted is not None:
            return self.nr_unaccepted * PAGE_KB * KiB
        return None if self.unaccepted_kb is None else self.unaccepted_kb * KiB

    def as_dict(self) -> dict[str, object]:
        return {"t_s": self.t, "unaccepted_kb": self.unaccepted_kb, "nr_unaccepted": self.nr_unaccepted,
                "unaccepted_bytes": self.unaccepted_bytes, "agree": self.agree,
                "mem_total_kb": self.mem_total_kb, "mem_free_kb": self.mem_free_kb}


@dataclass
class GuestStatus:
    """What the files say about the machine."""

    root: str
    platform: str | None
    evidence: list[Evidence]
    hypervisor: bool
    kernel: str | None
    cmdline: str | None
    accept_memory: str | None
    log_source: str | None
    unaccepted_at_boot: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def confidential(self) -> bool:
        return self.platform is not None

    @property
    def policy(self) -> str | None:
        """What the kernel does: accept_memory= as given, or its default (lazy)."""
        if self.accept_memory is None:
            return "lazy"
        return self.accept_memory if self.accept_memory in ("lazy", "eager") else "lazy"


def _under(root: str, path: str) -> Path:
    return Path(root) / path.lstrip("/")


def _text(root: str, path: str, limit: int = PROC_LIMIT) -> str | None:
    """A text file under root; None when it does not exist or cannot be read."""
    p = _under(root, path)
    if not os.path.lexists(p):
        return None
    try:
        return read_input(p, limit=limit, what="/proc files").decode("utf-8", errors="replace")
    except FormatError:
        return None


def cpu_flags(cpuinfo: str) -> set[str]:
    """The flags of the first CPU in /proc/cpuinfo."""
    m = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE)
    return set(m[1].split()) if m else set()


#: /dev/kmsg's device numbers (Documentation/admin-guide/devices.txt: char 1:11, /dev/kmsg).
KMSG_DEVICE = (1, 11)


def read_kmsg(path: Path, limit: int = LOG_LIMIT) -> str:
    """The kernel log from ``/dev/kmsg`` (a character device, read record by record without
    blocking) or a file of its records, as dmesg-style lines ``[seconds] message``.

    A record is ``prio,seq,usec,flags[,...];message``; continuation lines (`` KEY=value``) are dropped."""
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) != KMSG_DEVICE:
        # --root may point dev/kmsg at any device: /dev/urandom never ends, a tty waits for a user.
        raise FormatError(f"{path}: is a character device ({os.major(st.st_rdev)}:{os.minor(st.st_rdev)}) but not "
                          f"/dev/kmsg ({KMSG_DEVICE[0]}:{KMSG_DEVICE[1]}); not read")
    if stat.S_ISCHR(st.st_mode):
        chunks, total = [], 0
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            while total < limit:
                try:
                    chunk = os.read(fd, 16384)  # one record per read; a record is at most 8 KiB
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EPIPE:  # records overwritten while reading: go on
                        continue
                    raise
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        finally:
            os.close(fd)
        raw = b"".join(chunks).decode("utf-8", errors="replace")
    else:
        raw = read_input(path, limit=limit, what="kernel logs").decode("utf-8", errors="replace")
    out = []
    for line in raw.splitlines():
        m = re.match(r"^\d+,\d+,(\d+),[^;]*;(.*)$", line)
        if m:
            usec = int(m[1])
            out.append(f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {_unescape(m[2])}")
    return "\n".join(out) + "\n" if out else ""


def _unescape(text: str) -> str:
    """kmsg writes non-printable bytes as ``\\xNN``."""
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), text)


def _kernel_log(root: str, notes: list[str]) -> tuple[DmesgInfo | None, str | None]:
    for path in ("/dev/kmsg", "/var/log/dmesg"):
        p = _under(root, path)
        if not os.path.lexists(p):
            continue
        try:
            text = read_kmsg(p) if path == "/dev/kmsg" else _text(root, path, LOG_LIMIT)
        except (OSError, FormatError) as exc:
            notes.append(f"{path}: not readable ({getattr(exc, 'strerror', None) or exc})")
            continue
        if not text:
            notes.append(f"{path}: no kernel log records")
            continue
        try:
            return select_boot(parse_dmesg_boots(text), -1), path
        except FormatError as exc:
            notes.append(f"{path}: {exc}")
    return None, None


def probe(root: str = "/") -> GuestStatus:
    """What the machine under ``root`` is, and how it accepts memory."""
    notes: list[str] = []
    evidence: list[Evidence] = []
    cpuinfo = _text(root, "/proc/cpuinfo")
    flags = cpu_flags(cpuinfo) if cpuinfo else set()
    if cpuinfo is None:
        notes.append("/proc/cpuinfo: not readable")
    hypervisor = "hypervisor" in flags
    if "tdx_guest" in flags:
        evidence.append(Evidence("/proc/cpuinfo", "flag tdx_guest", "tdx"))
    if "sev_snp" in flags:
        evidence.append(Evidence("/proc/cpuinfo", "flag sev_snp" + (" and hypervisor" if hypervisor else
                                                                  " without hypervisor: an SEV-SNP host"),
                                 "snp" if hypervisor else None))
    for dev, platform in (("tdx_guest", "tdx"), ("sev-guest", "snp")):
        if os.path.lexists(_under(root, f"/sys/class/misc/{dev}")):
            evidence.append(Evidence(f"/sys/class/misc/{dev}", "the guest driver's device", platform))
    info, log_source = _kernel_log(root, notes)
    unaccepted_at_boot = None
    if info is not None:
        if info.platform is not None:
            evidence.append(Evidence(log_source or "kernel log", info.platform_message or "platform line",
                                     info.platform))
        if info.efi_memmap:
            unaccepted_at_boot = info.efi_total(15)
    platforms = {e.platform for e in evidence if e.platform}
    if len(platforms) > 1:
        notes.append(f"the evidence disagrees ({', '.join(sorted(platforms))})")
    platform = sorted(platforms)[0] if len(platforms) == 1 else None
    cmdline = _text(root, "/proc/cmdline")
    cmdline = cmdline.strip() if cmdline else None
    accept = None
    for word in (cmdline or "").split():
        if word.startswith("accept_memory="):
            accept = word.split("=", 1)[1]
    kernel = _text(root, "/proc/sys/kernel/osrelease")
    kernel = kernel.strip() if kernel else (info.kernel_version if info else None)
    return GuestStatus(root, platform, evidence, hypervisor, kernel, cmdline, accept, log_source,
                       unaccepted_at_boot, notes)


def _counters(root: str) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    mi, vm = _text(root, "/proc/meminfo"), _text(root, "/proc/vmstat")
    try:
        meminfo = parse_meminfo(mi) if mi else None
    except FormatError as exc:
        raise FormatError(f"{_under(root, '/proc/meminfo')}: {exc}") from None
    try:
        vmstat = parse_vmstat(vm) if vm else None
    except FormatError as exc:
        raise FormatError(f"{_under(root, '/proc/vmstat')}: {exc}") from None
    return meminfo, vmstat


def take_sample(root: str, t: float) -> Sample | None:
    """Unaccepted memory now; None when the machine has no /proc/meminfo.

    On a running guest the counters move between two reads: meminfo, vmstat and meminfo again
    are read until the two meminfo reads agree (at most :data:`SAMPLE_TRIES` times)."""
    meminfo = vmstat = None
    for _ in range(SAMPLE_TRIES):
        meminfo, vmstat = _counters(root)
        if meminfo is None:
            return None
        again, _ = _counters(root)
        if again is not None and again.get("Unaccepted") == meminfo.get("Unaccepted"):
            break
    assert meminfo is not None
    return Sample(t, meminfo.get("Unaccepted"), (vmstat or {}).get("nr_unaccepted"), meminfo["MemTotal"],
                  meminfo.get("MemFree"))


@dataclass(frozen=True)
class Drain:
    """How fast unaccepted memory went from the first sample to the last."""

    elapsed_s: float
    drained_bytes: int
    rate_bytes_per_s: float | None
    last_rate_bytes_per_s: float | None
    remaining_bytes: int
    eta_s: float | None

    def as_dict(self) -> dict[str, object]:
        return {"elapsed_s": self.elapsed_s, "drained_bytes": self.drained_bytes,
                "rate_bytes_per_s": self.rate_bytes_per_s, "last_rate_bytes_per_s": self.last_rate_bytes_per_s,
                "remaining_bytes": self.remaining_bytes, "eta_s": self.eta_s}


def rates(samples: list[Sample]) -> list[float | None]:
    """Bytes accepted per second over each interval (None for the first sample or a gap)."""
    out: list[float | None] = [None] if samples else []
    for a, b in zip(samples, samples[1:], strict=False):
        ua, ub = a.unaccepted_bytes, b.unaccepted_bytes
        out.append(None if ua is None or ub is None or b.t <= a.t else (ua - ub) / (b.t - a.t))
    return out


def drain(samples: list[Sample]) -> Drain | None:
    """The drain between the first and the last sample with counters; None for fewer than two."""
    have = [s for s in samples if s.unaccepted_bytes is not None]
    if len(have) < 2 or have[-1].t <= have[0].t:
        return None
    first, last = have[0], have[-1]
    drained = first.unaccepted_bytes - last.unaccepted_bytes  # type: ignore[operator]
    elapsed = last.t - first.t
    rate = drained / elapsed
    last_rate = rates(have)[-1]
    remaining = last.unaccepted_bytes or 0
    eta = remaining / rate if rate > 0 else (0.0 if remaining == 0 else None)
    return Drain(elapsed, drained, rate, last_rate, remaining, eta)
