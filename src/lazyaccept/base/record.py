"""What the actors of a boot did, recorded without time.

The model (platform, firmware, guest) records *what* happens: which ranges were accepted, by
whom, on which vCPU, at which page size, causing how many exits.  The simulator
(:mod:`lazyaccept.sim`) later turns these records into time with a cost profile, so the model
never changes when costs do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .units import PAGE_SIZE, SIZE_2M


@dataclass
class AcceptStats:
    """Counts of platform operations done to accept memory (one request or a sum of many).

    The counts are what a cost profile prices: each accept instruction issued (TDCALL
    ``TDG.MEM.PAGE.ACCEPT`` or ``PVALIDATE``) by page size, including attempts that failed and
    were retried or fell back; each exit to the host the guest caused; each page the host had to
    back (allocate, zero, AUG or RMPUPDATE); each SNP page-state-change request and entry; and
    the bytes zeroed by the host and by the accept itself (memory-bandwidth work).
    """

    bytes_accepted: int = 0
    calls_4k: int = 0
    calls_2m: int = 0
    calls_1g: int = 0
    size_mismatch: int = 0
    exits: int = 0
    host_backed_4k: int = 0
    host_backed_2m: int = 0
    #: Nested page faults the guest's validation took for the host to back a page (SNP without
    #: the host's prefault on page-state change).
    npf_exits: int = 0
    psc_requests: int = 0
    psc_entries: int = 0
    host_zeroed_bytes: int = 0
    accept_zeroed_bytes: int = 0

    def __iadd__(self, other: AcceptStats) -> AcceptStats:
        mine, theirs = self.__dict__, other.__dict__
        for name in _STAT_FIELDS:
            mine[name] += theirs[name]
        return self

    def __add__(self, other: AcceptStats) -> AcceptStats:
        out = AcceptStats()
        out += self
        out += other
        return out

    def __sub__(self, other: AcceptStats) -> AcceptStats:
        return AcceptStats(**{name: getattr(self, name) - getattr(other, name) for name in _STAT_FIELDS})

    def scaled(self, factor: int) -> AcceptStats:
        """The stats of ``factor`` identical requests."""
        return AcceptStats(**{name: getattr(self, name) * factor for name in _STAT_FIELDS})

    @property
    def host_backed_bytes(self) -> int:
        return self.host_backed_4k * PAGE_SIZE + self.host_backed_2m * SIZE_2M

    @property
    def calls(self) -> int:
        return self.calls_4k + self.calls_2m + self.calls_1g

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _STAT_FIELDS}


#: The counters of :class:`AcceptStats`, in declaration order (looked up once, not per sum).
_STAT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AcceptStats))


@dataclass(frozen=True, slots=True)
class AcceptingEntry:
    """What each request of an :class:`AcceptEvent` puts on the kernel's accepting list
    (drivers/firmware/efi/unaccepted_memory.c, v6.6+): the bitmap units ``[first, end)`` of the
    event's first request, guard unit included, and ``stride`` units between the starts of its
    consecutive requests (request ``i`` holds ``[first + i*stride, end + i*stride)``).

    ``fifo`` names the zone list the requests' chunks were taken from (``zone->unaccepted_pages``),
    or is ``None`` for requests whose ranges are their own (eager acceptance of the ranges a thread
    frees).  Chunks come off a FIFO list in list order, but which CPU gets which depends on
    when each asks: that is the simulator's to decide, so the range of a ``fifo`` request is the
    next one the list gives when the request starts.  ``touching`` is the v6.6 overlap test
    (``entry->end < range.start``), under which ranges that only touch conflict too.
    """

    first: int
    end: int
    stride: int
    fifo: str | None = None
    touching: bool = False


@dataclass
class AcceptEvent:
    """One accept request (or ``requests`` identical back-to-back requests) by one actor.

    ``start``/``end`` bound the memory concerned (end exclusive); ``stats`` is what the
    platform did for it; ``reason`` says why it was accepted (``"head"``, ``"tail"``,
    ``"small-range"``, ``"guard"``, ``"memblock"``, ``"watermark"``, ``"zero-watermark"``,
    ``"eager"``, ``"pre-accept"`` ...).  ``lock`` names a lock the actor held for the whole
    request (the v6.5 kernel's global ``unaccepted_memory_lock``), or is ``None``.  ``entry``
    is what each request holds on the accepting list (``None``: no accepting list, as in v6.5,
    in the firmware and in the EFI stub, or nothing to accept).
    """

    actor: str
    vcpu: int
    start: int
    end: int
    stats: AcceptStats
    reason: str = ""
    requests: int = 1
    lock: str | None = None
    entry: AcceptingEntry | None = None


@dataclass
class WorkEvent:
    """Non-acceptance work: a boot step priced by the cost profile.

    ``kind`` names a cost in the profile (``"firmware_base"``, ``"kernel_decompress"``,
    ``"struct_page_init"`` ...); ``amount`` is in the unit that cost is given per (1 for
    fixed steps, pages for struct page init, bytes for copies, vCPUs for bring-up).
    """

    kind: str
    vcpu: int
    amount: float = 1.0
    #: vCPUs that come online (and are idle) when this step ends: SMP bring-up of an AP.
    onlines: int = 0


@dataclass
class ConvertEvent:
    """Private memory made shared (``set_memory_decrypted()``): ``pages`` 4 KiB pages, on
    ``vcpu``, while ``vcpus_in_guest`` other vCPUs are running inside the guest (each removal of a
    private page must force them out first: KVM's ``tdx_track()`` kicks every vCPU in guest mode).
    """

    actor: str
    vcpu: int
    pages: int
    vcpus_in_guest: int
    reason: str = ""


@dataclass
class WaitEvent:
    """``vcpu`` has nothing to do until ``at_s`` seconds after its phase started (a workload
    that allocates at a given rate, a background thread that sleeps between batches)."""

    vcpu: int
    at_s: float
    actor: str = ""


Event = AcceptEvent | WorkEvent | ConvertEvent | WaitEvent

#: The work kind of a vCPU's exits out of the guest that are not acceptance (port and MMIO I/O to
#: emulated devices, MSRs, hypercalls): ``amount`` exits, each a round trip through the host.
GUEST_EXITS = "guest_exits"
#: The work kind of CPU time a stage spends that no profile cost describes (its own data says how
#: much): ``amount`` seconds of the vCPU.
CPU_SECONDS = "cpu_seconds"


@dataclass
class Phase:
    """A step of the boot.  Each vCPU runs its events in order; vCPUs run in parallel; the
    phase ends when the last vCPU finishes (a barrier, as at the real hand-offs)."""

    name: str
    actor: str
    events: list[Event] = field(default_factory=list)
    #: vCPUs online when the phase starts (more come online through ``WorkEvent.onlines``).
    online_vcpus: int = 1
    #: Rate (Hz) at which online, idle vCPUs take the periodic timer tick in this phase; 0 when
    #: they are tickless (NOHZ active) or not running the kernel yet.
    tick_hz: int = 0
    #: The NUMA node of each vCPU while the phase runs (empty: one node, or a phase before the
    #: kernel knows its nodes).
    vcpu_nodes: tuple[int, ...] = ()

    def vcpus(self) -> list[int]:
        return sorted({e.vcpu for e in self.events})

    def accept_stats(self) -> AcceptStats:
        total = AcceptStats()
        for e in self.events:
            if isinstance(e, AcceptEvent):
                total += e.stats
        return total


class Recorder:
    """Collects the phases of a boot as the actors run; the current phase receives events."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []
        #: The node of each vCPU, given to every phase begun from when the kernel sets it.
        self.vcpu_nodes: tuple[int, ...] = ()

    def begin(self, name: str, actor: str, online_vcpus: int = 1, tick_hz: int = 0) -> Phase:
        phase = Phase(name=name, actor=actor, online_vcpus=online_vcpus, tick_hz=tick_hz, vcpu_nodes=self.vcpu_nodes)
        self.phases.append(phase)
        return phase

    @property
    def current(self) -> Phase:
        if not self.phases:
            raise RuntimeError("no phase begun")
        return self.phases[-1]

    def accept(
        self,
        actor: str,
        vcpu: int,
        start: int,
        end: int,
        stats: AcceptStats,
        reason: str = "",
        requests: int = 1,
        lock: str | None = None,
        entry: AcceptingEntry | None = None,
    ) -> None:
        """Record an acceptance; requests that accepted nothing are still recorded (they cost a call)."""
        self.current.events.append(AcceptEvent(actor, vcpu, start, end, stats, reason, requests, lock, entry))

    def work(self, kind: str, vcpu: int = 0, amount: float = 1.0, onlines: int = 0) -> None:
        if amount or onlines:
            self.current.events.append(WorkEvent(kind, vcpu, amount, onlines))

    def wait_until(self, vcpu: int, at_s: float, actor: str = "") -> None:
        """``vcpu`` idles until ``at_s`` seconds after the current phase's start."""
        self.current.events.append(WaitEvent(vcpu, at_s, actor))

    def convert(self, actor: str, vcpu: int, pages: int, vcpus_in_guest: int, reason: str = "") -> None:
        """Record a private-to-shared conversion of ``pages`` pages."""
        self.current.events.append(ConvertEvent(actor, vcpu, pages, vcpus_in_guest, reason))
