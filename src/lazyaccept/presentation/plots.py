"""Pictures: a boot (:mod:`.boot_plot`: what each vCPU did when, memory accepted over time) and
a comparison of policies across memory sizes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..base.fileio import write_output
from ..base.units import GiB, format_size
from ..scenario.config import VMConfig
from ..sim.profile import CostProfile
from ..sim.runtime import RunResult
from ..sim.sweep import CompareRow, FailedRow
from .boot_plot import boot_figure, plot_boot
from .figures import PLOT_FORMATS, figure_bytes, plot_format
from .time_axis import si_time, time_axis

__all__ = [
    "PLOT_FORMATS", "boot_figure", "compare_figure", "plot_boot", "plot_compare", "plot_format", "plot_policies",
    "policies_figure", "vcpus_label",
]

def vcpus_label(n: int) -> str:
    return f"{n} vCPU" if n == 1 else f"{n} vCPUs"


#: One colour per profile in a comparison plot.
PROFILE_COLOURS = ("#c0392b", "#2471a3", "#229954", "#8e44ad", "#d68910", "#566573")


Comparisons = Sequence[tuple[VMConfig, Sequence[CompareRow | FailedRow], CostProfile]]


def plot_compare(path: str, comparisons: Comparisons) -> None:
    """:func:`compare_figure` written to ``path`` (.png, .svg, .pdf; ``-``: PNG on standard output)."""
    import matplotlib.pyplot as plt

    fig = compare_figure(comparisons)
    data = figure_bytes(fig, path)
    plt.close(fig)  # type: ignore[arg-type]
    write_output(path, data)


def compare_figure(comparisons: Comparisons) -> object:
    """Boot time against memory size for both policies and each profile: eager solid with
    circles, lazy dashed with squares, one colour per profile; each eager point is labelled with
    the speed-up of lazy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # Failed sizes have no boot time: they are left out (the table and JSON say why).
    done: list[tuple[VMConfig, list[CompareRow], CostProfile]] = [
        (c, [r for r in rows if isinstance(r, CompareRow)], p) for c, rows, p in comparisons]
    fig, ax = plt.subplots(figsize=(8.5, 5.5), dpi=120)
    all_rows = [r for _, rows, _ in done for r in rows]
    gib = sorted({r.memory_bytes / 2**30 for r in all_rows})
    for k, (config, rows, profile) in enumerate(done):
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
    return fig


def plot_policies(path: str, results: list[RunResult]) -> None:
    """:func:`policies_figure` written to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = policies_figure(results)
    data = figure_bytes(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)  # type: ignore[arg-type]
    write_output(path, data)


def policies_figure(results: list[RunResult]) -> object:
    """Two panels per comparison of policies: the first-touch stall distribution (CDF; a log time
    axis only when the stalls span a decade, see :mod:`.time_axis`) and guest memory accepted
    over time, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    styles = ("-", "--", ":", "-.")
    stalls = [float(x) for r in results for x in r.stall_s[r.stall_weight > 0]]
    scale = time_axis(ax1, stalls, "x")
    left, right = ax1.get_xlim()
    for k, r in enumerate(results):
        colour = PROFILE_COLOURS[k % len(PROFILE_COLOURS)]
        name = str(r.record.config.policy)
        if r.stall_weight.sum() > 0:
            order = np.argsort(r.stall_s)
            # From the axis's left end at 0 to its right end at 1: equal stalls are one clear step.
            x = np.concatenate(([left], r.stall_s[order], [right]))
            y = np.concatenate(([0.0], np.cumsum(r.stall_weight[order]) / r.stall_weight.sum(), [1.0]))
            st = r.stall_summary()
            ax1.step(x, y, where="post", color=colour, lw=2, ls=styles[k % len(styles)],
                     label=f"{name}: {int(r.stall_weight.sum()):,} stalls, p99 {si_time(float(st['p99_s'] or 0))}")
            ax1.plot([st["p99_s"]], [0.99], "o", color=colour)
        else:
            ax1.plot([], [], color=colour, lw=2, label=f"{name} (no stalls)")
        series = r.timeline.accepted_bytes
        ax2.step([t for t, _ in series], [b / GiB for _, b in series], where="post", color=colour, lw=2,
                 ls=styles[k % len(styles)], label=name)
        ax2.axvline(r.boot_s, color=colour, lw=0.8, ls=":")
    ax1.set_xlim(left, right)
    ax1.set_xlabel("stall of a first touch waiting for acceptance" + (" (log)" if scale == "log" else "")
                   + "; dot: p99")
    ax1.set_ylabel("fraction of stalls at most this long")
    ax1.set_ylim(0, 1.02)
    ax1.grid(True, which="major", alpha=0.3)
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title("first-touch stalls (CDF)", fontsize=10)
    ax2.set_xlabel("simulated time (s); dotted: shell prompt")
    ax2.set_ylabel("guest memory accepted (GiB)")
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8, loc="lower right")
    ax2.set_title("memory accepted over time", fontsize=10)
    fig.tight_layout()
    return fig
