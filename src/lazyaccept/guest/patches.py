"""Guest kernel patches that are not (yet) upstream, each a small named change to the rules,
like a kernel release (``--patch NAME``).

* ``accepted-reserve``: Dstack-TEE/dstack
  ``0009-mm-page-alloc-keep-accepted-reserve-before-watermarks.patch`` (PR 1220): before
  ``init_per_zone_wmark_min()`` sets the watermarks, ``cond_accept_memory()`` no longer accepts
  a 4 MiB chunk on every allocation; it skips while the zone holds at least 2 x
  MAX_ORDER_NR_PAGES of accepted free memory, and an allocation that fails still forces one.
* ``late-swiotlb-convert``: Dstack-TEE/dstack
  ``0010-x86-tdx-convert-swiotlb-to-shared-after-smp-bringup.patch``: a TDX guest converts the
  default SWIOTLB buffer to shared at ``fs_initcall_sync`` instead of in ``mem_encrypt_init()``,
  when the APs no longer spin inside the TD and no longer take the tick.
* ``tdx-hotplug-rfc2``: "[RFCv2 PATCH 0/6] Support memory hotplug/unplug for TDX CoCo guests"
  (Zhenzhong Duan, LKML, 23 Jun 2026): the EFI stub parses the ACPI SRAT for hot-pluggable ranges so
  the unaccepted bitmap covers them from boot, a second "plugged" bitmap keeps acceptance (the
  load_unaligned_zeropad() guard unit included) inside populated memory, and hot-added memory is
  tracked in the bitmap like boot memory.  Modelled as: a TDX guest's hot-added memory enters the
  bitmap as unaccepted and is accepted on demand (the cover letter names the bitmap tracking; how
  the series accepts a hot-added range is in its patches, which the model reads as on demand).
* ``efi-memory-uhp``: tianocore/edk2 issue 12810 and PR 12811 (Pratik Sampat, Jul 2026, Code First
  for UEFI 2.11): firmware marks the hot-plug window ``EfiUnacceptedMemoryType`` with the new
  ``EFI_MEMORY_UHP`` attribute, so a UHP-aware OS sizes its unaccepted-memory tracking to cover it
  and defers acceptance until the ACPI hot-add.  Modelled as: hot-added memory on TDX or SEV-SNP
  enters the bitmap as unaccepted and is accepted on demand.  The OS side is the author's SEV-SNP
  Linux RFC (Nov 2025), whose text the model's sources do not hold: its own rules are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from enum import StrEnum

from ..base.errors import ConfigError
from .rules import KernelRules


class GuestPatch(StrEnum):
    ACCEPTED_RESERVE = "accepted-reserve"
    LATE_SWIOTLB_CONVERT = "late-swiotlb-convert"
    TDX_HOTPLUG_RFC2 = "tdx-hotplug-rfc2"
    EFI_MEMORY_UHP = "efi-memory-uhp"


_CHANGES: dict[GuestPatch, Callable[[KernelRules], KernelRules]] = {
    GuestPatch.ACCEPTED_RESERVE: lambda r: replace(r, accepted_reserve_before_wmarks=True),
    GuestPatch.LATE_SWIOTLB_CONVERT: lambda r: replace(r, swiotlb_convert_late=True),
    GuestPatch.TDX_HOTPLUG_RFC2: lambda r: replace(r, hotplug_in_bitmap=_with(r.hotplug_in_bitmap, "tdx")),
    GuestPatch.EFI_MEMORY_UHP: lambda r: replace(r, hotplug_in_bitmap=_with(r.hotplug_in_bitmap, "tdx", "snp")),
}


def _with(platforms: tuple[str, ...], *more: str) -> tuple[str, ...]:
    return tuple(sorted({*platforms, *more}))


def parse_patches(names: Iterable[str]) -> tuple[GuestPatch, ...]:
    """Patch names as given on the command line, checked, in a stable order, each once."""
    out = []
    for name in names:
        try:
            out.append(GuestPatch(name.strip().lower()))
        except ValueError:
            known = ", ".join(p.value for p in GuestPatch)
            raise ConfigError(f"--patch {name!r}: unknown patch (known: {known})") from None
    return tuple(sorted(set(out), key=list(GuestPatch).index))


def apply_patches(rules: KernelRules, patches: Iterable[GuestPatch]) -> KernelRules:
    """``rules`` with each patch's change applied; the name says which."""
    patches = tuple(patches)
    for p in patches:
        rules = _CHANGES[p](rules)
    if patches:
        rules = replace(rules, name=rules.name + "".join(f"+{p.value}" for p in patches))
    return rules
