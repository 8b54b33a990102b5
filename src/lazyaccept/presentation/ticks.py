"""Tick labels that never print on top of each other.

Sizes a grid names (64 GiB and 67000M = 65.43 GiB) can sit a hair apart on a log axis, and
no locator rule knows how wide a label will be.  So the labels are measured as the figure
draws them, and a label that would touch the one kept before it loses its label (its tick
stays, as a minor tick): the first label is always kept, the last one is preferred to the
one before it.
"""

from __future__ import annotations

from typing import Any

#: Pixels of free space wanted between two neighbouring labels.
GAP_PX = 3.0


def overlapping(extents: list[tuple[float, float]], gap: float = GAP_PX) -> bool:
    """Whether any two of the intervals ``(start, end)`` (sorted by start) come within ``gap``."""
    ordered = sorted(extents)
    return any(b[0] < a[1] + gap for a, b in zip(ordered, ordered[1:], strict=False))


def label_extents(ax: Any, which: str = "x") -> list[tuple[float, float]]:
    """The pixel intervals (along the axis) of the visible, non-empty major tick labels, as drawn."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    axis = ax.xaxis if which == "x" else ax.yaxis
    out = []
    for label in axis.get_ticklabels():
        if not label.get_visible() or not label.get_text():
            continue
        box = label.get_window_extent(renderer)
        if box.width == 0 and box.height == 0:
            continue
        out.append((box.x0, box.x1) if which == "x" else (box.y0, box.y1))
    return out


def thin_tick_labels(ax: Any, which: str = "x") -> list[float]:
    """Keep only major tick labels that do not touch each other; returns the positions kept."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    fig = ax.figure
    fig.canvas.draw()  # lays the labels out with their final text and rotation
    axis = ax.xaxis if which == "x" else ax.yaxis
    renderer = fig.canvas.get_renderer()
    lo, hi = sorted(axis.get_view_interval())
    placed = []
    for loc, label in zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=False):
        if not (lo <= loc <= hi) or not label.get_text():
            continue
        box = label.get_window_extent(renderer)
        placed.append((float(loc), (box.x0, box.x1) if which == "x" else (box.y0, box.y1)))
    placed.sort(key=lambda p: p[1][0])
    kept: list[tuple[float, tuple[float, float]]] = []
    for loc, ext in placed:
        if kept and ext[0] < kept[-1][1][1] + GAP_PX:
            # The last label wins over the one before it (the range's end is worth reading),
            # unless that one is the first.
            if (loc, ext) == placed[-1] and len(kept) > 1 and ext[0] >= kept[-2][1][1] + GAP_PX:
                kept[-1] = (loc, ext)
            continue
        kept.append((loc, ext))
    kept_locs = sorted(loc for loc, _ in kept)
    dropped = sorted(loc for loc, _ in placed if loc not in kept_locs)
    if dropped:
        axis.set_major_locator(FixedLocator(kept_locs))
        axis.set_minor_locator(FixedLocator(dropped))
        axis.set_minor_formatter(NullFormatter())
    return kept_locs
