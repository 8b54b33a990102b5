"""Read real artefacts and describe them as JSON-ready documents (``lazyaccept inspect``).

One document per file; the keys of every kind are listed in the README ("inspect --json schema").  Addresses and
sizes are integers in bytes, every ``end`` is exclusive.  Errors are :class:`FormatError`
whose message starts with the file's path, so the command line prints one line naming it.

Each file is opened once and read once (``fileio.open_input``: regular files only, never a FIFO
or a device), and only up to the size its kind can have (:data:`SIZE_LIMITS`); a file of
unknown kind is first read up to the limit of text or of binary files, as its first 64 KiB say.
The limits, each far above what a real artefact needs:

* firmware images: 64 MiB (OVMF builds are 2 to 4 MiB).
* kernel logs (and e820 listings as text): 256 MiB; the kernel's own buffer is at most 32 MiB
  (CONFIG_LOG_BUF_SHIFT up to 25), a kern.log or journal export of many boots can be larger.
* meminfo, node meminfo, vmstat: 16 MiB (a node's meminfo is about 2 KiB, with up to 1024 nodes).
* EFI memory maps: 16 MiB (350,000 descriptors of 48 bytes; real maps have hundreds).
* unaccepted-memory tables: 64 MiB of bitmap plus the header: one bit per 2 MiB unit covers
  1 PiB of address space (a 64 TiB guest, the model's largest, needs 4 MiB).
* HOB lists: 16 MiB (QEMU's TD HOB fits in OVMF's 8 KiB TD_HOB section).
* binary e820 tables: 1 MiB (20-byte entries; the kernel keeps at most 128 + 3 * 1024).
* IGVM files: 64 MiB (COCONUT-SVSM and OVMF images are a few MiB, OpenHCL tens of MiB).
* host traces: 256 MiB (about 200 bytes per 100 ms interval: days of tracing).
"""

from __future__ import annotations

import codecs
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..base.choices import InspectKind
from ..base.errors import FormatError
from ..base.fileio import HEAD_SIZE, open_input
from ..base.units import PAGE_SIZE, KiB, MiB, format_size
from ..formats import host_trace as ht
from ..formats import kernel_text as kt
from ..formats import tdvf
from ..formats.e820 import E820_TYPE_RAM, e820_type_name, efi_type_to_e820, parse_e820_table
from ..formats.efi_memmap import (
    DESCRIPTOR_SIZE_EDK2,
    DESCRIPTOR_SIZE_MIN,
    EfiMemoryDescriptor,
    MemoryType,
    attribute_names,
    parse_memory_map,
)
from ..formats.hob import HobList, RawHob, hob_type_name, parse_hob_list, resource_attribute_names
from ..formats.igvm import looks_like_igvm
from ..formats.unaccepted_bitmap import HEADER_SIZE, bitmap_runs, count_bits_and_runs, parse_header
from .inspect_firmware import LaunchOptions, firmware_verdict_doc, igvm_doc

__all__ = ["KINDS", "SIZE_LIMITS", "E820_BINARY_LIMIT", "LIST_LIMIT", "detect_kind", "inspect_file", "cross_checks"]

#: Entries of a document's list shown unless all are asked for (``inspect --all``); real
#: artefacts have far fewer (an EFI memory map some hundreds), damaged or made-up ones can have
#: millions.  A list cut short is named in the document's ``truncated`` (key -> full length).
LIST_LIMIT = 1000

_TEXT_LOG = (256 * MiB, "kernel logs")


@dataclass(frozen=True)
class KindSpec:
    """What ``inspect`` needs to know of a kind before parsing it."""

    #: The largest file of the kind read, and what an error calls such files.
    limit: tuple[int, str]
    #: Read as text (else as bytes).
    text: bool


#: Every kind, declared once (the parsers and the tables of each are keyed by the same enum).
KIND_SPECS: dict[InspectKind, KindSpec] = {
    InspectKind.FIRMWARE: KindSpec((64 * MiB, "firmware images"), text=False),
    InspectKind.DMESG: KindSpec(_TEXT_LOG, text=True),
    InspectKind.E820: KindSpec(_TEXT_LOG, text=True),  # as text; a binary table: E820_BINARY_LIMIT
    InspectKind.MEMINFO: KindSpec((16 * MiB, "meminfo files"), text=True),
    InspectKind.NODE_MEMINFO: KindSpec((16 * MiB, "node meminfo files"), text=True),
    InspectKind.VMSTAT: KindSpec((16 * MiB, "vmstat files"), text=True),
    InspectKind.EFI_MEMMAP: KindSpec((16 * MiB, "EFI memory maps"), text=False),
    InspectKind.UNACCEPTED_TABLE: KindSpec((64 * MiB + HEADER_SIZE, "unaccepted-memory tables"), text=False),
    InspectKind.HOB_LIST: KindSpec((16 * MiB, "HOB lists"), text=False),
    InspectKind.IGVM: KindSpec((64 * MiB, "IGVM files"), text=False),
    InspectKind.HOST_TRACE: KindSpec((256 * MiB, "host traces"), text=True),
}
#: Every kind ``inspect`` knows, in the order ``--kind`` lists them.
KINDS = tuple(k.value for k in InspectKind)
_TEXT_KINDS = {k.value for k, spec in KIND_SPECS.items() if spec.text}
#: The largest file of each kind read, and what the error calls such files (see the module text).
SIZE_LIMITS: dict[str, tuple[int, str]] = {k.value: spec.limit for k, spec in KIND_SPECS.items()}
#: Binary e820 tables (the "e820" entry of SIZE_LIMITS is for the text form).
E820_BINARY_LIMIT = (1 * MiB, "binary e820 tables")
_ANY_TEXT = (max(SIZE_LIMITS[k][0] for k in _TEXT_KINDS), "text files")
_ANY_BINARY = (max(v[0] for k, v in SIZE_LIMITS.items() if k not in _TEXT_KINDS), "binary files")

#: Names of the OVMF GUIDed-table entries (EDK2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm).
OVMF_TABLE_NAMES = {
    str(tdvf.TDX_METADATA_OFFSET_GUID): "TDX metadata offset",
    "dc886566-984a-4798-a75e-5585a7bf67cc": "SEV metadata offset",
    "7255371f-3a3b-4b04-927b-1da6efa8d454": "SEV hash table block",
    "4c2eb361-7d9b-4cc3-8081-127c90d3d294": "SEV secret block",
    "00f771de-1a7e-4fcb-890e-68c77e2fb44e": "SEV-ES reset block",
}

_UNACCEPTED_TYPE = int(MemoryType.EfiUnacceptedMemoryType)
#: Errors a parser written elsewhere might let slip on hostile bytes; reported, never a traceback.
_PARSER_SLIPS = (ValueError, struct.error, IndexError, OverflowError, KeyError, UnicodeError)


# -- text or binary ---------------------------------------------------------------------------


def _as_text(data: bytes) -> str | None:
    """The data as text, or None when it is binary (NUL bytes or mostly non-printable)."""
    head = data[:65536]
    if b"\x00" in head:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
        if printable < 0.95 * len(head):
            return None
        return data.decode("utf-8", errors="replace")


def _looks_textual(head: bytes) -> bool:
    """What :func:`_as_text` would say from the first bytes alone (a character cut at the end
    of them does not count against it)."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return True
    except UnicodeDecodeError:
        printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
        return printable >= 0.95 * len(head)


def _first_line(text: str) -> str:
    """The first line that is not blank or a comment (without splitting a whole log into lines)."""
    start = 0
    while start < len(text):
        stop = text.find("\n", start)
        stop = len(text) if stop < 0 else stop
        line = text[start:stop].strip()
        if line and not line.startswith("#"):
            return line
        start = stop + 1
    return ""


# -- detection --------------------------------------------------------------------------------


def _strong_kinds(data: bytes, text: str | None) -> list[str]:
    """Kinds whose signature the data carries; a parse error for one of them is the real error."""
    if text is None:
        kinds = []
        if tdvf.looks_like_ovmf(data):
            kinds.append("firmware")
        if looks_like_igvm(data):
            kinds.append("igvm")
        if len(data) >= 8 and struct.unpack_from("<HHI", data) == (0x0001, 56, 0):
            kinds.append("hob-list")  # a PHIT header: type 1, length 56, reserved 0
        if len(data) >= HEADER_SIZE:
            version, unit = struct.unpack_from("<II", data)
            if version == 1 and unit >= PAGE_SIZE and unit & (unit - 1) == 0:
                kinds.append("unaccepted-table")
        return kinds
    first = _first_line(text)
    if re.search(rf"(?m)^{ht.MAGIC} ", text[:65536]):
        return ["host-trace"]
    if re.match(r"Node [0-9]+ \S+:", first):
        return ["node-meminfo"]
    if re.search(r"(?m)^MemTotal:", text):
        return ["meminfo"]
    if re.match(r"nr_[a-z0-9_]+ [0-9]+$", first) or re.search(r"(?m)^nr_free_pages [0-9]+$", text):
        return ["vmstat"]
    return []


def _text_kind_from_dmesg(boots: list[kt.DmesgInfo]) -> str:
    """A text made of nothing but BIOS-e820 lines is an e820 listing; anything else is a log."""
    info = boots[-1]
    only_e820 = len(boots) == 1 and info.e820 and info.lines_parsed == len(info.e820) and info.lines_ignored == 0
    return "e820" if only_e820 else "dmesg"


def detect_kind(path: str | os.PathLike[str], data: bytes) -> str:
    """Tell what kind of artefact ``data`` (read from ``path``) is; FormatError when unsure."""
    return _detect(path, data, _as_text(data))[0]


def _detect(path: str | os.PathLike[str], data: bytes, text: str | None) -> tuple[str, list[kt.DmesgInfo] | None]:
    """The kind, and for a kernel log its boots (parsed once, for detection and the document)."""
    strong = _strong_kinds(data, text)
    if len(strong) == 1:
        return strong[0], None
    if len(strong) > 1:
        raise FormatError(
            f"{path}: cannot tell what kind of file this is "
            f"(it looks like {' and '.join(strong)}); use --kind"
        )
    # No signature: try the lenient readers.
    if text is not None:
        try:
            boots = kt.parse_dmesg_boots(text)
            return _text_kind_from_dmesg(boots), boots
        except FormatError:
            pass
    else:
        try:
            parse_memory_map(data)
            return "efi-memmap", None
        except FormatError:
            pass
        except _PARSER_SLIPS:
            pass
    raise FormatError(f"{path}: cannot tell what kind of file this is; use --kind")


# -- helpers for documents --------------------------------------------------------------------


def _range(start: int, end: int) -> dict[str, int]:
    return {"start": start, "end": end, "size": end - start}


def _shown(items: list[Any], limit: int | None, key: str, truncated: dict[str, int]) -> list[Any]:
    """The first ``limit`` of ``items`` (all with ``None``); a cut is noted in ``truncated``."""
    if limit is None or len(items) <= limit:
        return items
    truncated[key] = len(items)
    return items[:limit]


def _bounded(body: dict[str, Any], limit: int | None, truncated: dict[str, int], prefix: str = "") -> dict[str, Any]:
    """``body`` with every list in it cut to ``limit`` entries, and what was cut under ``truncated``.

    Lists inside objects, and inside the objects of lists, are cut too; their keys in
    ``truncated`` are dotted paths (``tdvf.sections``, ``platforms.0.loaded_ranges``).
    """
    for key, value in body.items():
        name = f"{prefix}{key}"
        if isinstance(value, list):
            body[key] = value = _shown(value, limit, name, truncated)
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _bounded(item, limit, truncated, f"{name}.{i}.")
        elif isinstance(value, dict):
            _bounded(value, limit, truncated, f"{name}.")
    if truncated and not prefix:
        body["truncated"] = truncated
    return body


def _times_kib(kb: int | None) -> int | None:
    return None if kb is None else kb * KiB


def _kb(fields: dict[str, int], name: str) -> int | None:
    return fields[name] * KiB if name in fields else None


def _meminfo_summary(fields: dict[str, int]) -> dict[str, Any]:
    total = _kb(fields, "MemTotal")
    unaccepted = _kb(fields, "Unaccepted")
    return {
        "mem_total_bytes": total,
        "mem_free_bytes": _kb(fields, "MemFree"),
        "mem_available_bytes": _kb(fields, "MemAvailable"),
        "unaccepted_bytes": unaccepted,
        "unaccepted_fraction": (unaccepted / total) if unaccepted is not None and total else None,
    }


def _efi_usable(descs: list[tuple[int, int, int, int]]) -> int:
    """Bytes setup_e820() turns into e820 RAM (type, start, end, attribute tuples)."""
    total = 0
    for typ, start, end, attr in descs:
        if efi_type_to_e820(typ, attribute=attr) == E820_TYPE_RAM:
            total += end - start
    return total


# -- one function per kind --------------------------------------------------------------------


def _doc_firmware(data: bytes) -> dict[str, Any]:
    table = tdvf.parse_ovmf_table(data)
    doc: dict[str, Any] = {
        "ovmf_table": [
            {
                "guid": str(e.guid),
                "name": OVMF_TABLE_NAMES.get(str(e.guid)),
                "offset": e.offset,
                "data_hex": e.data.hex(),
            }
            for e in table
        ],
        "tdvf": None,
    }
    if not any(e.guid == tdvf.TDX_METADATA_OFFSET_GUID for e in table):
        return doc  # an OVMF build without TDX support: nothing more to say
    meta = tdvf.parse_tdvf(data)
    problems = tdvf.tdvf_problems(meta)
    added = tdvf.host_added_ranges(meta)
    names = {(s.memory_address, s.memory_end): s.type_name for s in meta.sections}
    doc["tdvf"] = {
        "descriptor_offset": meta.descriptor_offset,
        "version": meta.version,
        "image_base": meta.image_base,
        "sections": [
            {
                "index": i,
                "type": s.type_name,
                "type_code": s.type,
                "data_offset": s.data_offset,
                "raw_data_size": s.raw_data_size,
                "memory_address": s.memory_address,
                "memory_size": s.memory_size,
                "memory_end": s.memory_end,
                "attributes": s.attributes,
                "attribute_names": s.attribute_names,
                "raw_data_in_file": meta.raw_data_file_offset(s) is not None,
            }
            for i, s in enumerate(meta.sections)
        ],
        "valid": not problems,
        "problems": problems,
        "host_added_ranges": [_range(a, b) | {"section": names.get((a, b), "")} for a, b in added],
        "host_added_bytes": sum(b - a for a, b in added),
    }
    return doc


def _doc_dmesg(boots: list[kt.DmesgInfo], boot: int, limit: int | None = None) -> dict[str, Any]:
    info = kt.select_boot(boots, boot)
    cut: dict[str, int] = {}
    efi = [(d.type if d.type is not None else -1, d.start, d.end, d.attribute) for d in info.efi_memmap]
    if info.e820:
        usable, usable_from = info.e820_total("usable"), "e820"
    elif info.efi_memmap:
        usable, usable_from = _efi_usable(efi), "efi-memmap"
    elif info.node_ranges:
        usable, usable_from = sum(b - a for _, a, b in info.node_ranges), "node-ranges"
    else:
        usable, usable_from = None, None
    return {
        "platform": info.platform,
        "kernel_version": info.kernel_version,
        "memory_encryption_active": info.memory_encryption_active,
        "encryption_features": info.encryption_features,
        "sev_status": info.sev_status,
        "e820": [_range(a, b) | {"type": t} for a, b, t in _shown(info.e820, limit, "e820", cut)],
        "efi_memmap": [
            {
                "index": d.index,
                "type": d.type_name,
                "type_code": d.type,
                "attribute_names": list(d.attribute_names),
                "attribute": d.attribute,
                "size_mb": d.size_mb,
            }
            | _range(d.start, d.end)
            for d in _shown(info.efi_memmap, limit, "efi_memmap", cut)
        ],
        "zones": [
            {"name": name, "start": r[0] if r else None, "end": r[1] if r else None, "empty": r is None}
            for name, r in info.zones.items()
        ],
        "node_ranges": [{"node": n} | _range(a, b) for n, a, b in _shown(info.node_ranges, limit, "node_ranges", cut)],
        "cpus": {"allowed": info.cpus_allowed, "hotplug": info.cpus_hotplug, "brought_up": info.cpus_brought_up,
                 "nr_cpu_ids": info.nr_cpu_ids},
        "command_line": info.command_line,
        "milestones": info.milestones,
        "memory": {
            "usable_bytes": usable,
            "usable_from": usable_from,
            "unaccepted_bytes": info.efi_total(_UNACCEPTED_TYPE) if info.efi_memmap else None,
            "kernel_available_bytes": _times_kib(info.memory_available_kb),
            "kernel_total_bytes": _times_kib(info.memory_total_kb),
        },
        "tdx_host": (
            {
                "cmrs": [_range(a, b) for a, b in _shown(info.tdx_host_cmrs, limit, "tdx_host.cmrs", cut)],
                "pamt_bytes": info.tdx_host_pamt_kb * KiB if info.tdx_host_pamt_kb is not None else None,
            }
            if info.tdx_host_cmrs or info.tdx_host_pamt_kb is not None
            else None
        ),
        "boots": info.boots,
        "boot_index": info.boot_index,
        "lines_parsed": info.lines_parsed,
        "lines_ignored": info.lines_ignored,
        "partial_last_line": info.partial_last_line,
    } | ({"truncated": cut} if cut else {})


def _doc_e820_entries(entries: list[tuple[int, int, str]], limit: int | None = None) -> dict[str, Any]:
    by_type: dict[str, int] = {}
    for a, b, t in entries:
        by_type[t] = by_type.get(t, 0) + (b - a)
    cut: dict[str, int] = {}
    return {
        "entries": [_range(a, b) | {"type": t} for a, b, t in _shown(entries, limit, "entries", cut)],
        "bytes_by_type": by_type,
        "usable_bytes": by_type.get("usable", 0),
    } | ({"truncated": cut} if cut else {})


def _doc_e820(
    data: bytes, text: str | None, boots: list[kt.DmesgInfo] | None, boot: int, limit: int | None = None
) -> dict[str, Any]:
    if text is not None:
        info = kt.select_boot(boots if boots is not None else kt.parse_dmesg_boots(text), boot)
        if not info.e820:
            raise FormatError("no BIOS-e820 lines")
        return {"format": "text"} | _doc_e820_entries(info.e820, limit)
    entries = parse_e820_table(data)
    if not entries:
        raise FormatError("empty e820 table")
    named = [(e.addr, e.end, e820_type_name(e.type)) for e in entries]
    return {"format": "binary"} | _doc_e820_entries(named, limit)


def _doc_meminfo(text: str) -> dict[str, Any]:
    fields = kt.parse_meminfo(text)
    return {
        "fields": fields,
        "unitless_fields": sorted(n for n in fields if n in kt.MEMINFO_UNITLESS),
        "summary": _meminfo_summary(fields),
    }


def _doc_node_meminfo(text: str) -> dict[str, Any]:
    nodes = kt.parse_node_meminfo(text)
    names = ("MemTotal", "MemFree", "Unaccepted")
    total = {name: sum(f.get(name, 0) for f in nodes.values()) for name in names}
    has_unaccepted = any("Unaccepted" in f for f in nodes.values())
    return {
        "nodes": [{"node": n, "fields": f, "summary": _meminfo_summary(f)} for n, f in nodes.items()],
        "summary": {
            "mem_total_bytes": total["MemTotal"] * KiB,
            "mem_free_bytes": total["MemFree"] * KiB,
            "unaccepted_bytes": total["Unaccepted"] * KiB if has_unaccepted else None,
        },
    }


def _doc_vmstat(text: str) -> dict[str, Any]:
    counters = kt.parse_vmstat(text)
    unaccepted = counters.get("nr_unaccepted")
    return {
        "counters": counters,
        "nr_free_pages": counters["nr_free_pages"],
        "free_bytes": counters["nr_free_pages"] * PAGE_SIZE,
        "nr_unaccepted": unaccepted,
        "unaccepted_bytes": unaccepted * PAGE_SIZE if unaccepted is not None else None,
    }


def _doc_host_trace(text: str) -> dict[str, Any]:
    trace = ht.parse_host_trace(text)
    start, end = trace.span_ns()
    return {
        "interval_ms": trace.interval_ms,
        "pid": trace.pid,
        "platform": trace.platform,
        "intervals": len(trace.intervals),
        "active_start_ns": start,
        "active_end_ns": end,
        "exits": [{"reason": r, "name": ht.exit_name(trace.platform, r), "count": n} for r, n in trace.exits().items()],
        "totals": {c.value: trace.total(c) for c in ht.Counter},
        "unknown_counters": trace.unknown,
    }


def _memmap_stride(data: bytes) -> tuple[int, list[EfiMemoryDescriptor]]:
    """Parse with the stride parse_memory_map() would pick, and say which one it was."""
    problems = []
    for stride in (DESCRIPTOR_SIZE_EDK2, DESCRIPTOR_SIZE_MIN):
        try:
            return stride, parse_memory_map(data, stride)
        except FormatError as exc:
            problems.append(f"as {stride}-byte descriptors: {exc}")
    raise FormatError("not an EFI memory map; " + "; ".join(problems))


def _doc_efi_memmap(data: bytes) -> dict[str, Any]:
    stride, descs = _memmap_stride(data)
    by_type: dict[str, int] = {}
    for d in descs:
        by_type[d.type_name] = by_type.get(d.type_name, 0) + d.size
    return {
        "descriptor_size": stride,
        "descriptors": [
            {
                "index": i,
                "type": d.type_name,
                "type_code": d.type,
                "attribute": d.attribute,
                "attribute_names": attribute_names(d.attribute),
                "virtual_start": d.virtual_start,
                "number_of_pages": d.number_of_pages,
            }
            | _range(d.physical_start, d.end)
            for i, d in enumerate(descs)
        ],
        "bytes_by_type": by_type,
        "usable_bytes": _efi_usable([(d.type, d.physical_start, d.end, d.attribute) for d in descs]),
        "unaccepted_bytes": sum(d.size for d in descs if d.type == _UNACCEPTED_TYPE),
    }


def _doc_unaccepted_table(data: bytes, limit: int | None = None) -> dict[str, Any]:
    """Read in pieces: time linear in the bitmap, memory bounded by one piece and the runs shown."""
    t = parse_header(data)
    bitmap = memoryview(data)[HEADER_SIZE : HEADER_SIZE + t.size]
    units_set, runs = count_bits_and_runs(bitmap)
    base, unit = t.phys_base, t.unit_size
    shown = runs if limit is None else min(runs, limit)
    ranges = [_range(base + a * unit, base + b * unit) for a, b in islice(bitmap_runs(bitmap), shown)]
    return {
        "version": t.version,
        "unit_size": unit,
        "phys_base": base,
        "bitmap_bytes": t.size,
        "max_addr": t.max_addr,
        "units": t.size * 8,
        "units_unaccepted": units_set,
        "unaccepted_ranges": ranges,
        "unaccepted_bytes": units_set * unit,
        "trailing_bytes": len(data) - HEADER_SIZE - t.size,
    } | ({"truncated": {"unaccepted_ranges": runs}} if shown < runs else {})


def _doc_hob_list(data: bytes) -> dict[str, Any]:
    hl: HobList = parse_hob_list(data)
    h = hl.handoff
    resources = hl.resources()
    by_type: dict[str, int] = {}
    for r in resources:
        by_type[r.type_name] = by_type.get(r.type_name, 0) + r.length
    return {
        "handoff": {
            "version": h.version,
            "boot_mode": h.boot_mode,
            "efi_memory_top": h.efi_memory_top,
            "efi_memory_bottom": h.efi_memory_bottom,
            "efi_free_memory_top": h.efi_free_memory_top,
            "efi_free_memory_bottom": h.efi_free_memory_bottom,
            "efi_end_of_hob_list": h.efi_end_of_hob_list,
        },
        "resources": [
            {
                "type": r.type_name,
                "type_code": r.resource_type,
                "attribute": r.attribute,
                "attribute_names": resource_attribute_names(r.attribute),
                "owner": str(r.owner),
            }
            | _range(r.start, r.end)
            for r in resources
        ],
        "other_hobs": [
            {"type": hob_type_name(x.hob_type), "type_code": x.hob_type, "length": x.length}
            for x in hl.hobs
            if isinstance(x, RawHob)
        ],
        "bytes_by_type": by_type,
        "system_memory_bytes": by_type.get("EFI_RESOURCE_SYSTEM_MEMORY", 0),
        "unaccepted_bytes": by_type.get("EFI_RESOURCE_MEMORY_UNACCEPTED", 0),
    }


_BINARY_BUILDERS: dict[str, Callable[[bytes], dict[str, Any]]] = {
    "firmware": _doc_firmware,
    "efi-memmap": _doc_efi_memmap,
    "unaccepted-table": _doc_unaccepted_table,
    "hob-list": _doc_hob_list,
    "igvm": igvm_doc,
}
_TEXT_BUILDERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "meminfo": _doc_meminfo,
    "node-meminfo": _doc_node_meminfo,
    "vmstat": _doc_vmstat,
    "host-trace": _doc_host_trace,
}


def _with_path(path: str | os.PathLike[str], msg: str) -> str:
    return msg if msg.startswith(f"{path}:") else f"{path}: {msg}"


def _read(path: str | os.PathLike[str], kind: str | None) -> bytes:
    """The file's bytes, read once and only up to what its kind (or, unknown, its look) allows."""
    with open_input(path) as f:
        if kind is not None and kind != "e820":
            limit, what = SIZE_LIMITS[kind]
        else:
            textual = _looks_textual(f.head(HEAD_SIZE))
            if kind == "e820":
                limit, what = SIZE_LIMITS["e820"] if textual else E820_BINARY_LIMIT
            else:
                limit, what = _ANY_TEXT if textual else _ANY_BINARY
        return f.read(limit, what)


def _check_size(path: str | os.PathLike[str], kind: str, size: int, binary: bool) -> None:
    """Refuse a file larger than its kind can be (it was read under a looser limit)."""
    limit, what = E820_BINARY_LIMIT if kind == "e820" and binary else SIZE_LIMITS[kind]
    if size > limit:
        raise FormatError(f"{path}: file is {format_size(size)}, over the {format_size(limit)} limit for {what}")


def inspect_file(
    path: str | os.PathLike[str],
    kind: str | None = None,
    boot: int = -1,
    launch: LaunchOptions | None = None,
    limit: int | None = LIST_LIMIT,
) -> dict[str, Any]:
    """Read ``path`` and describe it; ``kind`` forces the kind (see :data:`KINDS`).

    ``boot`` picks one boot of a kernel log that holds several (from 1; negative from the end;
    default the last); other kinds ignore it.  ``launch``: the launch a firmware image's SNP
    digest is computed for (default one QEMU vCPU of type EPYC-v4).  ``limit``: the entries of
    each list shown (:data:`LIST_LIMIT`; ``None`` for all).
    """
    if kind is not None and kind not in KINDS:
        raise FormatError(f"{path}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    data = _read(path, kind)
    size = len(data)
    try:
        text = _as_text(data)
        if text is not None and (kind is None or kind in _TEXT_KINDS):
            data = b""  # only text is read from here on (a text is only ever detected as a text kind)
        boots = None
        if kind is None:
            kind, boots = _detect(path, data, text)
        _check_size(path, kind, size, text is None)
        if kind == "e820":
            body = _doc_e820(data, text, boots, boot, limit)
        elif kind in _TEXT_KINDS:
            if text is None:
                raise FormatError(f"binary data, not a {kind} text")
            if kind == "dmesg":
                body = _doc_dmesg(boots if boots is not None else kt.parse_dmesg_boots(text), boot, limit)
            else:
                body = _bounded(_TEXT_BUILDERS[kind](text), limit, {})
        elif kind == "unaccepted-table":
            body = _doc_unaccepted_table(data, limit)
        else:
            body = _BINARY_BUILDERS[kind](data)
            if kind == "firmware":
                body |= firmware_verdict_doc(data, launch or LaunchOptions())
            body = _bounded(body, limit, {})
    except FormatError as exc:
        msg = str(exc)
        # Parsers already name their format ("meminfo: line 2: ..."); do not say it twice.
        prefix = "" if kind is None or msg.startswith((f"{path}:", f"{kind}:")) else f"{kind}: "
        raise FormatError(_with_path(path, prefix + msg)) from None
    except _PARSER_SLIPS as exc:
        raise FormatError(f"{path}: {kind}: malformed data ({type(exc).__name__}: {str(exc)[:200]})") from None
    except RecursionError:
        raise FormatError(f"{path}: {kind}: malformed data (nested too deeply)") from None
    return {"path": os.fspath(path), "kind": kind, "size_bytes": size} | body


def cross_checks(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checks across files of one invocation: meminfo ``Unaccepted:`` (kB) against vmstat
    ``nr_unaccepted`` (4 KiB pages), which the kernel derives from the same counter, so
    ``Unaccepted_kB == 4 * nr_unaccepted`` when both were read at the same moment."""
    meminfos = [d for d in docs if d["kind"] == "meminfo" and "Unaccepted" in d["fields"]]
    vmstats = [d for d in docs if d["kind"] == "vmstat" and d["nr_unaccepted"] is not None]
    out = []
    for m in meminfos:
        for v in vmstats:
            kb, pages = m["fields"]["Unaccepted"], v["nr_unaccepted"]
            out.append(
                {
                    "check": "meminfo-unaccepted-vs-vmstat-nr_unaccepted",
                    "meminfo": m["path"],
                    "vmstat": v["path"],
                    "unaccepted_kb": kb,
                    "nr_unaccepted": pages,
                    "consistent": kb == pages * (PAGE_SIZE // KiB),
                }
            )
    return out
