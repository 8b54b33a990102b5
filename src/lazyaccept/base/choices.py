"""Every fixed choice of the model, declared once.

Command-line choices, profile validation and JSON output all derive from these enums.  They are
``StrEnum``s, so a member prints and serialises as its value (``Tee.TDX`` is ``"tdx"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import ConfigError
from .units import parse_size


class Tee(StrEnum):
    """The trusted execution environment the guest runs in."""

    TDX = "tdx"
    SNP = "snp"


class AcceptPolicy(StrEnum):
    """The ``accept_memory=`` kernel parameter: accept on demand, or everything at boot."""

    LAZY = "lazy"
    EAGER = "eager"


class HostMapping(StrEnum):
    """The page size at which the host maps the guest's private memory."""

    PAGE_4K = "4k"
    PAGE_2M = "2m"


class HostPath(StrEnum):
    """Whose operations queue at the host's serialised path when several guests share a host:
    every guest's at one path (``shared``: locks and structures the host holds for all guests), or
    each guest's at its own (``per-guest``: KVM's ``kvm->mmu_lock`` is a lock of one VM)."""

    SHARED = "shared"
    PER_GUEST = "per-guest"


class HostFeature(StrEnum):
    """Host features pending upstream, as what-ifs of ``lazyaccept host``."""

    #: TDX Dynamic PAMT: the 4 KiB level of the PAMT added per 2 MiB region on its first AUG.
    TDX_DPAMT = "tdx-dpamt"
    #: TDX private memory mapped at 2 MiB (the proposed huge-page design): ``--host-mapping 2m``.
    TDX_2M = "tdx-2m"
    #: QEMU pre-faults what an SNP page-state change makes private: ``--snp-prefault``.
    SNP_PREFAULT = "snp-prefault"
    #: guest_memfd backed by 1 GiB HugeTLB pages: a 1 GiB page committed on its first fault.
    GMEM_1G = "gmem-1g"


class AcceptRoutine(StrEnum):
    """The code that accepts a range, as each actor runs it.

    ``linux``: the kernel's and EFI stub's ``tdx_accept_memory()`` (1G/2M/4K tries) or SNP's
    GHCB page-state change then PVALIDATE; ``tdvf``: TDVF's boot-vCPU accept; ``tdvf-ap``: the
    32 MiB chunks TDVF's APs accept at 2 MiB; ``ovmf``: OVMF-SNP's PEI validation (253-entry
    PSC); ``msr``: the SNP EFI stub's GHCB MSR protocol, one 4 KiB page per request.
    """

    LINUX = "linux"
    TDVF = "tdvf"
    TDVF_AP = "tdvf-ap"
    OVMF = "ovmf"
    MSR = "msr"


class BootPhase(StrEnum):
    """The phases of a boot and of the run after it, in order (each a barrier: the next starts
    when all vCPUs are done)."""

    FIRMWARE = "firmware"
    FIRMWARE_ACCEPT = "firmware-accept"
    EFI_STUB = "efi-stub"
    EARLY_INIT = "early-init"
    MEMBLOCK_FREE = "memblock-free"
    EARLY_ALLOCS = "early-allocs"
    MEM_ENCRYPT_INIT = "mem-encrypt-init"
    SMP_BRINGUP = "smp-bringup"
    DEFERRED_INIT = "deferred-init"
    EARLY_INITCALLS = "early-initcalls"
    FS_INITCALLS = "fs-initcalls"
    INITCALLS = "initcalls"
    USERSPACE = "userspace"
    #: Run time: the workloads (and any background acceptance) after the shell.
    WORKLOAD = "workload"


class InspectKind(StrEnum):
    """The kinds of artefact ``lazyaccept inspect`` reads, in the order ``--kind`` lists them."""

    FIRMWARE = "firmware"
    DMESG = "dmesg"
    E820 = "e820"
    MEMINFO = "meminfo"
    NODE_MEMINFO = "node-meminfo"
    VMSTAT = "vmstat"
    EFI_MEMMAP = "efi-memmap"
    UNACCEPTED_TABLE = "unaccepted-table"
    HOB_LIST = "hob-list"
    IGVM = "igvm"
    HOST_TRACE = "host-trace"


class FirmwareAcceptMode(StrEnum):
    """How much unaccepted RAM the firmware accepts before handing over to the OS."""

    BELOW_4G = "below-4g"
    ALL = "all"
    SIZE = "size"


@dataclass(frozen=True)
class FirmwareAccept:
    """What the firmware accepts: all RAM below 4 GiB (upstream TDVF and OVMF-SNP), all RAM, or
    a fixed amount in HOB order (the partial accept of 2022 TDVF, ``PcdTdxAcceptPartialMemorySize``)."""

    mode: FirmwareAcceptMode
    size: int = 0

    @classmethod
    def parse(cls, text: str) -> FirmwareAccept:
        """``below-4g`` (also ``below4g``), ``all``, or a size such as ``256M``; any case."""
        v = text.strip().lower()
        if v in ("below-4g", "below4g"):
            return cls(FirmwareAcceptMode.BELOW_4G)
        if v == "all":
            return cls(FirmwareAcceptMode.ALL)
        try:
            return cls(FirmwareAcceptMode.SIZE, parse_size(text))
        except ConfigError:
            raise ConfigError(
                f'firmware accept must be "below-4g", "all" or a size like "256M", not {text!r}'
            ) from None

    def __str__(self) -> str:
        if self.mode is not FirmwareAcceptMode.SIZE:
            return self.mode.value
        return _compact_size(self.size)


def _compact_size(n: int) -> str:
    """The shortest exact spelling with a binary suffix, as QEMU's ``-m`` takes it (``256M``)."""
    for suffix, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def choice_values(enum: type[StrEnum]) -> list[str]:
    """The values of an enum, for click choices and messages."""
    return [m.value for m in enum]


__all__ = [
    "AcceptPolicy", "AcceptRoutine", "BootPhase", "FirmwareAccept", "FirmwareAcceptMode", "HostMapping", "InspectKind",
    "Tee",
    "choice_values",
]
