"""``lazyaccept attribute``: the measured seconds by mechanism beside the model's (a table, one
JSON document, and a plot of the two timelines one above the other)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..base.fileio import write_output
from ..sim.attribute import Attribution, Mechanism, Row
from .console import safe
from .figures import figure_bytes

#: A difference smaller than this (or this share of the model) is "as modelled".
SAME_S = 0.001
SAME_SHARE = 0.02


def verdict(row: Row) -> str:
    """The difference named: as modelled, longer or shorter than the model, or not measurable."""
    if row.measured_s is None:
        return "before the kernel's clock: the model's"
    d = row.diff_s or 0.0
    if abs(d) <= max(SAME_S, SAME_SHARE * row.model_s):
        return "as modelled"
    if row.mechanism is Mechanism.CLOCK_LOST:
        return f"the host saw {d:.2f} s the guest's clock did not count"
    where = ", ".join(row.segments[:3]) + (", ..." if len(row.segments) > 3 else "")
    word = "longer" if d > 0 else "shorter"
    pct = f" ({d / row.model_s:+.0%})" if row.model_s > 0 else ""
    return f"{abs(d):.3f} s {word} than modelled{pct}, in {where}"


def attribution_document(att: Attribution) -> dict[str, Any]:
    return {
        "kernel_start_model_s": att.kernel_start_s,
        "measured_total_s": att.measured_total_s,
        "model_total_s": att.model_total_s,
        "clock_lost_s": att.clock_lost_s,
        "host_active_s": att.host_active_s,
        "mechanisms": [{"mechanism": r.mechanism.value, "measured_s": r.measured_s, "model_s": r.model_s,
                        "diff_s": r.diff_s, "verdict": verdict(r), "segments": r.segments} for r in att.rows],
        "segments": [{"from": s.start_key, "to": s.end_key, "log_s": [s.log_start, s.log_end],
                      "model_s": [s.model_start - att.kernel_start_s, s.model_end - att.kernel_start_s],
                      "measured_by": {m.value: v for m, v in s.measured_by.items()},
                      "model_by": {m.value: v for m, v in s.model_by.items()},
                      "host_trace": s.trace} for s in att.segments],
        "host_costs": [{"operation": op, "trace_us": us, "profile_key": key, "profile_us": prof}
                       for op, us, key, prof in att.host_costs],
        "assumptions": att.assumptions,
    }


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def print_attribution(console: Console, att: Attribution, title: str) -> None:
    t = Table(title=safe(title), title_justify="left")
    for name, just in (("mechanism", "left"), ("measured", "right"), ("model", "right"), ("difference", "right"),
                       ("named", "left")):
        t.add_column(name, justify=just)  # type: ignore[arg-type]
    for r in att.rows:
        diff = "-" if r.diff_s is None else f"{0.0 if abs(r.diff_s) < 5e-4 else r.diff_s:+.3f} s"
        t.add_row(r.mechanism.value, _s(r.measured_s), _s(r.model_s), diff, safe(verdict(r)))
    console.print(t)
    s = Table(title="Milestone to milestone (seconds since the kernel's start)", title_justify="left")
    for name in ("from", "to", "log", "model", "host trace"):
        s.add_column(name)
    for seg in att.segments:
        tr = "-" if seg.trace is None else (f"{seg.trace['tick_exits']:,} tick exits, "
                                           f"{seg.trace['fault_exits']:,} faults")
        s.add_row(seg.start_key, seg.end_key, f"{seg.log_start:.6f} .. {seg.log_end:.6f}",
                  f"{seg.model_start - att.kernel_start_s:.6f} .. {seg.model_end - att.kernel_start_s:.6f}", tr)
    console.print(s)
    console.print(f"Kernel start to the last milestone: measured {att.measured_total_s:.3f} s, "
                  f"model {att.model_total_s:.3f} s", markup=False, highlight=False)
    for op, us, key, prof in att.host_costs:
        console.print(f"host trace: {op} {us:.3f} us each on average; the profile's {key} is {prof:.3f} us per page",
                      markup=False, highlight=False)
    for a in att.assumptions:
        console.print(f"assumed: {a}", markup=False, highlight=False)


_COLOURS = dict(zip(Mechanism, ["#9e9e9e", "#6d4c41", "#1e88e5", "#e53935", "#8e24aa", "#43a047", "#fb8c00",
                                "#00acc1", "#f06292", "#c0ca33", "#fdd835", "#000000", "#212121"], strict=True))


def _bars(by_items: list[tuple[float, dict[Mechanism, float]]]) -> list[tuple[Mechanism, float, float]]:
    """(mechanism, start, width) bars: each stretch's mechanisms one after the other, in boot order."""
    out = []
    for start, by in by_items:
        t = start
        for m in Mechanism:
            w = by.get(m, 0.0)
            if w > 0:
                out.append((m, t, w))
                t += w
    return out


def plot_attribution(att: Attribution, path: str, title: str) -> None:
    """Measured (top) and modelled (bottom) timelines from power-on, coloured by mechanism."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    k0 = att.kernel_start_s
    pre_bars = _bars([(p.start, p.by) for p in att.splits if p.end <= k0 + 1e-12])
    measured, lost_bars, shift = [], [], 0.0
    for seg in att.segments:
        if seg.lost_s:
            lost_bars.append((k0 + shift + seg.log_start, seg.lost_s))  # the host's time, before the stretch
            shift += seg.lost_s
        measured.append((k0 + shift + seg.log_start, seg.measured_by))
    model = [(seg.model_start, seg.model_by) for seg in att.segments]
    fig, ax = plt.subplots(figsize=(11, 3.6))
    used: set[Mechanism] = set()
    for y, bars in ((1, pre_bars + _bars(measured)), (0, pre_bars + _bars(model))):
        for m, x, w in bars:
            assumed = y == 1 and x + w <= k0 + 1e-12
            ax.broken_barh([(x, w)], (y - 0.35, 0.7), facecolors=_COLOURS[m], edgecolor="white", linewidth=0.3,
                           hatch="//" if assumed else None, alpha=0.6 if assumed else 1.0)
            used.add(m)
    for x, w in lost_bars:
        ax.broken_barh([(x, w)], (0.65, 0.7), facecolors=_COLOURS[Mechanism.CLOCK_LOST], hatch="xx")
        used.add(Mechanism.CLOCK_LOST)
    shift = 0.0
    for seg in att.segments:
        shift += seg.lost_s
        ax.plot([k0 + shift + seg.log_end, seg.model_end], [0.65, 0.35], color="black", linewidth=0.6, alpha=0.5)
    ax.set_yticks([0, 1], ["model", "measured\n(log)"])
    ax.set_xlabel("seconds from power-on (before the kernel: the model's, hatched)")
    ax.set_title(title, fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=_COLOURS[m]) for m in Mechanism if m in used]
    ax.legend(handles, [m.value for m in Mechanism if m in used], fontsize=7, ncol=4, loc="upper center",
              bbox_to_anchor=(0.5, -0.28), frameon=False)
    ax.set_ylim(-0.6, 1.6)
    fig.tight_layout()
    data = figure_bytes(fig, path, dpi=120)
    plt.close(fig)
    write_output(path, data)
