"""The boot plot: readable labels with many vCPUs, a memory axis that shows lazy curves, accepted and
committed memory told apart, and vCPUs spinning on a lock drawn as such."""

from __future__ import annotations

import functools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lazyaccept.base.choices import AcceptPolicy  # noqa: E402
from lazyaccept.presentation.boot_plot import (  # noqa: E402
    MAX_VCPU_LABELS,
    boot_figure,
    gantt_spans,
    lines_coincide,
    memory_axis_scale,
    vcpu_ticks,
)
from lazyaccept.scenario.config import GuestRequest  # noqa: E402
from lazyaccept.sim.profile import load_profile  # noqa: E402
from lazyaccept.sim.run import BootResult, resolve, run  # noqa: E402


@functools.cache
def _boot(memory_gib: int, vcpus: int, kernel: str, policy: str) -> BootResult:
    prof = load_profile("tdx")
    request = GuestRequest(memory=memory_gib << 30, vcpus=vcpus, kernel=kernel, policy=AcceptPolicy(policy))
    return run(resolve(request, prof), prof)


@pytest.mark.parametrize("n", [1, 4, 16, 17, 64, 100, 256, 4096])
def test_vcpu_labels_never_crowd(n: int) -> None:
    ticks = vcpu_ticks(n)
    assert ticks[0] == 0 and ticks[-1] == n - 1
    assert len(ticks) <= MAX_VCPU_LABELS + 1
    assert ticks == sorted(set(ticks)) and all(0 <= t < n for t in ticks)
    if n <= MAX_VCPU_LABELS:
        assert ticks == list(range(n))
    else:
        gaps = {b - a for a, b in zip(ticks[:-2], ticks[1:-1], strict=True)}
        assert len(gaps) == 1  # evenly spaced but for the last


def test_64_vcpus_figure_labels_do_not_overlap() -> None:
    fig = boot_figure(_boot(64, 64, "mainline", "lazy"))
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) <= MAX_VCPU_LABELS + 1
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.y0)
    for lower, upper in zip(boxes, boxes[1:], strict=False):
        assert lower.y1 <= upper.y0 + 0.5  # no two labels share a pixel row
    plt.close(fig)


def test_v65_eager_spin_is_drawn_as_spinning() -> None:
    result = _boot(8, 4, "6.5", "eager")
    spans = gantt_spans(result)
    spin = {v: 0.0 for v in range(4)}
    for s in spans:
        if s.lock is not None:
            spin[s.vcpu] += s.end - s.start
    # The engine's own account of time spent waiting for a lock, per vCPU.
    for v, seconds in result.timeline.vcpu_spin_s.items():
        assert spin.get(v, 0.0) == pytest.approx(seconds, abs=1e-9)
    assert sum(1 for v in spin if spin[v] > 0.1) >= 2  # the global accept lock serialises the vCPUs
    fig = boot_figure(result)
    names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "spinning on lock" in names
    plt.close(fig)


def test_no_spin_legend_without_a_lock_wait() -> None:
    result = _boot(8, 4, "mainline", "lazy")
    assert sum(result.timeline.vcpu_spin_s.values()) == 0
    assert not any(s.lock for s in gantt_spans(result))
    fig = boot_figure(result)
    assert "spinning on lock" not in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)


def test_lazy_large_guest_gets_a_log_axis_eager_a_linear_one() -> None:
    lazy = _boot(64, 8, "mainline", "lazy")
    eager = _boot(8, 4, "6.5", "eager")
    # Independent of the plot: what the boot accepted, against its RAM.
    assert lazy.record.platform.host_committed < 0.25 * lazy.record.kernel.ram.total()
    assert memory_axis_scale(lazy) == "log"
    assert memory_axis_scale(eager) == "linear"
    fig = boot_figure(lazy)
    ax = fig.axes[1]
    assert ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    assert lo <= lazy.record.unaccepted_after_boot <= hi
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(t.endswith(("MiB", "GiB", "TiB")) for t in labels)
    plt.close(fig)


def test_accepted_and_committed_are_told_apart() -> None:
    result = _boot(8, 4, "6.5", "eager")
    assert lines_coincide(result)
    fig = boot_figure(result)
    ax = fig.axes[1]
    lines = {line.get_label(): line for line in ax.get_lines()}
    acc = lines["guest memory accepted"]
    com = lines["host memory committed (coincides with accepted)"]
    assert acc.get_linestyle() != com.get_linestyle()
    assert acc.get_linewidth() > 2 * com.get_linewidth()
    assert com.get_marker() not in (None, "None", "")
    plt.close(fig)
