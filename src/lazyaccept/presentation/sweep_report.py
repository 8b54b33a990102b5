"""The sweep report: one self-contained HTML page from results files.

Sections: key figures; boot time against memory; vCPU scaling; speed-up of lazy over eager;
workload stalls and slowdowns (when runs had workloads); host memory committed; failures;
every run in a sortable table; the configuration space; the profiles with their sources.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..base.errors import ConfigError
from ..base.units import format_size
from ..sim.fleet.dimensions import Dimension
from ..sim.fleet.results import Results
from . import sweep_figures as sf
from .html import Cell, Page, facts, figure, figures, note, table
from .profile_html import profile_sections
from .svg import figure_svg

#: Configuration keys every run has, shown in the run table and the configuration space.
_CONFIG_COLUMNS = (
    ("platform", "platform"), ("vcpus", "vCPUs"), ("policy", "policy"), ("kernel", "kernel"),
    ("firmware_accept", "firmware accepts"), ("host_mapping", "host mapping"),
)
#: Point dimensions shown in their own columns when a grid sets them.
_EXTRA_DIMENSIONS = (Dimension.SHELL_FOOTPRINT, Dimension.OS_OPT_IN, Dimension.FIRMWARE, Dimension.STAGE,
                     Dimension.HOST_FEATURE)


def _size_cell(n: int | None) -> Cell:
    return Cell("-", "") if n is None else Cell(format_size(n), n)


def _seconds(x: float | None) -> Cell:
    return Cell("-", "") if x is None else Cell(f"{x:.3f}", round(x, 6))


def _seconds_ranged(x: float | None, rng: list[float] | None) -> Cell:
    """Seconds with their one-sigma range from the profile's fitted uncertainties, sorted by the value."""
    if x is None or not rng:
        return _seconds(x)
    return Cell(f"{x:.3f} ({rng[0]:.3f}-{rng[1]:.3f})", round(x, 6))


def _draw(drawn: sf.Drawn, ident: str, label: str) -> str:
    if drawn.fig is None:
        return note(drawn.caption)
    return figure(figure_svg(drawn.fig, ident, label), drawn.caption)


def _value_text(dim: str, v: Any) -> str:
    if dim in (Dimension.MEMORY, Dimension.SHELL_FOOTPRINT) and isinstance(v, int):
        return format_size(v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def run_table(runs: Sequence[dict[str, Any]]) -> str:
    """Every run, one row each, sortable by any column."""
    extras = [d for d in _EXTRA_DIMENSIONS if any(d.value in r["point"] for r in runs)]
    # Runs with stages after the shell are ranked by when they are ready, not by the boot alone.
    staged = any(r.get("stages") for r in runs)
    headers = ["profile", "memory", *(label for _, label in _CONFIG_COLUMNS), *(d.value for d in extras),
               "boot (s, one-sigma range)", *(["ready (s, one-sigma range)"] if staged else []), "accepting (s)",
               "accepted", "host committed", "unaccepted at shell", "result"]
    first = 2 + len(_CONFIG_COLUMNS) + len(extras)
    numeric = [1, 3, *range(first, first + 5 + staged)]
    rows = []
    for r in runs:
        c = r["config"]
        result = Cell("ok") if r["ok"] else Cell(f"{r['failure_kind']}: {r['failure']}", fail=True)
        rows.append([
            r["profile"]["ref"],
            _size_cell(c["memory_bytes"]),
            *(sf.policy_of(r) if key == "policy" else str(c[key]) for key, _ in _CONFIG_COLUMNS),
            *(_value_text(d, r["point"].get(d.value, "")) for d in extras),
            _seconds_ranged(r["boot_s"], r.get("boot_s_range")),
            *([_seconds_ranged(r.get("ready_s", r["boot_s"]), r.get("ready_s_range", r.get("boot_s_range")))]
              if staged else []),
            _seconds(r["accept_wall_s"]),
            _size_cell(r["accepted_bytes"]),
            _size_cell(r["host_committed_bytes"]),
            _size_cell(r["unaccepted_after_boot_bytes"]),
            result,
        ])
    return table(headers, rows, ident="runs", numeric=numeric, sortable=True, scroll=True)


def _config_space(grid: dict[str, Any] | None, runs: Sequence[dict[str, Any]]) -> str:
    grids = {} if grid is None else {"grid": grid}  # one grid, its values merged over resumed sweeps
    parts = []
    seen_dims: dict[str, set[Any]] = defaultdict(set)
    for r in runs:
        for k, v in r["point"].items():
            seen_dims[k].add(v)
    rows = []
    for grid in grids.values():
        for dim, values in grid["dimensions"].items():
            rows.append([dim, f"grid ({len(values)})", ", ".join(_value_text(dim, v) for v in values)])
        for dim, value in grid["fixed"].items():
            rows.append([dim, "fixed", _value_text(dim, value)])
    if not grids:  # results without their sweep lines: say what the runs hold
        for dim, values in seen_dims.items():
            rows.append([dim, f"runs ({len(values)})", ", ".join(_value_text(dim, v) for v in sorted(values, key=str))])
    named = {row[0] for row in rows}
    for key, _ in _CONFIG_COLUMNS:
        if key not in named:
            by_profile: dict[str, set[str]] = defaultdict(set)
            for r in runs:
                by_profile[r["profile"]["ref"]].add(str(r["config"][key]))
            text = "; ".join(f"{p}: {', '.join(sorted(v))}" for p, v in sorted(by_profile.items()))
            rows.append([key, "profile default" if key != "platform" else "from the profile", text])
    parts.append(table(["dimension", "set by", "values"], rows, ident="space"))
    for grid in grids.values():
        for i, ex in enumerate(grid["exclude"], 1):
            what = "; ".join(f"{d} in {', '.join(_value_text(d, v) for v in vs)}" for d, vs in ex.items())
            parts.append(note(f"Exclusion {i} of {grid['path']}: runs with {what} are left out."))
    return "".join(parts)


def _failures(runs: Sequence[dict[str, Any]]) -> str:
    failed = [r for r in runs if not r["ok"]]
    if not failed:
        return note("Every run reached a shell.")
    reasons = Counter((r["failure_kind"], r["failure"]) for r in failed)
    rows = []
    for (kind, text), n in reasons.most_common():
        example = next(r for r in failed if (r["failure_kind"], r["failure"]) == (kind, text))
        c = example["config"]
        rows.append([Cell(str(n)), kind, Cell(text, fail=True),
                     f"{example['profile']['ref']}, {format_size(c['memory_bytes'])}, kernel {c['kernel']}, "
                     f"firmware {c['firmware_accept']}, {sf.policy_of(example)}"])
    return (note(f"{len(failed)} of {len(runs)} runs did not reach a shell: the model's verdict for those "
                 "configurations (the reason is the one the model raised).")
            + table(["runs", "kind", "reason", "for example"], rows, ident="failures", numeric=[0]))


def _grid_identity(grid: dict[str, Any]) -> str:
    """What makes two sweep lines one grid: the dimensions it varies and its fixed values (not
    the values of each dimension: a grid grown by a value and resumed is still the same grid;
    not its name or the path it was read from)."""
    return json.dumps([sorted(grid.get("dimensions") or {}), grid.get("fixed") or {}], sort_keys=True)


def one_grid(results: Results, sources: Sequence[str]) -> dict[str, Any] | None:
    """The one grid the results come from, its dimensions' values merged over its sweep lines
    (None when they carry no sweep line); ConfigError when they come from different grids:
    medians and curves over two grids' runs mix configurations neither grid asked for."""
    grids: dict[str, list[dict[str, Any]]] = {}
    for s in results.sweeps:
        grids.setdefault(_grid_identity(s["grid"]), []).append(s["grid"])
    if len(grids) > 1:
        names = "; ".join(f"{g[0].get('path') or '?'} ({g[0].get('name') or 'unnamed'})" for g in grids.values())
        raise ConfigError(f"{', '.join(sources)}: results of {len(grids)} different grids ({names}); "
                          "report each grid on its own page")
    if not grids:
        return None
    lines = next(iter(grids.values()))
    merged: dict[str, list[Any]] = {}
    for g in lines:
        for dim, values in (g.get("dimensions") or {}).items():
            merged.setdefault(dim, [])
            merged[dim] += [v for v in values if v not in merged[dim]]
    return lines[-1] | {"dimensions": merged}


def _dimension_order(grid: dict[str, Any] | None) -> tuple[list[str], dict[str, list[str]]]:
    """The grid's dimensions in its own order, and each one's values as the report writes them."""
    if grid is None:
        return [], {}
    dims = grid.get("dimensions") or {}
    return list(dims), {d: [_value_text(d, v) for v in vs] for d, vs in dims.items()}


def sweep_report(results: Results, sources: Sequence[str]) -> str:
    """The report's HTML for ``results`` read from the files ``sources`` (one grid's)."""
    grid = one_grid(results, sources)
    runs = sorted(results.runs.values(), key=lambda r: (r["profile"]["ref"], r["config"]["memory_bytes"],
                                                          r["config"]["vcpus"], sf.policy_of(r), r["key"]))
    ok = [r for r in runs if r["ok"]]
    names = [s["grid"]["name"] for s in results.sweeps if s["grid"].get("name")]
    title = f"lazyaccept sweep: {names[0]}" if names else "lazyaccept sweep"
    made_by = sorted({s["lazyaccept"] for s in results.sweeps})
    page = Page(title, [
        f"{len(runs)} runs from {', '.join(sources)}; report made "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by lazyaccept {__version__}.",
        "Every time is simulated by lazyaccept's calibrated model, not measured.",
    ])
    pairs = sf.speedups(runs)
    key = [
        ("runs", f"{len(runs)} ({len(ok)} reached a shell, {len(runs) - len(ok)} failed)"),
        ("profiles", ", ".join(sorted({r['profile']['ref'] for r in runs}))),
        ("memory", ", ".join(format_size(m) for m in sorted({r['config']['memory_bytes'] for r in runs}))),
        ("vCPUs", ", ".join(str(v) for v in sorted({r['config']['vcpus'] for r in runs}))),
        ("policies", ", ".join(sorted({sf.policy_of(r) for r in runs}))),
    ]
    if ok:
        fastest = min(ok, key=lambda r: r["boot_s"])
        slowest = max(ok, key=lambda r: r["boot_s"])
        key.append(("boot time", f"{fastest['boot_s']:.2f} s to {slowest['boot_s']:.2f} s"))
        if sf.staged(ok):
            readiest = min(ok, key=sf.ready_of)
            key.append(("ready", f"{sf.ready_of(readiest):.2f} s to {max(sf.ready_of(r) for r in ok):.2f} s"))
    if pairs:
        speeds = sorted(s for _, s in pairs)
        median = speeds[len(speeds) // 2]
        key.append(("lazy over eager", f"{speeds[0]:.2f}x to {speeds[-1]:.2f}x (median {median:.2f}x)"))
    key.append(("runs made by", ", ".join(f"lazyaccept {v}" for v in made_by) or "unknown (no sweep lines)"))
    page.section("summary", "Key figures", facts(key))
    grid_dims, grid_values = _dimension_order(grid)
    varied = sf.varied_dimensions(runs, grid_dims)
    # With stages after the shell, the runs are compared by when they were ready.
    what = "Ready time" if sf.staged(runs) else "Boot time"
    if any(d not in ("memory", "vcpus", "workload") for d in varied):
        page.section("dimensions", f"{what} by dimension",
                     _draw(sf.by_dimension(runs, varied, grid_values), "fig-dimensions",
                           f"{what} by each dimension of the grid"))
    page.section("boot-memory", f"{what} against memory",
                 _draw(sf.boot_vs_memory(runs), "fig-boot-memory", f"{what} against guest memory"))
    page.section("vcpus", "vCPU scaling", _draw(sf.vcpu_scaling(runs), "fig-vcpus", "Boot time against vCPUs"))
    page.section("speedup", "Speed-up of lazy over eager",
                 _draw(sf.speedup_vs_memory(runs), "fig-speedup", "Speed-up of lazy over eager"))
    if sf.with_workload(runs):
        page.section("workloads", "Workloads: stalls and slowdowns", figures([
            _draw(sf.stall_distribution(runs), "fig-stalls", "Workload stalls"),
            _draw(sf.slowdown_vs_memory(runs), "fig-slowdown", "Workload slowdown"),
        ]))
    else:
        page.section("workloads", "Workloads: stalls and slowdowns",
                     note("No run had a workload: these runs boot to a shell and stop, so there are no stalls "
                          "or slowdowns to show."))
    page.section("committed", "Host memory committed",
                 _draw(sf.committed_vs_memory(runs), "fig-committed", "Host memory committed"))
    page.section("failures", "Failures", _failures(runs))
    page.section("runs", "Every run",
                 note("Click a column header to sort (again to reverse). Sizes sort by bytes; failed runs have "
                      "no figures and sort last."), run_table(runs))
    page.section("space", "Configuration space", _config_space(grid, runs))
    page.section("profiles", "Profiles", profile_sections(list(results.profiles.values()), used={
        r["profile"]["sha256"] for r in runs}))
    page.section("about", "Version", facts([
        ("report made by", f"lazyaccept {__version__}"),
        ("runs made by", ", ".join(f"lazyaccept {v}" for v in made_by) or "unknown"),
        ("results files", ", ".join(sources)),
    ]))
    return page.render()
