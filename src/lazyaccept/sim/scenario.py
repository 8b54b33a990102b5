"""One entry point: a VM configuration in, a boot out.

:func:`build_record` runs the model (platform, firmware, EFI stub, kernel) and returns what
happened without time; :func:`run` adds the simulated timeline from a cost profile.  A run is a
pure function of its configuration, so sweeps can fan out over processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..firmware.ovmf import FirmwareResult, Ovmf, load_tdvf
from ..guest.footprint import BootFootprint
from ..guest.kernel import Kernel, KernelState
from ..guest.rules import KernelRules, kernel_rules
from ..platform.base import Platform
from ..record import Phase, Recorder
from ..units import GiB, MiB, TiB, format_size

if TYPE_CHECKING:
    from .costs import CostProfile
    from .timeline import Timeline

PLATFORMS = ("tdx", "snp")
POLICIES = ("lazy", "eager")
HOST_MAPPINGS = ("4k", "2m")
MIN_MEMORY = 512 * MiB
#: The model keeps one byte per 2 MiB unit in memory: 64 TiB costs ~0.7 GiB of RSS.
MAX_MEMORY = 64 * TiB
MAX_VCPUS = 4096


@dataclass(frozen=True)
class VMConfig:
    """A guest to boot.  ``None`` fields take the cost profile's defaults."""

    memory: int
    platform: str = "tdx"
    vcpus: int | None = None
    policy: str = "lazy"
    host_mapping: str | None = None
    firmware_accept: str | None = None
    kernel: str | None = None
    firmware_path: str | None = None
    snp_os_opt_in: bool = True
    footprint: BootFootprint = field(default_factory=BootFootprint)

    def validate(self) -> None:
        if self.platform not in PLATFORMS:
            raise ConfigError(f"unknown platform {self.platform!r} (tdx or snp)")
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r} (lazy or eager)")
        if not MIN_MEMORY <= self.memory <= MAX_MEMORY:
            raise ConfigError(f"memory must be between 512 MiB and 64 TiB, not {format_size(self.memory)}")
        if self.memory % (4096) != 0:
            raise ConfigError("memory must be a whole number of 4 KiB pages")
        if self.vcpus is not None and not 1 <= self.vcpus <= MAX_VCPUS:
            raise ConfigError(f"vcpus must be between 1 and {MAX_VCPUS}, not {self.vcpus}")
        if self.host_mapping is not None and self.host_mapping not in HOST_MAPPINGS:
            raise ConfigError(f"unknown host mapping {self.host_mapping!r} (4k or 2m)")
        if self.kernel is not None:
            kernel_rules(self.kernel)
        if self.firmware_path is not None and self.platform != "tdx":
            raise ConfigError("--firmware gives TDVF sections, which only TDX guests have")

    def with_defaults(self, profile: CostProfile | None) -> VMConfig:
        """This configuration with every unset field filled from the profile's defaults."""
        d = profile.defaults if profile is not None else None
        return replace(
            self,
            vcpus=self.vcpus if self.vcpus is not None else (d.vcpus if d else 1),
            host_mapping=self.host_mapping or (d.host_mapping if d else "4k"),
            firmware_accept=self.firmware_accept or (d.firmware_accept if d else "below-4g"),
            kernel=self.kernel or (d.kernel if d else "mainline"),
        )


@dataclass
class BootRecord:
    """What happened in one boot, without time."""

    config: VMConfig
    rules: KernelRules
    platform: Platform
    firmware: FirmwareResult
    kernel: KernelState
    phases: list[Phase]

    @property
    def unaccepted_after_boot(self) -> int:
        return self.kernel.allocator.nr_unaccepted() * 4096


@dataclass
class BootResult:
    record: BootRecord
    timeline: Timeline

    @property
    def boot_s(self) -> float:
        return self.timeline.total_s

    @property
    def accept_s(self) -> float:
        return self.timeline.accept_s


def make_platform(config: VMConfig) -> Platform:
    from ..platform.host import HostPolicy, HostVMM

    host = HostVMM(HostPolicy(mapping=config.host_mapping or "4k"))
    if config.platform == "tdx":
        from ..platform.tdx import TdxPlatform

        return TdxPlatform(host=host)
    from ..platform.snp import SnpPlatform

    return SnpPlatform(host=host)


def build_record(config: VMConfig, profile: CostProfile | None = None, *, sanitize: bool = True) -> BootRecord:
    """Run the model of one boot (no time); the sanitizer checks the final state unless told not to."""
    config = config.with_defaults(profile)
    config.validate()
    rules = kernel_rules(config.kernel or "mainline")
    platform = make_platform(config)
    rec = Recorder()
    vcpus = config.vcpus or 1
    tdvf = load_tdvf(config.firmware_path) if config.platform == "tdx" else None
    fw = Ovmf(
        platform, rec, ram=config.memory, vcpus=vcpus, firmware_accept=config.firmware_accept or "below-4g",
        kernel_image=config.footprint.kernel_image, tdvf=tdvf, os_opts_in=config.snp_os_opt_in,
    ).boot()
    kernel = Kernel(platform, rules, rec, vcpus=vcpus, lazy=config.policy == "lazy", footprint=config.footprint)
    state = kernel.boot(fw.memory_map, fw.kernel_image)
    record = BootRecord(config, rules, platform, fw, state, rec.phases)
    if sanitize:
        from ..check import check_boot

        check_boot(record)
    return record


def run(config: VMConfig, profile: CostProfile) -> BootResult:
    """Model one boot and simulate its timeline with ``profile``."""
    from .timeline import simulate

    if profile.platform != config.platform:
        raise ConfigError(f"profile {profile.name!r} is for {profile.platform}, not {config.platform}")
    record = build_record(config, profile)
    at_start = record.platform.host.added_bytes  # pages added at build time
    return BootResult(record, simulate(record.phases, profile, committed_at_start=at_start))


__all__ = ["VMConfig", "BootRecord", "BootResult", "build_record", "run", "GiB"]
