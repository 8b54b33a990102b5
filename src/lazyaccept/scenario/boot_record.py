"""The record of one boot: what every actor did and the state it left, without time."""

from __future__ import annotations

from dataclasses import dataclass

from ..base.record import Phase
from ..base.units import PAGE_SIZE
from ..firmware.base import FirmwareResult
from ..guest.kernel import KernelState
from ..platform.base import Platform
from .config import VMConfig


@dataclass
class BootRecord:
    """What happened in one boot, without time."""

    config: VMConfig
    platform: Platform
    firmware: FirmwareResult
    kernel: KernelState
    phases: list[Phase]

    @property
    def unaccepted_after_boot(self) -> int:
        return self.kernel.allocator.nr_unaccepted() * PAGE_SIZE
