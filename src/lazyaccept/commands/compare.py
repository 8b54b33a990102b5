"""``lazyaccept compare``: eager vs lazy acceptance across memory sizes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..console import make_console
from ..errors import ConfigError
from ..fileio import atomic_write
from ..sim.costs import CostProfile, load_profile
from ..sim.scenario import VMConfig, run
from ..units import format_size, parse_size
from .boot import check_output_folder


@dataclass(frozen=True)
class CompareRow:
    memory_bytes: int
    eager_s: float
    lazy_s: float
    eager_accept_s: float
    lazy_accept_s: float
    eager_accept_wall_s: float
    lazy_accept_wall_s: float

    @property
    def speedup(self) -> float:
        return self.eager_s / self.lazy_s

    def as_dict(self) -> dict[str, object]:
        return {
            "memory_bytes": self.memory_bytes,
            "memory": format_size(self.memory_bytes),
            "eager_s": self.eager_s,
            "lazy_s": self.lazy_s,
            "speedup": self.speedup,
            "eager_accept_s": self.eager_accept_s,
            "lazy_accept_s": self.lazy_accept_s,
            "eager_accept_wall_s": self.eager_accept_wall_s,
            "lazy_accept_wall_s": self.lazy_accept_wall_s,
        }


def compare(
    sizes: list[int],
    profile: CostProfile,
    *,
    vcpus: int | None = None,
    host_mapping: str | None = None,
    kernel: str | None = None,
    firmware_accept: str | None = None,
    on_size_done: Callable[[int], None] | None = None,
) -> tuple[VMConfig, list[CompareRow]]:
    """Boot each size eager and lazy; returns the configuration used (defaults filled in).

    ``on_size_done`` is called with each size once both of its boots are simulated."""
    rows = []
    base = VMConfig(
        memory=sizes[0],
        platform=profile.platform,
        vcpus=vcpus,
        host_mapping=host_mapping,
        kernel=kernel,
        firmware_accept=firmware_accept,
    ).with_defaults(profile)
    for size in sizes:
        eager = run(replace(base, memory=size, policy="eager"), profile)
        lazy = run(replace(base, memory=size, policy="lazy"), profile)
        rows.append(
            CompareRow(
                size,
                eager.boot_s,
                lazy.boot_s,
                eager.accept_s,
                lazy.accept_s,
                eager.timeline.accept_wall_s,
                lazy.timeline.accept_wall_s,
            )
        )
        if on_size_done is not None:
            on_size_done(size)
    return base, rows


def _vcpus(n: int | None) -> str:
    return f"{n} vCPU" if n == 1 else f"{n} vCPUs"


def plot(path: str, config: VMConfig, rows: list[CompareRow], profile: CostProfile) -> None:
    """Boot time against memory size for both policies, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    gib = [r.memory_bytes / 2**30 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ax.plot(gib, [r.eager_s for r in rows], "o-", color="#c0392b", lw=2, label="eager (accept_memory=eager)")
    ax.plot(gib, [r.lazy_s for r in rows], "s-", color="#2471a3", lw=2, label="lazy (accept_memory=lazy)")
    wide = len(rows) > 1 and max(gib) / min(gib) >= 8
    if wide:
        ax.set_xscale("log", base=2)
        spread = max(r.eager_s for r in rows) / min(r.lazy_s for r in rows)
        if spread >= 30:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_size(int(round(x * 2**30)))))
    ax.set_xticks(gib)
    if len(rows) > 1:
        ax.tick_params(axis="x", labelrotation=30 if len(rows) > 6 else 0)
    for g, r in zip(gib, rows, strict=True):
        ax.annotate(
            f"{r.speedup:.1f}x",
            (g, r.eager_s),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=9,
            color="#555555",
        )
    ax.set_xlabel("guest memory")
    ax.set_ylabel("boot time to shell (s, simulated)")
    ax.set_title(
        f"{config.platform.upper()} boot time, eager vs lazy acceptance\n"
        f"{_vcpus(config.vcpus)}, host mapping {config.host_mapping}, kernel {config.kernel}, "
        f"firmware accepts {config.firmware_accept}, profile {profile.name}",
        fontsize=10,
    )
    ax.grid(True, which="major", alpha=0.35)
    ax.legend(loc="upper left", title="numbers: speed-up of lazy (eager / lazy)", title_fontsize=8)
    top = max(r.eager_s for r in rows)
    if ax.get_yscale() == "linear":
        ax.set_ylim(0, top * 1.15)  # headroom for the speed-up labels
    else:
        ax.set_ylim(min(r.lazy_s for r in rows) / 1.3, top * 1.6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


@click.command("compare")
@click.option("--platform", type=click.Choice(["tdx", "snp"]), default=None, help="TEE platform (default: tdx).")
@click.option("--memory", "memory", multiple=True, required=True, help="Guest memory size (repeatable), e.g. 4G.")
@click.option("--vcpus", type=int, default=None, help="vCPUs (default: the profile's).")
@click.option("--host-mapping", type=click.Choice(["4k", "2m"]), default=None, help="Host private mapping size.")
@click.option("--kernel", default=None, help="Kernel rules: 6.5, 6.6, 6.7, 6.11, 6.12, mainline.")
@click.option("--firmware-accept", default=None, help='What firmware accepts: "below-4g", "all" or a size.')
@click.option("--profile", "profile_name", default=None, metavar="tdx|snp|PATH", help="Cost profile.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", "plot_path", default=None, metavar="FILE.png", help="Plot boot time against memory.")
def compare_cmd(
    platform: str | None,
    memory: tuple[str, ...],
    vcpus: int | None,
    host_mapping: str | None,
    kernel: str | None,
    firmware_accept: str | None,
    profile_name: str | None,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Boot time with eager and with lazy acceptance, for each memory size."""
    sizes = sorted(dict.fromkeys(parse_size(m) for m in memory))
    profile = load_profile(profile_name or platform or "tdx")
    if platform is not None and profile.platform != platform:
        raise ConfigError(f"profile {profile.name!r} is for {profile.platform}, not {platform}")
    if vcpus is not None and vcpus < 1:
        raise ConfigError(f"--vcpus must be at least 1, not {vcpus}")
    if plot_path is not None and not plot_path.lower().endswith(".png"):
        raise ConfigError(f"--plot {plot_path}: the plot is written as PNG; name it FILE.png")
    check_output_folder(plot_path)
    # Progress goes to stderr, and only to a terminal: pipes and --json output stay clean.
    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal or len(sizes) < 3) as progress:
        task = progress.add_task("booting eager and lazy", total=len(sizes))
        config, rows = compare(
            sizes, profile, vcpus=vcpus, host_mapping=host_mapping, kernel=kernel, firmware_accept=firmware_accept,
            on_size_done=lambda _size: progress.advance(task),
        )
    if plot_path is not None:
        plot(plot_path, config, rows, profile)
    if as_json:
        doc = {
            "platform": config.platform,
            "profile": profile.name,
            "vcpus": config.vcpus,
            "host_mapping": config.host_mapping,
            "kernel": config.kernel,
            "firmware_accept": config.firmware_accept,
            "rows": [r.as_dict() for r in rows],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    table = Table(
        title=(
            f"{config.platform.upper()}: eager vs lazy acceptance ({_vcpus(config.vcpus)}, host mapping "
            f"{config.host_mapping}, kernel {config.kernel}, firmware accepts {config.firmware_accept}, "
            f"profile {profile.name})"
        ),
        title_justify="left",
    )
    for col in ("memory", "eager boot", "lazy boot", "speed-up", "eager accepting", "lazy accepting"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            format_size(r.memory_bytes),
            f"{r.eager_s:.2f} s",
            f"{r.lazy_s:.2f} s",
            f"{r.speedup:.2f}x",
            f"{r.eager_accept_wall_s:.2f} s",
            f"{r.lazy_accept_wall_s:.2f} s",
        )
    console = make_console()
    console.print(table)
    console.print(
        "accepting = time during which at least one vCPU was accepting memory (firmware + kernel, "
        "lock waits included)",
        style="dim",
    )
    if plot_path is not None:
        console.print(f"wrote {plot_path}")
