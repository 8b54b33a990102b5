"""``lazyaccept inspect``: read real artefacts (firmware images, logs, /proc files, binary dumps).

Every path is read and checked before anything is printed, so one bad file gives one error
line and no partial output.  Everything shown that came from a file goes through
:func:`console.safe`: a log line is text, never rich markup or a terminal escape sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import click

from ..base.units import format_size
from ..firmware.snp_digest import CPU_SIGNATURES, Vmm
from ..presentation.console import json_text, make_console, plain, safe
from ..presentation.console import table as _table
from ..presentation.inspect_firmware import show_igvm, show_verdict
from ..scenario.inspect import E820_BINARY_LIMIT, KINDS, LIST_LIMIT, SIZE_LIMITS, cross_checks, inspect_file
from ..scenario.inspect_firmware import LaunchOptions

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def _size(value: int | None) -> str:
    return "-" if value is None else format_size(value)


class _PlainRanges:
    """A memory map too long for a table (``--all``): one line per range, written as it goes."""

    def __init__(self, title: str, rows: list[dict[str, Any]], label: str) -> None:
        self.title, self.rows, self.label = title, rows, label

    def write(self, file: TextIO) -> None:
        file.write(f"{plain(self.title)}: {len(self.rows)} ranges (start, end (excl.), size, {self.label})\n")
        for i in range(0, len(self.rows), 4096):
            file.write("".join(
                f"{_hex(r['start']):>18} {_hex(r['end']):>18} {_size(r['size']):>10}  {plain(r.get(self.label, ''))}\n"
                for r in self.rows[i : i + 4096]
            ))


def _range_table(title: str, rows: list[dict[str, Any]], label: str = "type") -> Table | _PlainRanges:
    """A memory map: [start, end) in hex, size, and one label column (as lines when it is longer than
    any real one, which only ``--all`` shows)."""
    if len(rows) > LIST_LIMIT:
        return _PlainRanges(title, rows, label)
    t = _table(title=title, title_justify="left")
    t.add_column("start", justify="right", no_wrap=True)
    t.add_column("end (excl.)", justify="right", no_wrap=True)
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column(label)
    for r in rows:
        t.add_row(_hex(r["start"]), _hex(r["end"]), _size(r["size"]), safe(r.get(label, "")))
    return t


def _summary(pairs: list[tuple[str, str]], title: str) -> Table:
    t = _table(title=title, title_justify="left", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    for k, v in pairs:
        t.add_row(safe(k), safe(v))
    return t


# -- one renderer per kind --------------------------------------------------------------------


def _show_firmware(doc: dict[str, Any], out: _Printer) -> None:
    _show_tdvf(doc, out)
    show_verdict(doc, out)


def _show_tdvf(doc: dict[str, Any], out: _Printer) -> None:
    td = doc["tdvf"]
    if td is None:
        names = ", ".join(e["name"] or e["guid"] for e in doc["ovmf_table"])
        out.print(f"OVMF image without TDX metadata (GUIDed table: {safe(names)})")
        return
    t = _table(title=f"TDVF sections (descriptor at {td['descriptor_offset']:#x})", title_justify="left")
    columns = ("#", "type", "data offset", "raw size", "memory start", "memory end (excl.)", "size",
               "attributes")
    for col in columns:
        t.add_column(col, justify="left" if col in ("type", "attributes") else "right", no_wrap=True)
    for s in td["sections"]:
        t.add_row(
            str(s["index"]), safe(s["type"]), _hex(s["data_offset"]), _hex(s["raw_data_size"]),
            _hex(s["memory_address"]), _hex(s["memory_end"]), _size(s["memory_size"]),
            safe("|".join(s["attribute_names"]) or "-"),
        )
    out.print(t)
    title = "Added by the host at build time (KVM_TDX_INIT_MEM_REGION)"
    out.print(_range_table(title, td["host_added_ranges"], label="section"))
    out.print(f"Host-added total: {format_size(td['host_added_bytes'])}")
    if td["image_base"]:
        out.print(f"CODE-only image: data offsets count from the start of the whole flash, "
                  f"{td['image_base']:#x} bytes (the VARS part) before this file.")
    out.print("TDVF rules: " + ("all met" if td["valid"] else safe("; ".join(td["problems"]))))


def _show_dmesg(doc: dict[str, Any], out: _Printer) -> None:
    mem = doc["memory"]
    pairs = [
        ("platform", doc["platform"] or "unknown"),
        ("kernel", doc["kernel_version"] or "-"),
        ("memory encryption", "active" if doc["memory_encryption_active"] else "not seen"),
        ("features", " ".join(doc["encryption_features"] or doc["sev_status"]) or "-"),
        ("usable memory", f"{_size(mem['usable_bytes'])}" + (f" (from {mem['usable_from']})"
                                                              if mem["usable_from"] else "")),
        ("unaccepted (EFI type 15)", _size(mem["unaccepted_bytes"])),
        ("lines read / ignored", f"{doc['lines_parsed']} / {doc['lines_ignored']}"
         + (" (last line cut off)" if doc["partial_last_line"] else "")),
    ]
    if doc["boots"] > 1:
        which = "the last" if doc["boot_index"] == doc["boots"] else f"number {doc['boot_index']}"
        pairs.insert(0, ("boots in the log", f"{doc['boots']}; this is {which} (choose with --boot N)"))
    if mem["kernel_total_bytes"]:
        pairs.append(("kernel Memory: line", f"{_size(mem['kernel_available_bytes'])} of "
                                             f"{_size(mem['kernel_total_bytes'])} available"))
    if doc["tdx_host"]:
        pairs.append(("TDX host PAMT", _size(doc["tdx_host"]["pamt_bytes"])))
    out.print(_summary(pairs, "Kernel log"))
    if doc["e820"]:
        out.print(_range_table("BIOS-e820 map", doc["e820"]))
    if doc["efi_memmap"]:
        out.print(_range_table("EFI memory map (efi=debug)", doc["efi_memmap"]))
    if doc["zones"]:
        zones = [z for z in doc["zones"] if not z["empty"]]
        out.print(_range_table("Zones", [z | {"size": z["end"] - z["start"]} for z in zones], label="name"))
    if doc["node_ranges"]:
        out.print(_range_table("Early memory node ranges", doc["node_ranges"], label="node"))
    if doc["tdx_host"] and doc["tdx_host"]["cmrs"]:
        out.print(_range_table("TDX CMRs", doc["tdx_host"]["cmrs"], label=""))


def _show_e820(doc: dict[str, Any], out: _Printer) -> None:
    out.print(_range_table(f"e820 ({doc['format']})", doc["entries"]))
    out.print(f"usable: {format_size(doc['usable_bytes'])}")


def _show_meminfo(doc: dict[str, Any], out: _Printer) -> None:
    s = doc["summary"]
    frac = s["unaccepted_fraction"]
    out.print(_summary([
        ("MemTotal", _size(s["mem_total_bytes"])),
        ("MemFree", _size(s["mem_free_bytes"])),
        ("MemAvailable", _size(s["mem_available_bytes"])),
        ("Unaccepted", _size(s["unaccepted_bytes"]) + ("" if frac is None else f" ({frac:.1%} of MemTotal)")),
    ], "/proc/meminfo"))
    t = _table(title="All fields", title_justify="left")
    t.add_column("field")
    t.add_column("value", justify="right")
    t.add_column("unit")
    for name, value in doc["fields"].items():
        unitless = name in doc["unitless_fields"]
        t.add_row(safe(name), str(value), "" if unitless else "kB")
    out.print(t)


def _show_node_meminfo(doc: dict[str, Any], out: _Printer) -> None:
    t = _table(title="Node meminfo", title_justify="left")
    for col in ("node", "MemTotal", "MemFree", "Unaccepted"):
        t.add_column(col, justify="right")
    for n in doc["nodes"]:
        s = n["summary"]
        t.add_row(str(n["node"]), _size(s["mem_total_bytes"]), _size(s["mem_free_bytes"]),
                  _size(s["unaccepted_bytes"]))
    out.print(t)


def _show_vmstat(doc: dict[str, Any], out: _Printer) -> None:
    out.print(_summary([
        ("nr_free_pages", f"{doc['nr_free_pages']} pages = {format_size(doc['free_bytes'])}"),
        ("nr_unaccepted", "-" if doc["nr_unaccepted"] is None
         else f"{doc['nr_unaccepted']} pages = {format_size(doc['unaccepted_bytes'])}"),
        ("counters", str(len(doc["counters"]))),
    ], "/proc/vmstat"))


def _show_efi_memmap(doc: dict[str, Any], out: _Printer) -> None:
    out.print(_range_table(f"EFI memory map ({doc['descriptor_size']}-byte descriptors)", doc["descriptors"]))
    out.print(f"usable: {format_size(doc['usable_bytes'])}; "
              f"unaccepted: {format_size(doc['unaccepted_bytes'])}")


def _show_unaccepted_table(doc: dict[str, Any], out: _Printer) -> None:
    out.print(_summary([
        ("version", str(doc["version"])),
        ("unit size", format_size(doc["unit_size"])),
        ("phys_base", _hex(doc["phys_base"])),
        ("bitmap", f"{doc['bitmap_bytes']} bytes, covers up to {doc['max_addr']:#x}"),
        ("unaccepted", f"{doc['units_unaccepted']} of {doc['units']} units = "
                       f"{format_size(doc['unaccepted_bytes'])}"),
    ], "Unaccepted-memory table"))
    if doc["unaccepted_ranges"]:
        out.print(_range_table("Unaccepted ranges", doc["unaccepted_ranges"], label=""))


def _show_hob_list(doc: dict[str, Any], out: _Printer) -> None:
    rows = [r | {"type": r["type"].removeprefix("EFI_RESOURCE_")} for r in doc["resources"]]
    out.print(_range_table("Resource descriptor HOBs", rows))
    out.print(f"system memory: {format_size(doc['system_memory_bytes'])}; "
              f"unaccepted: {format_size(doc['unaccepted_bytes'])}; other HOBs: {len(doc['other_hobs'])}")


def _show_host_trace(doc: dict[str, Any], out: _Printer) -> None:
    t = doc["totals"]
    secs = (doc["active_end_ns"] - doc["active_start_ns"]) / 1e9
    out.print(_summary([
        ("platform", doc["platform"] or "not said"),
        ("intervals", f"{doc['intervals']} of {doc['interval_ms']} ms; guest active for {secs:.2f} s"),
        ("TD entries", f"{t['enter']} ({t['enter_ns'] / 1e9:.3f} s)"),
        ("TDH.MEM.PAGE.AUG", f"{t['aug']} ({t['aug_ns'] / 1e9:.3f} s)"),
        ("faults on guest memory", str(t["fault"])),
        ("SNP page-state changes", f"{t['psc']} GHCB ({t['psc_ns'] / 1e9:.3f} s), {t['psc_msr']} MSR"),
        ("RMP updates", f"{t['rmpupdate']} ({t['rmpupdate_ns'] / 1e9:.3f} s)"),
    ], "Host trace"))
    if doc["exits"]:
        exits = _table(title="Exits by reason")
        exits.add_column("reason")
        exits.add_column("count", justify="right")
        for e in doc["exits"]:
            exits.add_row(e["name"], f"{e['count']:,}")
        out.print(exits)


class _Printer:
    """The console, which writes the lines of a :class:`_PlainRanges` itself."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def print(self, what: object) -> None:
        if isinstance(what, _PlainRanges):
            what.write(self.console.file)  # type: ignore[arg-type]
        else:
            self.console.print(what)


_RENDERERS: dict[str, Callable[[dict[str, Any], _Printer], None]] = {
    "firmware": _show_firmware,
    "dmesg": _show_dmesg,
    "e820": _show_e820,
    "meminfo": _show_meminfo,
    "node-meminfo": _show_node_meminfo,
    "vmstat": _show_vmstat,
    "efi-memmap": _show_efi_memmap,
    "unaccepted-table": _show_unaccepted_table,
    "hob-list": _show_hob_list,
    "igvm": show_igvm,
    "host-trace": _show_host_trace,
}


def _check_boot(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value == 0:
        raise click.BadParameter("boots count from 1 (or from -1 for the last)", ctx=ctx, param=param)
    return value


def _limits_text() -> str:
    seen: dict[str, int] = {}
    for limit, what in [*SIZE_LIMITS.values(), E820_BINARY_LIMIT]:
        seen.setdefault(what, limit)
    return ", ".join(f"{what} {format_size(limit)}" for what, limit in seen.items())


def _warnings(docs: list[dict[str, Any]]) -> list[str]:
    """What the user should know although the files were read: a log in which nothing was recognised."""
    out = []
    for doc in docs:
        if doc["kind"] == "dmesg" and doc["lines_parsed"] == 0:
            where = f" in boot {doc['boot_index']} of {doc['boots']}" if doc["boots"] > 1 else ""
            out.append(f"lazyaccept: warning: {doc['path']}: no kernel lines recognised{where}")
    return out


@click.command("inspect", epilog=f"Files larger than their kind can be are refused: {_limits_text()}.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--kind", type=click.Choice(KINDS, case_sensitive=False), default=None,
              help="What the files are (default: detected per file).")
@click.option("--boot", type=int, default=None, callback=_check_boot, metavar="N",
              help="Kernel logs holding several boots: which one, from 1 (negative: from the end; default: the last).")
@click.option("--vcpus", type=click.IntRange(1, 512), default=1, show_default=True,
              help="Firmware images: the vCPUs the SEV-SNP launch digest is for.")
@click.option("--vcpu-type", type=click.Choice(list(CPU_SIGNATURES), case_sensitive=False), default="EPYC-v4",
              show_default=True, metavar="MODEL",
              help="Firmware images: QEMU's CPU model of those vCPUs (EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, "
                   "EPYC-Turin, ...), for the SEV-SNP launch digest.")
@click.option("--vmm", type=click.Choice([v.value for v in Vmm], case_sensitive=False), default="qemu",
              show_default=True, help="Firmware images: the VMM whose VMSA values the SNP launch digest uses.")
@click.option("--json", "as_json", is_flag=True, help='Print one JSON document: {"files": [...]}.')
@click.option("--all", "show_all", is_flag=True,
              help=f"Show every entry of every list (ranges, map entries); by default {LIST_LIMIT} each, "
                   "and a note says how many there are.")
def inspect_cmd(paths: tuple[str, ...], kind: str | None, boot: int | None, vcpus: int, vcpu_type: str, vmm: str,
                as_json: bool, show_all: bool) -> None:
    """Read firmware images (OVMF, IGVM), kernel logs, /proc/meminfo, /proc/vmstat and binary dumps.

    On an OVMF image: its TDVF sections, how it accepts memory per platform and how that is
    known, its MRTD and its SEV-SNP launch digest."""
    launch = LaunchOptions(vcpus, vcpu_type, Vmm(vmm.lower()))
    boot_n = -1 if boot is None else boot
    every: dict[str, Any] = {"limit": None} if show_all else {}  # inspect_file shows LIST_LIMIT by default
    docs = [inspect_file(p, kind, boot=boot_n, launch=launch, **every) for p in paths]  # errors before any output
    checks = cross_checks(docs)
    for line in _warnings(docs):
        click.echo(line, err=True)
    if as_json:
        out: dict[str, Any] = {"files": docs}
        if checks:
            out["checks"] = checks
        click.echo(json_text(out))
        return
    console = make_console()
    for doc in docs:
        console.rule(f"{safe(doc['path'])}  [dim]({doc['kind']}, {doc['size_bytes']} bytes)[/dim]")
        _RENDERERS[doc["kind"]](doc, _Printer(console))
        for key, total in doc.get("truncated", {}).items():
            console.print(f"{key}: the first {LIST_LIMIT} of {total:,} shown (--all shows every one)")
    for c in checks:
        verdict = "consistent" if c["consistent"] else "DIFFERENT (read at different moments?)"
        console.print(f"Unaccepted: {c['unaccepted_kb']} kB vs nr_unaccepted {c['nr_unaccepted']} pages "
                      f"(x4 = {c['nr_unaccepted'] * 4} kB): {verdict}")
