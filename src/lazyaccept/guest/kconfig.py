"""Kernel build options that change how a guest boots (``--kconfig NAME=VALUE``).

Defaults are those of a distribution kernel (Debian's and Ubuntu's x86-64 configs):
``DEFERRED_STRUCT_PAGE_INIT=y``, ``HZ=250``, ``NO_HZ_IDLE=y``, THP ``madvise`` and
``AMD_MEM_ENCRYPT=y``.  The kernel's own ``x86_64_defconfig`` differs: ``HZ_1000=y`` and no
deferred struct page init (arch/x86/configs/x86_64_defconfig), which is what Dstack's guest
kernel is built from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from enum import StrEnum

from ..base.errors import ConfigError


class ThpMode(StrEnum):
    """``CONFIG_TRANSPARENT_HUGEPAGE`` and its default mode (mm/Kconfig)."""

    ALWAYS = "always"
    MADVISE = "madvise"
    NEVER = "never"


#: The HZ values Kconfig offers on x86 (kernel/Kconfig.hz).
HZ_CHOICES = (100, 250, 300, 1000)
_YES_NO = {"y": True, "n": False}


@dataclass(frozen=True)
class KernelConfig:
    """The build options the model reads."""

    #: Initialise most struct pages after SMP bring-up, in parallel threads (mm/mm_init.c).
    deferred_struct_page_init: bool = True
    #: The periodic tick rate: idle vCPUs take it until NOHZ mode is active.
    hz: int = 250
    #: Stop the tick of idle CPUs once NOHZ mode is active (kernel/time/tick-sched.c).
    no_hz_idle: bool = True
    #: Transparent huge pages: ``always`` and ``madvise`` raise min_free_kbytes (mm/khugepaged.c).
    transparent_hugepage: ThpMode = ThpMode.MADVISE
    #: In 6.5 and 6.6 the 6%-of-RAM SWIOTLB sizing sits in sev_setup_arch(), built only with this.
    amd_mem_encrypt: bool = True

    @classmethod
    def parse(cls, items: Iterable[str], base: KernelConfig | None = None) -> KernelConfig:
        """``NAME=VALUE`` items (``CONFIG_`` prefix optional, any case) over ``base``."""
        config = base if base is not None else cls()
        for item in items:
            name, sep, value = item.partition("=")
            key = name.strip().upper().removeprefix("CONFIG_")
            value = value.strip().lower()
            if not sep or key not in _OPTIONS:
                known = ", ".join(_OPTIONS)
                raise ConfigError(f"--kconfig {item!r}: expected NAME=VALUE with NAME one of {known}")
            field, convert, hint = _OPTIONS[key]
            try:
                config = replace(config, **{field: convert(value)})
            except (KeyError, ValueError):
                raise ConfigError(f"--kconfig {item!r}: {key} takes {hint}") from None
        return config

    def items(self) -> tuple[str, ...]:
        """The configuration as ``NAME=VALUE`` strings, every option named."""
        by_field = {f: k for k, (f, _, _) in _OPTIONS.items()}
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            text = ("y" if v else "n") if isinstance(v, bool) else str(v)
            out.append(f"{by_field[f.name]}={text}")
        return tuple(out)


def _hz(value: str) -> int:
    hz = int(value)
    if hz not in HZ_CHOICES:
        raise ValueError(value)
    return hz


_OPTIONS = {
    "DEFERRED_STRUCT_PAGE_INIT": ("deferred_struct_page_init", lambda v: _YES_NO[v], "y or n"),
    "HZ": ("hz", _hz, "one of " + ", ".join(map(str, HZ_CHOICES))),
    "NO_HZ_IDLE": ("no_hz_idle", lambda v: _YES_NO[v], "y or n"),
    "TRANSPARENT_HUGEPAGE": ("transparent_hugepage", ThpMode, "always, madvise or never"),
    "AMD_MEM_ENCRYPT": ("amd_mem_encrypt", lambda v: _YES_NO[v], "y or n"),
}
