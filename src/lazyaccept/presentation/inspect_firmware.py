"""``inspect`` on firmware, as a person reads it: the acceptance verdict, the launch
measurements and IGVM files (the documents are built in :mod:`lazyaccept.scenario.inspect_firmware`).
"""

from __future__ import annotations

from typing import Any

from ..base.units import format_size
from ..firmware.verdict import Acceptance
from ..scenario.inspect_firmware import ACCEPTANCE_TEXT, PLATFORM_NAMES
from .console import Printer, safe, table


def _length(doc: dict[str, Any], key: str, shown: list[Any]) -> int:
    """The full length of the list ``shown`` at the (dotted) ``key`` of ``doc``, which may have been cut."""
    return int(doc.get("truncated", {}).get(key, len(shown)))


def show_verdict(doc: dict[str, Any], out: Printer) -> None:
    """The verdict, its evidence and the measurements, under the TDVF tables."""
    out.print("[bold]This image:[/bold] " + safe(verdict_summary(doc)))
    t = table(title="How this image accepts memory", title_justify="left")
    t.add_column("platform", no_wrap=True)
    t.add_column("verdict")
    t.add_column("boot --firmware-accept", no_wrap=True)
    for p in doc["verdict"]:
        text = ACCEPTANCE_TEXT[Acceptance(p["acceptance"])]
        t.add_row(PLATFORM_NAMES[p["platform"]], text, p["firmware_accept"] or "-")
    out.print(t)
    for p in doc["verdict"]:
        out.print(f"[bold]Evidence ({PLATFORM_NAMES[p['platform']]}):[/bold]")
        for line in p["evidence"]:
            out.print(f"  - {safe(line)}")
        if p["what_would_tell"]:
            out.print(f"  What would tell: {safe(p['what_would_tell'])}")
    known = doc["known_build"]
    build = f"{known['source']}, {known['upstream']} ({known['file']})" if known else "not a build on record"
    out.print(f"Build: {safe(build)}; sha256 {doc['sha256']}")
    out.print(f"Firmware volumes: {doc['volumes']}, modules: {_length(doc, 'modules', doc['modules'])}"
              + (f"; not opened: {safe('; '.join(doc['unopened_sections']))}" if doc["unopened_sections"] else ""))
    m = doc["measurements"]
    if m["tdx_mrtd"]:
        r = m["tdx_mrtd"]
        out.print(f"MRTD: {r['hex']}  ({r['pages_added']} pages added, {format_size(r['bytes_extended'])} extended)")
    else:
        out.print(f"MRTD: - ({safe(m['tdx_mrtd_missing'])})")
    if m["snp_launch_digest"]:
        d = m["snp_launch_digest"]
        out.print(f"SNP launch digest: {d['hex']}  ({d['vcpus']} vCPU(s) {safe(d['vcpu_type'])}, {d['vmm']}, "
                  "no kernel hashes)")
    else:
        out.print(f"SNP launch digest: - ({safe(m['snp_launch_digest_missing'])})")


def verdict_summary(doc: dict[str, Any]) -> str:
    """One line per image: each platform's verdict with its measurement."""
    short = {
        Acceptance.LAZY_BELOW_4G: "lazy below 4 GiB",
        Acceptance.ALL_UNLESS_OS_OPTS_IN: "all at ExitBootServices unless the OS opts in",
        Acceptance.ALL: "accepts everything",
        Acceptance.UNKNOWN: "cannot tell (see below)",
    }
    m = doc["measurements"]
    parts = []
    for p in doc["verdict"]:
        acc = Acceptance(p["acceptance"])
        if acc is Acceptance.NOT_SUPPORTED:
            continue
        text = f"{PLATFORM_NAMES[p['platform']]} {short[acc]}"
        if p["platform"] == "tdx" and m["tdx_mrtd"]:
            text += f", MRTD {m['tdx_mrtd']['hex'][:16]}..."
        if p["platform"] == "snp" and m["snp_launch_digest"]:
            text += f", launch digest {m['snp_launch_digest']['hex'][:16]}..."
        parts.append(text)
    return "; ".join(parts) or "launches on neither TDX nor SEV-SNP"


def show_igvm(doc: dict[str, Any], out: Printer) -> None:
    """An IGVM file: its headers by type, and what loading it does per platform."""
    counts = ", ".join(f"{k} x{v}" for k, v in doc["header_counts"].items())
    out.print(f"IGVM format version {doc['format_version']}; header checksum "
              f"{'ok' if doc['checksum_ok'] else 'WRONG'}; headers: {safe(counts)}")
    for i, p in enumerate(doc["platforms"]):
        t = table(title=f"Loading on {p['platform']} (compatibility mask {p['compatibility_mask']:#x})",
                  title_justify="left", show_header=False)
        t.add_column("what", style="bold")
        t.add_column("value")
        t.add_row("measured pages", format_size(p["measured_bytes"]))
        t.add_row("unmeasured pages", format_size(p["unmeasured_bytes"]))
        t.add_row("shared (host-visible) pages", format_size(p["shared_bytes"]))
        t.add_row("parameter areas inserted", format_size(p["parameter_bytes"]))
        t.add_row("pre-validated / accepted by the launch", format_size(p["prevalidated_bytes"]))
        t.add_row("VP contexts", str(p["vp_contexts"]))
        t.add_row("required memory", format_size(p["required_bytes"]))
        ranges = ", ".join(f"[{r['start']:#x}, {r['end']:#x})" for r in p["loaded_ranges"][:8])
        more = _length(doc, f"platforms.{i}.loaded_ranges", p["loaded_ranges"]) - 8
        t.add_row("loaded ranges", (ranges or "-") + (f" and {more} more" if more > 0 else ""))
        t.add_row("parameters", ", ".join(f"{x['type']} (area {x['area']})" for x in p["parameters"]) or "-")
        t.add_row("rest of memory", safe(p["rest_of_memory"]))
        out.print(t)

