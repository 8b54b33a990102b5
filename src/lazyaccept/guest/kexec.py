"""kexec and kdump: a second kernel started by the first, reading the first one's unaccepted
table (drivers/firmware/efi/unaccepted_memory.c, kernel/kexec_core.c, arch/x86/kernel/crash.c).

Modelled as far as the historic bugs need, on the state the first kernel left:

* **kexec segments** (``kexec_load``): each segment's destination is chosen in the first
  kernel's free RAM, top down (``kexec_locate_mem_hole()``); at reboot ``relocate_kernel`` copies
  the segment there.  A destination is found, not allocated, so it may be unaccepted: since "kexec_core:
  accept unaccepted kexec segments' destination addresses" (Yan Zhao, 2024) the kexec core accepts
  every destination when the segments are loaded (rule ``kexec_accepts_segments``).  The new
  kernel then reads the table it inherits through the EFI configuration table.
* **the crash kernel** (kdump) runs in the ``crashkernel=`` region, which the first kernel
  reserved with memblock and so accepted.  Its memory map is that region as RAM plus the first
  kernel's non-RAM e820 ranges (ACPI, NVS, reserved), which kexec passes on.  It finds the table
  through the EFI configuration table and maps it only if it lies in an ACPI range it was given
  and is memblock_add()ed (``reserve_unaccepted()``, 8dbe33956d96): as EfiLoaderData the table
  was first-kernel RAM, which the crash kernel must not map (fixed by e7761d827e99, "efi/unaccepted:
  Use ACPI reclaim memory for unaccepted memory table").
  Two more v6.11 fixes keep that mapping: max_pfn covers ACPI ranges (the crash kernel's RAM
  may end below the table), and ``phys_pmd_init()`` no longer clears the 2 MiB entry mapping the
  table when it maps the RAM below it (rules ``e820_end_ram_covers_acpi``, ``kdump_keeps_acpi_pmd``).
* **shared memory before the jump** (v6.11, rule ``kexec_unshares_memory``): ``machine_kexec()``
  calls ``enc_kexec_finish()`` with the other CPUs stopped and IRQs off.  tdx_kexec_finish() walks
  the direct map and converts each shared range back to private: MapGPA, then
  ``tdx_accept_memory()`` on the range (the host removed its private pages when it was shared, so
  this accept AUGs them again); snp_kexec_finish() does the page-state change and PVALIDATE.  The
  first kernel therefore pays it before jumping, and the next kernel finds the range private and
  accepted (its bitmap bit stays clear: it was accepted before it was shared).  The model converts
  the SWIOTLB buffer, the only large shared range (the per-CPU GHCB pages of SNP and drivers'
  shared buffers are left out).  Before v6.11 the buffer stays shared and the next kernel's first
  private access to it is fatal.
* **/proc/vmcore and /proc/kcore** read every page of RAM; pages that
  ``pfn_is_unaccepted_memory()`` reports (``range_contains_unaccepted_memory()`` of the page, guard
  unit included) read as zeros since the 2023 fixes (rules ``vmcore_skips_unaccepted``,
  ``kcore_skips_unaccepted``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.choices import AcceptRoutine
from ..base.errors import SafetyViolation
from ..base.ranges import RangeSet, true_runs
from ..base.record import Recorder
from ..base.units import PAGE_SIZE, SIZE_1G, SIZE_2M, KiB, MiB, align_down, align_up
from ..formats.e820 import E820_TYPE_ACPI, E820_TYPE_NVS, E820_TYPE_RESERVED
from ..formats.unaccepted import HEADER_SIZE
from ..platform.base import Platform
from ..platform.host import HostVMM
from .kernel import KernelState
from .rules import KernelRules
from .unaccepted import UnacceptedMemory

#: e820 types kexec passes on to the crash kernel besides its own RAM (ACPI data, ACPI NVS,
#: reserved): arch/x86/kernel/crash.c crash_setup_memmap_entries().
_PASSED_TYPES = frozenset({E820_TYPE_ACPI, E820_TYPE_NVS, E820_TYPE_RESERVED})

#: Segments of a kexec'd kernel (assumed sizes: a distribution bzImage, a small initrd, the boot
#: parameters page and purgatory).
KEXEC_SEGMENTS = (("kernel", 16 * MiB), ("initrd", 8 * MiB), ("boot-params", 4 * KiB), ("purgatory", 16 * KiB))


@dataclass(frozen=True)
class Segment:
    name: str
    start: int
    end: int


def table_range(state: KernelState) -> tuple[int, int] | None:
    """Bytes of the unaccepted table the first kernel installed (header and bitmap)."""
    if state.table is None or state.stub.table_addr is None:
        return None
    return state.stub.table_addr, state.stub.table_addr + HEADER_SIZE + state.table.size


def free_ram(state: KernelState) -> RangeSet:
    """The first kernel's free memory: free lists and parked unaccepted chunks alike."""
    out = RangeSet()
    for z in state.allocator.zones:
        out.update(z.free_accepted)
        out.update((s, e) for s, e in z.unaccepted)
    return out


def kexec_load(
    state: KernelState, rules: KernelRules, segments: tuple[tuple[str, int], ...] = KEXEC_SEGMENTS,
    rec: Recorder | None = None,
) -> list[Segment]:
    """Place each segment top down in free RAM; accept the destinations if the rules say so
    (recorded on ``rec`` when given, to be timed)."""
    free = free_ram(state)
    out: list[Segment] = []
    for name, size in segments:
        size = align_up(size, PAGE_SIZE)
        for s, e in reversed(list(free)):
            start = align_down(e - size, PAGE_SIZE)
            if start >= s:
                break
        else:
            raise SafetyViolation("kexec-no-room", "kexec", 0, 0, f"no free range for the {name} segment")
        free.remove(start, start + size)
        if rules.kexec_accepts_segments:
            stats = state.mem.accept_memory(start, size, actor="kexec")
            if rec is not None:
                rec.accept("kexec", 0, start, start + size, stats, "kexec-segment")
        out.append(Segment(name, start, start + size))
    return out


def kexec_unshare(platform: Platform, rules: KernelRules, shared: list[tuple[int, int]], rec: Recorder,
                  vcpu: int = 0) -> int:
    """``enc_kexec_finish()``: every shared range back to private and accepted, on the kexec CPU
    with the others stopped (no vCPU in guest mode to kick).  Returns the bytes converted.

    The conversion is a host page removal per page, as the forward one (assumed: the model has no
    measurement of MapGPA to private on its own); the accept is priced like any accept of memory
    the host must back again, its counts from running the platform's accept on a TD/RMP where the
    range is not backed (which is what the host left after sharing it)."""
    if not rules.kexec_unshares_memory or not shared:
        return 0
    total = sum(e - s for s, e in shared)
    rec.convert("kexec", vcpu, total // PAGE_SIZE, 0, "kexec-unshare")
    # The same TEE and host policy, the range not backed (each platform class takes its host VMM).
    unbacked = type(platform)(HostVMM(platform.host.policy))  # type: ignore[call-arg]
    for s, e in shared:
        stats = unbacked.accept(s, e, routine=AcceptRoutine.LINUX, actor="kexec", vcpu=vcpu)
        rec.accept("kexec", vcpu, s, e, stats, "kexec-unshare")
    return total


def check_next_kernel_private(rules: KernelRules, shared: list[tuple[int, int]]) -> None:
    """Before v6.11 nothing converted the shared ranges back: the next kernel maps them private."""
    if rules.kexec_unshares_memory or not shared:
        return
    s, e = shared[0]
    raise SafetyViolation(
        "kexec-shared-memory", "kexec'd kernel", 0, s,
        f"[{s:#x}, {e:#x}) (the SWIOTLB buffer) is still shared: the next kernel's first private access to it "
        "is fatal (enc_kexec_finish(), which converts it back, arrived in v6.11)",
    )


def kexec_reboot(state: KernelState, platform: Platform, segments: list[Segment]) -> None:
    """``relocate_kernel`` copies every segment to its destination; the new kernel then reads the
    table it inherits (the same table: the EFI configuration table survives kexec)."""
    for seg in segments:
        platform.touch(seg.start, seg.end, actor=f"relocate_kernel:{seg.name}", vcpu=0)
    table = table_range(state)
    if table is not None:
        platform.touch(*table, actor="kexec'd kernel: unaccepted table", vcpu=0)


def crash_table_problem(state: KernelState, rules: KernelRules, crash_region: tuple[int, int]) -> str | None:
    """Why the crash kernel cannot map the first kernel's table, or None when it can: the table
    must lie in a range kexec passed on (an ACPI range, not first-kernel RAM), be memblock_add()ed,
    lie below max_pfn, and keep its page-table entry while the RAM below it is mapped."""
    table = table_range(state)
    if table is None:
        return None
    passed = RangeSet((e.addr, e.end) for e in state.e820 if e.type in _PASSED_TYPES)
    if not passed.contains(*table):
        return "first-kernel RAM (EfiLoaderData), which kexec does not pass to the crash kernel"
    if not rules.table_memblock_add:
        return "an ACPI range that is never memblock_add()ed, so not in the direct map"
    ram_end = crash_region[1]  # the crash kernel's only E820_TYPE_RAM
    if not rules.e820_end_ram_covers_acpi and table[1] > ram_end:
        return f"an ACPI range above max_pfn ({ram_end:#x}, the end of the crash kernel's RAM): not in the direct map"
    pmd = align_down(table[0], SIZE_2M)
    same_gib = align_down(pmd, SIZE_1G) == align_down(ram_end - 1, SIZE_1G)
    if not rules.kdump_keeps_acpi_pmd and pmd >= ram_end and same_gib:
        # Mapping the crash RAM, phys_pmd_init() walks on to the end of its 1 GiB page-table page
        # and clears every 2 MiB entry that e820 does not mark RAM: the table's among them.
        return "an ACPI range whose 2 MiB page-table entry phys_pmd_init() cleared while mapping the RAM below it"
    return None


def crash_kernel_boot(
    state: KernelState, platform: Platform, rules: KernelRules, crash_region: tuple[int, int]
) -> None:
    """The crash kernel starts in its region and reads the first kernel's table."""
    platform.touch(*crash_region, actor="crash kernel", vcpu=0)
    table = table_range(state)
    if table is None:
        return
    problem = crash_table_problem(state, rules, crash_region)
    if problem is not None:
        raise SafetyViolation(
            "table-unmapped", "crash kernel", 0, table[0],
            f"unaccepted table [{table[0]:#x}, {table[1]:#x}) is in {problem}: page fault on first access",
        )
    platform.touch(*table, actor="crash kernel: unaccepted table", vcpu=0)


def crash_region(state: KernelState, size: int = 256 * MiB) -> tuple[int, int]:
    """``crashkernel=256M``: memblock takes it below 4 GiB, top down, and accepts it.  After the
    boot the model takes the same kind of memory: the highest accepted free range below 4 GiB."""
    for z in reversed(state.allocator.zones):
        for s, e in reversed(list(z.free_accepted)):
            if e <= 4 << 30 and e - s >= size:
                return e - size, e
    raise SafetyViolation("crashkernel", "kernel", 0, 0, "no accepted range below 4 GiB for crashkernel=")


def dump_read_ranges(ram: RangeSet, mem: UnacceptedMemory, skip_unaccepted: bool) -> RangeSet:
    """Pages a dump of all RAM reads (/proc/vmcore, /proc/kcore).

    With the skip, pages ``pfn_is_unaccepted_memory()`` reports are left out: every page of a set
    unit and, through the guard unit, the last page before a run of set units.
    """
    out = RangeSet(ram)
    table = mem.table
    if not skip_unaccepted or table is None:
        return out
    u, base = table.unit_size, table.phys_base
    for a, b in true_runs(table.bits):
        lo, hi = base + a * u, base + b * u
        if lo - PAGE_SIZE >= 0 and mem.range_contains_unaccepted(lo - PAGE_SIZE, PAGE_SIZE):
            lo -= PAGE_SIZE
        out.remove(lo, hi)
    return out


def read_dump(ram: RangeSet, mem: UnacceptedMemory, platform: Platform, skip_unaccepted: bool, actor: str) -> int:
    """Read every page the dump reads; returns the bytes read."""
    ranges = dump_read_ranges(ram, mem, skip_unaccepted)
    for s, e in ranges:
        platform.touch(s, e, actor=actor, vcpu=0)
    return ranges.total()
