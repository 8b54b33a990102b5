"""One-page HTML reports of a single result: a boot (``boot --html``), a comparison
(``compare --html``) and a run (``run --html``).  Built from the same JSON documents ``--json``
prints, so a page and the JSON never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..base.units import format_size
from ..scenario.config import VMConfig
from ..scenario.like import Likeness
from ..sim.profile import CostProfile
from ..sim.profile_doc import profile_entry
from ..sim.run import BootResult
from ..sim.runtime import RunResult, run_document
from ..sim.sweep import CompareRow, FailedRow
from .boot_report import boot_summary
from .compare_report import compare_document
from .html import Cell, Page, facts, figure, note, table
from .like_report import like_html
from .plots import Comparisons, boot_figure, compare_figure
from .profile_html import profile_section
from .svg import figure_svg
from .time_axis import si_time

#: /proc/meminfo fields worth a line of their own on the page.
_MEMINFO = ("MemTotal", "MemFree", "MemAvailable", "Unaccepted")


def _value_words(key: str, v: Any) -> str:
    """A configuration value as a reader writes it: sizes as sizes, lists joined, never a repr."""
    if key.endswith("_bytes") and isinstance(v, int):
        return format_size(v)
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list | tuple):
        return ", ".join(_value_words("", x) for x in v) or "none"
    return str(v)


def _config_facts(config: dict[str, Any]) -> str:
    return facts([(k.removesuffix("_bytes"), _value_words(k, v)) for k, v in config.items() if v is not None])


def config_words(doc: dict[str, Any]) -> str:
    """One profile's resolved configuration of a comparison, in words."""
    patches = ", ".join(doc["patches"]) or "none"
    return (f"{doc['platform'].upper()}, {doc['vcpus']} vCPU{'s' if doc['vcpus'] != 1 else ''}, host maps private "
            f"memory at {doc['host_mapping']}, kernel {doc['kernel']} ({doc['kernel_rules']} rules), firmware accepts "
            f"{doc['firmware_accept']}, build options {_value_words('', doc['kconfig'])}, guest patches {patches}")


def boot_page(result: BootResult, profile: CostProfile, likeness: Likeness | None = None) -> str:
    """The page of one boot: key figures, the timeline, phases, acceptance, memory, configuration;
    with ``likeness`` (``boot --like``) also what came from the log and the milestones beside it."""
    doc = boot_summary(result, profile.name)
    cfg = doc["config"]
    title = (f"{cfg['platform'].upper()} guest, {format_size(cfg['memory_bytes'])}, {cfg['vcpus']} vCPU(s), "
             f"accept_memory={cfg['policy']}")
    page = Page(title, [f"kernel {cfg['kernel']} ({cfg['kernel_rules']} rules), host maps private memory at "
                        f"{cfg['host_mapping']}, firmware accepts {cfg['firmware_accept']}, profile {profile.name}",
                        "Every time is simulated by lazyaccept's calibrated model, not measured."])
    mi = doc["meminfo_kb"]
    page.section("summary", "Key figures", facts([
        ("boot to shell", f"{doc['boot_s']:.3f} s"),
        ("accepting", f"{doc['accept_wall_s']:.3f} s of wall time, {doc['accept_s']:.3f} vCPU-seconds"),
        *((f"accepted by {k}", format_size(v)) for k, v in doc["accepted_bytes"].items()),
        ("exits to the host", f"{doc['exits']:,}"),
        ("host memory committed", format_size(doc["host_committed_bytes"])),
        ("unaccepted at the shell", format_size(doc["unaccepted_after_boot_bytes"])),
        *((f"/proc/meminfo {k}", f"{mi[k]:,} kB") for k in _MEMINFO if k in mi),
    ]))
    page.section("timeline", "Timeline", figure(
        figure_svg(boot_figure(result), "fig-boot", "Boot timeline"),
        "Top: what each vCPU did when (acceptance hatched). Bottom: guest memory accepted and still unaccepted, "
        "and host memory committed, over simulated time."))
    page.section("phases", "Phases", table(
        ["phase", "actor", "start (s)", "end (s)", "duration (s)", "accepting (vCPU-s)"],
        [[p["name"], p["actor"], f"{p['start_s']:.3f}", f"{p['end_s']:.3f}", f"{p['end_s'] - p['start_s']:.3f}",
          f"{p['accept_s']:.3f}"] for p in doc["phases"]],
        ident="phases", numeric=[2, 3, 4, 5]))
    acc = doc["acceptance"]
    keys = list(next(iter(acc.values())).keys())
    page.section("acceptance", "Acceptance", table(
        ["by", *keys], [[group, *(Cell(f"{stats[k]:,}") for k in keys)] for group, stats in acc.items()],
        ident="acceptance", numeric=range(1, len(keys) + 1)))
    page.section("config", "Configuration", _config_facts(cfg))
    if likeness is not None:
        for anchor, title, html in like_html(likeness, result):
            page.section(anchor, title, html)
    page.section("profile", "Profile", profile_section(profile_entry(profile), 0))
    return page.render()


def compare_page(comparisons: Comparisons) -> str:
    """The page of a comparison: boot time against memory for both policies and every profile,
    and each profile's table."""
    docs = [compare_document(c, list(rows), p) for c, rows, p in comparisons]
    platforms = "/".join(dict.fromkeys(d["platform"].upper() for d in docs))
    # Every profile's configuration, in words (each resolves its own defaults: vCPUs, kernel ...).
    page = Page(f"{platforms}: eager vs lazy acceptance", [
        *(f"profile {d['profile']}: {config_words(d)}" for d in docs),
        "Every time is simulated by lazyaccept's calibrated model, not measured."])
    page.section("figure", "Boot time against memory", figure(
        figure_svg(compare_figure(comparisons), "fig-compare", "Boot time, eager vs lazy"),
        "Numbers: speed-up of lazy (eager boot / lazy boot)."))
    for k, (config, rows, profile) in enumerate(comparisons):
        _compare_rows(page, k, config, rows, profile)
    return page.render()


def _compare_rows(page: Page, k: int, config: VMConfig, rows: Sequence[CompareRow | FailedRow],
                  profile: CostProfile) -> None:
    doc = compare_document(config, list(rows), profile)
    page.section(f"rows-{k}", f"Profile {profile.name}: every size", note(config_words(doc)), table(
        ["memory", "eager boot (s)", "lazy boot (s)", "speed-up", "eager accepting (s)", "lazy accepting (s)"],
        [[Cell(format_size(r["memory_bytes"]), r["memory_bytes"]), f"{r['eager_s']:.3f}", f"{r['lazy_s']:.3f}",
          Cell(f"{r['speedup']:.2f}x", round(r["speedup"], 6)), f"{r['eager_accept_wall_s']:.3f}",
          f"{r['lazy_accept_wall_s']:.3f}"] if r["ok"] else
         [Cell(format_size(r["memory_bytes"]), r["memory_bytes"]), Cell(f"failed: {r['failure']}", fail=True),
          "", "", "", ""] for r in doc["rows"]],
        ident=f"rows-{k}", numeric=range(6), sortable=True),
        note("accepting = time during which at least one vCPU was accepting memory (lock waits included)."))
    page.section(f"profile-{k}", f"Profile {profile.name}", profile_section(profile_entry(profile), k))


def run_page(result: RunResult, profile: CostProfile) -> str:
    """The page of one run: boot and workloads, stalls, IRQs off, memory accepted over time."""
    from .plots import policies_figure

    doc = run_document(result, profile)
    cfg = doc["config"]
    title = (f"{cfg['platform'].upper()} guest, {format_size(cfg['memory_bytes'])}, {cfg['vcpus']} vCPU(s), "
             f"policy {cfg['policy']}")
    page = Page(title, [f"kernel {cfg['kernel']} ({cfg['kernel_rules']} rules), profile {profile.name}; "
                        f"workloads: {', '.join(cfg['workloads']) or 'none'}",
                        "Every time is simulated by lazyaccept's calibrated model, not measured."])
    st = doc["stalls"]

    def s(x: float | None) -> str:
        return "-" if x is None else si_time(x)  # 7.51 ms, not 0.0075 s

    page.section("summary", "Key figures", facts([
        ("boot to shell", f"{doc['boot_s']:.3f} s"),
        ("first-touch stalls", f"{st['count']:,}"),
        ("p50 / p99 / p99.9 / max stall", " / ".join(s(st[k]) for k in ("p50_s", "p99_s", "p999_s", "max_s"))),
        ("longest accept_memory() with IRQs off", s(doc["irqs_off_max_s"])),
        ("soft lockup", "yes" if doc["soft_lockup"] else "no"),
        ("fully accepted", s(doc["fully_accepted_s"]) if doc["fully_accepted_s"] is not None else "never"),
        ("host memory committed", format_size(doc["host_committed_bytes"])),
    ]))
    page.section("workloads", "Workloads", table(
        ["workload", "start (s)", "end (s)", "duration (s)", "baseline (s)", "slowdown"],
        [[w["name"], f"{w['start_s']:.3f}", f"{w['end_s']:.3f}", f"{w['duration_s']:.3f}",
          "-" if w["baseline_s"] is None else f"{w['baseline_s']:.3f}",
          "-" if w["slowdown"] is None else Cell(f"{w['slowdown']:.2f}x", round(w["slowdown"], 6))]
         for w in doc["workloads"]],
        ident="workloads", numeric=range(1, 6)),
        note("baseline: the same workloads on a guest booted with accept_memory=eager."))
    page.section("figure", "Stalls and memory accepted", figure(
        figure_svg(policies_figure([result]), "fig-run", "Stall CDF and memory accepted over time"),
        "Left: first-touch stalls (CDF; a log time axis only when they span a decade). Right: guest memory "
        "accepted over simulated time."))
    page.section("config", "Configuration", _config_facts({k: v for k, v in cfg.items() if not isinstance(v, list)}))
    page.section("profile", "Profile", profile_section(profile_entry(profile), 0))
    return page.render()
