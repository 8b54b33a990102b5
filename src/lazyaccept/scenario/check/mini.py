"""The smallest guests a scenario needs: a few 2 MiB units of RAM above 4 GiB with a bitmap over
them, the platform, ``accept_memory()`` and (if asked) a page allocator that memblock has freed
the RAM into -- without firmware, EFI stub or boot phases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...base.choices import AcceptRoutine, Tee
from ...base.ranges import RangeSet
from ...base.record import Recorder
from ...base.units import SIZE_2M, GiB
from ...formats.unaccepted import new_table
from ...guest.page_alloc import PageAllocator
from ...guest.rules import KernelRules
from ...guest.unaccepted import UnacceptedMemory
from ...platform.base import Platform
from ...platform.host import HostPolicy, HostVMM
from ...platform.snp import SnpPlatform
from ...platform.tdx import TdxPlatform

#: Where the mini guest's RAM starts: above 4 GiB, where lazily accepted memory lives.
BASE = 4 * GiB
UNIT = SIZE_2M
#: The firmware's accept routine per TEE.
FIRMWARE_ROUTINE = {Tee.TDX: AcceptRoutine.TDVF, Tee.SNP: AcceptRoutine.OVMF}


@dataclass
class MiniGuest:
    platform: Platform
    mem: UnacceptedMemory
    ram: RangeSet
    rec: Recorder
    allocator: PageAllocator

    def unaccepted_bytes(self) -> int:
        return self.mem.unaccepted_bytes()


def make_platform(tee: Tee, policy: HostPolicy | None = None) -> Platform:
    host = HostVMM(policy if policy is not None else HostPolicy())
    return TdxPlatform(host=host) if tee is Tee.TDX else SnpPlatform(host=host)


def mini_guest(
    rules: KernelRules,
    *,
    units: int,
    accepted_units: int = 0,
    tee: Tee = Tee.TDX,
    policy: HostPolicy | None = None,
    lazy: bool = True,
    memory: Callable[..., UnacceptedMemory] = UnacceptedMemory,
) -> MiniGuest:
    """RAM ``[BASE, BASE + units * 2 MiB)``; the firmware accepted the first ``accepted_units``
    units, the bitmap records the rest; memblock freed all of it to the page allocator."""
    platform = make_platform(tee, policy)
    if accepted_units:
        platform.accept(BASE, BASE + accepted_units * UNIT, routine=FIRMWARE_ROUTINE[tee], actor="firmware", vcpu=0)
    table = new_table(BASE, -(-units // 8))
    table.bits[accepted_units:units] = True
    mem = memory(table, platform, rules, AcceptRoutine.LINUX)
    ram = RangeSet([(BASE, BASE + units * UNIT)])
    rec = Recorder()
    rec.begin("check", "kernel")
    allocator = PageAllocator(ram, mem, platform, rules, rec, lazy=lazy)
    allocator.free_range(BASE, BASE + units * UNIT, actor="memblock_free_all")
    return MiniGuest(platform, mem, ram, rec, allocator)
