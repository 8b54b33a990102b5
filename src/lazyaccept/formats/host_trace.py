"""The host trace: what a guest's boot cost the host, per interval (``tools/lazyaccept-host.bt``).

The format is what the bpftrace script prints, so it is read as printed and the model writes
the same text for a modelled boot (``boot --dump``).  Lines:

* ``lazyaccept-host-trace 1 interval_ms=N [pid=P] [platform=tdx|snp]``: the header, first
  (lines before it, such as bpftrace's ``Attaching N probes...``, and ``#`` comments are skipped);
* ``@t: NS``: an interval ends ``NS`` nanoseconds after the trace started; the counter lines
  that follow belong to it, up to the next ``@t:``;
* ``@exit[REASON]: N``: ``N`` exits with that exit reason (``kvm:kvm_exit``'s ``exit_reason``:
  VMX basic exit reasons on Intel, SVM exit codes on AMD);
* ``@NAME: N``: a counter of :class:`Counter` (counts, and ``*_ns`` latencies summed in ns).

Counters missing from an interval are 0 (bpftrace prints nothing for a map that was not
written since it was cleared); blank lines are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from ..base.errors import FormatError

MAGIC = "lazyaccept-host-trace"
VERSION = 1


class Counter(StrEnum):
    """The counters of an interval, as the script names its bpftrace maps."""

    #: TD entries (kprobe ``tdx_vcpu_run``) and the time they took, guest execution included.
    ENTER = "enter"
    ENTER_NS = "enter_ns"
    #: TDH.MEM.PAGE.AUG SEAMCALLs (kprobe ``tdh_mem_page_aug``) and their time.
    AUG = "aug"
    AUG_NS = "aug_ns"
    #: Faults on guest memory (tracepoint ``kvm:kvm_page_fault``).
    FAULT = "fault"
    #: SNP page-state-change VMGEXITs (``kvm:kvm_vmgexit_enter`` with exit code 0x80000010), the
    #: GHCB MSR protocol requests (``kvm:kvm_vmgexit_msr_protocol_enter``) and their time.
    PSC = "psc"
    PSC_NS = "psc_ns"
    PSC_MSR = "psc_msr"
    #: RMP updates (kprobes ``rmp_make_private`` / ``rmp_make_shared``) and their time.
    RMPUPDATE = "rmpupdate"
    RMPUPDATE_NS = "rmpupdate_ns"


#: Exit reasons named in reports (VMX basic exit reasons, Intel SDM vol. 3 appendix C; SVM exit
#: codes, AMD APM vol. 2 appendix C; Linux ``arch/x86/include/uapi/asm/vmx.h`` / ``svm.h``).
EXIT_NAMES: dict[str, dict[int, str]] = {
    "tdx": {1: "EXTERNAL_INTERRUPT", 10: "CPUID", 12: "HLT", 30: "IO_INSTRUCTION", 31: "MSR_READ",
            32: "MSR_WRITE", 48: "EPT_VIOLATION", 49: "EPT_MISCONFIG", 77: "TDCALL"},
    "snp": {0x60: "INTR", 0x78: "HLT", 0x7B: "IOIO", 0x7C: "MSR", 0x400: "NPF", 0x403: "VMGEXIT"},
}
#: The exit reason of an idle vCPU's timer tick and of a fault on unbacked private memory.
TICK_EXIT = {"tdx": 77, "snp": 0x78}  # TDVMCALL(HLT) on TDX; HLT intercept on SNP
FAULT_EXIT = {"tdx": 48, "snp": 0x400}

_HEADER = re.compile(rf"^{MAGIC} ([0-9]+)((?: [a-z_]+=[A-Za-z0-9_.-]+)*)\s*$")
_LINE = re.compile(r"^@([a-z_]+)(?:\[([0-9]{1,10})\])?: (-?[0-9]{1,20})\s*$")
_MAX_INTERVALS = 10_000_000


@dataclass
class Interval:
    """One interval: its end (ns since the trace started), exits by reason, the counters."""

    t_ns: int
    exits: dict[int, int] = field(default_factory=dict)
    counters: dict[Counter, int] = field(default_factory=dict)

    def get(self, name: Counter) -> int:
        return self.counters.get(name, 0)


@dataclass
class HostTrace:
    """A whole trace: its header and intervals, time ascending."""

    interval_ms: int
    intervals: list[Interval] = field(default_factory=list)
    pid: int | None = None
    platform: str | None = None
    #: ``@NAME`` lines of counters this reader does not know (a newer script): name -> lines.
    unknown: dict[str, int] = field(default_factory=dict)

    def total(self, name: Counter) -> int:
        return sum(i.get(name) for i in self.intervals)

    def exits(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for i in self.intervals:
            for r, n in i.exits.items():
                out[r] = out.get(r, 0) + n
        return dict(sorted(out.items()))

    def span_ns(self) -> tuple[int, int]:
        """From the start of the first interval with any activity to the end of the last one."""
        active = [i for i in self.intervals if i.exits or any(i.counters.values())]
        if not active:
            return (0, 0)
        return (max(0, active[0].t_ns - self.interval_ms * 1_000_000), active[-1].t_ns)

    def between(self, start_ns: int, end_ns: int) -> list[Interval]:
        """The intervals that end in ``(start_ns, end_ns]``."""
        return [i for i in self.intervals if start_ns < i.t_ns <= end_ns]


def parse_host_trace(text: str) -> HostTrace:
    """Read a host trace (see the module docstring); :class:`FormatError` naming the line."""
    trace: HostTrace | None = None
    current: Interval | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if trace is None:
            m = _HEADER.match(line)
            if m is None:
                if line.startswith(("Attaching", "WARNING", "Lost ")):
                    continue  # bpftrace's own messages
                raise FormatError(f"host trace: line {n}: expected the header '{MAGIC} {VERSION} interval_ms=N', "
                                  f"got {line[:60]!r}")
            if int(m.group(1)) != VERSION:
                raise FormatError(f"host trace: line {n}: version {m.group(1)}; this reader knows version {VERSION}")
            opts = dict(word.split("=", 1) for word in m.group(2).split())
            try:
                interval = int(opts.get("interval_ms", ""))
            except ValueError:
                raise FormatError(f"host trace: line {n}: the header needs interval_ms=N (a whole number)") from None
            if interval <= 0:
                raise FormatError(f"host trace: line {n}: interval_ms must be positive")
            platform = opts.get("platform")
            if platform not in (None, "tdx", "snp"):
                raise FormatError(f"host trace: line {n}: platform={platform}: not tdx or snp")
            pid = opts.get("pid")
            trace = HostTrace(interval, pid=int(pid) if pid and pid.isdigit() else None, platform=platform)
            continue
        if line.startswith("Lost "):
            raise FormatError(f"host trace: line {n}: bpftrace lost events ({line[:60]}); the counts are incomplete")
        m = _LINE.match(line)
        if m is None:
            raise FormatError(f"host trace: line {n}: not '@name: N' or '@exit[REASON]: N': {line[:60]!r}")
        name, key, value = m.group(1), m.group(2), int(m.group(3))
        if value < 0:
            raise FormatError(f"host trace: line {n}: negative count {value}")
        if name == "t":
            if current is not None and value <= current.t_ns:
                raise FormatError(f"host trace: line {n}: time {value} ns does not follow {current.t_ns} ns")
            if len(trace.intervals) >= _MAX_INTERVALS:
                raise FormatError(f"host trace: line {n}: more than {_MAX_INTERVALS} intervals")
            current = Interval(value)
            trace.intervals.append(current)
            continue
        if current is None:
            raise FormatError(f"host trace: line {n}: @{name} before the first '@t:' line")
        if name == "exit":
            if key is None:
                raise FormatError(f"host trace: line {n}: @exit needs a reason: @exit[REASON]: N")
            current.exits[int(key)] = current.exits.get(int(key), 0) + value
        elif key is not None:
            raise FormatError(f"host trace: line {n}: @{name} takes no [key]")
        elif name in Counter.__members__.values():
            c = Counter(name)
            current.counters[c] = current.counters.get(c, 0) + value
        else:
            trace.unknown[name] = trace.unknown.get(name, 0) + 1
    if trace is None:
        raise FormatError(f"host trace: no '{MAGIC}' header line")
    return trace


def format_host_trace(trace: HostTrace) -> str:
    """The text :func:`parse_host_trace` reads, as the script prints it (zero counters left out)."""
    head = f"{MAGIC} {VERSION} interval_ms={trace.interval_ms}"
    if trace.pid is not None:
        head += f" pid={trace.pid}"
    if trace.platform is not None:
        head += f" platform={trace.platform}"
    out = [head]
    for i in trace.intervals:
        out.append(f"@t: {i.t_ns}")
        for reason, n in sorted(i.exits.items()):
            if n:
                out.append(f"@exit[{reason}]: {n}")
        for c in Counter:
            if i.get(c):
                out.append(f"@{c.value}: {i.get(c)}")
    return "\n".join(out) + "\n"


def exit_name(platform: str | None, reason: int) -> str:
    """A readable name of an exit reason (its number where unknown)."""
    name = EXIT_NAMES.get(platform or "", {}).get(reason)
    return f"{name} ({reason})" if name else str(reason)
