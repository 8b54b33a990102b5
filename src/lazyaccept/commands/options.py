"""Command-line options shared by the commands that model a guest, and their translation into a
:class:`~lazyaccept.scenario.config.GuestRequest`: the edge where strings become values."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from ..base.choices import AcceptPolicy, FirmwareAccept, HostMapping, Tee, choice_values
from ..base.errors import ConfigError
from ..base.fileio import STDOUT, check_writable
from ..base.units import parse_size
from ..guest.footprint import IO_TLB_SIZE, BootFootprint
from ..scenario.config import GuestRequest
from ..scenario.like import FIELDS, Likeness, merge, read_like
from ..sim.deadlines import Deadline, Verdict, describe_miss, first_failing, parse_deadline, stage_names
from ..sim.orchestrators import Overhead, load_orchestrator, orchestrator_names
from ..sim.profile import CostProfile, load_profile


class FiniteFloat(click.FloatRange):
    """A float option within bounds; NaN and infinities are refused (click's range check compares,
    and every comparison with NaN is false, so NaN would pass any range)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def enum_choice(enum: type) -> click.Choice:
    """A click choice of an enum's values, any case."""
    return click.Choice(choice_values(enum), case_sensitive=False)


def large_guest_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--numa N`` and ``--swiotlb SIZE``: what changes for guests of hundreds of GiB to TiBs."""
    opts = [
        click.option("--numa", "numa_nodes", type=int, default=1, show_default=True, metavar="N",
                     help="NUMA nodes (QEMU -numa node): memory split evenly (8 MiB aligned, the last node the "
                          "rest), vCPUs in even blocks; one set of zones, deferred-init kthread and memmap per node."),
        click.option("--swiotlb", default=None, metavar="SIZE",
                     help="SWIOTLB bounce buffer, the kernel's swiotlb= (in 2 KiB slabs: SIZE / 2 KiB, aligned up to "
                          "128 slabs), e.g. for a GPU in confidential-computing mode (default: 6% of RAM, "
                          "64 MiB-1 GiB)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def guest_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options that describe a guest, shared by boot-like commands."""
    opts = [
        click.option("--platform", type=enum_choice(Tee), default=None,
                     help="TEE platform (default: the profile's, else tdx)."),
        click.option("--vcpus", type=int, default=None, metavar="N", help="vCPUs (default: the profile's)."),
        click.option("--max-vcpus", type=int, default=None, metavar="N",
                     help="Possible CPUs, QEMU's -smp maxcpus (default: --vcpus): what the kernel sizes "
                          "SWIOTLB areas and per-CPU areas by."),
        click.option("--host-mapping", type=enum_choice(HostMapping), default=None,
                     help="Page size the host maps private memory at (default: the profile's)."),
        click.option("--firmware-accept", default=None, metavar="below-4g|all|SIZE",
                     help="What firmware accepts before the OS (default: the profile's)."),
        click.option("--kernel", default=None, metavar="RELEASE",
                     help="Kernel release whose rules apply, e.g. 6.5, 6.8, 6.12, mainline (default: the profile's)."),
        click.option("--firmware", "firmware_path", default=None, metavar="PATH",
                     help="OVMF image: unless --firmware-accept is given, what it accepts on the platform (as "
                          "`inspect` says); on TDX also its TDVF sections (default: Debian's OVMF_CODE.fd)."),
        click.option("--profile", default=None, metavar="NAME|PATH",
                     help="Host cost profile (default: the platform's)."),
        click.option("--kconfig", "kconfig", multiple=True, metavar="NAME=VALUE",
                     help="Kernel build option (repeatable): DEFERRED_STRUCT_PAGE_INIT=y|n, HZ=100|250|300|1000, "
                          "NO_HZ_IDLE=y|n, TRANSPARENT_HUGEPAGE=always|madvise|never, AMD_MEM_ENCRYPT=y|n "
                          "(default: the profile's, else a distribution kernel's)."),
        click.option("--patch", "patches", multiple=True, metavar="NAME",
                     help="Guest kernel patch (repeatable): accepted-reserve, late-swiotlb-convert, "
                          "tdx-hotplug-rfc2, efi-memory-uhp."),
        click.option("--shell-footprint", default=None, metavar="SIZE",
                     help="Memory touched to reach a shell (default 256M)."),
        click.option("--snp-prefault", is_flag=True,
                     help="SNP host option: QEMU pre-faults each range a page-state change makes private "
                          "(KVM_PRE_FAULT_MEMORY), so validation takes no nested page fault per page."),
        click.option("--os-opt-in/--no-os-opt-in", default=True, show_default=True,
                     help="SNP: the OS calls AllowUnacceptedMemory; without it OVMF accepts everything at "
                          "ExitBootServices."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return large_guest_options(f)


def guest_request(
    memory: int,
    *,
    platform: str | None,
    policy: str = AcceptPolicy.LAZY,
    vcpus: int | None = None,
    max_vcpus: int | None = None,
    host_mapping: str | None = None,
    firmware_accept: str | None = None,
    kernel: str | None = None,
    firmware_path: str | None = None,
    shell_footprint: str | None = None,
    os_opt_in: bool = True,
    kconfig: tuple[str, ...] = (),
    patches: tuple[str, ...] = (),
    snp_prefault: bool = False,
    numa_nodes: int = 1,
    swiotlb: str | None = None,
    **_: object,
) -> GuestRequest:
    """The guest the options describe; choices parsed into values, nothing defaulted that the
    profile decides."""
    footprint = BootFootprint()
    if shell_footprint is not None:
        footprint = replace(footprint, shell_footprint=parse_size(shell_footprint))
    if swiotlb is not None:
        # swiotlb=<slabs>: the size in 2 KiB slabs, a part slab counting whole.
        footprint = replace(footprint, swiotlb_slabs=-(-parse_size(swiotlb) // IO_TLB_SIZE))
    return GuestRequest(
        memory=memory,
        tee=Tee(platform.lower()) if platform else Tee.TDX,
        policy=AcceptPolicy(policy.lower()),
        vcpus=vcpus,
        max_vcpus=max_vcpus,
        host_mapping=HostMapping(host_mapping.lower()) if host_mapping else None,
        firmware_accept=FirmwareAccept.parse(firmware_accept) if firmware_accept is not None else None,
        kernel=kernel,
        firmware_path=firmware_path,
        snp_os_opt_in=os_opt_in,
        footprint=footprint,
        kconfig=tuple(kconfig),
        patches=tuple(patches) if patches else None,
        snp_prefault=snp_prefault,
        numa_nodes=numa_nodes,
    )


def guest_profile(profile: str | None, guest: dict[str, object]) -> CostProfile:
    """The host profile named (else the platform's), which also says the TEE when the options
    did not (``guest["platform"]`` is set from it)."""
    prof = load_profile(profile_name(profile, guest.get("platform")))  # type: ignore[arg-type]
    if not guest.get("platform"):
        guest["platform"] = prof.tee.value  # a profile alone says which TEE
    return prof


def profile_name(profile: str | None, platform: str | None) -> str:
    """The profile to load: the one named, else the platform's packaged one."""
    return profile or (platform.lower() if platform else Tee.TDX.value)


def check_output_file(path: str | None, *, stdout: bool = False) -> None:
    """Refuse, before any work, an output file that cannot be written (``-``: standard output,
    where ``stdout`` allows it)."""
    if path is not None:
        check_writable(path, stdout=stdout)


def check_plot_file(path: str | None) -> None:
    """Refuse, before any work, a plot that cannot be written: a suffix other than .png, .svg or
    .pdf, a path that is not a regular file or new, or ``-`` when standard output is a terminal."""
    if path is None:
        return
    from ..presentation.plots import plot_format

    plot_format(path)
    check_writable(path, stdout=True)
    if path == STDOUT and sys.stdout.isatty():
        raise ConfigError("--plot -: standard output is a terminal; send the image to a file or a pipe")


def check_stdout_once(*claims: tuple[str, bool]) -> None:
    """Refuse two outputs that both go to standard output (``--json`` and ``--plot -``, say)."""
    names = [name for name, claimed in claims if claimed]
    if len(names) > 1:
        raise ConfigError(f"{' and '.join(names)} would both write to standard output; send one to a file")


def like_options(log: str, guest: dict[str, object], *, memory: str | None, policy: str | None,
                 fields: tuple[str, ...] = FIELDS) -> Likeness:
    """``--like LOG``: the log's facts with the options given winning; ``guest`` (the guest options)
    is filled in place with what the log gave, and the merge returned (memory and policy in
    ``values``)."""
    given = {"memory": memory, "policy": policy, **{k: guest.get(k) for k in ("platform", "vcpus", "kernel",
                                                                          "firmware_accept")}}
    likeness = merge(read_like(log), given, fields)
    for name in ("platform", "kernel", "firmware_accept"):
        if guest.get(name) is None and name in likeness.values:
            guest[name] = likeness.values[name]
    if guest.get("vcpus") is None and "vcpus" in likeness.values:
        guest["vcpus"] = int(likeness.values["vcpus"])
    return likeness


def deadline_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--orchestrator NAME`` and ``--deadline STAGE=SECONDS`` (repeatable)."""
    opts = [
        click.option("--orchestrator", default=None, metavar="NAME",
                     help="Hold the guest to a stack's timeouts: " + ", ".join(orchestrator_names()) + "."),
        click.option("--deadline", "deadlines", multiple=True, metavar="STAGE=SECONDS",
                     help="A deadline of one's own (repeatable): a stage (" + ", ".join(stage_names())
                          + ") reached within SECONDS of the VM's start."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def given_deadlines(orchestrator: str | None, deadlines: tuple[str, ...]) -> tuple[list[Deadline], Overhead | None]:
    """The deadlines the options give, checked before any work (the orchestrator's first), and
    the orchestrator's memory overhead if it ships one."""
    out: list[Deadline] = []
    overhead = None
    if orchestrator is not None:
        orch = load_orchestrator(orchestrator)
        out.extend(orch.deadlines)
        overhead = orch.overhead
    out.extend(parse_deadline(d) for d in deadlines)
    return out, overhead


#: Exit status of a modelled guest failure (a crash, an out-of-memory, a missed deadline).
EXIT_GUEST_FAILED = 3


def exit_if_missed(verdicts: list[Verdict]) -> None:
    """A missed deadline: one line on stderr and exit status 3, after the report."""
    first = first_failing(verdicts)
    if first is not None:
        click.echo(f"lazyaccept: guest failed: {describe_miss(first)}", err=True)
        click.get_current_context().exit(EXIT_GUEST_FAILED)
