"""Pictures of a boot: what each vCPU did when, and memory accepted over time."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from .fileio import atomic_write
from .units import GiB, format_size

if TYPE_CHECKING:
    from .sim.scenario import BootResult


def _figure_bytes(fig: object) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
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
        f"{cfg.platform.upper()} guest, {format_size(cfg.memory)}, {cfg.vcpus} vCPU(s), accept_memory={cfg.policy}, "
        f"kernel {cfg.kernel}, {cfg.host_mapping} host: boot to shell {tl.total_s:.2f} s"
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
    data = _figure_bytes(fig)
    plt.close(fig)
    atomic_write(path, data)


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
