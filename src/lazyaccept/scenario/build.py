"""Build the record of one boot: a resolved configuration in, what happened out, without time.

The actors run in boot order (host and platform, firmware, EFI stub, kernel) and record what
they did; the sanitizer then checks the final state against the platform's ground truth.  The
record is a pure function of the configuration; :mod:`lazyaccept.sim` prices and times it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..base.choices import Tee
from ..base.record import Recorder
from ..firmware.base import Firmware
from ..firmware.ovmf_sev import OvmfSev
from ..firmware.q35 import numa_node_ranges
from ..firmware.tdvf import Tdvf, load_tdvf
from ..guest.kernel import Kernel
from ..guest.numa import NumaLayout
from ..platform.base import Platform
from ..platform.host import HostPolicy, HostVMM
from ..platform.snp import SnpPlatform
from ..platform.tdx import TdxPlatform
from .boot_record import BootRecord
from .config import VMConfig
from .sanitizer import check_boot


def _tdvf(config: VMConfig, platform: Platform, rec: Recorder) -> Firmware:
    return Tdvf(
        platform, rec, ram=config.memory, vcpus=config.vcpus, firmware_accept=config.firmware_accept,
        kernel_image=config.footprint.kernel_image, tdvf=load_tdvf(config.tdvf_image),
    )


def _ovmf_sev(config: VMConfig, platform: Platform, rec: Recorder) -> Firmware:
    return OvmfSev(
        platform, rec, ram=config.memory, vcpus=config.vcpus, firmware_accept=config.firmware_accept,
        kernel_image=config.footprint.kernel_image, os_opts_in=config.snp_os_opt_in,
    )


#: Per TEE: the platform (with its host) and the firmware that boots on it.
PLATFORMS: dict[Tee, tuple[Callable[[HostVMM], Platform], Callable[[VMConfig, Platform, Recorder], Firmware]]] = {
    Tee.TDX: (lambda host: TdxPlatform(host=host), _tdvf),
    Tee.SNP: (lambda host: SnpPlatform(host=host), _ovmf_sev),
}


def make_platform(config: VMConfig) -> Platform:
    """The TEE platform of ``config``, with a host that maps private memory as it says."""
    make, _ = PLATFORMS[config.tee]
    return make(HostVMM(HostPolicy(mapping=config.host_mapping, prefault_on_psc=config.snp_prefault)))


def numa_layout(config: VMConfig) -> NumaLayout | None:
    """The guest's NUMA nodes from the VMM's SRAT (``None``: one node, no ``-numa``)."""
    if config.numa_nodes == 1:
        return None
    ranges = numa_node_ranges(config.memory, config.numa_nodes)
    return NumaLayout(tuple(tuple(r) for r in ranges), config.vcpus)


def build_record(config: VMConfig, *, sanitize: bool = True) -> BootRecord:
    """Run the model of one boot (no time); the sanitizer checks the final state unless told not to."""
    platform = make_platform(config)
    rec = Recorder()
    _, make_firmware = PLATFORMS[config.tee]
    fw = make_firmware(config, platform, rec).boot()
    kernel = Kernel(
        platform, config.kernel, rec, vcpus=config.vcpus, policy=config.policy, footprint=config.footprint,
        kconfig=config.kconfig, possible_cpus=config.possible_cpus, numa=numa_layout(config),
    )
    state = kernel.boot(fw.memory_map, fw.kernel_image)
    record = BootRecord(config, platform, fw, state, rec.phases)
    if sanitize:
        check_boot(record)
    return record
