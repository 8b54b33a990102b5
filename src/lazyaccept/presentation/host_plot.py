"""Many guests on one host, drawn: each guest's timeline (boot, then its workloads) one above the
other, and the host memory committed over time against the host's RAM."""

from __future__ import annotations

from ..base.fileio import write_output
from ..base.units import GiB
from ..sim.host import HostResult
from .figures import figure_bytes


def plot_host(path: str, result: HostResult) -> None:
    """:func:`host_figure` written to ``path``."""
    import matplotlib.pyplot as plt

    fig = host_figure(result)
    data = figure_bytes(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)  # type: ignore[arg-type]
    write_output(path, data)


def host_figure(result: HostResult) -> object:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.guests)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 2.5 + min(n, 64) * 0.18 + 3), dpi=110, sharex=True,
                                   gridspec_kw={"height_ratios": [max(1.0, min(n, 64) * 0.18), 3]})
    for k, g in enumerate(result.guests):
        y = n - 1 - k
        start, boot = g.guest.start, g.result.boot_s
        ax1.barh(y, boot - start, left=start, color="tab:blue", height=0.7)
        end = max((w.end_s for w in g.result.workloads), default=boot)
        if end > boot:
            ax1.barh(y, end - boot, left=boot, color="tab:orange", height=0.7)
    ax1.set_yticks(range(n), [g.guest.name for g in reversed(result.guests)], fontsize=7 if n > 16 else 9)
    ax1.set_title("each guest: boot (blue), then its workloads (orange)", fontsize=10)
    ax1.grid(True, axis="x", alpha=0.3)
    ts = [t for t, _ in result.committed]
    ax2.step(ts, [b / GiB for _, b in result.committed], where="post", color="tab:green", lw=2,
             label="committed by all guests")
    if result.host_memory:
        kept = " less static PAMT" if result.reserved_bytes else ""
        ax2.axhline((result.host_memory - result.reserved_bytes) / GiB, color="tab:red", ls="--",
                    label=f"host RAM{kept}")
    if result.out_of_memory is not None:
        ax2.axvline(result.out_of_memory.t, color="tab:red", ls=":", label=f"runs out ({result.out_of_memory.guest})")
    ax2.set_xlabel("host time (s)")
    ax2.set_ylabel("host memory committed (GiB)")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
