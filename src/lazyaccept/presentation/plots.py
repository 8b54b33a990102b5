"""Pictures: a boot (what each vCPU did when, memory accepted over time) and a comparison of
policies across memory sizes."""

from __future__ import annotations

import io
from pathlib import PurePath

import numpy as np

from ..base.errors import ConfigError
from ..base.fileio import STDOUT, write_output
from ..base.units import GiB, format_size
from ..scenario.config import VMConfig
from ..sim.profile import CostProfile
from ..sim.run import BootResult
from ..sim.sweep import CompareRow, FailedRow

#: Image formats by file suffix; standard output (``-``) gets PNG.
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(path: str) -> str:
    """The image format a plot path asks for, by its suffix; ConfigError for any other."""
    if path == STDOUT:
        return "png"
    suffix = PurePath(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        named = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ConfigError(f"{path}: a plot is written as PNG, SVG or PDF by its suffix (.png, .svg, .pdf); "
                          f"this name has {named}")
    return PLOT_FORMATS[suffix]


def _figure_bytes(fig: object, path: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    fmt = plot_format(path)
    # Fixed metadata: the same plot gives the same bytes (no creation date in SVG or PDF).
    meta = {"Date": None} if fmt in ("svg", "pdf") else {}
    fig.savefig(buf, format=fmt, metadata=meta, **kw)  # type: ignore[attr-defined]
    return buf.getvalue()


def plot_boot(result: BootResult, path: str) -> None:
    """Two panels: a Gantt chart of phases per vCPU (acceptance hatched), and guest memory
    accepted, still unaccepted, and host memory committed over simulated time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tl, rec = result.timeline, result.record
    cfg = rec.config
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    cmap = plt.get_cmap("tab10")
    colors = {p.name: cmap(i % 10) for i, p in enumerate(tl.phases)}
    vcpus = sorted({v for p in tl.phases for v in p.items} | {0})
    for p in tl.phases:
        for v, items in p.items.items():
            starts, ends = p.timing.item_start.get(v, []), p.timing.item_end.get(v, [])
            for item, s, e in zip(items, starts, ends, strict=False):
                if e <= s:
                    continue
                accepting = item.accepted_bytes > 0 or item.label.startswith("accept")
                ax1.barh(v, e - s, left=s, height=0.7, color=colors[p.name], edgecolor="black" if accepting else None,
                         hatch="///" if accepting else None, linewidth=0.3)
    ax1.set_yticks(vcpus, [f"vCPU {v}" for v in vcpus])
    ax1.invert_yaxis()
    ax1.set_ylabel("")
    handles = [Patch(color=colors[p.name], label=p.name) for p in tl.phases if p.end > p.start]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="accepting memory"))
    ax1.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax1.set_title(
        f"{cfg.tee.value.upper()} guest, {format_size(cfg.memory)}, {cfg.vcpus} vCPU(s), accept_memory={cfg.policy}, "
        f"kernel {cfg.kernel_release}, {cfg.host_mapping} host: boot to shell {tl.total_s:.2f} s"
    )

    ram = rec.kernel.ram.total()
    t, acc = _ramps(result, "accepted_bytes")
    _, com = _ramps(result, "committed_bytes")
    ax2.plot(t, acc / GiB, label="guest memory accepted", color="tab:green")
    ax2.plot(t, np.maximum(0, ram - acc) / GiB, label="guest RAM still unaccepted", color="tab:red")
    ax2.plot(t, com / GiB, label="host memory committed", color="tab:blue", linestyle="--")
    ax2.set_xlabel("simulated time since power-on (s)")
    ax2.set_ylabel("GiB")
    ax2.set_ylim(bottom=0)
    ax2.set_xlim(0, max(tl.total_s, 1e-3) * 1.01)
    ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax2.grid(alpha=0.3)
    data = _figure_bytes(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_output(path, data)


def _ramps(result: BootResult, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative bytes over time, each work item contributing linearly while it runs (an
    accept of many gigabytes takes seconds; drawing it as one step at its end would mislead)."""
    spans = []
    for p in result.timeline.phases:
        for v, items in p.items.items():
            for item, s, e in zip(items, p.timing.item_start.get(v, []), p.timing.item_end.get(v, []), strict=False):
                amount = getattr(item, field)
                if amount:
                    spans.append((s, max(e, s), amount))
    times = np.unique(np.concatenate(([0.0, result.timeline.total_s], [x for s, e, _ in spans for x in (s, e)])))
    if not spans:
        return times, np.zeros_like(times)
    s_arr, e_arr, amt = (np.array(x, dtype=float) for x in zip(*spans, strict=True))
    width = np.where(e_arr > s_arr, e_arr - s_arr, 1.0)
    frac = np.clip((times[:, None] - s_arr[None, :]) / width[None, :], 0.0, 1.0)
    frac = np.where((e_arr == s_arr)[None, :], (times[:, None] >= s_arr[None, :]).astype(float), frac)
    return times, frac @ amt


def vcpus_label(n: int) -> str:
    return f"{n} vCPU" if n == 1 else f"{n} vCPUs"


#: One colour per profile in a comparison plot.
PROFILE_COLOURS = ("#c0392b", "#2471a3", "#229954", "#8e44ad", "#d68910", "#566573")


def plot_compare(path: str, comparisons: list[tuple[VMConfig, list[CompareRow | FailedRow], CostProfile]]) -> None:
    """Boot time against memory size for both policies and each profile, written to ``path``
    (PNG): eager solid with circles, lazy dashed with squares, one colour per profile; each
    eager point is labelled with the speed-up of lazy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # Failed sizes have no boot time: they are left out (the table and JSON say why).
    comparisons = [(c, [r for r in rows if isinstance(r, CompareRow)], p) for c, rows, p in comparisons]
    fig, ax = plt.subplots(figsize=(8.5, 5.5), dpi=120)
    all_rows = [r for _, rows, _ in comparisons for r in rows]
    gib = sorted({r.memory_bytes / 2**30 for r in all_rows})
    for k, (config, rows, profile) in enumerate(comparisons):
        colour = PROFILE_COLOURS[k % len(PROFILE_COLOURS)]
        x = [r.memory_bytes / 2**30 for r in rows]
        label = f"{profile.name} ({vcpus_label(config.vcpus)}, kernel {config.kernel_release})"
        ax.plot(x, [r.eager_s for r in rows], "o-", color=colour, lw=2, label=f"{label}: eager")
        ax.plot(x, [r.lazy_s for r in rows], "s--", color=colour, lw=2, label=f"{label}: lazy")
        for g, r in zip(x, rows, strict=True):
            ax.annotate(f"{r.speedup:.1f}x", (g, r.eager_s), textcoords="offset points", xytext=(0, 8),
                        ha="center", fontsize=9, color=colour)
    if len(gib) > 1 and max(gib) / min(gib) >= 8:
        ax.set_xscale("log", base=2)
        spread = max(r.eager_s for r in all_rows) / min(r.lazy_s for r in all_rows)
        if spread >= 30:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_size(int(round(x * 2**30)))))
    ax.set_xticks(gib)
    if len(gib) > 6:
        ax.tick_params(axis="x", labelrotation=30)
    ax.set_xlabel("guest memory")
    ax.set_ylabel("boot time to shell (s, simulated)")
    tees = sorted({c.tee.value.upper() for c, _, _ in comparisons})
    ax.set_title(f"{'/'.join(tees)} boot time, eager vs lazy acceptance\n(numbers: speed-up of lazy, eager / lazy)",
                 fontsize=10)
    ax.grid(True, which="major", alpha=0.35)
    ax.legend(loc="upper left", fontsize=8)
    top = max(r.eager_s for r in all_rows)
    if ax.get_yscale() == "linear":
        ax.set_ylim(0, top * 1.2)  # headroom for the speed-up labels
    else:
        ax.set_ylim(min(r.lazy_s for r in all_rows) / 1.3, top * 1.8)
    fig.tight_layout()
    data = _figure_bytes(fig, path)
    plt.close(fig)
    write_output(path, data)
