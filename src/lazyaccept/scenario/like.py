"""A guest like the one whose kernel log this is: ``boot --like LOG`` and ``compare --like LOG``.

:func:`read_like` reads a kernel log (any format :func:`~lazyaccept.formats.kernel_text.parse_dmesg`
reads; the last boot of several) and takes from it what it says about the guest:

* memory: from the top of RAM in the BIOS-e820 map, else the EFI memory map (``efi=debug``),
  else the Normal zone or the early memory node ranges.  A log shows addresses, not the size
  QEMU was given; the size follows from QEMU's q35 layout (:mod:`lazyaccept.firmware.q35`):
  RAM above 4 GiB means 2 GiB stay below it, so memory = top - 4 GiB + 2 GiB; otherwise the
  top of RAM below the PCI hole is the size.
* vCPUs: ``smp: Brought up N nodes, M CPUs``, else ``smpboot: Allowing N CPUs, K hotplug CPUs``
  (N - K at boot), else ``setup_percpu: ... nr_cpu_ids:N``.
* kernel release: ``Linux version`` (or an oops header's release).
* platform: ``tdx: Guest detected``, ``Memory Encryption Features active``, ``SEV: Status``,
  systemd's ``Detected confidential virtualization``.
* ``accept_memory=`` on the command line (no such word on a command line the log shows: the
  kernel's default, lazy).
* what the firmware accepted: the RAM of the EFI memory map that is not of type Unaccepted.

Options given on the command line win over the log; what neither says is assumed (the host
profile's defaults) and listed as such.  A host's log (``virt/tdx:`` lines) is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..base.choices import AcceptPolicy, BootPhase, FirmwareAccept, FirmwareAcceptMode
from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..base.units import MiB, format_size, parse_size
from ..firmware.q35 import FOUR_GIB, LOWMEM_LARGE, LOWMEM_SPLIT_THRESHOLD
from ..formats.kernel_text import DmesgInfo, parse_dmesg_boots, select_boot
from ..guest.rules import resolve_kernel
from .config import VMConfig

#: Kernel logs are read up to this size (as ``inspect`` reads them).
LOG_LIMIT = 256 * MiB
#: The fields a log can give, in the order they are shown.
FIELDS = ("memory", "platform", "vcpus", "kernel", "policy", "firmware_accept")
#: e820 types that are RAM wherever they are; "reserved" is RAM only below the PCI hole (the
#: firmware's own pages at the top of low memory), not the MMCONFIG window above it.
_E820_RAM = ("usable", "ACPI data", "ACPI NVS")
#: EFI memory types backed by RAM: loader, boot services, runtime, conventional, ACPI, unaccepted.
_EFI_RAM = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 10, 15})
_EFI_UNACCEPTED = 15
_UNIT = 2 * MiB


@dataclass(frozen=True)
class Fact:
    """One value for the guest: ``field`` (see :data:`FIELDS`), its ``value`` as an option would
    give it, and where it came from (log lines, or why it was assumed)."""

    field: str
    value: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "value": self.value, "source": self.source}


@dataclass
class LogGuest:
    """What one boot of a kernel log says about its guest."""

    path: str
    facts: dict[str, Fact]
    #: Seconds since boot of the log's milestones (formats.kernel_text.MILESTONES).
    milestones: dict[str, float] = field(default_factory=dict)
    boot_index: int = 1
    boots: int = 1


def read_like(path: str) -> LogGuest:
    """The guest of the last boot in the kernel log at ``path``."""
    text = read_input(path, limit=LOG_LIMIT, what="kernel logs").decode("utf-8", errors="replace")
    try:
        info = select_boot(parse_dmesg_boots(text), -1)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    return guest_from_log(info, path)


def guest_from_log(info: DmesgInfo, path: str = "log") -> LogGuest:
    """The facts :func:`read_like` takes from a parsed boot."""
    if (info.tdx_host_cmrs or info.tdx_host_pamt_kb is not None) and info.platform is None:
        raise ConfigError(f"{path}: this is a TDX host's log (virt/tdx: CMR and PAMT lines), not a guest's; "
                          "--like needs the log of the guest to model")
    facts: dict[str, Fact] = {}
    where = f" (boot {info.boot_index} of {info.boots})" if info.boots > 1 else ""

    def line(key: str) -> str:
        n = info.lines.get(key)
        return f"line {n}{where}" if n is not None else f"the log{where}"

    memory = _memory(info, line)
    if memory is not None:
        facts["memory"] = memory
    if info.platform is not None:
        said = info.platform_message or "platform"
        facts["platform"] = Fact("platform", info.platform, f"{line('platform')}: {said}")
    vcpus = _vcpus(info, line)
    if vcpus is not None:
        facts["vcpus"] = vcpus
    if info.kernel_version is not None:
        said = "an oops header (CPU: ... Not tainted <release>)" if "kernel_version_from_oops" in info.lines \
            else "Linux version"
        facts["kernel"] = Fact("kernel", info.kernel_version, f"{line('kernel_version')}: {said}")
    if info.command_line is not None:
        value = info.command_line_param("accept_memory")
        src = f"{line('command_line')}: command line"
        if value is None:
            facts["policy"] = Fact("policy", AcceptPolicy.LAZY.value,
                                   f"{src} without accept_memory=: the kernel's default")
        elif value.lower() in ("lazy", "eager"):
            facts["policy"] = Fact("policy", value.lower(), f"{src}: accept_memory={value}")
        else:
            # The kernel refuses other values (-EINVAL) and stays lazy.
            facts["policy"] = Fact("policy", AcceptPolicy.LAZY.value,
                                   f"{src}: accept_memory={value[:20]} is not a value the kernel takes: lazy")
    efi_size = [f for f in _memory_sizes(info, line) if f.source.startswith("EFI memory map")]
    agrees = memory is not None and bool(efi_size) and efi_size[0].value == memory.value
    accept = _firmware_accept(info, parse_size(memory.value), line) if agrees and memory else None
    if accept is not None:
        facts["firmware_accept"] = accept
    return LogGuest(path, facts, dict(info.milestones), info.boot_index, info.boots)


def _size_from_top(low_top: int | None, high_top: int | None) -> int | None:
    """QEMU q35's memory size for RAM ending at ``high_top`` above 4 GiB, else ``low_top``."""
    if high_top is not None and high_top > FOUR_GIB:
        return high_top - FOUR_GIB + LOWMEM_LARGE
    return low_top


def _q35_words(size: int, high: bool) -> str:
    if high:
        return (f"QEMU q35 keeps {format_size(LOWMEM_LARGE)} below 4 GiB and the rest above it: "
                f"{format_size(size)}")
    return f"all RAM below 4 GiB: {format_size(size)}"


def _memory(info: DmesgInfo, line: Callable[[str], str]) -> Fact | None:
    """The memory size of the first source that gives one."""
    sizes = _memory_sizes(info, line)
    return sizes[0] if sizes else None


def _memory_sizes(info: DmesgInfo, line: Callable[[str], str]) -> list[Fact]:
    """The memory size each source gives (e820, EFI map, zones or node ranges), in that order."""
    tops: list[tuple[str, str, int | None, int | None, bool]] = []
    # BIOS-e820
    low = [e for s, e, t in info.e820 if (t in _E820_RAM or t == "reserved") and e <= LOWMEM_SPLIT_THRESHOLD]
    high = [e for s, e, t in info.e820 if t in _E820_RAM and s >= FOUR_GIB]
    if low or high:
        tops.append(("e820", "BIOS-e820 map", max(low, default=None), max(high, default=None), False))
    # EFI memory map
    low = [d.end for d in info.efi_memmap
           if (d.type in _EFI_RAM or d.type == 0) and d.end <= LOWMEM_SPLIT_THRESHOLD]
    high = [d.end for d in info.efi_memmap if d.type in _EFI_RAM and d.start >= FOUR_GIB]
    if low or high:
        tops.append(("efi_memmap", "EFI memory map", max(low, default=None), max(high, default=None), False))
    # Zones and node ranges: usable RAM only, so a top below 4 GiB is rounded up to 2 MiB.
    normal = info.zones.get("Normal")
    nodes = [e for _, _, e in info.node_ranges]
    if normal is not None:
        tops.append(("zone Normal", "Normal zone", None, normal[1], False))
    elif nodes:
        top = max(nodes)
        tops.append(("node_ranges", "early memory node ranges", top, top if top > FOUR_GIB else None, True))
    out = []
    for key, what, low_top, high_top, rounded in tops:
        if rounded and low_top is not None and (high_top is None or high_top <= FOUR_GIB):
            low_top = -(-low_top // _UNIT) * _UNIT
        size = _size_from_top(low_top, high_top)
        if size is None:
            continue
        is_high = high_top is not None and high_top > FOUR_GIB
        top = high_top if is_high else low_top
        detail = f"RAM ends at {top:#x}; " + _q35_words(size, is_high)
        if rounded and not is_high:
            detail += " (rounded up to 2 MiB: the firmware keeps the last pages)"
        out.append(Fact("memory", _compact(size), f"{what} from {line(key)}: {detail}"))
    return out


def _vcpus(info: DmesgInfo, line: Callable[[str], str]) -> Fact | None:
    if info.cpus_brought_up is not None:
        return Fact("vcpus", str(info.cpus_brought_up),
                    f"{line('cpus_brought_up')}: smp: Brought up ..., {info.cpus_brought_up} CPUs")
    if info.cpus_allowed is not None:
        hot = info.cpus_hotplug or 0
        n = info.cpus_allowed - hot
        if n >= 1:
            return Fact("vcpus", str(n), f"{line('cpus_allowed')}: smpboot: Allowing {info.cpus_allowed} CPUs, "
                                         f"{hot} hotplug CPUs")
    if info.nr_cpu_ids is not None:
        return Fact("vcpus", str(info.nr_cpu_ids),
                    f"{line('nr_cpu_ids')}: setup_percpu: nr_cpu_ids:{info.nr_cpu_ids}")
    return None


def _firmware_accept(info: DmesgInfo, memory: int, line: Callable[[str], str]) -> Fact:
    """What the firmware accepted, from an EFI map that covers the guest's ``memory``."""
    ram = [d for d in info.efi_memmap if d.type in _EFI_RAM]
    unaccepted = sum(d.size for d in ram if d.type == _EFI_UNACCEPTED)
    src = f"EFI memory map from {line('efi_memmap')}: "
    if unaccepted == 0:
        return Fact("firmware_accept", "all", src + "no Unaccepted ranges: the firmware accepted all RAM")
    below_unacc = sum(min(d.end, FOUR_GIB) - d.start for d in ram if d.type == _EFI_UNACCEPTED and d.start < FOUR_GIB)
    above = [d for d in ram if d.end > FOUR_GIB]
    above_acc = sum(d.end - max(d.start, FOUR_GIB) for d in above if d.type != _EFI_UNACCEPTED)
    if below_unacc == 0 and above_acc < _UNIT:
        return Fact("firmware_accept", "below-4g",
                    src + f"RAM below 4 GiB accepted, the {format_size(unaccepted)} above it Unaccepted")
    accepted = max(0, memory - unaccepted) // _UNIT * _UNIT
    return Fact("firmware_accept", _compact(accepted),
                src + f"{format_size(memory)} of memory less {format_size(unaccepted)} Unaccepted, "
                      f"in whole 2 MiB units: {format_size(accepted)}")


def _compact(n: int) -> str:
    """The shortest exact size with a binary suffix, as an option takes it (``8G``, ``67000M``)."""
    return str(FirmwareAccept(FirmwareAcceptMode.SIZE, n)) if n else "0"


# -- with the command line's options ------------------------------------------------------------


@dataclass
class Likeness:
    """The log's facts merged with the options given: what was taken from the log, what the
    options overrode, and (once the configuration is resolved) what was assumed."""

    log: LogGuest
    taken: list[Fact]
    overridden: list[tuple[Fact, str]]
    #: The values to use, by field, as option strings (only fields the log or an option gave).
    values: dict[str, str]
    #: Options given for what the log does not say.
    given: list[Fact] = field(default_factory=list)
    assumed: list[Fact] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "log": self.log.path,
            "boot": self.log.boot_index,
            "boots": self.log.boots,
            "taken": [f.as_dict() for f in self.taken],
            "overridden": [f.as_dict() | {"option": v} for f, v in self.overridden],
            "given": [f.as_dict() for f in self.given],
            "assumed": [f.as_dict() for f in self.assumed],
        }


def merge(log: LogGuest, given: Mapping[str, object], fields: tuple[str, ...] = FIELDS) -> Likeness:
    """The log's facts, with every option that was given (not None) winning over the log.

    A kernel release the log names that cannot be modelled is an error naming the log line
    (give ``--kernel`` to model another); a log without a memory size is an error naming what
    is missing, unless ``--memory`` was given.  Only ``fields`` are taken (``compare`` boots both
    policies and takes no ``accept_memory=``)."""
    taken, overridden, values, options = [], [], {}, []
    for name in fields:
        fact = log.facts.get(name)
        option = given.get(name)
        if option is not None:
            values[name] = str(option)
            if fact is not None:
                overridden.append((fact, str(option)))
            else:
                options.append(Fact(name, str(option), "given; the log does not say"))
        elif fact is not None:
            taken.append(fact)
            values[name] = fact.value
    if "memory" not in values:
        raise ConfigError(
            f"{log.path}: the log does not say how much memory the guest has (no BIOS-e820 or EFI memory map "
            "lines, no Normal zone or early memory node ranges); give --memory"
        )
    kernel = next((f for f in taken if f.field == "kernel"), None)
    if kernel is not None:
        try:
            resolve_kernel(kernel.value)
        except ConfigError as exc:
            raise ConfigError(f"{log.path}: {kernel.source}: {exc}; give --kernel to model another release") from None
    return Likeness(log, taken, overridden, values, options)


#: Where each assumed value comes from when neither the log nor an option gives it.
_ASSUMED_WHY = {
    "platform": "not in the log: the host profile's platform",
    "vcpus": "not in the log: the host profile's default",
    "kernel": "not in the log: the host profile's default",
    "policy": "no command line in the log: the kernel's default",
    "firmware_accept": "no EFI memory map (efi=debug) in the log: the host profile's default",
    "host_mapping": "a log does not show it: the host profile's default",
}


def add_assumed(likeness: Likeness, config: VMConfig, fields: tuple[str, ...] = (*FIELDS, "host_mapping")) -> None:
    """Record, from the resolved configuration, the values that neither the log nor an option gave."""
    actual = {
        "platform": config.tee.value,
        "vcpus": str(config.vcpus),
        "kernel": config.kernel_release,
        "policy": config.policy.value,
        "firmware_accept": str(config.firmware_accept),
        "host_mapping": config.host_mapping.value,
    }
    likeness.assumed = [Fact(name, value, _ASSUMED_WHY[name]) for name, value in actual.items()
                        if name not in likeness.values and name in fields]


# -- milestones ---------------------------------------------------------------------------------

#: Milestone (formats.kernel_text.MILESTONES), what it is, and the model's instant: the start or
#: end of a phase.  Model times count from the start of early init, where the kernel's clock
#: (and a real log's time stamps) start.
MILESTONE_PHASES: tuple[tuple[str, str, BootPhase, str], ...] = (
    ("kernel-start", "kernel start (Linux version)", BootPhase.EARLY_INIT, "start"),
    ("memory-available", "memory handed to the page allocator (Memory:)", BootPhase.MEMBLOCK_FREE, "end"),
    ("mem-encrypt-active", "Memory Encryption Features active", BootPhase.MEM_ENCRYPT_INIT, "end"),
    ("smp-start", "smp: Bringing up secondary CPUs", BootPhase.SMP_BRINGUP, "start"),
    ("smp-done", "smp: Brought up ... CPUs", BootPhase.SMP_BRINGUP, "end"),
    ("deferred-pages-done", "deferred pages initialised", BootPhase.DEFERRED_INIT, "end"),
    ("free-initmem", "Freeing unused kernel memory", BootPhase.INITCALLS, "end"),
    ("run-init", "Run /init as init process", BootPhase.USERSPACE, "start"),
)


def milestone_rows(log_times: Mapping[str, float], phases: Mapping[str, tuple[float, float]]
                   ) -> list[dict[str, object]]:
    """One row per milestone: ``milestone``, ``log_s`` (None where the log has no time for it)
    and ``model_s`` (seconds since the model's kernel start; None where the phase did not run).
    ``phases`` maps each phase name to its (start, end) on the model's clock."""
    zero = phases.get(BootPhase.EARLY_INIT.value, (0.0, 0.0))[0]
    rows = []
    for key, label, phase, edge in MILESTONE_PHASES:
        span = phases.get(phase.value)
        model = None if span is None else (span[0] if edge == "start" else span[1]) - zero
        rows.append({"milestone": label, "key": key, "log_s": log_times.get(key), "model_s": model})
    return rows
