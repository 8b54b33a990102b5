"""A guest's configuration: what the user asked for, and the same resolved once, at the edge.

:class:`GuestRequest` is what a command line or a grid file says, with ``None`` where the user
said nothing.  :meth:`GuestRequest.resolve` fills those fields from :class:`StackDefaults` (the
guest stack a host profile was measured with) and validates everything, giving a
:class:`VMConfig` with no optional field: nothing below the edge applies a default again.  A
``VMConfig`` is frozen, hashable and picklable, so a run is a pure function of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base.choices import AcceptPolicy, FirmwareAccept, HostMapping, Tee
from ..base.errors import ConfigError
from ..base.units import PAGE_SIZE, MiB, TiB, format_size
from ..firmware.q35 import numa_node_sizes
from ..firmware.tdvf import BUILTIN_IMAGE, default_image
from ..firmware.verdict import firmware_accept_of
from ..guest.footprint import IO_TLB_SIZE, SWIOTLB_MIN, BootFootprint
from ..guest.kconfig import KernelConfig
from ..guest.patches import GuestPatch, apply_patches, parse_patches
from ..guest.rules import KernelRules, kernel_rules, resolve_kernel

MIN_MEMORY = 512 * MiB
#: The model keeps one byte per 2 MiB unit in memory: 64 TiB costs ~0.7 GiB of RSS.
MAX_MEMORY = 64 * TiB
MAX_VCPUS = 4096
#: NUMA nodes: x86-64's CONFIG_NODES_SHIFT defaults to 6 (arch/x86/Kconfig), 64 nodes.
MAX_NUMA_NODES = 64
#: The least memory a NUMA node may have: the smallest guest the model boots.
MIN_NODE_MEMORY = MIN_MEMORY


@dataclass(frozen=True)
class StackDefaults:
    """The guest stack used where the user gives no choice (a host profile's ``[defaults]``)."""

    vcpus: int
    host_mapping: HostMapping
    kernel: str
    firmware_accept: FirmwareAccept
    kconfig: KernelConfig = field(default_factory=KernelConfig)
    patches: tuple[GuestPatch, ...] = ()


#: When no profile is involved: one vCPU, a 4 KiB host, the current kernel with a distribution
#: kernel's build options, upstream firmware.
PLAIN_DEFAULTS = StackDefaults(
    vcpus=1, host_mapping=HostMapping.PAGE_4K, kernel="mainline", firmware_accept=FirmwareAccept.parse("below-4g")
)


@dataclass(frozen=True)
class VMConfig:
    """A guest to model, every choice made."""

    memory: int
    tee: Tee
    vcpus: int
    policy: AcceptPolicy
    host_mapping: HostMapping
    firmware_accept: FirmwareAccept
    #: The release the user named (``6.5``, ``mainline`` ...), and the rules in force at it with
    #: the guest patches applied.
    kernel_release: str
    kernel: KernelRules
    kconfig: KernelConfig
    patches: tuple[GuestPatch, ...]
    #: TDX: the OVMF image whose TDVF sections the host adds (a path, or ``"builtin"``);
    #: SEV-SNP guests have no TDVF, and this is ``""``.
    tdvf_image: str
    snp_os_opt_in: bool
    footprint: BootFootprint
    #: SEV-SNP host option: the host pre-faults each range a page-state change makes private.
    snp_prefault: bool = False
    #: Possible CPUs (QEMU ``-smp N,maxcpus=M``: ``num_possible_cpus()``); 0 means ``vcpus``.
    max_vcpus: int = 0
    #: NUMA nodes (QEMU ``-numa node``), memory and vCPUs split evenly among them.
    numa_nodes: int = 1

    @property
    def possible_cpus(self) -> int:
        """``num_possible_cpus()``: what SWIOTLB areas and per-CPU areas are sized by."""
        return self.max_vcpus or self.vcpus

    def as_dict(self) -> dict[str, object]:
        """The configuration as plain JSON values."""
        return {
            "memory_bytes": self.memory,
            "platform": self.tee.value,
            "vcpus": self.vcpus,
            "max_vcpus": self.possible_cpus,
            "policy": self.policy.value,
            "host_mapping": self.host_mapping.value,
            "firmware_accept": str(self.firmware_accept),
            "kernel": self.kernel_release,
            "kernel_rules": self.kernel.name,
            # which rule set the release runs and, for a stable sublevel, the backports it adds
            "kernel_resolved": resolve_kernel(self.kernel_release)[1],
            "kconfig": list(self.kconfig.items()),
            "patches": [p.value for p in self.patches],
            "tdvf_image": self.tdvf_image or None,
            "snp_os_opt_in": self.snp_os_opt_in,
            "snp_prefault": self.snp_prefault,
            "shell_footprint_bytes": self.footprint.shell_footprint,
            "numa_nodes": self.numa_nodes,
            "swiotlb_slabs": self.footprint.swiotlb_slabs or None,
        }


@dataclass(frozen=True)
class GuestRequest:
    """What the user asked for; ``None`` takes the profile's default."""

    memory: int
    tee: Tee = Tee.TDX
    policy: AcceptPolicy = AcceptPolicy.LAZY
    vcpus: int | None = None
    host_mapping: HostMapping | None = None
    firmware_accept: FirmwareAccept | None = None
    kernel: str | None = None
    #: ``NAME=VALUE`` build options over the profile's (``None``: the profile's as they are).
    kconfig: tuple[str, ...] = ()
    #: Guest patches (``None``: the profile's).
    patches: tuple[str, ...] | None = None
    firmware_path: str | None = None
    snp_os_opt_in: bool = True
    footprint: BootFootprint = field(default_factory=BootFootprint)
    snp_prefault: bool = False
    #: ``--max-vcpus``: QEMU's ``maxcpus`` (``None``: as many as ``vcpus``).
    max_vcpus: int | None = None
    #: ``--numa``: NUMA nodes.
    numa_nodes: int = 1

    def resolve(self, defaults: StackDefaults = PLAIN_DEFAULTS) -> VMConfig:
        """Every unset field from ``defaults``; the whole configuration checked."""
        if not MIN_MEMORY <= self.memory <= MAX_MEMORY:
            raise ConfigError(f"memory must be between 512 MiB and 64 TiB, not {format_size(self.memory)}")
        if self.memory % PAGE_SIZE != 0:
            raise ConfigError("memory must be a whole number of 4 KiB pages")
        vcpus = self.vcpus if self.vcpus is not None else defaults.vcpus
        if not 1 <= vcpus <= MAX_VCPUS:
            raise ConfigError(f"vcpus must be between 1 and {MAX_VCPUS}, not {vcpus}")
        max_vcpus = self.max_vcpus if self.max_vcpus is not None else vcpus
        if not vcpus <= max_vcpus <= MAX_VCPUS:
            raise ConfigError(f"max-vcpus must be between the vCPU count ({vcpus}) and {MAX_VCPUS}, not {max_vcpus}")
        self._check_numa(vcpus)
        self._check_swiotlb()
        if self.snp_prefault and self.tee is not Tee.SNP:
            raise ConfigError("--snp-prefault is a host option of SEV-SNP guests")
        release = self.kernel if self.kernel is not None else defaults.kernel
        patches = parse_patches(self.patches) if self.patches is not None else defaults.patches
        kconfig = KernelConfig.parse(self.kconfig, defaults.kconfig)
        tdvf_image = "" if self.tee is not Tee.TDX else (self.firmware_path or default_image())
        # An image given without --firmware-accept says itself what it accepts (on SEV-SNP that
        # is all it gives: the model takes TDVF sections from it on TDX only).
        firmware_accept = self.firmware_accept
        if firmware_accept is None and self.firmware_path not in (None, BUILTIN_IMAGE):
            firmware_accept = firmware_accept_of(self.firmware_path, Tee(self.tee))
        return VMConfig(
            memory=self.memory,
            tee=Tee(self.tee),
            vcpus=vcpus,
            policy=AcceptPolicy(self.policy),
            host_mapping=HostMapping(self.host_mapping if self.host_mapping is not None else defaults.host_mapping),
            firmware_accept=firmware_accept if firmware_accept is not None else defaults.firmware_accept,
            kernel_release=release,
            kernel=apply_patches(kernel_rules(release), patches),
            kconfig=kconfig,
            patches=patches,
            tdvf_image=tdvf_image,
            snp_os_opt_in=self.snp_os_opt_in,
            footprint=self.footprint,
            snp_prefault=self.snp_prefault,
            max_vcpus=max_vcpus,
            numa_nodes=self.numa_nodes,
        )

    def _check_numa(self, vcpus: int) -> None:
        n = self.numa_nodes
        if not 1 <= n <= MAX_NUMA_NODES:
            raise ConfigError(f"numa must be between 1 and {MAX_NUMA_NODES} nodes, not {n}")
        if n > vcpus:
            raise ConfigError(f"--numa {n} needs at least one vCPU per node, and the guest has {vcpus}")
        smallest = min(numa_node_sizes(self.memory, n))
        if smallest < MIN_NODE_MEMORY:
            raise ConfigError(
                f"--numa {n} leaves a node {format_size(smallest)} of {format_size(self.memory)}: "
                f"each node needs at least {format_size(MIN_NODE_MEMORY)}"
            )

    def _check_swiotlb(self) -> None:
        slabs = self.footprint.swiotlb_slabs
        if slabs == 0:
            return
        size = slabs * IO_TLB_SIZE
        if size < SWIOTLB_MIN or size > self.memory // 2:
            raise ConfigError(
                f"swiotlb must be between {format_size(SWIOTLB_MIN)} and half the memory "
                f"({format_size(self.memory // 2)}), not {format_size(size)}"
            )
