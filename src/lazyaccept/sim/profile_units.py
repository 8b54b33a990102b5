"""Units of profile numbers: which units a cost may be written in, and their SI scale."""

from __future__ import annotations

_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_BYTES = {"B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}
_COUNT = {"1": 1.0}
#: What a unit may be "per": countable things (scale 1), or a time or byte unit.
_PER_COUNT = ("page", "AP", "vCPU", "call", "exit", "request", "entry")
_DIM_UNITS = {"time": _TIME, "bytes": _BYTES, "1": _COUNT}


def unit_scale(unit: str, dim: str, per: str | None) -> float | None:
    """SI scale of ``unit`` if it has dimension ``dim`` [per ``per``], else None.

    ``per`` is a count name (``"page"``) or ``"time"`` / ``"bytes"`` (any unit of that kind).
    """
    num, sep, den = unit.partition("/")
    scale = _DIM_UNITS[dim].get(num.strip())
    if scale is None:
        return None
    den = den.strip()
    if per is None:
        return scale if not sep else None
    if per in _DIM_UNITS:
        d = _DIM_UNITS[per].get(den)
        return None if d is None else scale / d
    return scale if den == per else None


def unit_hint(dim: str, per: str | None) -> str:
    num = {"time": "s|ms|us|ns", "bytes": "B|KiB|MiB|GiB|kB|MB|GB", "1": "1"}[dim]
    if per is None:
        return num
    den = {"time": "s", "bytes": "B"}.get(per, per)
    return f"{num.split('|')[0]}/{den}" if dim != "1" else f"1/{den}"
