"""Text the Linux kernel prints: dmesg lines, ``/proc/meminfo``, node meminfo, ``/proc/vmstat``.

Parsers read what real guests print; builders write the kernel's exact layout, so that
``parse(format(x)) == x``.  Formats were read in torvalds/linux:

* e820 (arch/x86/kernel/e820.c ``e820__print_table``): ``BIOS-e820: [mem %#018Lx-%#018Lx] <type>``,
  the end inclusive; type ``usable``, ``reserved``, ``ACPI data``, ``ACPI NVS``, ``unusable``,
  ``persistent (type N)``, ``soft reserved``, ``type N``; newer trees may add ``; crypto-capable``.
* EFI map with ``efi=debug`` (``efi_print_memmap`` + drivers/firmware/efi/efi.c
  ``efi_md_typeattr_format``): ``efi: mem%02u: [<type %-12s>|<attribute columns>] range=[0x%016llx-
  0x%016llx] (%lluMB)``.  The columns grew over time (SP, then CC, then HP were added), an
  attribute with unknown bits prints ``|attr=0x%016llx``, a type past the name table prints
  ``[type=%u``; before v5.x the names were longer ("Conventional Memory").  All of these parse.
  The size is ``num_pages >> 8`` MiB; a size printed in another unit is kept as text.
* zones and node ranges (mm/mm_init.c): ``Zone ranges:``, ``  %-8s [mem ...]`` or ``empty``,
  ``Early memory node ranges``, ``  node %3d: [mem ...]``.
* meminfo (fs/proc/meminfo.c ``show_val_kb``): name and colon padded to 16 columns, value right
  aligned in 8, `` kB``; the HugePages counters have no unit; node meminfo (drivers/base/node.c)
  prefixes ``Node N`` and pads two names one column less.
* vmstat (mm/vmstat.c): ``name value``.

Kernel logs come as dmesg prints them, as syslog files (kern.log) and as ``journalctl -k`` prints
them in its text formats and its JSON export (systemd journalctl(1), ``--output``); a log of
several boots is split into boots (:func:`parse_dmesg_boots`), never summed into one.

Decisions on damaged text (each one tested):

* Empty text, text with NUL bytes or mostly control characters: FormatError.
* dmesg: lines we do not recognise are counted and ignored (logs are full of noise); a last line
  cut short usually matches nothing and is therefore ignored too (``DmesgInfo.partial_last_line``
  says so).  A recognised line with impossible content (an e820 range ending before it starts,
  an address past 64 bits) is a FormatError: it would silently change the memory map.
* meminfo: every non-blank line must be ``Name: <digits>[ kB]``; anything else is a FormatError
  naming the line.  A last line without a trailing newline and without the ``kB`` its field needs
  is reported as cut off mid-number (FormatError): the unit shows the number ended.
* vmstat: every non-blank line must be ``name <digits>``; a cut last line cannot be told from a
  short number, so it is accepted.
* meminfo and vmstat values past 64 bits (the kernel prints unsigned longs): FormatError.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..base.errors import FormatError
from .e820 import E820_TYPE_SOFT_RESERVED, e820_type_name, format_e820_range

__all__ = [
    "E820_TYPE_NAMES",
    "EFI_TYPE_NAMES",
    "EfiMemmapLine",
    "DmesgInfo",
    "parse_dmesg",
    "parse_dmesg_boots",
    "select_boot",
    "format_dmesg_line",
    "format_e820_lines",
    "format_efi_memmap_lines",
    "efi_typeattr",
    "parse_meminfo",
    "format_meminfo",
    "parse_node_meminfo",
    "format_node_meminfo",
    "parse_vmstat",
    "format_vmstat",
    "MEMINFO_UNITLESS",
]

# -- common checks ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f\ufffd]")


def _check_text(text: str, what: str) -> None:
    """Empty, non-str and binary input are errors for every parser."""
    if not isinstance(text, str):
        raise FormatError(f"{what}: expected text, got {type(text).__name__}")
    if not text or text.isspace():  # (not strip(): that would copy a whole log)
        raise FormatError(f"{what}: empty text")
    sample = text[:65536]
    bad = len(_CONTROL.findall(sample))
    if "\x00" in sample or bad > max(2, len(sample) // 100):
        raise FormatError(f"{what}: binary data, not text ({bad} control characters)")


def _lines(text: str) -> list[str]:
    """Lines without their end; a trailing ``\\r`` or a literal ``^M`` (mail archives) is dropped."""
    return list(_iter_lines(text))


def _iter_lines(text: str) -> Iterator[str]:
    """:func:`_lines` one at a time, so that a log of millions of lines is never held as a list."""
    start, end = 0, len(text)
    while start < end or (start == end and not text.endswith("\n")):
        stop = text.find("\n", start)
        if stop < 0:
            stop = end
        line = text[start:stop]
        while line.endswith(("\r", "^M")):
            line = line[:-1] if line.endswith("\r") else line[:-2]
        yield line
        start = stop + 1


# -- dmesg: names and codes -------------------------------------------------------------------

#: e820 type codes by the name ``e820_print_type`` prints (the names come from formats.e820).
E820_TYPE_NAMES: dict[int, str] = {t: e820_type_name(t) for t in (1, 2, 3, 4, 5, 7, 12, E820_TYPE_SOFT_RESERVED)}
_E820_CODES = {name: code for code, name in E820_TYPE_NAMES.items()}

#: EFI memory type names as ``efi_md_typeattr_format`` prints them (memory_type_name[][13]).
EFI_TYPE_NAMES: tuple[str, ...] = (
    "Reserved",
    "Loader Code",
    "Loader Data",
    "Boot Code",
    "Boot Data",
    "Runtime Code",
    "Runtime Data",
    "Conventional",
    "Unusable",
    "ACPI Reclaim",
    "ACPI Mem NVS",
    "MMIO",
    "MMIO Port",
    "PAL Code",
    "Persistent",
    "Unaccepted",
)
#: Names older kernels printed (memory_type_name[][20], before the names were shortened).
_EFI_OLD_NAMES = {
    "Conventional Memory": 7,
    "Unusable Memory": 8,
    "ACPI Reclaim Memory": 9,
    "ACPI Memory NVS": 10,
    "Memory Mapped I/O": 11,
    "MMIO Port Space": 12,
    "Persistent Memory": 14,
}
_EFI_CODES = {name: code for code, name in enumerate(EFI_TYPE_NAMES)} | _EFI_OLD_NAMES

# Attribute columns, newest kernel order (RUN, HP, MR, CC, SP, NV, XP, RP, WP, RO, UCE, WB, WT, WC, UC).
_EFI_COLUMNS: tuple[tuple[str, int, int], ...] = (
    ("RUN", 1 << 63, 3),
    ("HP", 0x100000, 2),
    ("MR", 0x10000, 2),
    ("CC", 0x80000, 2),
    ("SP", 0x40000, 2),
    ("NV", 0x8000, 2),
    ("XP", 0x4000, 2),
    ("RP", 0x2000, 2),
    ("WP", 0x1000, 2),
    ("RO", 0x20000, 2),
    ("UCE", 0x10, 3),
    ("WB", 0x8, 2),
    ("WT", 0x4, 2),
    ("WC", 0x2, 2),
    ("UC", 0x1, 2),
)
_EFI_ATTR_BITS = {name: bit for name, bit, _ in _EFI_COLUMNS} | {"RT": 1 << 63}
_EFI_KNOWN_MASK = sum(bit for _, bit, _ in _EFI_COLUMNS)
_EFI_NAME_WIDTH = 12  # sizeof(memory_type_name[0]) - 1

_ZONE_NAMES = ("DMA", "DMA32", "Normal", "HighMem", "Movable", "Device")

# -- dmesg: line prefixes ---------------------------------------------------------------------

_HEX = r"0x[0-9a-fA-F]+"
# The time stamps of syslog files and of journalctl's text formats (systemd journalctl(1),
# --output): short and short-precise ("Nov 30 10:00:00[.123456]"), short-iso and
# short-iso-precise ("2026-11-30T10:00:00[.123456]+0000", RFC 3339 syslog too), short-full
# ("Mon 2026-11-30 10:00:00 UTC") and short-unix ("1606730400.123456").
_WALL_CLOCK = (
    r"[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Za-z0-9+/_-]+"
    r"|\d{9,}\.\d{6}"
)
# short-monotonic "[    0.000000]" and short-delta "[    0.000000 <    0.000000>]": seconds since boot.
_MONOTONIC = r"\[ *(\d+)\.(\d+)(?: <[ \d.]+>)?\]"
# Then the host name and the identifier: "kernel:" is dropped; any other program keeps its
# "name[pid]: " (systemd writes "systemd[1]: Detected confidential virtualization ..." there).
_SYSLOG = re.compile(rf"^(?:{_WALL_CLOCK}|{_MONOTONIC}) \S+ (?:kernel: ?|(?=[\w.@-]+\[\d+\]: ))")
_FACILITY = re.compile(r"^[a-z]+ *:[a-z]+ *: ")  # dmesg -x: "kern  :info  : "
_LEVEL = re.compile(r"^<\d{1,3}>")
_MAIL_QUOTE = re.compile(r"^(?:> ?)+(?=[\[<A-Z])")  # "> [    0.000000] ..." pasted from a mail reply
_TIMESTAMP = re.compile(r"^\[ *(\d+)\.(\d+)\] ?")
_TIMESTAMP_HUMAN = re.compile(r"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d \d{4}\] ?")
_CALLER = re.compile(r"^\[ *[TC]\d+\] ?")
_PREFIXES = (_MAIL_QUOTE, _SYSLOG, _FACILITY, _LEVEL, _TIMESTAMP, _TIMESTAMP_HUMAN, _CALLER)


def _chain(patterns: tuple[re.Pattern[str], ...]) -> tuple[re.Pattern[str], int, int, int]:
    """One pattern matching what trying ``patterns`` in turn, each on what the ones before left,
    strips: each an optional group (all after it being optional too, a group never gives up its
    match).  Returns it and the group numbers of the seconds of ``_SYSLOG`` and ``_TIMESTAMP``
    and of the ``_MAIL_QUOTE`` group."""
    parts, group, where = [], 1, {}
    for p in patterns:
        assert p.pattern.startswith("^") and "^" not in p.pattern[1:].replace("[^", "")
        where[p] = group
        parts.append(f"({p.pattern[1:]})?")
        group += 1 + p.groups
    return re.compile("".join(parts)), where[_SYSLOG] + 1, where[_TIMESTAMP] + 1, where[_MAIL_QUOTE]


_PREFIX_CHAIN, _SYSLOG_SECONDS, _TIMESTAMP_SECONDS, _MAIL_GROUP = _chain(_PREFIXES)
# Colour from "dmesg --color=always" saved to a file: ECMA-48 CSI sequences.
_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# journalctl prints "-- Boot <boot id> --" (older versions "-- Reboot --") where a boot begins.
_BOOT_MARKER = re.compile(r"^-- (?:Boot [0-9a-f]{32}|Reboot) --\s*$")


def _strip_prefixes(line: str) -> tuple[str, bool, float | None]:
    """The message of a log line, whether the line had a kernel-log prefix at all, and the
    seconds since boot the line carries (None for none, or only a wall-clock time).

    The prefixes of :data:`_PREFIXES` are stripped in turn, each where the ones before left off
    (one match of :data:`_PREFIX_CHAIN`); the time stamp's seconds win over the syslog header's."""
    m = _PREFIX_CHAIN.match(line)
    assert m is not None  # every group of the chain is optional: it matches any line
    end = m.end()
    if not end:
        return line, False, None
    seconds = None
    if m[_TIMESTAMP_SECONDS] is not None:
        seconds = float(f"{m[_TIMESTAMP_SECONDS]}.{m[_TIMESTAMP_SECONDS + 1]}")
    elif m[_SYSLOG_SECONDS] is not None:
        seconds = float(f"{m[_SYSLOG_SECONDS]}.{m[_SYSLOG_SECONDS + 1]}")
    shaped = end != m.end(_MAIL_GROUP)  # something past a mail quote
    return line[end:], shaped, seconds


class _Entry(NamedTuple):
    """One kernel-log message with what its line says about the boot it belongs to."""

    lineno: int
    message: str
    #: The line had a log prefix (time stamp, syslog or journal header, level) or came from
    #: a journal record: it is a log line even when its message is not one we know.
    shaped: bool
    #: Seconds since boot, when the line says.
    seconds: float | None = None
    #: The journal's _BOOT_ID.
    boot_id: str | None = None
    #: A journalctl "-- Boot ... --" line: what follows is another boot.
    marker: bool = False
    #: The line is empty (not counted as ignored).
    blank: bool = False


def _text_entries(text: str) -> Iterator[_Entry]:
    """Entries of a text log, one per line."""
    for lineno, raw in enumerate(_iter_lines(text), 1):
        if "\x1b" in raw:
            raw = _CSI.sub("", raw)
        if raw.startswith("-- ") and _BOOT_MARKER.match(raw):
            yield _Entry(lineno, "", True, marker=True)
            continue
        msg, shaped, seconds = _strip_prefixes(raw)
        yield _Entry(lineno, msg, shaped, seconds, None, False, not raw or raw.isspace())


# Whitespace and the record separator of "journalctl -o json-seq" (RFC 7464) between records.
_JSON_GAP = re.compile(r"[\s\x1e]*")
_JSON_START = re.compile(r"[\s\x1e]*\{")


def _journal_field(record: dict[str, Any], name: str) -> str | None:
    """A journal field as text: strings as they are, byte arrays (how the JSON export writes
    fields that are not valid UTF-8) decoded leniently, anything else None."""
    value = record.get(name)
    if isinstance(value, list) and value and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _journal_seconds(record: dict[str, Any]) -> float | None:
    """Seconds since boot: the kernel's own time stamp if the journal kept it
    (_SOURCE_MONOTONIC_TIMESTAMP), else when journald received the message; both in microseconds."""
    for name in ("_SOURCE_MONOTONIC_TIMESTAMP", "__MONOTONIC_TIMESTAMP"):
        value = record.get(name)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
            return int(value) / 1e6
    return None


def _journal_entries(text: str) -> Iterator[_Entry]:
    """Entries of ``journalctl -o json`` (one object a line), ``json-pretty`` or ``json-seq``."""
    decoder = json.JSONDecoder()
    pos, lineno, end_of_text = 0, 1, len(text)
    while True:
        gap = _JSON_GAP.match(text, pos)
        assert gap is not None  # the pattern matches the empty string
        lineno += text.count("\n", pos, gap.end())
        pos = gap.end()
        if pos >= end_of_text:
            return
        try:
            record, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            # Not JSON from here on (a cut last record, a line of something else): one line ignored.
            end = text.find("\n", pos)
            end = end_of_text if end < 0 else end
            yield _Entry(lineno, text[pos:end][:200], False)
            pos = end
            continue
        first_line = lineno
        lineno += text.count("\n", pos, end)
        pos = end
        message = _journal_field(record, "MESSAGE") if isinstance(record, dict) else None
        if message is None:
            yield _Entry(first_line, "{...}", False)
            continue
        ident = _journal_field(record, "SYSLOG_IDENTIFIER")
        if ident and ident != "kernel":
            pid = _journal_field(record, "SYSLOG_PID") or _journal_field(record, "_PID")
            message = f"{ident}[{pid}]: {message}" if pid else f"{ident}: {message}"
        seconds = _journal_seconds(record)
        boot_id = _journal_field(record, "_BOOT_ID")
        for part in message.split("\n"):
            yield _Entry(first_line, part.rstrip("\r"), True, seconds, boot_id)


def _entries(text: str) -> Iterator[_Entry]:
    """Entries of a kernel log in any of the formats read (see :func:`parse_dmesg`)."""
    if _JSON_START.match(text):
        return _journal_entries(text)
    return _text_entries(text)


# -- dmesg: messages --------------------------------------------------------------------------

_E820 = re.compile(rf"^BIOS-e820: \[mem ({_HEX})-({_HEX})\] (.+?)(?:; crypto-capable)?\s*$")
_EFI_MEM = re.compile(
    rf"^efi: mem([0-9]{{1,9}}): \[([^\]]*)\] range=\[({_HEX})-({_HEX})([\])]) \(([^)]*)\)\s*$"
)
_TDX_GUEST = re.compile(r"^tdx: Guest detected\s*$")
_FEATURES = re.compile(r"^Memory Encryption Features active:(.*)$")
_SEV_STATUS = re.compile(r"^SEV: Status:(.*)$")
_ZONE_HEADER = re.compile(r"^Zone ranges:\s*$")
_ZONE = re.compile(rf"^ +({'|'.join(_ZONE_NAMES)}) +(?:\[mem ({_HEX})-({_HEX})\]|(empty))\s*$")
_NODE_HEADER = re.compile(r"^(?:Early memory node ranges|Movable zone start for each node)\s*$")
_NODE = re.compile(rf"^ +node +([0-9]{{1,9}}): \[mem ({_HEX})-({_HEX})\]\s*$")
_VERSION = re.compile(r"^Linux version (\S+)")
_OOPS_VERSION = re.compile(
    r"^CPU: [0-9]+ (?:UID: [0-9]+ )?PID: [0-9]+ Comm: .*? (?:Not tainted|Tainted: [A-Z ]+?) (\S+) #"
)
_MEMORY = re.compile(r"^Memory: ([0-9]{1,20})K/([0-9]{1,20})K available")
_SYSTEMD_CC = re.compile(r"^systemd\[1\]: Detected confidential virtualization ([\w-]+)\.")
_HOST_CMR = re.compile(rf"^virt/tdx: CMR: \[({_HEX}), ({_HEX})\)\s*$")
_HOST_PAMT = re.compile(r"^virt/tdx: ([0-9]{1,20}) KB allocated for PAMT\s*$")
_ENCRYPTION_ACTIVE = re.compile(r"^software IO TLB: Memory encryption is active")
# The CPU count (arch/x86/kernel/smpboot.c prefill_possible_map, kernel/smp.c smp_init,
# mm/percpu.c setup_per_cpu_areas on x86) and the command line (arch/x86/kernel/setup.c
# "Command line:", init/main.c "Kernel command line:").
_CPUS_ALLOWING = re.compile(r"^smpboot: Allowing ([0-9]{1,6}) CPUs, ([0-9]{1,6}) hotplug CPUs")
_CPUS_BROUGHT_UP = re.compile(r"^smp: Brought up ([0-9]{1,6}) nodes?, ([0-9]{1,6}) CPUs?\b")
_NR_CPU_IDS = re.compile(r"^setup_percpu: NR_CPUS:[0-9]+ nr_cpumask_bits:[0-9]+ nr_cpu_ids:([0-9]{1,6}) ")
_COMMAND_LINE = re.compile(r"^(Kernel command line|Command line): ?(.*)$")

#: Milestones of a boot whose time stamps a log gives, by the message that marks each one
#: (init/main.c, mm/mm_init.c, arch/x86/mm/mem_encrypt.c, kernel/smp.c, mm/page_alloc.c).
MILESTONES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("kernel-start", re.compile(r"^Linux version \S+")),
    ("memory-available", re.compile(r"^Memory: [0-9]+K/[0-9]+K available")),
    ("mem-encrypt-active", re.compile(r"^Memory Encryption Features active:")),
    ("smp-start", re.compile(r"^smp: Bringing up secondary CPUs")),
    ("smp-done", re.compile(r"^smp: Brought up [0-9]+ nodes?, [0-9]+ CPUs?")),
    ("deferred-pages-done", re.compile(r"^node +[0-9]+ deferred pages initiali[sz]ed in [0-9]+ms")),
    ("free-initmem", re.compile(r"^Freeing unused kernel (?:image \(initmem\) )?memory: [0-9]+K")),
    ("run-init", re.compile(r"^Run \S+ as init process")),
)


@dataclass(frozen=True)
class EfiMemmapLine:
    """One ``efi: memNN:`` line; ``end`` is exclusive; ``type`` is None for a name we do not know."""

    index: int
    type_name: str
    type: int | None
    attribute_names: tuple[str, ...]
    attribute: int
    start: int
    end: int
    size_mb: int | None
    size_text: str

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class DmesgInfo:
    """What a kernel log says about memory and the platform.  All ends are exclusive."""

    e820: list[tuple[int, int, str]] = field(default_factory=list)
    efi_memmap: list[EfiMemmapLine] = field(default_factory=list)
    platform: str | None = None
    encryption_features: list[str] = field(default_factory=list)
    sev_status: list[str] = field(default_factory=list)
    zones: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    node_ranges: list[tuple[int, int, int]] = field(default_factory=list)
    kernel_version: str | None = None
    memory_available_kb: int | None = None
    memory_total_kb: int | None = None
    tdx_host_cmrs: list[tuple[int, int]] = field(default_factory=list)
    tdx_host_pamt_kb: int | None = None
    memory_encryption_active: bool = False
    lines_parsed: int = 0
    lines_ignored: int = 0
    partial_last_line: bool = False
    #: How many boots the log holds, and which one (from 1) this is.
    boots: int = 1
    boot_index: int = 1
    #: CPUs: "smpboot: Allowing N CPUs" (possible), "smp: Brought up ..., M CPUs" (online after
    #: SMP bring-up), "setup_percpu: ... nr_cpu_ids:N".
    cpus_allowed: int | None = None
    cpus_hotplug: int | None = None
    cpus_brought_up: int | None = None
    nr_cpu_ids: int | None = None
    #: The kernel command line ("Kernel command line:" preferred to the earlier "Command line:").
    command_line: str | None = None
    #: Seconds since boot of each milestone of :data:`MILESTONES` the log time-stamps (first seen).
    milestones: dict[str, float] = field(default_factory=dict)
    #: Line number of the first line of each kind of fact, for saying where a value came from.
    lines: dict[str, int] = field(default_factory=dict)
    #: The message that first named the platform.
    platform_message: str | None = None

    def command_line_param(self, name: str) -> str | None:
        """The value of the last ``name=`` on the command line (the kernel takes the last)."""
        value = None
        for word in (self.command_line or "").split():
            if word.startswith(f"{name}="):
                value = word[len(name) + 1 :]
        return value

    def e820_total(self, type_name: str = "usable") -> int:
        """Bytes in e820 entries of one type."""
        return sum(end - start for start, end, t in self.e820 if t == type_name)

    def efi_total(self, type_code: int) -> int:
        """Bytes in EFI map lines of one memory type (15 = unaccepted)."""
        return sum(d.size for d in self.efi_memmap if d.type == type_code)


#: Physical addresses are 64-bit: a printed range past this is damaged text, not a memory map.
_ADDRESS_LIMIT = 1 << 64


def _range(start: str, end: str, lineno: int, what: str, inclusive: bool = True) -> tuple[int, int]:
    a, b = int(start, 16), int(end, 16) + (1 if inclusive else 0)
    if b <= a:
        raise FormatError(f"line {lineno}: {what} range [{start}-{end}] ends before it starts")
    if b > _ADDRESS_LIMIT:
        raise FormatError(f"line {lineno}: {what} range [{start[:24]}-{end[:24]}] goes past 64-bit addresses")
    return a, b


def _parse_typeattr(text: str) -> tuple[str, int | None, tuple[str, ...], int]:
    """Split ``Conventional|   |  |...|UC`` or ``type=16|attr=0x...`` into its parts."""
    parts = text.split("|")
    head = parts[0].strip()
    if head.startswith("type="):
        code: int | None = int(head[5:]) if re.fullmatch("[0-9]{1,10}", head[5:]) else None
        name = head
    else:
        name = head
        code = _EFI_CODES.get(head)
    cols = [p.strip() for p in parts[1:]]
    if len(cols) == 1 and cols[0].startswith("attr=0x"):
        try:
            attr = int(cols[0][5:], 16)
        except ValueError:
            attr = 0
        return name, code, (), attr
    names = tuple(c for c in cols if c)
    attr = 0
    for c in names:
        attr |= _EFI_ATTR_BITS.get(c, 0)
    return name, code, names, attr


def parse_dmesg(text: str, boot: int = -1) -> DmesgInfo:
    """Read a kernel log and extract the memory facts of one boot (default: the last).

    Formats read: ``dmesg`` (also ``-x``, ``-T``, with ``[T0]`` caller ids, coloured, quoted in
    mail), syslog files such as kern.log, serial consoles, ``journalctl -k`` in its text formats
    (``short``, ``short-precise``, ``short-iso``, ``short-iso-precise``, ``short-full``,
    ``short-monotonic``, ``short-delta``, ``short-unix``) and its JSON export (``-o json``,
    ``json-pretty``, ``json-seq``).  ``boot`` counts from 1; negative counts from the end.
    """
    return select_boot(parse_dmesg_boots(text), boot)


def select_boot(boots: list[DmesgInfo], boot: int = -1) -> DmesgInfo:
    """One boot of :func:`parse_dmesg_boots`'s list (from 1; negative from the end), told its place."""
    n = len(boots)
    if boot == 0 or not -n <= boot <= n:
        held = f"{n} boot" + ("" if n == 1 else "s")
        raise FormatError(f"dmesg: there is no boot {boot}: the log holds {held} (count from 1, or -1 for the last)")
    index = boot - 1 if boot > 0 else n + boot
    info = boots[index]
    info.boots, info.boot_index = n, index + 1
    return info


#: A monotonic time stamp this far below the one before it means the machine booted again; less
#: is the few microseconds by which CPUs' clocks can disagree.  A reset to exactly 0 always counts.
_CLOCK_BACKWARDS_S = 1.0


def _new_boot(e: _Entry, pending: bool, banner: bool, last_seconds: float | None, boot_id: str | None) -> bool:
    """Whether log entry ``e`` starts another boot, given what the current boot has shown."""
    if pending:
        return True  # journalctl's "-- Boot ... --" line
    if e.boot_id is not None and boot_id is not None:
        return e.boot_id != boot_id
    if e.seconds is not None and last_seconds is not None:
        if e.seconds < last_seconds - _CLOCK_BACKWARDS_S or (e.seconds == 0 < last_seconds):
            return True
    # A second banner: the time stamps (if any) could not tell, the banner can.  The first
    # banner does not split: lines such as "tdx: Guest detected" come before it in one boot.
    return banner and bool(_VERSION.match(e.message))


def parse_dmesg_boots(text: str) -> list[DmesgInfo]:
    """Every boot of a kernel log, in order; see :func:`parse_dmesg` for the formats.

    A log of several boots (``journalctl -k`` without ``-b``, kern.log, logs appended to each
    other) is split where the journal says a boot begins (``-- Boot ... --``, a new _BOOT_ID),
    where the time since boot goes back to 0, or at a second ``Linux version`` banner.  Lines
    that are neither log lines nor known messages (a pasted shell prompt, a comment) never
    start a boot.  Without time stamps or journal boot lines ("dmesg -t"), only the banner tells
    boots apart, so the few lines a kernel prints before its banner (TDX guests print
    "tdx: Guest detected" first) are counted with the boot before.
    """
    _check_text(text, "dmesg")
    boots = [DmesgInfo()]
    info = boots[0]
    has_lines = banner = pending = False
    last_seconds: float | None = None
    boot_id: str | None = None
    shaped_any = False
    last_recognised = True
    for e in _entries(text):
        if e.marker:
            pending = shaped_any = True
            continue
        is_banner = e.message.startswith("Linux version ") and bool(_VERSION.match(e.message))
        if (e.shaped or is_banner) and has_lines and _new_boot(e, pending, banner, last_seconds, boot_id):
            info = DmesgInfo()
            boots.append(info)
            banner, last_seconds = False, None
        recognised = _parse_message(info, e.message, e.lineno, e.seconds)
        if recognised:
            info.lines_parsed += 1
        elif not e.blank:
            info.lines_ignored += 1
        last_recognised = recognised or e.blank
        if e.shaped or recognised:
            # A kernel-log line (bare messages too, as "dmesg -t" prints them).
            has_lines, pending = True, False
            shaped_any |= e.shaped
            last_seconds = e.seconds if e.seconds is not None else last_seconds
            boot_id = e.boot_id or boot_id
            banner |= is_banner
    boots[-1].partial_last_line = not text.endswith("\n") and not last_recognised
    if not shaped_any and not any(b.lines_parsed for b in boots):
        raise FormatError("dmesg: no kernel log line found (no timestamps, no known kernel messages)")
    for b in boots:
        if b.platform is None:
            b.platform = _platform_from(b)
    return boots


#: How every message :func:`_parse_message` knows begins (each pattern of :func:`_parse_known`,
#: :func:`_parse_cpus_and_cmdline` and :data:`MILESTONES` starts with one of these): a message
#: starting otherwise is not one we know, without trying the patterns one by one.
_KNOWN_STARTS = (
    "BIOS-e820: ", "efi: mem", "tdx: Guest detected", "Memory Encryption Features active:", "SEV: Status:",
    "Zone ranges:", " ", "Early memory node ranges", "Movable zone start for each node", "Linux version ",
    "CPU: ", "Memory: ", "systemd[1]: Detected confidential virtualization ", "virt/tdx: ",
    "software IO TLB: Memory encryption is active", "smpboot: Allowing ", "smp: Brought up ",
    "setup_percpu: NR_CPUS:", "Kernel command line", "Command line", "smp: Bringing up secondary CPUs", "node ",
    "Freeing unused kernel ", "Run ",
)
#: How the messages of :data:`MILESTONES` begin, and those :func:`_parse_cpus_and_cmdline` reads.
_MILESTONE_STARTS = (
    "Linux version ", "Memory: ", "Memory Encryption Features active:", "smp: Bringing up secondary CPUs",
    "smp: Brought up ", "node ", "Freeing unused kernel ", "Run ",
)
_CPUS_AND_CMDLINE_STARTS = ("smpboot: Allowing ", "smp: Brought up ", "setup_percpu: NR_CPUS:", "Kernel command line",
                            "Command line")


def _parse_message(info: DmesgInfo, msg: str, lineno: int, seconds: float | None = None) -> bool:
    """Record what one message says; False when it is not one we know."""
    if not msg.startswith(_KNOWN_STARTS):
        return False
    known = _parse_known(info, msg, lineno)
    if not msg.startswith(_MILESTONE_STARTS):
        return known
    for name, pattern in MILESTONES:
        if pattern.match(msg):
            if seconds is not None:
                info.milestones.setdefault(name, seconds)
            info.lines.setdefault(name, lineno)
            return True
    return known


def _parse_known(info: DmesgInfo, msg: str, lineno: int) -> bool:
    if msg.startswith(_CPUS_AND_CMDLINE_STARTS) and _parse_cpus_and_cmdline(info, msg, lineno):
        return True
    m = _E820.match(msg)
    if m:
        info.lines.setdefault("e820", lineno)
        start, end = _range(m[1], m[2], lineno, "e820")
        info.e820.append((start, end, sys.intern(m[3].strip())))
        return True
    m = _EFI_MEM.match(msg)
    if m:
        # Kernels before ~v4.5 printed the end exclusive, closed with ")".
        start, end = _range(m[3], m[4], lineno, "EFI memory map", inclusive=m[5] == "]")
        name, code, names, attr = _parse_typeattr(m[2])
        size_text = m[6].strip()
        mb = re.fullmatch(r"([0-9]+)MB", size_text)
        size_mb = int(mb[1]) if mb else None
        line = EfiMemmapLine(int(m[1]), name, code, names, attr, start, end, size_mb, size_text)
        info.lines.setdefault("efi_memmap", lineno)
        info.efi_memmap.append(line)
        return True
    m = _ZONE.match(msg)
    if m:
        info.lines.setdefault(f"zone {m[1]}", lineno)
        info.zones[m[1]] = None if m[4] else _range(m[2], m[3], lineno, f"zone {m[1]}")
        return True
    m = _NODE.match(msg)
    if m:
        info.lines.setdefault("node_ranges", lineno)
        start, end = _range(m[2], m[3], lineno, "node")
        info.node_ranges.append((int(m[1]), start, end))
        return True
    if _TDX_GUEST.match(msg):
        info.platform = "tdx"
        _platform_seen(info, lineno, msg)
        return True
    m = _FEATURES.match(msg)
    if m:
        if "TDX" in m[1] or "SEV-SNP" in m[1]:
            _platform_seen(info, lineno, msg)
        words = m[1].split()
        info.encryption_features = [w for w in words if w not in ("Intel", "AMD")]
        info.memory_encryption_active = True
        return True
    m = _SEV_STATUS.match(msg)
    if m:
        if "SEV-SNP" in m[1]:
            _platform_seen(info, lineno, msg)
        info.sev_status = _sev_status_names(m[1])
        info.memory_encryption_active = True
        return True
    if _ENCRYPTION_ACTIVE.match(msg):
        info.memory_encryption_active = True
        return True
    m = _VERSION.match(msg)
    if m:
        info.kernel_version = m[1]
        info.lines["kernel_version"] = lineno
        info.lines.pop("kernel_version_from_oops", None)
        return True
    m = _OOPS_VERSION.match(msg)
    if m:
        if info.kernel_version is None:
            info.kernel_version = m[1]
            info.lines["kernel_version"] = lineno
            info.lines["kernel_version_from_oops"] = lineno
        return True
    m = _MEMORY.match(msg)
    if m:
        info.memory_available_kb, info.memory_total_kb = int(m[1]), int(m[2])
        return True
    m = _SYSTEMD_CC.match(msg)
    if m:
        cc = {"tdx": "tdx", "sev-snp": "snp"}.get(m[1])
        if cc and info.platform is None:
            info.platform = cc
            _platform_seen(info, lineno, msg)
        return True
    m = _HOST_CMR.match(msg)
    if m:
        info.tdx_host_cmrs.append(_range(m[1], m[2], lineno, "CMR", inclusive=False))
        return True
    m = _HOST_PAMT.match(msg)
    if m:
        info.tdx_host_pamt_kb = int(m[1])
        return True
    return bool(_ZONE_HEADER.match(msg) or _NODE_HEADER.match(msg))


def _platform_seen(info: DmesgInfo, lineno: int, msg: str) -> None:
    if "platform" not in info.lines:
        info.lines["platform"] = lineno
        info.platform_message = msg.strip()[:120]


def _parse_cpus_and_cmdline(info: DmesgInfo, msg: str, lineno: int) -> bool:
    m = _CPUS_ALLOWING.match(msg)
    if m:
        info.cpus_allowed, info.cpus_hotplug = int(m[1]), int(m[2])
        info.lines.setdefault("cpus_allowed", lineno)
        return True
    m = _CPUS_BROUGHT_UP.match(msg)
    if m:
        info.cpus_brought_up = int(m[2])
        info.lines.setdefault("cpus_brought_up", lineno)
        return True
    m = _NR_CPU_IDS.match(msg)
    if m:
        info.nr_cpu_ids = int(m[1])
        info.lines.setdefault("nr_cpu_ids", lineno)
        return True
    m = _COMMAND_LINE.match(msg)
    if m:
        if m[1] == "Kernel command line" or info.command_line is None:
            info.command_line = m[2].strip()
            info.lines["command_line"] = lineno
        return True
    return False


#: Names ``sev_show_status`` prints, some of several words (arch/x86/coco/sev, sev_status_feat_names).
_SEV_STATUS_NAMES = (
    "SEV", "SEV-ES", "SEV-SNP", "vTom", "Reflect VC", "RI", "AI", "DebugSwap", "No HostIBS", "BTB Isol",
    "VmplSSS", "Secure TSC", "VMGExit param", "IBS Virt", "VMSA reg prot", "SMT prot",
)
_SEV_MULTI = sorted((n.split() for n in _SEV_STATUS_NAMES if " " in n), key=len, reverse=True)


def _sev_status_names(text: str) -> list[str]:
    """Split the status words into feature names, keeping the multi-word ones together."""
    words, out, i = text.split(), [], 0
    while i < len(words):
        for name in _SEV_MULTI:
            if words[i : i + len(name)] == name:
                out.append(" ".join(name))
                i += len(name)
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _platform_from(info: DmesgInfo) -> str | None:
    if "TDX" in info.encryption_features:
        return "tdx"
    if "SEV-SNP" in info.encryption_features or "SEV-SNP" in info.sev_status:
        return "snp"
    return None


# -- dmesg builders ---------------------------------------------------------------------------


def format_dmesg_line(ts: float, text: str) -> str:
    """``[%5lu.%06lu] text`` as printk prints the time stamp."""
    usec_total = round(ts * 1_000_000)
    if usec_total < 0:
        raise FormatError(f"negative time stamp {ts}")
    sec, usec = divmod(usec_total, 1_000_000)
    return f"[{sec:5d}.{usec:06d}] {text}"


def _prefixed(ts: float | None, text: str) -> str:
    return text if ts is None else format_dmesg_line(ts, text)


def _e820_fields(entry: Any) -> tuple[int, int, int | str]:
    """(start, end exclusive, type) from a tuple or an object with start/end or addr/size."""
    if isinstance(entry, tuple):
        start, end, typ = entry
        return start, end, typ
    typ = getattr(entry, "type_name", None) or entry.type
    if hasattr(entry, "start") and hasattr(entry, "end"):
        return entry.start, entry.end, typ
    return entry.addr, entry.addr + entry.size, typ


def format_e820_lines(entries: Iterable[Any], timestamp: float | None = 0.0) -> list[str]:
    """``BIOS-e820:`` lines for ``(start, end_exclusive, type)`` entries (type: name or e820 code)."""
    out = []
    for entry in entries:
        start, end, typ = _e820_fields(entry)
        if end <= start:
            raise FormatError(f"e820 entry [{start:#x}, {end:#x}) is empty")
        name = e820_type_name(typ) if isinstance(typ, int) else str(getattr(typ, "name", typ))
        out.append(_prefixed(timestamp, format_e820_range(start, end, name)))
    return out


def efi_typeattr(type_code: int, attribute: int) -> str:
    """The ``[type|attribute columns]`` text ``efi_md_typeattr_format`` makes (newest layout)."""
    if 0 <= type_code < len(EFI_TYPE_NAMES):
        head = "[" + EFI_TYPE_NAMES[type_code].ljust(_EFI_NAME_WIDTH)
    else:
        head = f"[type={type_code}"
    if attribute & ~_EFI_KNOWN_MASK:
        return head + f"|attr=0x{attribute:016x}]"
    cols = [(name if attribute & bit else "").rjust(width) for name, bit, width in _EFI_COLUMNS]
    return head + "|" + "|".join(cols) + "]"


def format_efi_memmap_lines(descriptors: Iterable[Any], timestamp: float | None = 0.0) -> list[str]:
    """``efi: memNN:`` lines as ``efi_print_memmap`` prints them with ``efi=debug``.

    Each descriptor needs ``type``, ``physical_start``, ``number_of_pages`` and ``attribute``.
    """
    out = []
    for i, d in enumerate(descriptors):
        start, pages = d.physical_start, d.number_of_pages
        if pages <= 0:
            raise FormatError(f"descriptor {i} has {pages} pages")
        end_incl = start + (pages << 12) - 1
        text = (
            f"efi: mem{i:02d}: {efi_typeattr(d.type, d.attribute)} "
            f"range=[0x{start:016x}-0x{end_incl:016x}] ({pages >> 8}MB)"
        )
        out.append(_prefixed(timestamp, text))
    return out


# -- /proc/meminfo and node meminfo -----------------------------------------------------------

#: meminfo fields printed without a unit (hugetlb_report_meminfo).
MEMINFO_UNITLESS = frozenset({"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"})
#: node meminfo names printed one column narrower than the rest (drivers/base/node.c).
_NODE_NARROW = frozenset({"FileHugePages", "FilePmdMapped"})

_FIELD = re.compile(r"^([^\s:][^:]*):(.*)$")
_VALUE = re.compile(r"^\s*([0-9]+)(?:\s+(kB))?\s*$")
_NODE_FIELD = re.compile(r"^Node ([0-9]+) ([^\s:][^:]*):(.*)$")


#: The kernel prints these counters from unsigned longs: more than 64 bits is damaged text.
_COUNTER_LIMIT = 1 << 64


def _counter(digits: str, lineno: int, name: str, what: str) -> int:
    """A decimal counter, refused past 64 bits (and before int() meets a 4300-digit string)."""
    value = int(digits) if len(digits.lstrip("0")) <= 20 else _COUNTER_LIMIT
    if value >= _COUNTER_LIMIT:
        raise FormatError(f"{what}: line {lineno}: {name!r} has a value that does not fit in 64 bits")
    return value


def _field_value(name: str, rest: str, lineno: int, is_cut_candidate: bool, what: str) -> int:
    m = _VALUE.match(rest)
    if not m:
        raise FormatError(f"{what}: line {lineno}: field {name!r} has a non-number value {rest.strip()[:40]!r}")
    if m[2] is None and name not in MEMINFO_UNITLESS and is_cut_candidate:
        raise FormatError(
            f"{what}: last line {lineno} ({name}: {m[1][:24]}) has no kB unit: the text looks cut off mid-number"
        )
    return _counter(m[1], lineno, name, what)


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as ``{name: value}``: kB values as printed, unit-less counters as they are."""
    _check_text(text, "meminfo")
    lines = _lines(text)
    out: dict[str, int] = {}
    last = len(lines)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _FIELD.match(line.strip())
        if not m:
            raise FormatError(f"meminfo: line {lineno} is not a 'Name: value' field: {line.strip()[:60]!r}")
        name = m[1]
        if name in out:
            raise FormatError(f"meminfo: line {lineno}: field {name!r} appears twice")
        cut = lineno == last and not text.endswith("\n")
        out[name] = _field_value(name, m[2], lineno, cut, "meminfo")
    if "MemTotal" not in out:
        raise FormatError("meminfo: no MemTotal field: not a /proc/meminfo")
    return out


def _meminfo_line(name: str, value: int, *, node: bool) -> str:
    if value < 0:
        raise FormatError(f"meminfo field {name!r} has a negative value {value}")
    prefix = f"{name}:"
    if name in MEMINFO_UNITLESS:
        # meminfo: "HugePages_Total:   %5lu"; node: "HugePages_Total: %5u", "HugePages_Free:  %5u".
        return prefix.ljust(17 if node else 19) + f"{value:5d}"
    if node and name in _NODE_NARROW:
        return prefix.ljust(15) + f"{value:8d} kB"
    if len(prefix) <= 16:
        return prefix.ljust(16) + f"{value:8d} kB"
    # Longer names keep one space and the 24-column alignment ("HardwareCorrupted: %5lu kB").
    return prefix + " " + f"{value:{24 - len(prefix) - 1}d} kB"


def format_meminfo(fields: Mapping[str, int]) -> str:
    """``/proc/meminfo`` text in the kernel's layout, fields in the given order."""
    return "".join(_meminfo_line(name, value, node=False) + "\n" for name, value in fields.items())


def parse_node_meminfo(text: str) -> dict[int, dict[str, int]]:
    """``/sys/devices/system/node/nodeN/meminfo`` (one or several nodes) as ``{node: {name: value}}``."""
    _check_text(text, "node meminfo")
    lines = _lines(text)
    out: dict[int, dict[str, int]] = {}
    last = len(lines)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _NODE_FIELD.match(line.strip())
        if not m:
            raise FormatError(
                f"node meminfo: line {lineno} is not a 'Node N Name: value' field: {line.strip()[:60]!r}"
            )
        nid, name = int(m[1]), m[2]
        fields = out.setdefault(nid, {})
        if name in fields:
            raise FormatError(f"node meminfo: line {lineno}: field {name!r} of node {nid} appears twice")
        cut = lineno == last and not text.endswith("\n")
        fields[name] = _field_value(name, m[3], lineno, cut, "node meminfo")
    for nid, fields in out.items():
        if "MemTotal" not in fields:
            raise FormatError(f"node meminfo: node {nid} has no MemTotal field")
    return out


def format_node_meminfo(nodes: Mapping[int, Mapping[str, int]]) -> str:
    """Node meminfo text for one or several nodes, in the layout of drivers/base/node.c."""
    return "".join(
        f"Node {nid} " + _meminfo_line(name, value, node=True) + "\n"
        for nid, fields in nodes.items()
        for name, value in fields.items()
    )


# -- /proc/vmstat -----------------------------------------------------------------------------

_VMSTAT = re.compile(r"^([A-Za-z0-9_]+) +(\S+)$")


def parse_vmstat(text: str) -> dict[str, int]:
    """``/proc/vmstat`` (or a node's vmstat) as ``{name: value}``; values are page counts or events."""
    _check_text(text, "vmstat")
    out: dict[str, int] = {}
    for lineno, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        m = _VMSTAT.match(line.strip())
        if not m:
            raise FormatError(f"vmstat: line {lineno} is not a 'name value' pair: {line.strip()[:60]!r}")
        if not re.fullmatch("[0-9]+", m[2]):
            raise FormatError(f"vmstat: line {lineno}: {m[1]!r} has a non-number value {m[2][:30]!r}")
        if m[1] in out:
            raise FormatError(f"vmstat: line {lineno}: {m[1]!r} appears twice")
        out[m[1]] = _counter(m[2], lineno, m[1], "vmstat")
    if "nr_free_pages" not in out:
        raise FormatError("vmstat: no nr_free_pages counter: not a /proc/vmstat")
    return out


def format_vmstat(d: Mapping[str, int]) -> str:
    """``/proc/vmstat`` text: ``name value`` lines in the given order."""
    out = []
    for name, value in d.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", name) or value < 0:
            raise FormatError(f"cannot write vmstat counter {name!r} = {value}")
        out.append(f"{name} {value}\n")
    return "".join(out)
