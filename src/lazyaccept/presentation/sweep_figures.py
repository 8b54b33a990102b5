"""The figures of a sweep report, drawn from results rows (``kind = "run"``).

A sweep varies many dimensions at once, and a figure has two axes.  Each curve therefore shows,
at each x, the *median* over every run that shares the curve's key and that x (the other
dimensions: vCPUs, kernel, firmware ...), with a band from the smallest to the largest of them;
captions give the number of runs behind each point.  Failed runs are left out of the figures
(the report lists them).  A figure that the runs cannot support (one memory size, one policy)
is not drawn: its function returns a :class:`Drawn` without a figure, saying why.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from ..base.units import GiB, format_size
from .ticks import label_extents, overlapping, thin_tick_labels
from .time_axis import time_axis

Row = dict[str, Any]
_POLICY_STYLE = {"lazy": ("-", "o"), "eager": ("--", "s")}
_OTHER_STYLES = [(":", "^"), ("-.", "D"), ((0, (1, 1)), "v")]


@dataclass(frozen=True)
class Drawn:
    """A figure, or why there is none."""

    fig: Any | None
    caption: str


def profile_of(r: Row) -> str:
    return str(r["profile"]["ref"])


def policy_of(r: Row) -> str:
    """The run's acceptance policy as the grid point names it (``background:threads=1,rate=2G``);
    ``config.policy`` is only the ``accept_memory=`` the guest booted with, ``lazy`` for every
    policy the kernel does not ship.  A grid without a policy dimension runs the profile's."""
    point = r.get("point") or {}
    return str(point["policy"]) if "policy" in point else str(r["config"]["policy"])


def memory_of(r: Row) -> int:
    return int(r["config"]["memory_bytes"])


def gib_of(r: Row) -> float:
    """Guest memory in GiB: the x of the memory plots (their axis labels sizes from it)."""
    return memory_of(r) / GiB


def vcpus_of(r: Row) -> int:
    return int(r["config"]["vcpus"])


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(profiles: Iterable[str]) -> dict[str, Any]:
    cmap = _plt().get_cmap("tab10")
    return {p: cmap(i % 10) for i, p in enumerate(sorted(set(profiles)))}


def _style(policy: str, order: list[str]) -> tuple[Any, str]:
    if policy in _POLICY_STYLE:
        return _POLICY_STYLE[policy]
    others = [p for p in order if p not in _POLICY_STYLE]
    return _OTHER_STYLES[others.index(policy) % len(_OTHER_STYLES)]


def series(
    rows: Iterable[Row], key: Callable[[Row], Hashable], x: Callable[[Row], float], y: Callable[[Row], float]
) -> dict[Hashable, list[tuple[float, float, float, float, int]]]:
    """Per key, points ``(x, median y, min y, max y, n)`` sorted by x."""
    groups: dict[Hashable, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[key(r)][x(r)].append(y(r))
    return {
        k: [(xv, statistics.median(ys), min(ys), max(ys), len(ys)) for xv, ys in sorted(by_x.items())]
        for k, by_x in groups.items()
    }


def _memory_axis(ax: Any, values: Iterable[int]) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    gib = sorted({v / GiB for v in values})
    ax.set_xscale("log", base=2)
    # At most ~9 labels: every k-th size the runs have; labels too close to read apart
    # (64 GiB and 65.43 GiB) are thinned once the figure is laid out (thin_tick_labels).
    step = max(1, -(-len(gib) // 9))
    ax.xaxis.set_major_locator(FixedLocator(gib[::step]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_size(int(round(v * GiB)))))
    ax.set_xlabel("guest memory")


def _log_y(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _text(value: object) -> str:
    """A name from the user's files (a profile, a policy) as matplotlib text: a ``$`` is a dollar,
    never the start of mathtext (a file called ``p$^_$.toml`` must not be parsed as maths)."""
    return str(value).replace("$", r"\$")


def _curves(ax: Any, data: dict[Hashable, list[tuple[float, float, float, float, int]]],
            style: Callable[[Any], dict[str, Any]], label: Callable[[Any], str]) -> None:
    for k in sorted(data, key=str):
        pts = data[k]
        xs, med, lo, hi = ([p[i] for p in pts] for i in range(4))
        st = style(k)
        ax.plot(xs, med, label=_text(label(k)), lw=1.8, ms=4, **st)
        if any(a != b for a, b in zip(lo, hi, strict=True)):
            ax.fill_between(xs, lo, hi, color=st["color"], alpha=0.12, lw=0)


def _ok(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r["ok"]]


def _n_range(data: dict[Hashable, list[tuple[float, float, float, float, int]]]) -> str:
    ns = [p[4] for pts in data.values() for p in pts]
    lo, hi = min(ns), max(ns)
    return f"{lo} run{'s' if lo > 1 else ''}" if lo == hi else f"{lo}-{hi} runs"


def _per_profile_and_policy_against_memory(
    rows: list[Row], value: Callable[[Row], float], height: float, ylabel: str, title: str,
    extra: Callable[[Any, list[Row]], None] | None = None,
) -> tuple[Any, dict[Hashable, Any]] | None:
    """A log-log figure of ``value`` against memory, one curve per profile (colour) and policy
    (line style), or ``None`` when the runs have fewer than two memory sizes; ``extra`` draws
    anything more on the axes before the legend."""
    ok = _ok(rows)
    if len({memory_of(r) for r in ok}) < 2:
        return None
    plt = _plt()
    colors = _colors(profile_of(r) for r in ok)
    policies = sorted({policy_of(r) for r in ok})
    data = series(ok, lambda r: (profile_of(r), policy_of(r)), gib_of, value)
    fig, ax = plt.subplots(figsize=(8, height))

    def style(k: Any) -> dict[str, Any]:
        ls, marker = _style(k[1], policies)
        return {"color": colors[k[0]], "linestyle": ls, "marker": marker}

    _curves(ax, data, style, lambda k: f"{k[0]}, {k[1]}")
    if extra is not None:
        extra(ax, ok)
    _memory_axis(ax, (memory_of(r) for r in ok))
    _log_y(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    thin_tick_labels(ax, "x")
    return fig, data


_FEWER_THAN_TWO_SIZES = "Not drawn: the successful runs have fewer than two memory sizes."


def staged(rows: Iterable[Row]) -> bool:
    """Whether runs had stages after the shell: their figures are of when they were ready."""
    return any(r.get("stages") for r in rows)


def ready_of(r: Row) -> float:
    """When a run was ready: the end of its last stage, else its boot."""
    return float(r.get("ready_s") or r["boot_s"])


def boot_vs_memory(rows: list[Row]) -> Drawn:
    """Boot time (ready time, when runs had stages) against memory, one curve per profile and
    policy, log-log."""
    ready = staged(rows)
    drawn = _per_profile_and_policy_against_memory(
        rows, ready_of, 4.8, "ready (s, simulated)" if ready else "boot time to shell (s, simulated)",
        ("Ready time" if ready else "Boot time") + " against guest memory, per profile and policy")
    if drawn is None:
        return Drawn(None, _FEWER_THAN_TWO_SIZES)
    fig, data = drawn
    return Drawn(fig, f"Line: median over the other dimensions ({_n_range(data)} per point); "
                      "band: fastest to slowest of them. Log-log.")


def _pick_memories(values: Iterable[int]) -> list[int]:
    """Smallest, middle and largest memory size: enough to show how scaling changes with size."""
    v = sorted(set(values))
    return sorted({v[0], v[len(v) // 2], v[-1]})


def vcpu_scaling(rows: list[Row]) -> Drawn:
    """Boot time against vCPUs, a panel per profile, curves per policy at three memory sizes."""
    ok = _ok(rows)
    if len({vcpus_of(r) for r in ok}) < 2:
        return Drawn(None, "Not drawn: the successful runs have fewer than two vCPU counts.")
    plt = _plt()
    profiles = sorted({profile_of(r) for r in ok})
    policies = sorted({policy_of(r) for r in ok})
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.6 * len(profiles) + 1, 4.4), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    ns = []
    for ax, prof in zip(axes[0], profiles, strict=True):
        mine = [r for r in ok if profile_of(r) == prof]
        mems = _pick_memories(memory_of(r) for r in mine)
        shade = {m: cmap(0.15 + 0.7 * i / max(1, len(mems) - 1)) for i, m in enumerate(mems)}
        picked = [r for r in mine if memory_of(r) in shade]
        data = series(picked, lambda r: (policy_of(r), memory_of(r)), vcpus_of, lambda r: r["boot_s"])
        ns.append(_n_range(data))

        def style(k: Any, shade: dict[int, Any] = shade) -> dict[str, Any]:
            ls, marker = _style(k[0], policies)
            return {"color": shade[k[1]], "linestyle": ls, "marker": marker}

        _curves(ax, data, style, lambda k: f"{k[0]}, {format_size(k[1])}")
        ax.set_xscale("log", base=2)
        vs = sorted({vcpus_of(r) for r in picked})
        ax.set_xticks(vs, [_text(v) for v in vs])
        ax.minorticks_off()
        _log_y(ax)
        ax.set_xlabel("vCPUs")
        ax.set_title(_text(f"profile {prof}"), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, framealpha=0.85)
    axes[0][0].set_ylabel("boot time to shell (s, simulated)")
    fig.suptitle("vCPU scaling: boot time against vCPUs (smallest, middle and largest memory)", fontsize=11)
    fig.tight_layout()
    return Drawn(fig, f"Median over the other dimensions ({', '.join(ns)} per point, by profile); "
                      "band: fastest to slowest.")


def _pair_id(r: Row) -> str:
    """A run's identity without its policy: the lazy and eager boots of one configuration."""
    point = {k: v for k, v in r["point"].items() if k != "policy"}
    return json.dumps([point, r["profile"]["sha256"]], sort_keys=True)


def speedups(rows: Iterable[Row]) -> list[tuple[Row, float]]:
    """Each configuration booted both lazy and eager (both successful): its lazy row and eager/lazy."""
    lazy: dict[str, Row] = {}
    eager: dict[str, Row] = {}
    for r in _ok(rows):
        {"lazy": lazy, "eager": eager}.get(policy_of(r), {})[_pair_id(r)] = r
    return [(lazy[k], eager[k]["boot_s"] / lazy[k]["boot_s"]) for k in sorted(lazy.keys() & eager.keys())]


def speedup_vs_memory(rows: list[Row]) -> Drawn:
    """Speed-up of lazy over eager (eager boot / lazy boot) against memory, per profile."""
    pairs = speedups(rows)
    if not pairs:
        return Drawn(None, "Not drawn: no configuration was booted both lazy and eager successfully.")
    if len({memory_of(r) for r, _ in pairs}) < 2:
        return Drawn(None, "Not drawn: the lazy/eager pairs have fewer than two memory sizes.")
    plt = _plt()
    colors = _colors(profile_of(r) for r, _ in pairs)
    speed = {id(r): s for r, s in pairs}
    data = series([r for r, _ in pairs], profile_of, gib_of, lambda r: speed[id(r)])
    fig, ax = plt.subplots(figsize=(8, 4.6))
    _curves(ax, data, lambda k: {"color": colors[str(k)], "marker": "o"}, lambda k: f"profile {k}")
    ax.axhline(1.0, color="#777777", lw=1, ls=":")
    ax.annotate("no gain", (0.01, 1.0), xycoords=("axes fraction", "data"), textcoords="offset points",
                xytext=(2, 3), fontsize=8, color="#555555")
    _memory_axis(ax, (memory_of(r) for r, _ in pairs))
    _log_y(ax)
    ax.set_ylabel("speed-up of lazy (eager boot / lazy boot)")
    ax.set_title("Speed-up of lazy over eager acceptance")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    thin_tick_labels(ax, "x")
    return Drawn(fig, f"{len(pairs)} configurations booted both ways. Line: median over the other dimensions "
                      f"({_n_range(data)} per point); band: smallest to largest speed-up.")


def committed_vs_memory(rows: list[Row]) -> Drawn:
    """Host memory committed at the shell against guest memory, per profile and policy."""

    def all_of_memory(ax: Any, ok: list[Row]) -> None:
        mems = sorted({memory_of(r) / GiB for r in ok})
        ax.plot(mems, mems, color="#999999", lw=1, ls=":", label="all of guest memory")

    drawn = _per_profile_and_policy_against_memory(
        rows, lambda r: r["host_committed_bytes"] / GiB, 4.6, "host memory committed at the shell (GiB)",
        "Host memory committed by the time the guest reaches a shell", all_of_memory)
    if drawn is None:
        return Drawn(None, _FEWER_THAN_TWO_SIZES)
    fig, data = drawn
    return Drawn(fig, f"Median over the other dimensions ({_n_range(data)} per point); band: least to most.")


def with_workload(rows: Iterable[Row]) -> list[Row]:
    """Successful runs that carry a workload's figures (``workload: {name, stalls_s, slowdown}``)."""
    return [r for r in _ok(rows) if isinstance(r.get("workload"), dict)]


def stall_distribution(rows: list[Row]) -> Drawn:
    """Stalls a workload saw (time blocked on acceptance), one box per profile, policy and workload."""
    runs = [r for r in with_workload(rows) if r["workload"].get("stalls_s")]
    if not runs:
        return Drawn(None, "Not drawn: no run had a workload with stalls.")
    plt = _plt()
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in runs:
        groups[(profile_of(r), policy_of(r), str(r["workload"].get("name", "workload")))] += r["workload"]["stalls_s"]
    keys = sorted(groups)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) + 2), 4.6))
    ax.boxplot([groups[k] for k in keys], whis=(1, 99), showfliers=False)
    ax.set_xticks(range(1, len(keys) + 1), [_text(f"{p}\n{pol}\n{w}") for p, pol, w in keys], fontsize=8)
    # Log only when the stalls span a decade: equal stalls must look equal, not as a millionth of one.
    time_axis(ax, [s for k in keys for s in groups[k]], "y")
    ax.set_ylabel("stall")
    ax.set_title("Workload stalls on memory acceptance")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return Drawn(fig, "Box: quartiles and median of every stall of the runs in the group; whiskers: 1st to 99th "
                      "percentile.")


def slowdown_vs_memory(rows: list[Row]) -> Drawn:
    """A workload's slowdown (time with acceptance / time without) against memory."""
    runs = [r for r in with_workload(rows) if isinstance(r["workload"].get("slowdown"), int | float)]
    if len({memory_of(r) for r in runs}) < 2:
        return Drawn(None, "Not drawn: fewer than two memory sizes ran a workload with a slowdown.")
    plt = _plt()
    colors = _colors(profile_of(r) for r in runs)
    policies = sorted({policy_of(r) for r in runs})
    data = series(runs, lambda r: (profile_of(r), policy_of(r)), gib_of, lambda r: r["workload"]["slowdown"])
    fig, ax = plt.subplots(figsize=(8, 4.6))

    def style(k: Any) -> dict[str, Any]:
        ls, marker = _style(k[1], policies)
        return {"color": colors[k[0]], "linestyle": ls, "marker": marker}

    _curves(ax, data, style, lambda k: f"{k[0]}, {k[1]}")
    ax.axhline(1.0, color="#777777", lw=1, ls=":")
    _memory_axis(ax, (memory_of(r) for r in runs))
    ax.set_ylabel("workload slowdown (x)")
    ax.set_title("Workload slowdown against guest memory")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    thin_tick_labels(ax, "x")
    return Drawn(fig, f"Median over the other dimensions ({_n_range(data)} per point); band: least to most.")


#: Dimensions with figures of their own (against memory, against vCPUs) or of workload runs.
_OWN_FIGURES = ("memory", "vcpus", "workload")
#: At most this many memory sizes get a column each in :func:`by_dimension`; of more, three do.
MAX_MEMORY_COLUMNS = 4


def varied_dimensions(rows: Iterable[Row], grid_dimensions: Iterable[str] = ()) -> list[str]:
    """The dimensions the runs vary, in the grid's order (``grid_dimensions``, from its sweep
    lines) and then by name, each with at least two values among the runs."""
    values: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for k, v in (r.get("point") or {}).items():
            values[k].add(json.dumps(v, sort_keys=True))
    order = [*dict.fromkeys([*grid_dimensions, *sorted(values)])]
    return [d for d in order if len(values.get(d, ())) >= 2]


def _point_value(r: Row, dim: str) -> str:
    v = (r.get("point") or {}).get(dim)
    if dim in ("memory", "shell_footprint") and isinstance(v, int):
        return format_size(v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def by_dimension(rows: list[Row], dims: list[str], values_in_order: dict[str, list[str]] | None = None) -> Drawn:
    """Boot time against each of ``dims`` (categorical: kernel, firmware accept, host mapping,
    policy, profile ...), one panel per dimension and memory size (up to
    :data:`MAX_MEMORY_COLUMNS` sizes, else the smallest, middle and largest); a series per
    policy (and profile, when there are several), one colour each in every panel; its dot the
    median over the runs that differ in other dimensions, its bar the least to the most."""
    ok = _ok(rows)
    dims = [d for d in dims if d not in _OWN_FIGURES]
    if not dims or not ok:
        return Drawn(None, "Not drawn: the runs vary no dimension besides memory, vCPUs and workloads.")
    plt = _plt()
    mems = sorted({memory_of(r) for r in ok})
    # A column per memory size, or the smallest, middle and largest of many: boot times of 1 GiB
    # and 256 GiB guests pooled into one median would say little.
    columns = mems if len(mems) <= MAX_MEMORY_COLUMNS else _pick_memories(mems)
    fig, axes = plt.subplots(len(dims), len(columns), figsize=(8.6, 2.5 * len(dims) + 0.9), squeeze=False)
    profiles = sorted({profile_of(r) for r in ok})

    def series_key(r: Row, dim: str) -> str:
        # The same key in every panel (on the policy panel too): one colour means one thing.
        return f"{profile_of(r)}, {policy_of(r)}" if len(profiles) > 1 else policy_of(r)

    # One colour per series across the whole figure, one legend for it.
    every_key = sorted({series_key(r, d) for r in ok for d in dims})
    colour = {k: plt.get_cmap("tab10")(n % 10) for n, k in enumerate(every_key)}
    ns: list[int] = []
    handles: dict[str, Any] = {}
    for i, dim in enumerate(dims):
        order = (values_in_order or {}).get(dim) or sorted({_point_value(r, dim) for r in rows}, key=_natural)
        keys = sorted({series_key(r, dim) for r in ok})
        width = 0.7 / max(1, len(keys))
        for j, mem in enumerate(columns):
            ax = axes[i][j]
            mine = [r for r in ok if memory_of(r) == mem]
            for n, key in enumerate(keys):
                xs, med, lo, hi = [], [], [], []
                for x, value in enumerate(order):
                    ys = [ready_of(r) for r in mine if series_key(r, dim) == key and _point_value(r, dim) == value]
                    if ys:
                        ns.append(len(ys))
                        xs.append(x - 0.35 + width * (n + 0.5))
                        med.append(statistics.median(ys))
                        lo.append(min(ys))
                        hi.append(max(ys))
                if xs:
                    ax.vlines(xs, lo, hi, color=colour[key], lw=1.2, alpha=0.6)
                    handles[key] = ax.plot(xs, med, "o", color=colour[key], ms=5, label=_text(key))[0]
            ax.set_xticks(range(len(order)), [_text(o) for o in order], fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
            ax.set_xlim(-0.6, len(order) - 0.4)
            ax.autoscale(axis="y")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.05)
            ax.grid(True, axis="y", alpha=0.3)
            ax.set_xlabel(dim.replace("_", " "), fontsize=9)
            if j == 0:
                ax.set_ylabel("ready (s)" if staged(ok) else "boot to shell (s)", fontsize=9)
            if i == 0:
                ax.set_title(f"memory {format_size(mem)}", fontsize=10)
    fig.legend(handles=[handles[k] for k in every_key if k in handles], fontsize=8, frameon=False,
               loc="upper center", ncol=min(4, len(handles)), bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    # Categories are all worth reading: stand crowded labels upright before dropping any (a
    # slanted label's box still spans its neighbour's, an upright one's is a line high).
    fig.canvas.draw()
    crowded = [ax for row in axes for ax in row if overlapping(label_extents(ax, "x"))]
    for ax in crowded:
        ax.tick_params(axis="x", labelrotation=90)
    if crowded:
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    for row in axes:
        for ax in row:
            thin_tick_labels(ax, "x")
    lo_n, hi_n = min(ns), max(ns)
    runs = f"{lo_n} run{'s' if lo_n > 1 else ''}" if lo_n == hi_n else f"{lo_n}-{hi_n} runs"
    shown = "" if len(columns) == len(mems) else f" Columns: {len(columns)} of the {len(mems)} memory sizes."
    what = "ready" if staged(ok) else "boot"
    return Drawn(fig, f"Dot: median {what} time over the runs that differ only in the dimensions the panel does not "
                      f"show ({runs} per dot); bar: fastest to slowest of them. Failed runs are left out (see "
                      f"Failures): a value with no dot had no run reach a shell.{shown}")


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key reading digit runs as numbers: kernel 6.5 < 6.11 < mainline."""
    import re

    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t)
