"""Sizes, page and unit constants, alignment helpers and size formatting."""

from __future__ import annotations

import re

from .errors import ConfigError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
PiB = 1 << 50
EiB = 1 << 60

PAGE_SIZE = 4 * KiB
SIZE_2M = 2 * MiB
SIZE_1G = 1 * GiB
#: One bit of the Linux unaccepted bitmap on x86 (PMD_SIZE).
UNIT_SIZE = 2 * MiB
#: MAX_PAGE_ORDER (order 10) block of the page allocator on x86-64.
MAX_PAGE_ORDER = 10
MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER
CHUNK_SIZE = MAX_ORDER_NR_PAGES * PAGE_SIZE

#: The largest size accepted: QEMU reads sizes into a uint64_t and refuses larger ones
#: (util/cutils.c, qemu_strtosz: ERANGE), so nothing bigger can describe a guest.
MAX_SIZE = (1 << 64) - 1

_SUFFIX = {"B": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": PiB, "E": EiB}
# A number, an optional fraction, then nothing, "B", or a QEMU suffix letter with an optional "B"/"iB".
_SIZE_RE = re.compile(r"^(\d+)(?:\.(\d+))?\s*(?:([KMGTPE])(?:I?B)?|(B))?$", re.IGNORECASE | re.ASCII)
_HEX_RE = re.compile(r"^0x([0-9a-f]+)$", re.IGNORECASE | re.ASCII)
#: More integer digits than this cannot fit in MAX_SIZE whatever the unit (2**64 has 20 digits);
#: checking the length first keeps int() away from the 4300-digit conversion limit.
_MAX_DIGITS = 20
#: A fraction with more significant digits than this is never a whole number of bytes
#: (the finest step, 1/2**60 of an EiB, has 60 decimal places).
_MAX_FRACTION_DIGITS = 60


def parse_size(text: str | int, *, default_unit: int = MiB) -> int:
    """Parse ``"64G"``, ``"4GiB"``, ``"512M"``, ``"1.5T"``, ``"4096"``, ``"4096B"`` or ``"0x1000"``.

    Sizes are read as QEMU's ``-m`` reads them: suffixes are binary (``G`` = GiB) and a plain
    number counts in MiB (softmmu/vl.c ``parse_memory_options``: "Fix up legacy suffix-less
    format" appends ``M``).  ``default_unit`` changes that for callers that count in bytes.  A
    ``B`` suffix always means bytes, and so does a hexadecimal number (an address-like count).
    An ``int`` is already bytes.  The result must be a positive whole number of bytes no larger
    than :data:`MAX_SIZE`; everything else is one :class:`ConfigError`.
    """
    if isinstance(text, bool):
        raise ConfigError(f"not a size: {text!r}")
    if isinstance(text, int):
        value = text
    else:
        value = _parse_size_text(str(text).strip(), text, default_unit)
    if value <= 0:
        raise ConfigError(f"size must be positive: {text!r}")
    if value > MAX_SIZE:
        raise ConfigError(f"size {_shown(text)} is too large (at most 2**64 - 1 bytes, as QEMU reads sizes)")
    return value


def _shown(text: object) -> str:
    """The user's text quoted, shortened so that an absurd input still gives a short error line."""
    s = str(text) if isinstance(text, int) else repr(str(text))
    return s if len(s) <= 40 else f"{s[:30]}... ({len(str(text))} characters)"


def _parse_size_text(s: str, original: object, default_unit: int) -> int:
    m = _HEX_RE.match(s)
    if m:
        digits = m[1].lstrip("0")
        if len(digits) > 16:
            raise ConfigError(f"size {_shown(original)} is too large (at most 2**64 - 1 bytes, as QEMU reads sizes)")
        return int(m[1], 16)
    m = _SIZE_RE.match(s)
    if not m:
        raise ConfigError(f"not a size: {_shown(original)} (use e.g. 4G, 512M, 4GiB, 1T, or MiB as a plain number)")
    whole, fraction, letter, byte_suffix = m.groups()
    unit = _SUFFIX[letter.upper()] if letter else (1 if byte_suffix else default_unit)
    whole = whole.lstrip("0") or "0"
    fraction = (fraction or "").rstrip("0")
    if len(whole) > _MAX_DIGITS:
        raise ConfigError(f"size {_shown(original)} is too large (at most 2**64 - 1 bytes, as QEMU reads sizes)")
    if len(fraction) > _MAX_FRACTION_DIGITS:
        raise ConfigError(f"size {_shown(original)} is not a whole number of bytes")
    # Exact integer arithmetic: a float would round 1.1M and overflow on long inputs.
    scale = 10 ** len(fraction)
    numerator = int(whole + fraction) * unit
    if numerator % scale:
        raise ConfigError(f"size {_shown(original)} is not a whole number of bytes")
    return numerator // scale


def format_size(nbytes: int) -> str:
    """Human size with binary units: ``format_size(3 * GiB // 2) == "1.50 GiB"``, ``format_size(4 * GiB) == "4 GiB"``.

    Any integer is accepted: one too large for a float (only absurd input can give one) is
    shown as a whole number of PiB rather than raising ``OverflowError``.
    """
    try:
        n = float(nbytes)
    except OverflowError:
        return f"{nbytes // PiB} PiB"
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


def parse_count(value: str, where: str, lo: int = 1, hi: int = 4096) -> int:
    """A whole number from ``lo`` to ``hi`` (threads, workers, chunks); ``where`` names the option
    and argument in the error."""
    try:
        n = int(value)
    except ValueError:
        n = lo - 1
    if not lo <= n <= hi:
        raise ConfigError(f"{where} must be a whole number from {lo} to {hi}, not {value!r}")
    return n
