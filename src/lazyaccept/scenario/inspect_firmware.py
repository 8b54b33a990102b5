"""``inspect`` on firmware: the acceptance verdict, the launch measurements, and IGVM files.

Documents (JSON-ready, keys in docs/inspect-json.md); their console views are in
:mod:`lazyaccept.presentation.inspect_firmware`.  The OVMF document's TDVF part stays in
:mod:`.inspect`; this module adds the verdict and the measurements to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base.choices import Tee
from ..base.errors import ConfigError, FormatError
from ..firmware import measure
from ..firmware.igvm import describe_igvm
from ..firmware.snp_digest import Vmm, snp_launch_digest
from ..firmware.verdict import Acceptance, FirmwareVerdict, analyse_firmware
from ..formats import igvm as igvm_fmt
from ..formats import tdvf

__all__ = ["LaunchOptions", "firmware_verdict_doc", "igvm_doc"]

PLATFORM_NAMES = {"tdx": "TDX", "snp": "SEV-SNP"}
ACCEPTANCE_TEXT = {
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
    headers: list[dict[str, Any]] = []
    for h in f.headers:
        typ = igvm_fmt.header_type(h)
        name = igvm_fmt.enum_name(igvm_fmt.HeaderType, typ & ~igvm_fmt.OPTIONAL_BIT)
        fields = {"raw_hex": h.data.hex()} if isinstance(h, igvm_fmt.RawHeader) else {
            k: getattr(h, k) for k in h.__dataclass_fields__ if k != "type"}
        headers.append({"type": name, "type_code": typ} | fields)
    counts: dict[str, int] = {}
    for doc in headers:
        counts[str(doc["type"])] = counts.get(str(doc["type"]), 0) + 1
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
