"""Pictures: a boot (:mod:`.boot_plot`: what each vCPU did when, memory accepted over time) and
a comparison of policies across memory sizes."""

from __future__ import annotations

from ..base.fileio import write_output
from ..base.units import format_size
from ..scenario.config import VMConfig
from ..sim.profile import CostProfile
from ..sim.sweep import CompareRow, FailedRow
from .boot_plot import plot_boot
from .figures import PLOT_FORMATS, figure_bytes, plot_format

__all__ = ["PLOT_FORMATS", "plot_boot", "plot_compare", "plot_format", "vcpus_label"]

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
    data = figure_bytes(fig, path)
    plt.close(fig)
    write_output(path, data)
