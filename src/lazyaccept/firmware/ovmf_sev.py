"""OVMF for AMD SEV-SNP guests (firmware-and-platform.md §3).

The host pre-validates the firmware's own pages; PEI validates all RAM below 4 GiB on the boot
vCPU with 2 MiB page-state-change entries and retypes RAM above 4 GiB to unaccepted.  At
ExitBootServices the firmware accepts everything unless the OS called
``AllowUnacceptedMemory`` (Linux does since v6.5).
"""

from __future__ import annotations

from ..base.choices import AcceptRoutine, BootPhase, FirmwareAccept
from ..base.record import Recorder
from ..platform.base import Platform
from .base import Firmware, FirmwareResult

#: Pages the host pre-validates at launch (SNP_SEC_MEM, secrets and CPUID pages in the MEMFD
#: area) and the range SEC validates itself (PcdOvmfSecValidatedStart/End of one build).
SNP_PREVALIDATED = (0x800000, 0x820000)
SNP_SEC_VALIDATED = (0x820000, 0x1A10000)


class OvmfSev(Firmware):
    """OVMF booting one SEV-SNP guest."""

    def __init__(
        self,
        platform: Platform,
        recorder: Recorder,
        *,
        ram: int,
        vcpus: int,
        firmware_accept: FirmwareAccept,
        kernel_image: int,
        os_opts_in: bool = True,
    ) -> None:
        super().__init__(
            platform, recorder, ram=ram, vcpus=vcpus, firmware_accept=firmware_accept, kernel_image=kernel_image
        )
        self.os_opts_in = os_opts_in

    def boot(self) -> FirmwareResult:
        self.rec.begin(BootPhase.FIRMWARE, "firmware", online_vcpus=self.vcpus)
        self.platform.add_at_build(*SNP_PREVALIDATED)
        self.accepted.add(*SNP_PREVALIDATED)
        self.rec.work("firmware_base", 0)
        for cpu in range(1, self.vcpus):
            self.rec.work("firmware_ap_init", cpu)
        self.rec.begin(BootPhase.FIRMWARE_ACCEPT, "firmware", online_vcpus=1)
        self._accept(*SNP_SEC_VALIDATED, 0, AcceptRoutine.OVMF, "sec-validate")
        # PEI: SYSTEM_MEMORY below 4 GiB is validated; above 4 GiB it is retyped to unaccepted.
        regions = [(s, e) for s, e in self.ram]
        plan = self._accept_plan(regions)
        for s, e in plan:
            for gs, ge in self.accepted.gaps(s, e):
                self._accept(gs, ge, 0, AcceptRoutine.OVMF)
        self._accept_work_area(AcceptRoutine.OVMF)
        if not self.os_opts_in:
            # No AllowUnacceptedMemory call: AcceptAllMemory at ExitBootServices.
            for s, e in self.ram:
                for gs, ge in self.accepted.gaps(s, e):
                    self._accept(gs, ge, 0, AcceptRoutine.OVMF, "accept-all-at-ebs")
        memmap, kernel = self._memory_map([])
        self._touch_own(memmap)
        return FirmwareResult(memmap, self.accepted.copy(), kernel, None, None, self.stats.bytes_accepted, self.stats)
