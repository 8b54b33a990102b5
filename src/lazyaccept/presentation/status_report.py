"""``lazyaccept status``: a live guest's platform and unaccepted memory, as a table, one JSON
document, a CSV of samples and a plot of the drain."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..base.fileio import write_output
from ..base.units import GiB, KiB, MiB, format_size
from ..scenario.live import Drain, GuestStatus, Sample, rates
from .console import safe
from .figures import figure_bytes

CSV_HEADER = "t_s,unaccepted_kb,nr_unaccepted,unaccepted_bytes,agree,mem_free_kb,drain_bytes_per_s"


def verdict(status: GuestStatus) -> str:
    """One sentence: what this machine is."""
    if status.confidential:
        name = {"tdx": "an Intel TDX", "snp": "an AMD SEV-SNP"}[status.platform or ""]
        return f"This is {name} guest."
    kind = "a virtual machine (hypervisor flag), but" if status.hypervisor else "a machine that is"
    return (f"This is {kind} not a confidential guest: no tdx_guest or sev_snp flag in /proc/cpuinfo, no TDX or "
            "SEV-SNP guest device, no such kernel log line. Nothing to accept.")


def status_document(status: GuestStatus, samples: list[Sample], drain: Drain | None) -> dict[str, Any]:
    last = samples[-1] if samples else None
    return {
        "confidential": status.confidential,
        "platform": status.platform,
        "verdict": verdict(status),
        "evidence": [e.as_dict() for e in status.evidence],
        "kernel": status.kernel,
        "accept_memory": {"cmdline": status.accept_memory, "effective": status.policy if status.confidential else None},
        "kernel_log": status.log_source,
        "unaccepted_at_boot_bytes": status.unaccepted_at_boot,
        "unaccepted": None if last is None else last.as_dict(),
        "samples": [s.as_dict() | {"drain_bytes_per_s": r} for s, r in zip(samples, rates(samples), strict=True)],
        "drain": None if drain is None else drain.as_dict(),
        "notes": status.notes,
    }


def samples_csv(samples: list[Sample]) -> str:
    """One line per sample: time, meminfo kB, vmstat pages, bytes, whether they agree, MemFree, rate."""
    lines = [CSV_HEADER]
    for s, r in zip(samples, rates(samples), strict=True):
        cells = [f"{s.t:.6f}", s.unaccepted_kb, s.nr_unaccepted, s.unaccepted_bytes,
                 "" if s.agree is None else str(s.agree).lower(), s.mem_free_kb, "" if r is None else f"{r:.1f}"]
        lines.append(",".join("" if c is None else str(c) for c in cells))
    return "\n".join(lines) + "\n"


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value:,} kB ({format_size(value * KiB)})"


def _rate(r: float | None) -> str:
    return "-" if r is None else f"{format_size(int(abs(r)))}/s" + (" (growing)" if r < 0 else "")


def print_status(console: Console, status: GuestStatus, samples: list[Sample], drain: Drain | None) -> None:
    console.print(f"[bold]{safe(verdict(status))}[/bold]")
    t = Table(show_header=False, title=f"Guest status ({safe(status.root)})", title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    for e in status.evidence:
        t.add_row("evidence", safe(f"{e.source}: {e.says}"))
    t.add_row("kernel", safe(status.kernel or "-"))
    if status.confidential:
        given = f"accept_memory={status.accept_memory}" if status.accept_memory else "no accept_memory="
        t.add_row("acceptance", safe(f"{status.policy} ({given} on /proc/cmdline)"))
    t.add_row("kernel log", safe(status.log_source or "not readable"))
    if status.unaccepted_at_boot is not None:
        t.add_row("unaccepted at boot", f"{format_size(status.unaccepted_at_boot)} (EFI memory map, efi=debug)")
    last = samples[-1] if samples else None
    if last is not None:
        t.add_row("Unaccepted (meminfo)", _kb(last.unaccepted_kb) if last.unaccepted_kb is not None
                  else "no Unaccepted: field (a kernel built without CONFIG_UNACCEPTED_MEMORY)")
        t.add_row("nr_unaccepted (vmstat)", "-" if last.nr_unaccepted is None
                  else f"{last.nr_unaccepted:,} pages = {_kb(last.nr_unaccepted * 4)}")
        if last.agree is not None:
            t.add_row("agree to the page", "yes" if last.agree else
                      f"[red]NO[/red]: {last.unaccepted_kb} kB vs {last.nr_unaccepted} pages x 4 kB")
        if last.unaccepted_bytes is not None and last.mem_total_kb:
            t.add_row("of MemTotal", f"{last.unaccepted_bytes / (last.mem_total_kb * KiB):.1%} of "
                                     f"{format_size(last.mem_total_kb * KiB)}")
    console.print(t)
    if len(samples) > 1:
        s = Table(title="Samples", title_justify="left")
        for col in ("t s", "Unaccepted", "nr_unaccepted", "agree", "drain rate"):
            s.add_column(col, justify="right")
        rows = list(zip(samples, rates(samples), strict=True))
        shown = rows if len(rows) <= 20 else rows[:10] + rows[-10:]
        for i, (x, r) in enumerate(shown):
            if len(rows) > 20 and i == 10:
                s.add_row("...", "", "", "", "")
            s.add_row(f"{x.t:.2f}", _kb(x.unaccepted_kb), "-" if x.nr_unaccepted is None else f"{x.nr_unaccepted:,}",
                      "-" if x.agree is None else ("yes" if x.agree else "NO"), _rate(r))
        console.print(s)
    if drain is not None:
        eta = "-" if drain.eta_s is None else f"{drain.eta_s:.1f} s"
        console.print(f"Drained {format_size(max(0, drain.drained_bytes))} in {drain.elapsed_s:.2f} s: "
                      f"{_rate(drain.rate_bytes_per_s)} on average, {_rate(drain.last_rate_bytes_per_s)} lately; "
                      f"{format_size(drain.remaining_bytes)} left (at the average rate: {eta})")
    for note in status.notes:
        console.print(f"[dim]note: {safe(note)}[/dim]")


def drain_unit(samples: list[Sample]) -> tuple[int, str]:
    """One binary unit for both panels (``GiB`` and ``GiB/s``, as the table writes them): GiB once
    anything plotted reaches 1 GiB, else MiB."""
    values = [abs(x) for x in (*(s.unaccepted_bytes for s in samples), *rates(samples)) if x is not None]
    return (GiB, "GiB") if max(values, default=0) >= GiB else (MiB, "MiB")


def _from_zero(ax: Any, values: list[float]) -> None:
    """A y axis from zero (or from the lowest value when it is negative) to a little over the
    highest: a wobble of a percent stays a wobble, never a cliff."""
    lo, hi = min([0.0, *values]), max([0.0, *values])
    pad = 0.08 * (hi - lo) or 1.0
    ax.set_ylim(lo - (pad if lo < 0 else 0), hi + pad)


def figure_drain(samples: list[Sample], title: str) -> Any:
    """Unaccepted memory over the samples' time, and the drain rate of each interval, in one unit;
    the axes say what each line is (no legend to cover a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    unit, name = drain_unit(samples)
    t = [s.t for s in samples]
    un = [None if s.unaccepted_bytes is None else s.unaccepted_bytes / unit for s in samples]
    ax1.plot(t, un, "o-", color="#d62728", markersize=3, clip_on=False)  # the first dot sits on the axis
    ax1.set_ylabel(f"unaccepted ({name})\nvmstat nr_unaccepted")
    _from_zero(ax1, [u for u in un if u is not None])
    ax1.grid(alpha=0.3)
    ax1.set_title(title, fontsize=10)
    r = [None if x is None else x / unit for x in rates(samples)]
    ax2.step(t, r, where="pre", color="#1f77b4")
    ax2.set_ylabel(f"drain ({name}/s)\neach interval")
    _from_zero(ax2, [x for x in r if x is not None])
    if all(x is None for x in r):
        ax2.text(0.5, 0.5, "one sample: no drain rate (sample again with --watch SECONDS)", transform=ax2.transAxes,
                 ha="center", va="center", color="#555555")
    ax2.set_xlabel("seconds since the first sample")
    ax2.set_xlim(0, max(t[-1], 1.0) * 1.02)  # time starts at the first sample, never before it
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_drain(samples: list[Sample], path: str, title: str) -> None:
    """:func:`figure_drain` written to ``path``."""
    import matplotlib.pyplot as plt

    fig = figure_drain(samples, title)
    data = figure_bytes(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_output(path, data)
