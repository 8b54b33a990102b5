"""Read real artefacts and describe them as JSON-ready documents (``lazyaccept inspect``).

One document per file; the keys of every kind are listed in the README ("inspect --json schema").  Addresses and
sizes are integers in bytes, every ``end`` is exclusive.  Errors are :class:`FormatError`
whose message starts with the file's path, so the command line prints one line naming it.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from typing import Any

from ..base.errors import FormatError
from ..base.fileio import read_input
from ..base.units import PAGE_SIZE, KiB
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
from ..formats.unaccepted import HEADER_SIZE, parse_unaccepted_table

__all__ = ["KINDS", "detect_kind", "inspect_file", "cross_checks"]

#: Every kind ``inspect`` knows, in the order ``--kind`` lists them.
KINDS = (
    "firmware",
    "dmesg",
    "e820",
    "meminfo",
    "node-meminfo",
    "vmstat",
    "efi-memmap",
    "unaccepted-table",
    "hob-list",
)
_TEXT_KINDS = {"dmesg", "e820", "meminfo", "node-meminfo", "vmstat"}

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


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return ""


# -- detection --------------------------------------------------------------------------------


def _strong_kinds(data: bytes, text: str | None) -> list[str]:
    """Kinds whose signature the data carries; a parse error for one of them is the real error."""
    if text is None:
        kinds = []
        if tdvf.looks_like_ovmf(data):
            kinds.append("firmware")
        if len(data) >= 8 and struct.unpack_from("<HHI", data) == (0x0001, 56, 0):
            kinds.append("hob-list")  # a PHIT header: type 1, length 56, reserved 0
        if len(data) >= HEADER_SIZE:
            version, unit = struct.unpack_from("<II", data)
            if version == 1 and unit >= PAGE_SIZE and unit & (unit - 1) == 0:
                kinds.append("unaccepted-table")
        return kinds
    first = _first_line(text)
    if re.match(r"Node [0-9]+ \S+:", first):
        return ["node-meminfo"]
    if re.search(r"(?m)^MemTotal:", text):
        return ["meminfo"]
    if re.match(r"nr_[a-z0-9_]+ [0-9]+$", first) or re.search(r"(?m)^nr_free_pages [0-9]+$", text):
        return ["vmstat"]
    return []


def _text_kind_from_dmesg(info: kt.DmesgInfo) -> str:
    """A text made of nothing but BIOS-e820 lines is an e820 listing; anything else is a log."""
    only_e820 = info.e820 and info.lines_parsed == len(info.e820) and info.lines_ignored == 0
    return "e820" if only_e820 else "dmesg"


def detect_kind(path: str | os.PathLike[str], data: bytes) -> str:
    """Tell what kind of artefact ``data`` (read from ``path``) is; FormatError when unsure."""
    text = _as_text(data)
    strong = _strong_kinds(data, text)
    if len(strong) == 1:
        return strong[0]
    if len(strong) > 1:
        raise FormatError(
            f"{path}: cannot tell what kind of file this is "
            f"(it looks like {' and '.join(strong)}); use --kind"
        )
    # No signature: try the lenient readers.
    if text is not None:
        try:
            return _text_kind_from_dmesg(kt.parse_dmesg(text))
        except FormatError:
            pass
    else:
        try:
            parse_memory_map(data)
            return "efi-memmap"
        except FormatError:
            pass
        except _PARSER_SLIPS:
            pass
    raise FormatError(f"{path}: cannot tell what kind of file this is; use --kind")


# -- helpers for documents --------------------------------------------------------------------


def _range(start: int, end: int) -> dict[str, int]:
    return {"start": start, "end": end, "size": end - start}


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


def _doc_dmesg(text: str) -> dict[str, Any]:
    info = kt.parse_dmesg(text)
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
        "e820": [_range(a, b) | {"type": t} for a, b, t in info.e820],
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
            for d in info.efi_memmap
        ],
        "zones": [
            {"name": name, "start": r[0] if r else None, "end": r[1] if r else None, "empty": r is None}
            for name, r in info.zones.items()
        ],
        "node_ranges": [{"node": n} | _range(a, b) for n, a, b in info.node_ranges],
        "memory": {
            "usable_bytes": usable,
            "usable_from": usable_from,
            "unaccepted_bytes": info.efi_total(_UNACCEPTED_TYPE) if info.efi_memmap else None,
            "kernel_available_bytes": _times_kib(info.memory_available_kb),
            "kernel_total_bytes": _times_kib(info.memory_total_kb),
        },
        "tdx_host": (
            {
                "cmrs": [_range(a, b) for a, b in info.tdx_host_cmrs],
                "pamt_bytes": info.tdx_host_pamt_kb * KiB if info.tdx_host_pamt_kb is not None else None,
            }
            if info.tdx_host_cmrs or info.tdx_host_pamt_kb is not None
            else None
        ),
        "lines_parsed": info.lines_parsed,
        "lines_ignored": info.lines_ignored,
        "partial_last_line": info.partial_last_line,
    }


def _doc_e820_entries(entries: list[tuple[int, int, str]]) -> dict[str, Any]:
    by_type: dict[str, int] = {}
    for a, b, t in entries:
        by_type[t] = by_type.get(t, 0) + (b - a)
    return {
        "entries": [_range(a, b) | {"type": t} for a, b, t in entries],
        "bytes_by_type": by_type,
        "usable_bytes": by_type.get("usable", 0),
    }


def _doc_e820(data: bytes, text: str | None) -> dict[str, Any]:
    if text is not None:
        info = kt.parse_dmesg(text)
        if not info.e820:
            raise FormatError("no BIOS-e820 lines")
        return {"format": "text"} | _doc_e820_entries(info.e820)
    entries = parse_e820_table(data)
    if not entries:
        raise FormatError("empty e820 table")
    named = [(e.addr, e.end, e820_type_name(e.type)) for e in entries]
    return {"format": "binary"} | _doc_e820_entries(named)


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


def _doc_unaccepted_table(data: bytes) -> dict[str, Any]:
    t = parse_unaccepted_table(data)
    ranges = t.unaccepted_ranges()
    return {
        "version": t.version,
        "unit_size": t.unit_size,
        "phys_base": t.phys_base,
        "bitmap_bytes": t.size,
        "max_addr": t.max_addr,
        "units": t.size * 8,
        "units_unaccepted": t.unaccepted_bytes() // t.unit_size,
        "unaccepted_ranges": [_range(a, b) for a, b in ranges],
        "unaccepted_bytes": t.unaccepted_bytes(),
        "trailing_bytes": len(data) - HEADER_SIZE - t.size,
    }


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
}
_TEXT_BUILDERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "dmesg": _doc_dmesg,
    "meminfo": _doc_meminfo,
    "node-meminfo": _doc_node_meminfo,
    "vmstat": _doc_vmstat,
}


def _with_path(path: str | os.PathLike[str], msg: str) -> str:
    return msg if msg.startswith(f"{path}:") else f"{path}: {msg}"


def inspect_file(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Read ``path`` and describe it; ``kind`` forces the kind (see :data:`KINDS`)."""
    if kind is not None and kind not in KINDS:
        raise FormatError(f"{path}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    data = read_input(path)
    try:
        kind = kind or detect_kind(path, data)
        text = _as_text(data)
        if kind == "e820":
            body = _doc_e820(data, text)
        elif kind in _TEXT_KINDS:
            if text is None:
                raise FormatError(f"binary data, not a {kind} text")
            body = _TEXT_BUILDERS[kind](text)
        else:
            body = _BINARY_BUILDERS[kind](data)
    except FormatError as exc:
        msg = str(exc)
        # Parsers already name their format ("meminfo: line 2: ..."); do not say it twice.
        prefix = "" if kind is None or msg.startswith((f"{path}:", f"{kind}:")) else f"{kind}: "
        raise FormatError(_with_path(path, prefix + msg)) from None
    except _PARSER_SLIPS as exc:
        raise FormatError(f"{path}: {kind}: malformed data ({type(exc).__name__}: {exc})") from None
    return {"path": os.fspath(path), "kind": kind, "size_bytes": len(data)} | body


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
