"""Pictures that read at a glance: time axes from the data's spread, sweep figures by the grid
point's policy and the grid's dimensions, tick labels that never overlap."""

from __future__ import annotations

import functools
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lazyaccept.base.errors import ConfigError  # noqa: E402
from lazyaccept.base.units import GiB, MiB  # noqa: E402
from lazyaccept.presentation import sweep_figures as sf  # noqa: E402
from lazyaccept.presentation.plots import policies_figure  # noqa: E402
from lazyaccept.presentation.sweep_report import sweep_report  # noqa: E402
from lazyaccept.presentation.ticks import label_extents, overlapping  # noqa: E402
from lazyaccept.presentation.time_axis import si_time, time_axis, time_scale  # noqa: E402
from lazyaccept.sim.fleet.results import Results  # noqa: E402

#: A tick label of a time axis: a number and an SI unit, or 0.
TIME_LABEL = re.compile(r"^(0|\d+(\.\d+)? (ns|us|ms|s))$")


def _labels(ax, which: str = "x") -> list[str]:
    ax.figure.canvas.draw()
    axis = ax.xaxis if which == "x" else ax.yaxis
    return [t.get_text() for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]


@pytest.mark.parametrize(("seconds", "text"), [(7.506e-3, "7.51 ms"), (2.0, "2 s"), (120e-6, "120 us"),
                                               (0.0, "0"), (5e-9, "5 ns"), (90.0, "90 s")])
def test_si_time_labels(seconds, text):
    assert si_time(seconds) == text


def test_equal_stalls_get_a_linear_axis_from_zero_with_readable_labels():
    fig, ax = plt.subplots()
    stalls = [0.00750634] * 5 + [0.0075063401]
    assert time_axis(ax, stalls, "x") == "linear"
    lo, hi = ax.get_xlim()
    assert lo == 0 and 0.00750634 < hi < 0.0075 * 1.5  # the stall is read against zero, with a little room
    labels = _labels(ax)
    assert len(labels) >= 3 and all(TIME_LABEL.match(t) for t in labels), labels
    assert {t.split()[-1] for t in labels if t != "0"} == {"ms"}  # one unit on a linear axis
    assert not overlapping(label_extents(ax, "x"))
    plt.close(fig)


def test_stalls_spanning_decades_get_a_log_axis():
    fig, ax = plt.subplots()
    stalls = [20e-6, 1e-3, 0.3]
    assert time_scale(stalls) == "log" and time_axis(ax, stalls, "y") == "log"
    lo, hi = ax.get_ylim()
    assert lo < 20e-6 and hi > 0.3
    labels = _labels(ax, "y")
    assert labels and all(TIME_LABEL.match(t) for t in labels), labels
    assert not overlapping(label_extents(ax, "y"))
    plt.close(fig)


@functools.cache
def _policies_runs():
    from lazyaccept.guest.policies import Policy
    from lazyaccept.scenario.config import GuestRequest
    from lazyaccept.scenario.runtime import RunConfig
    from lazyaccept.scenario.workloads import Workload
    from lazyaccept.sim.profile import load_profile
    from lazyaccept.sim.run import resolve
    from lazyaccept.sim.runtime import simulate_run

    prof = load_profile("tdx")
    out = []
    for name in ("lazy", "background:threads=1,rate=2G"):
        policy = Policy.parse(name)
        vm = resolve(GuestRequest(memory=8 * GiB, vcpus=2, policy=policy.accept_memory,
                                  patches=policy.with_patches(())), prof)
        out.append(simulate_run(RunConfig(vm, (Workload.parse("touch:4G"),), policy), prof, baseline=False))
    return out


def test_policies_figure_draws_equal_stalls_as_one_step_on_a_readable_axis():
    runs = _policies_runs()
    stalls = [s for r in runs for s in r.stall_s[r.stall_weight > 0]]
    assert stalls and max(stalls) / min(stalls) < 10  # the README's case: every stall one 4 MiB chunk
    fig = policies_figure(runs)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
    labels = _labels(ax)
    assert all(TIME_LABEL.match(t) for t in labels), labels
    assert not overlapping(label_extents(ax, "x"))
    assert "(log)" not in ax.get_xlabel()
    plt.close(fig)


def _row(point: dict, boot: float, *, memory: int = 4 * GiB, ok: bool = True, stalls: list[float] | None = None,
         key: str | None = None) -> dict:
    accept = "lazy" if str(point.get("policy", "lazy")) != "eager" else "eager"
    return {
        "kind": "run", "key": key or repr(sorted(point.items())) + str(memory), "ok": ok,
        "failure": None if ok else "boom", "failure_kind": None if ok else "BootFailure",
        "boot_s": boot if ok else None, "accept_s": 1.0, "accept_wall_s": 1.0, "accepted_bytes": GiB,
        "accepted_by": {}, "exits": 1, "host_committed_bytes": GiB, "unaccepted_after_boot_bytes": 0,
        "phases_s": {}, "point": {"memory": memory, **point},
        "profile": {"ref": "tdx", "name": "tdx", "sha256": "x"},
        "config": {"platform": "tdx", "memory_bytes": memory, "vcpus": 4, "policy": accept, "kernel": "mainline",
                   "firmware_accept": "below-4g", "host_mapping": "4k"},
        "workload": None if stalls is None else {"name": "touch:1G", "stalls_s": stalls, "slowdown": 2.0},
    }


def test_a_policy_the_kernel_does_not_ship_is_not_folded_into_lazy():
    rows = [_row({"policy": "lazy"}, 10.0), _row({"policy": "background:threads=1,rate=2G"}, 11.0),
            _row({"policy": "eager"}, 30.0)]
    assert [sf.policy_of(r) for r in rows] == ["lazy", "background:threads=1,rate=2G", "eager"]
    # lazy/eager pairs only: the background run is not the lazy twin of the eager one.
    assert [s for _, s in sf.speedups(rows)] == [3.0]
    results = Results(runs={r["key"]: r for r in rows})
    page = sweep_report(results, ["synthetic"])
    assert "background:threads=1,rate=2G, eager, lazy" in page  # key figures
    table = page.split('<table id="t-runs"', 1)[1].split("</table>", 1)[0]
    assert table.count(">background:threads=1,rate=2G<") == 1 and table.count(">lazy<") == 1


def test_a_grid_without_a_policy_dimension_reads_the_configuration():
    row = _row({}, 10.0)
    assert sf.policy_of(row) == "lazy"


def _sweep(dimensions: dict, fixed: dict | None = None, path: str = "g.toml") -> dict:
    return {"kind": "sweep", "lazyaccept": "0", "grid": {"name": "g", "path": path, "dimensions": dimensions,
                                                         "fixed": fixed or {}, "exclude": []}}


def test_results_of_two_grids_are_refused_and_of_one_grid_read_again_are_not():
    rows = [_row({"policy": "lazy"}, 10.0)]
    one = Results(runs={r["key"]: r for r in rows},
                  sweeps=[_sweep({"policy": ["lazy"]}), _sweep({"policy": ["lazy"]}, path="again.toml")])
    assert "Key figures" in sweep_report(one, ["a.jsonl"])
    two = Results(runs={r["key"]: r for r in rows},
                  sweeps=[_sweep({"policy": ["lazy"]}), _sweep({"kernel": ["6.12"]}, path="k.toml")])
    with pytest.raises(ConfigError, match="2 different grids"):
        sweep_report(two, ["a.jsonl", "b.jsonl"])


def test_close_memory_sizes_never_print_their_labels_on_top_of_each_other():
    sizes = [4 * GiB, 64 * GiB, 67000 * MiB]  # 64 GiB and 65.43 GiB: examples/kernels.toml
    rows = [_row({"policy": p}, b * m / GiB, memory=m, key=f"{p}{m}")
            for m in sizes for p, b in (("lazy", 1.0), ("eager", 3.0))]
    drawn = sf.boot_vs_memory(rows)
    ax = drawn.fig.axes[0]
    labels = _labels(ax)
    assert labels[0] == "4 GiB" and len(labels) == 2  # one of the two close sizes keeps its label
    assert not overlapping(label_extents(ax, "x"))
    minor = ax.xaxis.get_minorticklocs()
    assert len(minor) == 1 and min(abs(minor[0] - s / GiB) for s in sizes[1:]) < 1e-9  # its tick stays
    plt.close(drawn.fig)


def test_overlap_detection_itself():
    assert overlapping([(0, 10), (11, 20)], gap=3)
    assert not overlapping([(0, 10), (14, 20)], gap=3)


def test_sweep_stall_box_of_equal_stalls_is_linear_with_time_labels():
    rows = [_row({"policy": "lazy"}, 10.0, stalls=[0.00750634] * 6)]
    drawn = sf.stall_distribution(rows)
    ax = drawn.fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    labels = _labels(ax, "y")
    assert all(TIME_LABEL.match(t) for t in labels), labels
    assert not any("0.00750634" in t for t in labels)
    plt.close(drawn.fig)


def test_a_kernel_firmware_mapping_grid_is_drawn_over_its_own_dimensions():
    grid = {"kernel": ["6.5", "6.11", "mainline"], "firmware_accept": ["below-4g", "256M"],
            "host_mapping": ["4k", "2m"]}
    rows = []
    for i, k in enumerate(grid["kernel"]):
        for j, f in enumerate(grid["firmware_accept"]):
            for m in grid["host_mapping"]:
                point = {"kernel": k, "firmware_accept": f, "host_mapping": m, "policy": "lazy"}
                rows.append(_row(point, 10.0 + i + 5 * j + (m == "4k")))
    dims = sf.varied_dimensions(rows, list(grid))
    assert dims == ["kernel", "firmware_accept", "host_mapping"]
    drawn = sf.by_dimension(rows, dims, grid)
    axes = drawn.fig.axes
    assert len(axes) == 3  # one memory size: one panel per dimension
    for ax, dim in zip(axes, dims, strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()] == grid[dim]
        assert ax.get_xlabel() == dim.replace("_", " ")
        assert not overlapping(label_extents(ax, "x"))
    # The kernel panel's dots: medians over firmware and mapping, computed here from the formula above.
    dots = axes[0].lines[0].get_ydata()
    expected = [sorted(10.0 + i + 5 * j + h for j in (0, 1) for h in (0, 1)) for i in range(3)]
    assert list(dots) == [(e[1] + e[2]) / 2 for e in expected]
    plt.close(drawn.fig)


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
                                         (13, "13th"), (16, "16th"), (21, "21st"), (22, "22nd"), (112, "112th")])
def test_ordinals(n, text):
    from lazyaccept.presentation.boot_plot import ordinal

    assert ordinal(n) == text


@functools.cache
def _boot(memory: int, vcpus: int, kernel: str = "mainline", policy: str = "lazy"):
    from lazyaccept.base.choices import AcceptPolicy
    from lazyaccept.scenario.config import GuestRequest
    from lazyaccept.sim.profile import load_profile
    from lazyaccept.sim.run import resolve, run

    prof = load_profile("tdx")
    return run(resolve(GuestRequest(memory=memory, vcpus=vcpus, kernel=kernel, policy=AcceptPolicy(policy)), prof),
               prof)


def test_many_vcpus_are_grouped_into_rows_a_reader_can_see():
    from lazyaccept.presentation.boot_plot import GROUPED_ROWS, boot_figure, gantt_spans, heatmap_cells, vcpu_groups

    groups = vcpu_groups(256)
    assert groups[0] == (0, 0) and groups[-1][1] == 255 and len(groups) <= GROUPED_ROWS
    covered = [v for a, b in groups for v in range(a, b + 1)]
    assert covered == list(range(256))
    result = _boot(1 << 40, 256)
    fig = boot_figure(result)
    ax = fig.axes[0]
    fig.canvas.draw()
    row_px = ax.get_window_extent().height / len(groups)
    assert row_px >= 8  # was a pixel a row
    assert not overlapping(label_extents(ax, "y"))
    assert "vCPUs 1-" in " ".join(_labels(ax, "y"))
    # The heatmap's cells hold each group's busy time: summed back, the spans' own total.
    spans = gantt_spans(result)
    edges, share = heatmap_cells(spans, groups, result.timeline.total_s)
    sizes = [b - a + 1 for a, b in groups]
    width = edges[1] - edges[0]
    total = sum(float((cell.sum(axis=1) * sizes).sum()) * width for cell in share.values())
    assert total == pytest.approx(sum(s.end - s.start for s in spans), rel=1e-9)
    assert "every" not in ax.get_ylabel() or "th labelled" not in ax.get_ylabel()
    plt.close(fig)


def test_many_vcpu_rows_say_every_kth_with_the_right_suffix():
    from lazyaccept.presentation.boot_plot import boot_figure

    fig = boot_figure(_boot(8 << 30, 40))
    label = fig.axes[0].get_ylabel()
    assert re.search(r"every \d+(st|nd|rd|th) labelled", label) and "2th" not in label
    assert "every 4th" in label  # 40 rows, at most 16 labels: every 4th (a power of two)
    plt.close(fig)


def test_hatched_accepting_bars_match_their_legend_and_are_not_black():
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Rectangle

    from lazyaccept.presentation.boot_plot import boot_figure

    fig = boot_figure(_boot(8 << 30, 4, "6.5", "eager"))
    ax = fig.axes[0]
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch() == "//"]
    assert hatched
    handle = next(h for h in ax.get_legend().get_patches() if h.get_label().startswith("accepting memory"))
    assert handle.get_hatch() == "//"
    for p in hatched:
        assert p.get_edgecolor() == handle.get_edgecolor()  # the hatch's colour, the same in the legend
        assert p.get_edgecolor()[3] < 1  # translucent: a short bar is its phase's colour darkened
        assert p.get_linewidth() == 0  # no black outline around a narrow bar
        assert p.get_facecolor() != to_rgba("black")
    plt.close(fig)


def _drain_samples() -> list:
    from lazyaccept.scenario.live import Sample

    # 60,000 pages drained every 0.5 s, give or take a 0.8% wobble (as a real guest's reads do).
    pages = [3_182_400 - 60_000 * k - (480 if k % 2 else 0) for k in range(6)]
    return [Sample(0.5 * k, p * 4, p, 15_360_000, 15_000_000) for k, p in enumerate(pages)]


def test_drain_plot_keeps_a_wobble_a_wobble_in_the_table_unit_without_a_legend_on_a_line():
    from lazyaccept.presentation.status_report import figure_drain

    samples = _drain_samples()
    fig = figure_drain(samples, "drain")
    top, bottom = fig.axes
    pairs = zip(samples, samples[1:], strict=False)
    rates = [(a.unaccepted_bytes - b.unaccepted_bytes) / (b.t - a.t) for a, b in pairs]
    assert 1.01 < max(rates) / min(rates) < 1.05  # the data: a wobble of a percent or so
    lo, hi = bottom.get_ylim()
    assert lo == 0 and max(rates) / 2**30 < hi < 1.2 * max(rates) / 2**30  # from zero: no cliff
    assert top.get_ylim()[0] == 0
    assert "GiB/s" in bottom.get_ylabel() and "(GiB)" in top.get_ylabel()  # as the table: GiB, GiB/s
    assert top.get_legend() is None and bottom.get_legend() is None
    plt.close(fig)


def test_two_profile_compare_page_states_every_profile_in_words(tmp_path):
    import html as html_lib
    import json

    from cli_helpers import run_cli

    page = tmp_path / "c.html"
    args = ["compare", "--memory", "4G", "--profile", "tdx", "--profile", "snp"]
    assert run_cli(*args, "--html", str(page)).code == 0
    doc = json.loads(run_cli(*args, "--json").out)
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
    header = text.split("Every time is simulated", 1)[0]
    for c in doc["comparisons"]:
        assert f"profile {c['profile']}: {c['platform'].upper()}, {c['vcpus']} vCPU" in header
        assert f"kernel {c['kernel']} ({c['kernel_rules']} rules)" in header
        assert ", ".join(c["kconfig"]) in header  # build options as NAME=VALUE, not a list's repr
    assert "1 vCPU," in header and "4 vCPUs," in header  # snp and tdx resolve different defaults
    assert not re.search(r"\b[A-Z]\w+\(\w+=", text), "a Python repr on the page"
    assert "['" not in text and "[]" not in text


def test_crowded_categories_are_turned_not_dropped():
    kernels = ["6.5", "6.6", "6.7", "6.11", "6.12", "mainline"]
    sizes = [4 * GiB, 64 * GiB, 67000 * MiB]
    rows = [_row({"kernel": k, "policy": p}, 5.0 + i, memory=m, key=f"{k}{p}{m}")
            for i, k in enumerate(kernels) for p in ("lazy", "eager") for m in sizes]
    drawn = sf.by_dimension(rows, ["kernel", "policy"], {"kernel": kernels})
    kernel_axes = [ax for ax in drawn.fig.axes if ax.get_xlabel() == "kernel"]
    assert len(kernel_axes) == 3
    for ax in kernel_axes:
        assert _labels(ax) == kernels  # every release named
        assert not overlapping(label_extents(ax, "x"))
    plt.close(drawn.fig)


def test_a_grid_grown_by_a_value_and_resumed_is_one_grid():
    rows = [_row({"policy": "lazy", "kernel": k}, 10.0, key=k) for k in ("6.12", "mainline")]
    grown = Results(runs={r["key"]: r for r in rows},
                    sweeps=[_sweep({"kernel": ["6.12"], "policy": ["lazy"]}),
                            _sweep({"kernel": ["6.12", "mainline"], "policy": ["lazy"]})])
    page = sweep_report(grown, ["r.jsonl"])
    assert "Key figures" in page and "6.12, mainline" in page  # the configuration space has both values


def test_drain_plot_of_one_sample_says_why_there_is_no_rate():
    from lazyaccept.presentation.status_report import figure_drain

    fig = figure_drain(_drain_samples()[:1], "one")
    top, bottom = fig.axes
    assert bottom.get_xlim()[0] == 0  # no negative time
    assert any("one sample" in t.get_text() for t in bottom.texts)
    assert not any("one sample" in t.get_text() for t in figure_drain(_drain_samples(), "many").axes[1].texts)
    plt.close("all")
