"""``inspect`` on firmware: the acceptance verdict, the launch measurements, and IGVM files.

Documents (JSON-ready, keys in docs/inspect-json.md) and their console views.  The OVMF
document's TDVF part stays in :mod:`.inspect`; this module adds the keys of issue 22 to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base.choices import Tee
from ..base.errors import ConfigError, FormatError
from ..base.units import format_size
from ..firmware import measure
from ..firmware.igvm import describe_igvm
from ..firmware.snp_digest import Vmm, snp_launch_digest
from ..firmware.verdict import Acceptance, FirmwareVerdict, analyse_firmware
from ..formats import igvm as igvm_fmt
from ..formats import tdvf
from .console import Printer, safe, table

__all__ = ["LaunchOptions", "firmware_verdict_doc", "igvm_doc", "show_verdict", "show_igvm"]

_PLATFORM_NAMES = {"tdx": "TDX", "snp": "SEV-SNP"}
_ACCEPTANCE_TEXT = {
    Acceptance.LAZY_BELOW_4G: "lazy: accepts RAM below 4 GiB, the rest reaches the OS unaccepted",
    Acceptance.ALL_UNLESS_OS_OPTS_IN: "accepts all memory at ExitBootServices unless the OS opts in "
                                      "(then lazy above 4 GiB)",
    Acceptance.ALL: "accepts all memory before the OS",
    Acceptance.NOT_SUPPORTED: "cannot launch on this platform",
    Acceptance.UNKNOWN: "cannot tell",
}


@dataclass(frozen=True)
class LaunchOptions:
    """The launch the SNP digest is for (the MRTD depends on the image alone)."""

    vcpus: int = 1
    vcpu_type: str = "EPYC-v4"
    vmm: Vmm = Vmm.QEMU


# -- documents -----------------------------------------------------------------------------------


def _verdict_part(v: FirmwareVerdict) -> dict[str, Any]:
    return {
        "sha256": v.sha256,
        "known_build": None if v.known is None else {
            "file": v.known.file, "source": v.known.source, "upstream": v.known.upstream},
        "volumes": v.volumes,
        "modules": [{"name": m.name, "guid": str(m.guid), "type": m.type, "protocols": list(m.protocols)}
                    for m in v.modules],
        "unopened_sections": v.unopened,
        "verdict": [
            {
                "platform": p.platform.value,
                "acceptance": p.acceptance.value,
                "firmware_accept": None if p.firmware_accept is None else str(p.firmware_accept),
                "evidence": p.evidence,
                "what_would_tell": p.what_would_tell,
            }
            for p in v.platforms
        ],
    }


def _mrtd_part(data: bytes, v: FirmwareVerdict) -> tuple[dict[str, Any] | None, str | None]:
    if v.for_platform(Tee.TDX).acceptance is Acceptance.NOT_SUPPORTED:
        return None, "not a TDX image"
    try:
        r = measure.tdx_mrtd(data, tdvf.parse_tdvf(data))
    except ConfigError as exc:
        return None, str(exc)
    return {"hex": r.mrtd.hex(), "pages_added": r.pages_added, "bytes_extended": r.bytes_extended}, None


#: SEV features the guest asks for in the VMSA: bit 0, SNP active (what QEMU sets by default).
GUEST_FEATURES = 0x1


def _snp_part(data: bytes, v: FirmwareVerdict, launch: LaunchOptions) -> tuple[dict[str, Any] | None, str | None]:
    if v.for_platform(Tee.SNP).acceptance is Acceptance.NOT_SUPPORTED:
        return None, "not an SEV-SNP image"
    try:
        digest = snp_launch_digest(data, vcpus=launch.vcpus, vcpu_type=launch.vcpu_type, vmm=launch.vmm,
                                   guest_features=GUEST_FEATURES)
    except FormatError as exc:
        return None, str(exc)
    return {"hex": digest.hex(), "vcpus": launch.vcpus, "vcpu_type": launch.vcpu_type, "vmm": launch.vmm.value,
            "guest_features": GUEST_FEATURES}, None


def firmware_verdict_doc(data: bytes, launch: LaunchOptions) -> dict[str, Any]:
    """The verdict and measurement keys of an OVMF image's document."""
    v = analyse_firmware(data)
    mrtd, mrtd_missing = _mrtd_part(data, v)
    snp, snp_missing = _snp_part(data, v, launch)
    return _verdict_part(v) | {
        "measurements": {
            "tdx_mrtd": mrtd,
            "tdx_mrtd_missing": mrtd_missing,
            "snp_launch_digest": snp,
            "snp_launch_digest_missing": snp_missing,
        }
    }


def igvm_doc(data: bytes) -> dict[str, Any]:
    """The document of an IGVM file."""
    f = igvm_fmt.parse_igvm(data)
    headers = []
    for h in f.headers:
        typ = igvm_fmt.header_type(h)
        name = igvm_fmt.enum_name(igvm_fmt.HeaderType, typ & ~igvm_fmt.OPTIONAL_BIT)
        fields = {"raw_hex": h.data.hex()} if isinstance(h, igvm_fmt.RawHeader) else {
            k: getattr(h, k) for k in h.__dataclass_fields__ if k != "type"}
        headers.append({"type": name, "type_code": typ} | fields)
    counts: dict[str, int] = {}
    for h in headers:
        counts[h["type"]] = counts.get(h["type"], 0) + 1
    return {
        "format_version": f.format_version,
        "architecture": None if f.architecture is None else igvm_fmt.enum_name(igvm_fmt.Architecture, f.architecture),
        "page_size": f.page_size,
        "checksum_ok": f.checksum_ok,
        "header_counts": counts,
        "headers": headers,
        "platforms": [
            {
                "platform": p.platform,
                "compatibility_mask": p.compatibility_mask,
                "shared_gpa_boundary": p.shared_gpa_boundary,
                "measured_bytes": p.measured_bytes,
                "unmeasured_bytes": p.unmeasured_bytes,
                "shared_bytes": p.shared_bytes,
                "bytes_by_data_type": p.by_data_type,
                "parameter_bytes": p.parameter_bytes,
                "prevalidated_bytes": p.prevalidated_bytes,
                "vp_contexts": p.vp_contexts,
                "required_bytes": p.required_bytes,
                "guest_policy": p.guest_policy,
                "loaded_ranges": [{"start": s, "end": e, "size": e - s} for s, e in p.loaded_ranges],
                "parameters": [{"type": t, "area": a, "offset": o} for t, a, o in p.parameters],
                "rest_of_memory": p.rest_of_memory,
            }
            for p in describe_igvm(f)
        ],
    }


# -- console views -------------------------------------------------------------------------------


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
        text = _ACCEPTANCE_TEXT[Acceptance(p["acceptance"])]
        t.add_row(_PLATFORM_NAMES[p["platform"]], text, p["firmware_accept"] or "-")
    out.print(t)
    for p in doc["verdict"]:
        out.print(f"[bold]Evidence ({_PLATFORM_NAMES[p['platform']]}):[/bold]")
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
        text = f"{_PLATFORM_NAMES[p['platform']]} {short[acc]}"
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

