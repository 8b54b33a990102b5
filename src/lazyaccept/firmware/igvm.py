"""What a loader does with an IGVM file, per platform: which pages are loaded, measured or
pre-validated, and how the guest learns of the rest of its memory.

Rules from microsoft/igvm ``igvm_defs/src/lib.rs`` (the doc comments of each structure):

* every directive carries a ``compatibility_mask``; a bit is one SUPPORTED_PLATFORM header, so a
  directive applies to the platforms whose bit it has;
* PAGE_DATA pages are imported: measured unless ``unmeasured`` (or ``shared``, host visible and
  not in the measurement); on SEV-SNP the import is SNP_LAUNCH_UPDATE, which also validates the
  page, and on TDX it is TDH.MEM.PAGE.ADD, which adds it accepted; a ``shared`` page is neither;
* PARAMETER_INSERT imports a parameter area "as a set of unmeasured pages" (private, so
  validated / added like page data);
* VP_CONTEXT: on SEV-ES and SEV-SNP the VMSA, placed at its GPA and measured; TDX has none;
* REQUIRED_MEMORY is a hint that memory must be present, not loaded: neither measured nor
  validated by itself;
* MEMORY_MAP is a parameter: the loader writes the guest's RAM as IGVM_VHS_MEMORY_MAP_ENTRY
  records into that area.  RAM that no directive imported is not pre-validated: on SEV-SNP and
  TDX the guest must validate or accept it itself before use, which is where lazy acceptance
  starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base.units import PAGE_SIZE
from ..formats import igvm as fmt

__all__ = ["PlatformLoad", "describe_igvm"]

#: Platforms where imported private pages are validated (SNP) or added accepted (TDX) by the launch.
_ISOLATED = {fmt.PlatformType.SEV_SNP, fmt.PlatformType.TDX}


@dataclass
class PlatformLoad:
    """What loading the file on one platform does."""

    platform: str
    compatibility_mask: int
    shared_gpa_boundary: int
    #: Pages of PAGE_DATA, by what happens to them (bytes).
    measured_bytes: int = 0
    unmeasured_bytes: int = 0
    shared_bytes: int = 0
    #: Bytes of page data per data type (NORMAL, SECRETS, CPUID_DATA, CPUID_XF).
    by_data_type: dict[str, int] = field(default_factory=dict)
    #: Bytes imported from parameter areas (unmeasured, private).
    parameter_bytes: int = 0
    vp_contexts: int = 0
    required_bytes: int = 0
    #: Private memory the launch validates (SNP) or adds accepted (TDX); 0 elsewhere.
    prevalidated_bytes: int = 0
    #: GPA ranges [start, end) imported (page data and parameter areas), merged.
    loaded_ranges: list[tuple[int, int]] = field(default_factory=list)
    #: The parameters the loader writes (MEMORY_MAP, VP_COUNT_PARAMETER, ...): (name, area, offset).
    parameters: list[tuple[str, int, int]] = field(default_factory=list)
    guest_policy: int | None = None
    #: How the guest learns of the memory nothing imported.
    rest_of_memory: str = ""


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _load(f: fmt.IgvmFile, plat: fmt.SupportedPlatform) -> PlatformLoad:
    mask = plat.compatibility_mask
    load = PlatformLoad(fmt.enum_name(fmt.PlatformType, plat.platform_type), mask, plat.shared_gpa_boundary)
    isolated = plat.platform_type in _ISOLATED
    areas = {a.parameter_area_index: a for a in f.of(fmt.ParameterArea)}
    ranges: list[tuple[int, int]] = []
    for h in f.headers:
        if getattr(h, "compatibility_mask", mask) & mask == 0:
            continue
        if isinstance(h, fmt.PageData):
            size = h.size
            ranges.append((h.gpa, h.gpa + size))
            kind = fmt.enum_name(fmt.PageDataType, h.data_type)
            load.by_data_type[kind] = load.by_data_type.get(kind, 0) + size
            if h.flags & fmt.PageDataFlags.SHARED:
                load.shared_bytes += size
                continue
            if h.flags & fmt.PageDataFlags.UNMEASURED:
                load.unmeasured_bytes += size
            else:
                load.measured_bytes += size
            if isolated:
                load.prevalidated_bytes += size
        elif isinstance(h, fmt.ParameterInsert):
            area = areas.get(h.parameter_area_index)
            size = -(-(area.number_of_bytes if area else 0) // PAGE_SIZE) * PAGE_SIZE
            ranges.append((h.gpa, h.gpa + size))
            load.parameter_bytes += size
            if isolated:
                load.prevalidated_bytes += size
        elif isinstance(h, fmt.VpContext):
            load.vp_contexts += 1
        elif isinstance(h, fmt.RequiredMemory):
            load.required_bytes += h.number_of_bytes
        elif isinstance(h, fmt.GuestPolicy):
            load.guest_policy = h.policy
    load.parameters = [(fmt.enum_name(fmt.HeaderType, p.type), p.parameter_area_index, p.byte_offset)
                       for p in f.of(fmt.Parameter)]
    load.loaded_ranges = _merge([r for r in ranges if r[1] > r[0]])
    load.rest_of_memory = _rest_of_memory(load, isolated)
    return load


def _rest_of_memory(load: PlatformLoad, isolated: bool) -> str:
    memmap = [p for p in load.parameters if p[0] == "MEMORY_MAP"]
    if memmap:
        _, area, offset = memmap[0]
        how = (f"from the MEMORY_MAP parameter: the loader writes its RAM as IGVM_VHS_MEMORY_MAP_ENTRY records "
               f"into parameter area {area} at offset {offset}")
    else:
        how = "not from the file: it has no MEMORY_MAP parameter (the guest must find its RAM another way)"
    if isolated:
        return how + "; RAM that no directive imported is not pre-validated: the guest accepts it itself"
    return how


def describe_igvm(f: fmt.IgvmFile) -> list[PlatformLoad]:
    """One :class:`PlatformLoad` per SUPPORTED_PLATFORM header, in file order."""
    return [_load(f, p) for p in f.of(fmt.SupportedPlatform)]
