"""A time axis chosen from the data's spread, labelled in SI units (ns, us, ms, s).

A log axis reads well only when the values span at least a decade; over a narrower range
(all stalls 7.5 ms, give or take a rounding) matplotlib's log locator finds no decade and
labels a millionth of one with long mantissas.  So: values spanning :data:`LOG_FROM` or more
get a log axis with ticks at 1, 2 and 5 of each decade; narrower ones a linear axis from zero
(equal values then look equal, and their size is read against zero), with a few round ticks.
Every tick label is a time with its unit, one unit per linear axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: max/min at or above which the axis is logarithmic.
LOG_FROM = 10.0
#: Headroom over the largest value on a linear axis, and past each end of a log one (a factor).
LINEAR_PAD = 0.12
LOG_PAD = 1.5

_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))


def time_unit(seconds: float) -> tuple[float, str]:
    """The largest SI unit in which ``seconds`` is at least 1 (seconds for 0 and above)."""
    for scale, name in _UNITS:
        if abs(seconds) >= scale:
            return scale, name
    return _UNITS[-1]


def si_time(seconds: float, unit: tuple[float, str] | None = None) -> str:
    """``seconds`` as a short label: ``7.5 ms``, ``120 us``, ``2 s``, ``0``; in ``unit`` when given."""
    if seconds == 0:
        return "0"
    scale, name = unit or time_unit(seconds)
    return f"{seconds / scale:.3g} {name}"


def time_scale(values: Iterable[float]) -> str:
    """``"log"`` when the positive values span :data:`LOG_FROM` or more, else ``"linear"``."""
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    if not pos:
        return "linear"
    return "log" if max(pos) / min(pos) >= LOG_FROM else "linear"


def time_axis(ax: Any, values: Iterable[float], which: str = "x") -> str:
    """Set ``ax``'s x or y axis (``which``) for times ``values`` (seconds): scale, limits,
    ticks and SI labels.  Returns the scale chosen."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    vals = [v for v in values if math.isfinite(v)]
    pos = [v for v in vals if v > 0]
    scale = time_scale(vals)
    axis = ax.xaxis if which == "x" else ax.yaxis
    set_scale = ax.set_xscale if which == "x" else ax.set_yscale
    set_lim = ax.set_xlim if which == "x" else ax.set_ylim
    if scale == "log":
        set_scale("log")
        set_lim(min(pos) / LOG_PAD, max(pos) * LOG_PAD)
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())
        axis.set_major_formatter(FuncFormatter(lambda v, _: si_time(v)))
        return scale
    set_scale("linear")
    top = max(vals, default=0.0)
    top = top * (1 + LINEAR_PAD) if top > 0 else 1e-3
    set_lim(0, top)
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    unit = time_unit(top / 2)  # one unit for every tick: the one of the axis's middle
    axis.set_major_formatter(FuncFormatter(lambda v, _: si_time(v, unit)))
    return scale
