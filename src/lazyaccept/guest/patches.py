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


_CHANGES: dict[GuestPatch, Callable[[KernelRules], KernelRules]] = {
    GuestPatch.ACCEPTED_RESERVE: lambda r: replace(r, accepted_reserve_before_wmarks=True),
    GuestPatch.LATE_SWIOTLB_CONVERT: lambda r: replace(r, swiotlb_convert_late=True),
}


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
