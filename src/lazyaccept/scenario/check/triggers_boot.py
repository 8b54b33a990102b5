"""The scenarios that trigger historic bugs of the unaccepted table, kexec and kdump: whole boots
of the model (firmware, EFI stub, kernel) with the rules given, then, where the bug needs it, a
second kernel that reads the first one's table (guest/kexec.py).

Each function runs with ``rules`` and returns what the detectors saw; with the correct kernel's
rules it must see nothing.  The guests are the smallest that have unaccepted memory above 4 GiB on
q35 (4 GiB: 2 GiB below 4 GiB, accepted by TDVF, and 2 GiB above), except the table reservation,
which needs the size of the report (67000M: a bitmap that straddles a page).
"""

from __future__ import annotations

from dataclasses import replace

from ...base.choices import FirmwareAccept, Tee
from ...base.ranges import RangeSet
from ...base.units import GiB, MiB, format_size
from ...firmware.tdvf import BUILTIN_IMAGE
from ...guest import kexec
from ...guest.rules import KernelRules
from ..boot_record import BootRecord
from ..build import build_record
from ..config import GuestRequest
from . import detectors
from .findings import Finding, Observation


def boot(rules: KernelRules, memory: int = 4 * GiB, tee: Tee = Tee.TDX) -> BootRecord:
    """One lazy boot with ``rules`` (1 vCPU, 4 KiB host, upstream firmware accepting below 4 GiB;
    TDX takes the TDVF sections of Debian's OVMF as built in, so the run is the same everywhere)."""
    request = GuestRequest(
        memory=memory, tee=tee, kernel="mainline", firmware_accept=FirmwareAccept.parse("below-4g"),
        firmware_path=BUILTIN_IMAGE if tee is Tee.TDX else None,
    )
    return build_record(replace(request.resolve(), kernel=rules))


def _boot_then(rules: KernelRules, memory: int, after: object) -> Observation:
    """Boot, then run ``after(record)``; a violation during the boot counts too."""
    note = ""
    rec: BootRecord | None = None

    def body() -> list[Finding]:
        nonlocal rec, note
        rec = boot(rules, memory)
        note = after(rec)  # type: ignore[operator]
        return []

    def unaccepted() -> int:
        return rec.kernel.mem.unaccepted_bytes() if rec is not None else 0

    found = detectors.observe(body, unaccepted)
    return Observation(found, note or f"the {format_size(memory)} boot stopped")


def table_unmapped(rules: KernelRules) -> Observation:
    """A 4 GiB TDX boot: the table is EfiACPIReclaimMemory; the kernel reads it in early init."""
    return _boot_then(rules, 4 * GiB, lambda rec: "4 GiB TDX boot; the kernel mapped and read its table")


def table_reservation(rules: KernelRules) -> Observation:
    """The 2026 report: ``-m 67000M`` TDX, table at page offset 0x30, 0xfdc bytes of bitmap."""
    return _boot_then(rules, 67000 * MiB, lambda rec: "67000M TDX boot; the whole table is reserved and mapped")


def table_loader_data(rules: KernelRules) -> Observation:
    """A 4 GiB TDX boot, then kdump: the crash kernel (crashkernel=256M) reads the table."""

    def after(rec: BootRecord) -> str:
        region = kexec.crash_region(rec.kernel)
        kexec.crash_kernel_boot(rec.kernel, rec.platform, rules, region)
        return f"crash kernel in [{region[0]:#x}, {region[1]:#x}) mapped and read the first kernel's table"

    return _boot_then(rules, 4 * GiB, after)


def vmcore_reads_unaccepted(rules: KernelRules) -> Observation:
    """A 4 GiB TDX boot, then kdump: the crash kernel saves /proc/vmcore (reads all old RAM)."""

    def after(rec: BootRecord) -> str:
        region = kexec.crash_region(rec.kernel)
        kexec.crash_kernel_boot(rec.kernel, rec.platform, rules, region)
        old_ram = rec.kernel.ram.copy()
        old_ram.remove(*region)  # the elfcorehdr leaves the crash kernel's own region out
        read = kexec.read_dump(old_ram, rec.kernel.mem, rec.platform, rules.vmcore_skips_unaccepted, "vmcore")
        return f"/proc/vmcore read {format_size(read)} of {format_size(old_ram.total())}, unaccepted pages as zeros"

    return _boot_then(rules, 4 * GiB, after)


def kcore_reads_unaccepted(rules: KernelRules) -> Observation:
    """A 4 GiB TDX boot, then a debugger reads all of /proc/kcore's RAM in the same kernel."""

    def after(rec: BootRecord) -> str:
        ram = RangeSet(rec.kernel.ram)
        read = kexec.read_dump(ram, rec.kernel.mem, rec.platform, rules.kcore_skips_unaccepted, "kcore")
        return f"/proc/kcore read {format_size(read)} of {format_size(ram.total())}, unaccepted pages skipped"

    return _boot_then(rules, 4 * GiB, after)


def kexec_segments_unaccepted(rules: KernelRules) -> Observation:
    """A 4 GiB TDX boot, then ``kexec -l`` of a kernel and initrd and ``kexec -e``."""

    def after(rec: BootRecord) -> str:
        segments = kexec.kexec_load(rec.kernel, rules)
        kexec.kexec_reboot(rec.kernel, rec.platform, segments)
        return (f"kexec copied {len(segments)} segments to [{min(s.start for s in segments):#x}, "
                f"{max(s.end for s in segments):#x}) and the new kernel read the inherited table")

    return _boot_then(rules, 4 * GiB, after)
