"""The picture of one boot: what each vCPU did when, and memory over time.

Top panel: a Gantt chart, one row per vCPU, one colour per phase; accepting memory is hatched,
spinning on a lock (the v6.5 accept lock, a spinlock) is grey and cross-hatched, so a vCPU that
waits is not drawn as idle.  With many vCPUs only every k-th row is labelled.  Past
:data:`MAX_GANTT_ROWS` vCPUs a row per vCPU would be a pixel high and the panel would look
empty, so the boot CPU keeps its row and the others are drawn in groups, as a heatmap: each
cell's colour is the phase its vCPUs spent most time in, its strength the share of the
group's vCPU-time they were busy, accepting memory a darker shade.

Bottom panel: guest memory accepted, still unaccepted, and host memory committed.  A lazy boot
of a large guest accepts a few GiB of a TiB: on a linear axis its curves are flat lines at 0, so
when what was accepted stays under a quarter of RAM the axis is logarithmic (sizes labelled
as sizes).  Accepted and committed memory are often equal; they are drawn in different styles
(a broad pale band and a dashed line with markers) and the legend says when they coincide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..base.fileio import write_output
from ..base.units import GiB, MiB, format_size
from ..sim.run import BootResult
from .figures import figure_bytes

#: At most this many vCPU rows carry a label.
MAX_VCPU_LABELS = 16
#: Up to this many vCPUs get a row each; more are grouped (:func:`vcpu_groups`).
MAX_GANTT_ROWS = 64
#: Rows of the grouped chart, the boot CPU's included.
GROUPED_ROWS = 32
#: Time bins of the grouped chart.
HEATMAP_BINS = 600
#: Hatch lines of accepting bars: translucent, so a short bar is its phase's colour darkened,
#: never black; the legend's patch is drawn with the same colour.
ACCEPT_HATCH = "//"
ACCEPT_HATCH_COLOUR = (0.0, 0.0, 0.0, 0.45)
#: Below this fraction of RAM accepted by the end, the memory axis is logarithmic.
LOG_AXIS_BELOW = 0.25
#: Accepted and committed "coincide" when they never differ by more than this fraction of RAM.
COINCIDE_WITHIN = 0.005
SPIN_COLOUR = "#9a9a9a"


@dataclass(frozen=True)
class Span:
    """One bar of the Gantt chart: ``vcpu`` from ``start`` to ``end`` (simulated seconds)."""

    vcpu: int
    start: float
    end: float
    phase: str
    accepting: bool = False
    #: The lock waited for, for a spin bar; None for work.
    lock: str | None = None


def gantt_spans(result: BootResult) -> list[Span]:
    """Every work item as a bar, and every wait for a lock before an item as a spin bar.

    A vCPU runs its items back to back from the start of the phase (engine.VcpuTiming), so the
    time between reaching an item and starting it is time spent spinning on the item's lock."""
    spans = []
    for p in result.timeline.phases:
        for v, items in p.items.items():
            reached = p.timing.start
            for item, s, e in zip(items, p.timing.item_start.get(v, []), p.timing.item_end.get(v, []), strict=False):
                if s > reached and item.lock is not None:
                    spans.append(Span(v, reached, s, p.name, lock=item.lock))
                if e > s:
                    accepting = item.accepted_bytes > 0 or item.label.startswith("accept")
                    spans.append(Span(v, s, e, p.name, accepting=accepting))
                reached = e
    return spans


def vcpu_ticks(n: int) -> list[int]:
    """The vCPU rows to label: all of up to :data:`MAX_VCPU_LABELS`, else every k-th (k a power
    of two) and the last."""
    if n <= MAX_VCPU_LABELS:
        return list(range(n))
    step = 1 << math.ceil(math.log2(n / MAX_VCPU_LABELS))
    ticks = list(range(0, n, step))
    if ticks[-1] != n - 1:
        if n - 1 - ticks[-1] < step / 2:
            ticks[-1] = n - 1
        else:
            ticks.append(n - 1)
    return ticks


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``12th``, ``13th``, ``21st`` ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def vcpu_groups(n: int) -> list[tuple[int, int]]:
    """The rows of the chart as ``[first, last]`` vCPU ranges: one per vCPU up to
    :data:`MAX_GANTT_ROWS`; past that the boot CPU alone (it runs the serial phases) and the
    others in equal groups, :data:`GROUPED_ROWS` rows in all."""
    if n <= MAX_GANTT_ROWS:
        return [(v, v) for v in range(n)]
    size = 1 << math.ceil(math.log2((n - 1) / (GROUPED_ROWS - 1)))  # a power of two: round ranges
    return [(0, 0), *((a, min(a + size - 1, n - 1)) for a in range(1, n, size))]


def memory_axis_scale(result: BootResult) -> str:
    """``"log"`` when the memory accepted by the end is under :data:`LOG_AXIS_BELOW` of RAM."""
    ram = result.record.kernel.ram.total()
    _, acc = ramps(result, "accepted_bytes")
    return "log" if acc[-1] < LOG_AXIS_BELOW * ram else "linear"


def lines_coincide(result: BootResult) -> bool:
    """Whether guest memory accepted and host memory committed are the same curve."""
    t, acc = ramps(result, "accepted_bytes")
    com = np.interp(t, *ramps(result, "committed_bytes"))
    return bool(np.max(np.abs(acc - com)) <= COINCIDE_WITHIN * result.record.kernel.ram.total())


def boot_figure(result: BootResult) -> object:
    """The figure of :func:`plot_boot` (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl, cfg = result.timeline, result.record.config
    vcpus = max([cfg.vcpus, *(v + 1 for p in tl.phases for v in p.items)])
    gantt_h = 3.0 + min(vcpus, 64) * 0.05
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, gantt_h + 3.5), sharex=True,
                                   gridspec_kw={"height_ratios": [gantt_h, 3.0]})
    _gantt(ax1, result, vcpus, plt)
    ax1.set_title(
        f"{cfg.tee.value.upper()} guest, {format_size(cfg.memory)}, {cfg.vcpus} vCPU(s), accept_memory={cfg.policy}, "
        f"kernel {cfg.kernel_release}, {cfg.host_mapping} host: boot to shell {tl.total_s:.2f} s"
    )
    _memory_panel(ax2, result)
    ax2.set_xlabel("simulated time since power-on (s)")
    ax2.set_xlim(0, max(tl.total_s, 1e-3) * 1.01)
    return fig


def plot_boot(result: BootResult, path: str) -> None:
    """Write :func:`boot_figure` to ``path`` (.png, .svg, .pdf; ``-``: PNG on standard output)."""
    import matplotlib.pyplot as plt

    fig = boot_figure(result)
    data = figure_bytes(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)  # type: ignore[arg-type]
    write_output(path, data)


def _gantt(ax: object, result: BootResult, vcpus: int, plt: object) -> None:
    from matplotlib.patches import Patch

    tl = result.timeline
    named = [p.name for p in tl.phases]
    cmap = plt.get_cmap("tab20" if len(named) > 10 else "tab10")  # type: ignore[attr-defined]
    colors = {name: cmap(i % cmap.N) for i, name in enumerate(dict.fromkeys(named))}
    groups = vcpu_groups(vcpus)
    spans = gantt_spans(result)
    spun = any(s.lock is not None for s in spans)
    if len(groups) == vcpus:
        _bars(ax, spans, colors, vcpus)
        accept_handle = Patch(facecolor="#d9d9d9", edgecolor=ACCEPT_HATCH_COLOUR, hatch=ACCEPT_HATCH, linewidth=0,
                              label="accepting memory (hatched)")
    else:
        _heatmap(ax, spans, colors, groups, tl.total_s)
        accept_handle = Patch(facecolor=_darker("#d9d9d9"), label="accepting memory (darker shade)")
    rows = len(groups)
    # Grouped rows are tall enough to label up to 20 of them.
    ticks = list(range(rows)) if len(groups) != vcpus and rows <= 20 else vcpu_ticks(rows)
    names = [f"vCPU {a}" if a == b else f"vCPUs {a}-{b}" for a, b in groups]
    ax.set_yticks(ticks, [names[t] for t in ticks])  # type: ignore[attr-defined]
    ax.set_ylim(rows - 0.5, -0.5)  # type: ignore[attr-defined]  # vCPU 0 at the top
    if len(groups) != vcpus:
        size = groups[1][1] - groups[1][0] + 1
        ax.set_ylabel(f"{vcpus} vCPUs: vCPU 0, then groups of {size}; "  # type: ignore[attr-defined]
                      "strength = share of the group busy", fontsize=9)
    elif rows > MAX_VCPU_LABELS:
        ax.set_ylabel(f"{vcpus} vCPUs (every {ordinal(ticks[1] - ticks[0])} labelled)")  # type: ignore[attr-defined]
    handles = [Patch(color=colors[p.name], label=p.name) for p in tl.phases if p.end > p.start]
    handles.append(accept_handle)
    if spun:
        handles.append(Patch(facecolor=SPIN_COLOUR, edgecolor="#555555", hatch="xxx", label="spinning on lock"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,  # type: ignore[attr-defined]
              frameon=False)


def _bars(ax: object, spans: list[Span], colors: dict[str, object], vcpus: int) -> None:
    height = 0.7 if vcpus <= 16 else 0.9
    edge = 0.3 if vcpus <= 16 else 0.0
    for s in spans:
        if s.lock is not None:
            ax.barh(s.vcpu, s.end - s.start, left=s.start, height=height, color=SPIN_COLOUR,  # type: ignore[attr-defined]
                    edgecolor="#555555", hatch="xxx", linewidth=edge)
        elif s.accepting:
            # No outline: an outline (and an opaque hatch) turns a narrow bar black.
            ax.barh(s.vcpu, s.end - s.start, left=s.start, height=height,  # type: ignore[attr-defined]
                    facecolor=colors[s.phase], edgecolor=ACCEPT_HATCH_COLOUR, hatch=ACCEPT_HATCH, linewidth=0)
        else:
            ax.barh(s.vcpu, s.end - s.start, left=s.start, height=height, color=colors[s.phase],  # type: ignore[attr-defined]
                    linewidth=edge)


def _darker(colour: object) -> tuple[float, float, float]:
    """The colour an accepting bar's hatch gives on average: the phase's, darkened."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)  # type: ignore[arg-type]
    keep = 1 - ACCEPT_HATCH_COLOUR[3] * 0.6
    return (r * keep, g * keep, b * keep)


def heatmap_cells(spans: list[Span], groups: list[tuple[int, int]], total_s: float,
                  bins: int = HEATMAP_BINS) -> tuple[np.ndarray, dict[tuple[str, bool], np.ndarray]]:
    """Bin edges, and per (phase, accepting) the busy share of each group's vCPU-time in each bin
    (rows: groups; spin counts as its phase's work)."""
    edges = np.linspace(0.0, max(total_s, 1e-9), bins + 1)
    row_of = {v: i for i, (a, b) in enumerate(groups) for v in range(a, b + 1)}
    sizes = np.array([b - a + 1 for a, b in groups], dtype=float)
    share: dict[tuple[str, bool], np.ndarray] = {}
    for s in spans:
        key = (str(s.phase), s.accepting)
        cell = share.setdefault(key, np.zeros((len(groups), bins)))
        overlap = np.clip(np.minimum(s.end, edges[1:]) - np.maximum(s.start, edges[:-1]), 0.0, None)
        cell[row_of[s.vcpu]] += overlap
    width = edges[1] - edges[0]
    for cell in share.values():
        cell /= sizes[:, None] * width
    return edges, share


def _heatmap(ax: object, spans: list[Span], colors: dict[str, object], groups: list[tuple[int, int]],
             total_s: float) -> None:
    from matplotlib.colors import to_rgb

    edges, share = heatmap_cells(spans, groups, total_s)
    keys = sorted(share)
    stack = np.stack([share[k] for k in keys])  # key x row x bin
    busy = np.clip(stack.sum(axis=0), 0.0, 1.0)
    top = stack.argmax(axis=0)
    rgb = np.array([_darker(colors[p]) if acc else to_rgb(colors[p]) for p, acc in keys])  # type: ignore[arg-type]
    image = np.ones((len(groups), len(edges) - 1, 4))
    image[..., :3] = rgb[top]
    # Any work stays visible (a quarter strength at least); a fully busy group is the full colour.
    image[..., 3] = np.where(busy > 0, 0.45 + 0.55 * busy, 0.0)
    ax.imshow(image, aspect="auto", interpolation="nearest",  # type: ignore[attr-defined]
              extent=(edges[0], edges[-1], len(groups) - 0.5, -0.5))
    # Say so when the other vCPUs are idle nearly all the time: an almost empty panel is the
    # finding (the boot CPU runs the serial phases), not a drawing fault.
    ap_share = float(busy[1:].mean()) if len(groups) > 1 else 1.0
    if ap_share < 0.05:
        last = groups[-1][1]
        ax.text(0.5, 0.55, f"vCPUs 1-{last} busy {ap_share:.1%} of the boot (thin columns):\n"  # type: ignore[attr-defined]
                "the boot CPU runs the serial phases", transform=ax.transAxes,  # type: ignore[attr-defined]
                ha="center", va="center", fontsize=10, color="#555555")


def _memory_panel(ax: object, result: BootResult) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, MultipleLocator, NullFormatter, NullLocator

    ram = result.record.kernel.ram.total()
    t, acc = ramps(result, "accepted_bytes")
    tc, com = ramps(result, "committed_bytes")
    unacc = np.maximum(0, ram - acc)
    same = lines_coincide(result)
    ax.plot(t, acc, label="guest memory accepted", color="#2ca02c", lw=5, alpha=0.45,  # type: ignore[attr-defined]
            solid_capstyle="butt")
    com_label = "host memory committed" + (" (coincides with accepted)" if same else "")
    ax.plot(tc, com, label=com_label, color="#1f3d7a", lw=1.4, linestyle="--", marker="o",  # type: ignore[attr-defined]
            markersize=3, markevery=0.05)
    ax.plot(t, unacc, label="guest RAM still unaccepted", color="#d62728", lw=1.8)  # type: ignore[attr-defined]
    if memory_axis_scale(result) == "log":
        positive = [x for x in (*acc, *com, *unacc) if x > 0]
        lo = max(MiB, 2 ** math.floor(math.log2(min(positive) if positive else MiB)))
        ax.set_yscale("log", base=2)  # type: ignore[attr-defined]
        ax.set_ylim(lo, ram * 1.6)  # type: ignore[attr-defined]
        exps = range(int(math.log2(lo)), int(math.log2(ram * 1.6)) + 1)
        step = max(1, math.ceil(len(exps) / 8))
        ax.yaxis.set_major_locator(FixedLocator([2.0**e for e in exps][::-1][::step][::-1]))  # type: ignore[attr-defined]
        ax.yaxis.set_minor_locator(NullLocator())  # type: ignore[attr-defined]
        ax.yaxis.set_minor_formatter(NullFormatter())  # type: ignore[attr-defined]
        ax.set_ylabel("memory (log scale)")  # type: ignore[attr-defined]
    else:
        # Ticks at a power-of-two step of at least 1 MiB: 0, 2 GiB, 4 GiB ... rather than 1.86 GiB.
        step = max(MiB, 2 ** math.ceil(math.log2(ram / 6)))
        ax.yaxis.set_major_locator(MultipleLocator(step))  # type: ignore[attr-defined]
        ax.set_ylim(0, ram * 1.05)  # type: ignore[attr-defined]
        ax.set_ylabel("memory")  # type: ignore[attr-defined]
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: _size_label(y)))  # type: ignore[attr-defined]
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # type: ignore[attr-defined]
    ax.grid(alpha=0.3)  # type: ignore[attr-defined]


def _size_label(y: float) -> str:
    if y <= 0:
        return "0"
    if y >= GiB:
        g = y / GiB
        return f"{g:.4g} GiB" if g < 1024 else f"{g / 1024:.4g} TiB"
    return f"{y / MiB:.4g} MiB"


def ramps(result: BootResult, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative bytes over time, each work item contributing linearly while it runs (an
    accept of many gigabytes takes seconds; drawing it as one step at its end would mislead).
    Host memory committed starts from what the host added before the guest ran."""
    spans = []
    for p in result.timeline.phases:
        for v, items in p.items.items():
            for item, s, e in zip(items, p.timing.item_start.get(v, []), p.timing.item_end.get(v, []), strict=False):
                amount = getattr(item, field)
                if amount:
                    spans.append((s, max(e, s), amount))
    base = 0.0
    if field == "committed_bytes":
        series = result.timeline.committed_bytes
        base = float(series[0][1]) if series else 0.0
    times = np.unique(np.concatenate(([0.0, result.timeline.total_s], [x for s, e, _ in spans for x in (s, e)])))
    if not spans:
        return times, np.full_like(times, base)
    s_arr, e_arr, amt = (np.array(x, dtype=float) for x in zip(*spans, strict=True))
    width = np.where(e_arr > s_arr, e_arr - s_arr, 1.0)
    frac = np.clip((times[:, None] - s_arr[None, :]) / width[None, :], 0.0, 1.0)
    frac = np.where((e_arr == s_arr)[None, :], (times[:, None] >= s_arr[None, :]).astype(float), frac)
    return times, base + frac @ amt
