"""Sizes, page and unit constants, alignment helpers and size formatting."""

from __future__ import annotations

import re

from .errors import ConfigError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
PiB = 1 << 50

PAGE_SIZE = 4 * KiB
SIZE_2M = 2 * MiB
SIZE_1G = 1 * GiB
#: One bit of the Linux unaccepted bitmap on x86 (PMD_SIZE).
UNIT_SIZE = 2 * MiB
#: MAX_PAGE_ORDER (order 10) block of the page allocator on x86-64.
MAX_PAGE_ORDER = 10
MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER
CHUNK_SIZE = MAX_ORDER_NR_PAGES * PAGE_SIZE

_SUFFIX = {"": 1, "B": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": PiB}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Parse ``"64G"``, ``"4GiB"``, ``"512M"``, ``"1T"``, ``"0x1000"`` or a plain byte count.

    Suffixes are binary (``G`` = GiB), as QEMU's ``-m`` reads them.  The result must be a
    positive whole number of bytes.
    """
    if isinstance(text, int):
        value = text
    else:
        s = str(text).strip()
        if s.lower().startswith("0x"):
            try:
                value = int(s, 16)
            except ValueError:
                raise ConfigError(f"not a size: {text!r}") from None
        else:
            m = _SIZE_RE.match(s)
            if not m:
                raise ConfigError(f"not a size: {text!r} (use e.g. 4G, 512M, 4GiB, 1T)")
            number, suffix = m.groups()
            scaled = float(number) * _SUFFIX[suffix.upper()]
            if scaled != int(scaled):
                raise ConfigError(f"size {text!r} is not a whole number of bytes")
            value = int(scaled)
    if value <= 0:
        raise ConfigError(f"size must be positive: {text!r}")
    return value


def format_size(nbytes: int) -> str:
    """Human size with binary units: ``format_size(3 * GiB // 2) == "1.5 GiB"``."""
    n = float(nbytes)
    for unit, scale in (("PiB", PiB), ("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.2f} {unit}".replace(".00 ", " ")
    return f"{int(n)} B"


def align_down(value: int, alignment: int) -> int:
    return value - value % alignment


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def is_aligned(value: int, alignment: int) -> bool:
    return value % alignment == 0
