"""The kernel's boot, phase by phase (guest/kernel.py through scenario.build.build_record).

Each expected value is computed here from the kernel's rule (the docstrings of guest/kernel.py,
guest/page_alloc.py and guest/footprint.py, which follow mm/, init/main.c and kernel/dma/swiotlb.c;
the BootFootprint defaults), from the firmware's hand-off and from the configuration, never read
from the model's output.  The boot is instrumented: every platform accept and touch is logged in
order, and the platform's accepted memory is recorded at the start of every phase.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from conftest import request_for
from lazyaccept.base.choices import BootPhase
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptEvent, AcceptStats, ConvertEvent, Phase, Recorder, WorkEvent
from lazyaccept.base.units import CHUNK_SIZE, PAGE_SIZE, GiB, KiB, MiB, align_down, align_up
from lazyaccept.formats.e820 import E820_TYPE_RAM
from lazyaccept.formats.efi_memmap import MemoryType
from lazyaccept.formats.unaccepted import HEADER_SIZE
from lazyaccept.guest.footprint import BootFootprint
from lazyaccept.guest.page_alloc import BootFailure
from lazyaccept.platform.base import Platform
from lazyaccept.scenario import build
from lazyaccept.scenario.boot_record import BootRecord
from lazyaccept.scenario.config import VMConfig

G4 = 4 * GiB
SECTION = 128 * MiB  # SPARSEMEM section on x86-64
PAGES_PER_SECTION = SECTION // PAGE_SIZE
CHUNK_PAGES = CHUNK_SIZE // PAGE_SIZE  # MAX_ORDER_NR_PAGES: one 4 MiB chunk
UNIT = 2 * MiB  # the bitmap unit the EFI stub uses
#: The phases of a boot, in boot order (init/main.c: start_kernel(), then kernel_init()).
BOOT_PHASES = [
    "firmware", "firmware-accept",
    # start_kernel(): the EFI stub, setup_arch()/mm_core_init(), memblock_free_all(), the early
    # page allocations, then arch_cpu_finalize_init() -> mem_encrypt_init() (before rest_init())
    "efi-stub", "early-init", "memblock-free", "early-allocs", "mem-encrypt-init",
    # kernel_init_freeable(): smp_init(), page_alloc_init_late() (deferred struct pages), then
    # do_basic_setup(): initcalls up to subsys, fs (clocksource_done_booting), device and late
    "smp-bringup", "deferred-init", "early-initcalls", "fs-initcalls", "initcalls",
    "userspace",
]
KERNEL_PHASES = BOOT_PHASES[BOOT_PHASES.index("efi-stub") :]
#: Phases the boot vCPU runs alone, before smp_init() brings the APs up.
BEFORE_SMP = ["efi-stub", "early-init", "memblock-free", "early-allocs", "mem-encrypt-init"]
#: From smp_init() until clocksource_done_booting() (an fs_initcall) no CPU can leave the periodic tick.
PERIODIC_TICK = ["smp-bringup", "deferred-init", "early-initcalls"]
AFTER_NOHZ = ["fs-initcalls", "initcalls", "userspace"]
MEMBLOCK_ALLOCS = ["page-tables", "memmap", "dentry-hash", "inode-hash", "percpu", "swiotlb"]
#: The page allocator's zones on x86-64 (no highmem): name, first and end address.
ZONES = (("DMA", 0, 16 * MiB), ("DMA32", 16 * MiB, G4), ("Normal", G4, 1 << 62))
#: sysctl_lowmem_reserve_ratio of the zones below Normal (mm/page_alloc.c, "256 256 32").
LOWMEM_RESERVE_RATIO = {"DMA": 256, "DMA32": 256}
WATERMARK_SCALE_FACTOR = 10  # vm.watermark_scale_factor, in 1/10000 of the zone
PAGEBLOCK_NR_PAGES = 512  # pageblock_order = HPAGE_PMD_ORDER = 9
MIGRATE_PCPTYPES = 3
IO_TLB_SIZE = 2 * KiB  # one SWIOTLB slab (1 << IO_TLB_SHIFT)
IO_TLB_SEGSIZE = 128  # slabs per segment; at least one segment per area

REAL_MAKE_PLATFORM = build.make_platform
REAL_BEGIN = Recorder.begin


# -- an instrumented boot ---------------------------------------------------------------------------
@dataclass
class Boot:
    """A boot with its log of platform operations and the accepted memory at each phase start."""

    rec: BootRecord
    #: ("phase", name) | ("accept", actor, start, end) | ("touch", actor, start, end), in order.
    log: list[tuple] = field(default_factory=list)
    accepted_at_start: dict[str, RangeSet] = field(default_factory=dict)
    #: What the helpers below derive once per boot (RAM, freed memory); they hand out copies.
    derived: dict[str, RangeSet] = field(default_factory=dict, repr=False)

    def phase(self, name: str) -> Phase:
        (p,) = [p for p in self.rec.phases if p.name == name]
        return p

    def accepts(self, name: str) -> list[AcceptEvent]:
        return [e for e in self.phase(name).events if isinstance(e, AcceptEvent)]

    def converts(self, name: str) -> list[ConvertEvent]:
        return [e for e in self.phase(name).events if isinstance(e, ConvertEvent)]

    def works(self, name: str, kind: str) -> list[WorkEvent]:
        return [e for e in self.phase(name).events if isinstance(e, WorkEvent) and e.kind == kind]

    def ops(self, name: str) -> Iterator[tuple]:
        """The logged accepts and touches done during phase ``name``."""
        current = None
        for op in self.log:
            if op[0] == "phase":
                current = op[1]
            elif current == name:
                yield op

    def touched_bytes(self, name: str, actor: str) -> int:
        return sum(op[3] - op[2] for op in self.ops(name) if op[0] == "touch" and op[1] == actor)

    def accepted_after(self, name: str) -> RangeSet:
        i = [p.name for p in self.rec.phases].index(name)
        if i + 1 < len(self.rec.phases):
            return self.accepted_at_start[self.rec.phases[i + 1].name]
        return self.rec.platform.accepted()


def instrumented_boot(monkeypatch: pytest.MonkeyPatch, config: VMConfig) -> Boot:
    """build_record(config), logging every platform accept and touch and, at every phase start,
    the platform's accepted memory."""
    log: list[tuple] = []
    accepted_at_start: dict[str, RangeSet] = {}
    platforms: list[Platform] = []

    def make_platform(cfg: VMConfig) -> Platform:
        p = REAL_MAKE_PLATFORM(cfg)
        accept, touch = p.accept, p.touch

        def logged_accept(start: int, end: int, **kw: Any) -> AcceptStats:
            log.append(("accept", kw["actor"], start, end))
            return accept(start, end, **kw)

        def logged_touch(start: int, end: int, **kw: Any) -> None:
            log.append(("touch", kw["actor"], start, end))
            touch(start, end, **kw)

        p.accept, p.touch = logged_accept, logged_touch  # type: ignore[method-assign]
        platforms.append(p)
        return p

    def begin(self: Recorder, name: str, actor: str, online_vcpus: int = 1, tick_hz: int = 0) -> Phase:
        accepted_at_start[str(name)] = platforms[-1].accepted()
        log.append(("phase", str(name)))
        return REAL_BEGIN(self, name, actor, online_vcpus, tick_hz)

    monkeypatch.setattr(build, "make_platform", make_platform)
    monkeypatch.setattr(Recorder, "begin", begin)
    return Boot(build.build_record(config), log, accepted_at_start)


@pytest.fixture
def boot(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Boot]:
    """``boot(memory, platform, kconfig=(...), patches=(...), footprint=..., **request)``: an
    instrumented boot, of the mainline kernel with 4 vCPUs unless told; build options, guest
    patches and footprint go over the request (``dataclasses.replace``) before it is resolved."""

    def run(memory: int, platform: str = "tdx", *, kconfig: tuple[str, ...] = (),
            patches: tuple[str, ...] | None = None, footprint: BootFootprint | None = None, **kw: Any) -> Boot:
        kw.setdefault("vcpus", 4)
        kw.setdefault("kernel", "mainline")
        req = dataclasses.replace(request_for(memory, platform, **kw), kconfig=tuple(kconfig), patches=patches)
        if footprint is not None:
            req = dataclasses.replace(req, footprint=footprint)
        return instrumented_boot(monkeypatch, req.resolve())

    return run


# -- the kernel's inputs, derived from the firmware's hand-off -----------------------------------------
def ram_of(b: Boot) -> RangeSet:
    """memblock.memory: the e820 RAM, plus the unaccepted table's pages (in ACPI-reclaim memory,
    memblock_add()ed so the kernel can map it, in the releases that do: [page of the table, page
    after its end))."""
    return _ram(b).copy()


def _ram(b: Boot) -> RangeSet:
    """ram_of(b), computed once per boot; not to be changed."""
    if "ram" not in b.derived:
        ram = RangeSet((e.addr, e.end) for e in b.rec.kernel.e820 if e.type == E820_TYPE_RAM)
        if getattr(b.rec.config.kernel, "table_memblock_add", True):  # since 8dbe33956d96
            ram.update(table_pages(b))
        b.derived["ram"] = ram
    return b.derived["ram"]


def table_pages(b: Boot) -> list[tuple[int, int]]:
    stub = b.rec.kernel.stub
    if stub.table is None or stub.table_addr is None:
        return []
    end = stub.table_addr + HEADER_SIZE + stub.table.size
    return [(align_down(stub.table_addr, PAGE_SIZE), align_up(end, PAGE_SIZE))]


def unaccepted_at_handoff(b: Boot) -> list[tuple[int, int]]:
    memmap = b.rec.firmware.memory_map
    return [(d.physical_start, d.end) for d in memmap if d.type == MemoryType.EfiUnacceptedMemoryType]


def pages(ram: RangeSet, lo: int = 0, hi: int = 1 << 62) -> int:
    return sum(e - s for s, e in ram.intersection(lo, hi)) // PAGE_SIZE


def freed_memory(b: Boot) -> RangeSet:
    """What the buddy allocator gets (memblock_free_all() and the deferred init together): the
    RAM that memblock did not reserve (the first MiB, the kernel image, the table) or allocate."""
    if "freed" not in b.derived:
        freed = ram_of(b)
        for s, e in [(0, 1 * MiB), b.rec.firmware.kernel_image, *table_pages(b)]:
            freed.remove(s, e)
        for ev in b.accepts("early-init"):
            freed.remove(ev.start, ev.end)
        b.derived["freed"] = freed
    return b.derived["freed"].copy()


def highest_zone(ram: RangeSet) -> tuple[int, int]:
    """The highest populated zone (Normal from 4 GiB, else DMA32 from 16 MiB): first and last RAM byte."""
    lo = G4 if ram.overlaps(G4, 1 << 62) else 16 * MiB
    pieces = ram.intersection(lo, 1 << 62)
    return pieces[0][0], pieces[-1][1]


def deferred_start(ram: RangeSet, deferred_struct_page_init: bool = True) -> int | None:
    """defer_init() (mm/mm_init.c), with DEFERRED_STRUCT_PAGE_INIT=y only: in the node's last zone,
    counting its RAM pages from its start, the first section-aligned pfn reached once more than
    PAGES_PER_SECTION pages (that pfn included) have been initialised; None when there is none."""
    if not deferred_struct_page_init:
        return None
    start, end = highest_zone(ram)
    for a in range(align_up(start, SECTION), end, SECTION):
        if ram.contains(a, a + PAGE_SIZE) and pages(ram, start, a) + 1 > PAGES_PER_SECTION:
            return a
    return None


def roundup_pow_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def swiotlb_bytes(total: int, vcpus: int, sized_by_ram: bool = True) -> int:
    """The default SWIOTLB buffer: mem_encrypt_setup_arch() asks for 6% of memory clamped to
    [IO_TLB_DEFAULT_SIZE = 64 MiB, 1 GiB] (else the 64 MiB default stays); swiotlb_adjust_size()
    makes that whole segments of 2 KiB slabs; swiotlb_adjust_nareas(num_possible_cpus()) takes
    one area per CPU rounded up to a power of two, and round_up_default_nslabs() gives every area
    at least one segment and rounds the slab count up to a power of two."""
    size = min(max(total * 6 // 100, 64 * MiB), 1 * GiB) if sized_by_ram else 64 * MiB
    nslabs = align_up(-(-size // IO_TLB_SIZE), IO_TLB_SEGSIZE)
    nareas = roundup_pow_of_two(vcpus)
    nslabs = roundup_pow_of_two(max(nslabs, IO_TLB_SEGSIZE * nareas))
    return nslabs * IO_TLB_SIZE


def memblock_sizes(ram: RangeSet, vcpus: int) -> dict[str, int]:
    """The early memblock allocations, by the kernel's rules, page-aligned as memblock does."""
    total = ram.total()  # memblock_phys_mem_size()
    sections = {s // SECTION for a, b in ram for s in range(align_down(a, SECTION), b, SECTION)}
    sizes = {
        # direct-map page tables: 4 KiB per GiB mapped (1 GiB pages), at least one page
        "page-tables": max(PAGE_SIZE, total // GiB * PAGE_SIZE),
        # sparse vmemmap: a 64-byte struct page for each page of every present 128 MiB section
        "memmap": len(sections) * (SECTION // PAGE_SIZE) * 64,
        # alloc_large_system_hash(): 8-byte buckets, one per 2^13 bytes (dentry), 2^14 (inode)
        "dentry-hash": roundup_pow_of_two(total // PAGE_SIZE // 2) * 8,
        "inode-hash": roundup_pow_of_two(total // PAGE_SIZE // 4) * 8,
        # the per-CPU first chunk: one 512 KiB unit per possible CPU
        "percpu": vcpus * 512 * KiB,
        # the SWIOTLB bounce buffer (6% of memory, clamped, in a power of two of slabs)
        "swiotlb": swiotlb_bytes(total, vcpus),
    }
    return {k: align_up(v, PAGE_SIZE) for k, v in sizes.items()}


def top_down(free: RangeSet, size: int, limit: int | None) -> tuple[int, int]:
    """memblock_alloc(): the highest page-aligned ``size`` bytes of free memory below ``limit``."""
    for s, e in reversed(free.intersection(0, limit if limit is not None else 1 << 62)):
        start = align_down(e - size, PAGE_SIZE)
        if start >= s:
            free.remove(start, start + size)
            return start, start + size
    raise AssertionError(f"no room for {size:#x} bytes")


def thread_slices(start: int, end: int, vcpus: int) -> list[tuple[int, int]]:
    """deferred_init_memmap(): padata splits [start, end) into section-aligned pieces, one per
    thread, at most one thread per vCPU and per section."""
    sections = math.ceil((end - start) / SECTION)
    threads = min(vcpus, sections)
    per = math.ceil(sections / threads) * SECTION
    return [(start + t * per, min(start + (t + 1) * per, end)) for t in range(threads)]


# -- zones and watermarks, by the kernel's rules ----------------------------------------------------------
@dataclass(frozen=True)
class Marks:
    min: int
    low: int
    high: int
    promo: int
    lowmem_reserve: int


def managed_by_zone(b: Boot) -> dict[str, int]:
    """Managed pages of each populated zone once everything is freed: its share of the freed memory."""
    ram, freed = ram_of(b), freed_memory(b)
    return {name: pages(freed, lo, hi) for name, lo, hi in ZONES if ram.overlaps(lo, hi)}


def per_zone_marks(managed: dict[str, int], min_free_kbytes: int) -> dict[str, Marks]:
    """__setup_per_zone_wmarks(): each zone's share of min_free_kbytes is its min watermark; low,
    high and promo add one step each, a quarter of min or watermark_scale_factor of the zone,
    whichever is larger.  setup_per_zone_lowmem_reserve(): a lower zone keeps back, from
    allocations that could use the zones above it (GFP_KERNEL: up to Normal), the managed pages
    of those zones divided by its ratio."""
    lowmem_pages = sum(managed.values())
    pages_min = min_free_kbytes // (PAGE_SIZE // KiB)
    names = list(managed)
    out = {}
    for i, name in enumerate(names):
        wmin = pages_min * managed[name] // lowmem_pages
        step = max(wmin >> 2, managed[name] * WATERMARK_SCALE_FACTOR // 10000)
        above = sum(managed[n] for n in names[i + 1 :])
        reserve = above // LOWMEM_RESERVE_RATIO[name] if above else 0
        out[name] = Marks(wmin, wmin + step, wmin + 2 * step, wmin + 3 * step, reserve)
    return out


def min_free_kbytes_at_postcore(managed: dict[str, int]) -> int:
    """init_per_zone_wmark_min() -> calculate_min_free_kbytes(): int_sqrt(lowmem_kbytes * 16),
    clamped to [128, 262144] kB; lowmem_kbytes is nr_free_buffer_pages(), i.e. every managed page
    while the watermarks are still 0."""
    lowmem_kbytes = sum(managed.values()) * (PAGE_SIZE // KiB)
    return min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)


def thp_min_free_kbytes(managed: dict[str, int], min_free_kbytes: int) -> int:
    """set_recommended_min_free_kbytes() (mm/khugepaged.c): 2 free pageblocks plus
    MIGRATE_PCPTYPES^2 pageblocks per populated zone, at most 5% of nr_free_buffer_pages() (the
    managed pages above each zone's high watermark), replaces min_free_kbytes when larger."""
    populated = sum(1 for m in managed.values() if m)
    recommended = PAGEBLOCK_NR_PAGES * populated * (2 + MIGRATE_PCPTYPES * MIGRATE_PCPTYPES)
    marks = per_zone_marks(managed, min_free_kbytes)
    nr_free_buffer_pages = sum(max(0, managed[n] - marks[n].high) for n in managed)
    recommended_kb = min(recommended, nr_free_buffer_pages // 20) * (PAGE_SIZE // KiB)
    return max(min_free_kbytes, recommended_kb)


# -- what freeing memory leaves on the zone's lists -----------------------------------------------------
def chunk_has_unaccepted(b: Boot, c: int) -> bool:
    """range_contains_unaccepted_memory() on the 4 MiB chunk at ``c``, the guard unit after it
    included, as the memory stood at the start of memblock-free."""
    acc, ram = b.accepted_at_start["memblock-free"], _ram(b)
    span = (c, min(c + CHUNK_SIZE + UNIT, ram.last()))
    return any(ram.overlaps(s, e) for s, e in acc.gaps(*span))


def chunks_with_unaccepted(b: Boot, lo: int, hi: int) -> list[tuple[int, int]]:
    """Whole 4 MiB chunks of [lo, hi) that still had unaccepted memory (or a guard unit after them)
    at the start of memblock-free."""
    ram = ram_of(b)
    hi = min(hi, ram.last() or lo)
    return [
        (c, c + CHUNK_SIZE)
        for c in range(align_up(lo, CHUNK_SIZE), align_down(hi, CHUNK_SIZE), CHUNK_SIZE)
        if ram.contains(c, c + CHUNK_SIZE) and chunk_has_unaccepted(b, c)
    ]


def lazy_free(b: Boot, lo: int, hi: int) -> tuple[list[tuple[int, int]], int]:
    """__free_pages_memory() of the freed memory in [lo, hi), lazily: each free range's naturally
    aligned whole chunks are parked when they have unaccepted memory; everything else (the
    partial chunks at the ends, accepted on the spot, and wholly accepted chunks) goes to the
    buddy lists.  Returns the parked chunks and the accepted pages freed."""
    parked, accepted = [], 0
    for s, e in freed_memory(b).intersection(lo, hi):
        cs, ce = align_up(s, CHUNK_SIZE), align_down(e, CHUNK_SIZE)
        if cs >= ce:
            accepted += (e - s) // PAGE_SIZE
            continue
        accepted += (cs - s + e - ce) // PAGE_SIZE
        for c in range(cs, ce, CHUNK_SIZE):
            if chunk_has_unaccepted(b, c):
                parked.append((c, c + CHUNK_SIZE))
            else:
                accepted += CHUNK_PAGES
    return parked, accepted


def page_alloc_taken(b: Boot, phases: list[str]) -> RangeSet:
    """The pages the page allocator handed out (and touched) during ``phases``."""
    taken = RangeSet()
    for name in phases:
        for op in b.ops(name):
            if op[0] == "touch" and op[1].startswith("page_alloc:") and not op[1].endswith(":zeropad"):
                taken.add(op[2], op[3])
    return taken


# -- order, vCPUs and ticks ----------------------------------------------------------------------------
def test_boot_phases_are_the_first_boot_phase_members():
    # The recorded order is the enum's: its members start with the boot's phases, in boot order.
    assert [p.value for p in BootPhase][: len(BOOT_PHASES)] == BOOT_PHASES


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_phases_come_in_boot_order(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    assert [p.name for p in b.rec.phases] == BOOT_PHASES
    assert [op[1] for op in b.log if op[0] == "phase"] == BOOT_PHASES


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("vcpus", [1, 4])
def test_online_vcpus_per_phase(boot, platform, vcpus):
    b = boot(16 * GiB, platform, vcpus=vcpus)
    online = {p.name: p.online_vcpus for p in b.rec.phases}
    # The boot vCPU alone until smp_init(), which starts with it alone too and brings the others
    # up; all of them from then on.
    expected = {n: 1 if n in BEFORE_SMP or n == "smp-bringup" else vcpus for n in KERNEL_PHASES}
    assert {n: online[n] for n in KERNEL_PHASES} == expected
    # The APs come online one at a time, each when its bring-up step on the boot vCPU ends.
    onlines = [e for e in b.phase("smp-bringup").events if isinstance(e, WorkEvent) and e.onlines]
    assert [(e.kind, e.vcpu, e.onlines) for e in onlines] == [("smp_bringup", 0, 1)] * (vcpus - 1)
    assert online["smp-bringup"] + sum(e.onlines for e in onlines) == online["deferred-init"] == vcpus
    # No event runs on a vCPU that is not online at that point of its phase.
    for p in b.rec.phases:
        now = p.online_vcpus
        for e in p.events:
            assert 0 <= e.vcpu < now, (p.name, e)
            now += e.onlines if isinstance(e, WorkEvent) else 0
        assert now <= vcpus, p.name
    assert all(e.onlines == 0 for p in b.rec.phases if p.name != "smp-bringup"
               for e in p.events if isinstance(e, WorkEvent))


@pytest.mark.parametrize("hz", [250, 1000])
@pytest.mark.parametrize("no_hz_idle", [True, False], ids=["NO_HZ_IDLE=y", "NO_HZ_IDLE=n"])
def test_idle_vcpus_tick_at_hz_until_nohz(boot, hz, no_hz_idle):
    kconfig = (f"NO_HZ_IDLE={'y' if no_hz_idle else 'n'}",) + (() if hz == 250 else (f"HZ={hz}",))
    b = boot(16 * GiB, kconfig=kconfig)
    assert b.rec.config.kconfig.hz == hz  # 250: the distribution default
    tick = {p.name: p.tick_hz for p in b.rec.phases}
    # No idle online vCPU before SMP (only the busy boot vCPU, or firmware); from smp_init() every
    # online vCPU takes the periodic tick until clocksource_done_booting() (fs_initcall) lets
    # NOHZ start; after that idle vCPUs stop ticking, unless the kernel is built without NO_HZ_IDLE.
    expected = {n: 0 for n in BOOT_PHASES[: BOOT_PHASES.index("smp-bringup")]}
    expected |= {n: hz for n in PERIODIC_TICK}
    expected |= {n: 0 if no_hz_idle else hz for n in AFTER_NOHZ}
    assert tick == expected


# -- firmware and EFI stub -----------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["tdx", "snp"])
def test_firmware_phases(boot, platform):
    b = boot(16 * GiB, platform)
    # Build-time additions are not acceptance: the first phase accepts nothing.
    assert b.accepts("firmware") == [] and not [op for op in b.ops("firmware") if op[0] == "accept"]
    events = b.accepts("firmware-accept")
    assert events and {e.actor for e in events} == {"firmware"}
    # Upstream firmware accepts RAM below 4 GiB and hands the rest over unaccepted.
    assert all(e.end <= G4 for e in events)
    assert unaccepted_at_handoff(b) == [(G4, G4 + 14 * GiB)]
    assert b.accepted_after("firmware-accept").contains(1 * MiB, 2 * GiB)


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("firmware_accept", ["below-4g", "1025M"])
def test_efi_stub_accepts_the_unaligned_heads_and_tails(boot, platform, firmware_accept):
    b = boot(8 * GiB, platform, firmware_accept=firmware_accept)
    assert len(b.works("efi-stub", "kernel_decompress")) == 1
    # process_unaccepted_memory(): whole units go to the bitmap; the partial unit at each end of
    # an unaccepted descriptor is accepted at once (whole if shorter than two units).
    expected = []
    for s, e in unaccepted_at_handoff(b):
        if e - s < 2 * UNIT:
            expected.append((s, e, "small-range"))
            continue
        if s % UNIT:
            expected.append((s, align_up(s, UNIT), "head"))
        if e % UNIT:
            expected.append((align_down(e, UNIT), e, "tail"))
    got = [(e.start, e.end, e.reason) for e in b.accepts("efi-stub")]
    assert sorted(got) == sorted(expected)
    assert all(e.actor == "efistub" and e.vcpu == 0 for e in b.accepts("efi-stub"))
    if firmware_accept == "1025M":
        assert expected  # the partial accept ends mid-unit: there is a head to accept
    # The stub accepts nothing else.
    assert [(op[2], op[3]) for op in b.ops("efi-stub") if op[0] == "accept"] == [(s, e) for s, e, _ in got]


# -- early init: memblock ----------------------------------------------------------------------------------
EARLY_INIT_CASES = [
    pytest.param(1 * GiB, "tdx", {}, id="1G-all-low-swiotlb-min"),
    pytest.param(16 * GiB, "tdx", {}, id="16G-tdx"),
    pytest.param(16 * GiB, "snp", {}, id="16G-snp"),
    pytest.param(64 * GiB, "tdx", {"vcpus": 8}, id="64G-swiotlb-max"),
    pytest.param(8 * GiB, "tdx", {"firmware_accept": "1025M"}, id="8G-swiotlb-over-unaccepted-tdx"),
    pytest.param(8 * GiB, "snp", {"firmware_accept": "1025M", "policy": "eager"}, id="8G-eager-snp"),
]


@pytest.mark.parametrize("memory, platform, kw", EARLY_INIT_CASES)
def test_early_init_memblock_allocations(boot, memory, platform, kw):
    b = boot(memory, platform, **kw)
    vcpus = b.rec.config.vcpus
    ram = ram_of(b)
    assert b.rec.kernel.memblock.memory == ram
    events = b.accepts("early-init")
    assert [e.reason for e in events] == MEMBLOCK_ALLOCS
    assert all(e.actor == "memblock" and e.vcpu == 0 for e in events)
    # Sizes by the kernel's rules, placed top-down in the memory memblock did not reserve (the
    # first MiB, the kernel image, the table); SWIOTLB below 4 GiB (memblock_alloc_low()).
    sizes = memblock_sizes(ram, vcpus)
    free = ram.copy()
    for s, e in [(0, 1 * MiB), b.rec.firmware.kernel_image, *table_pages(b)]:
        free.remove(s, e)
    for ev in events:
        limit = G4 if ev.reason == "swiotlb" else None
        assert (ev.start, ev.end) == top_down(free, sizes[ev.reason], limit), ev.reason
    swiotlb = events[-1]
    assert swiotlb.end <= G4
    size = swiotlb.end - swiotlb.start
    assert size & (size - 1) == 0  # a power of two of 2 KiB slabs
    if memory == 1 * GiB:
        assert size == 64 * MiB  # 6% of ~1 GiB is below the minimum
    if memory == 8 * GiB:
        assert size == 512 * MiB  # 6% of 8 GiB (~492 MiB) rounded up to a power of two
    if memory == 16 * GiB:
        assert size == 1 * GiB  # 6% of 16 GiB (~983 MiB) rounded up to a power of two
    if memory == 64 * GiB:
        assert size == 1 * GiB  # 6% of 64 GiB is above the maximum
    # struct pages of the memory before the deferred part are initialised here.
    start = deferred_start(ram)
    (memmap_init,) = b.works("early-init", "memmap_init")
    assert memmap_init.amount == pages(ram, 0, start if start is not None else 1 << 62)


@pytest.mark.parametrize("memory, platform, kw", EARLY_INIT_CASES)
def test_early_init_accepts_each_allocation_before_touching_it(boot, memory, platform, kw):
    b = boot(memory, platform, **kw)
    events = {e.reason: e for e in b.accepts("early-init")}
    # Units unaccepted at hand-off (whole units of the unaccepted descriptors; the stub accepted
    # the partial ones); accept_memory() accepts every unit the range reaches, plus the guard unit
    # after a range that ends on a unit boundary.
    assert b.rec.config.kernel.guard_unit
    unaccepted = set()
    for s, e in unaccepted_at_handoff(b):
        if e - s >= 2 * UNIT:  # shorter ones the stub accepted whole
            unaccepted.update(range(align_up(s, UNIT) // UNIT, align_down(e, UNIT) // UNIT))
    accepted = b.accepted_at_start["early-init"].copy()
    touched = []
    step: list[tuple] = []
    for op in b.ops("early-init"):
        if op[0] == "accept":
            step.append(op)
            accepted.add(op[2], op[3])
            continue
        kind, actor, s, e = op
        assert actor.startswith("memblock:")
        name = actor.removeprefix("memblock:")
        ev = events[name]
        assert (s, e) == (ev.start, ev.end)
        assert accepted.contains(s, e), f"{name} touched before it was accepted"
        assert all(a[1] == "memblock" for a in step)
        reached = set(range(s // UNIT, (e + (UNIT if e % UNIT == 0 else 0) - 1) // UNIT + 1))
        newly = reached & unaccepted
        unaccepted -= newly
        assert ev.stats.bytes_accepted == len(newly) * UNIT, name
        # What this allocation needed was accepted in its own step, right before its touch.
        assert bool(step) == bool(newly), name
        touched.append(name)
        step = []
    assert touched == MEMBLOCK_ALLOCS
    if memory > 4 * GiB:
        assert events["memmap"].stats.bytes_accepted > 0  # above 4 GiB: the kernel had to accept it
    if kw.get("firmware_accept") == "1025M":
        assert events["swiotlb"].stats.bytes_accepted > 0  # below 4 GiB but left unaccepted


@pytest.mark.parametrize("vcpus", [1, 248])
@pytest.mark.parametrize("memory, size", [(4 * GiB, 256 * MiB), (6 * GiB, 512 * MiB), (64 * GiB, 1 * GiB)],
                         ids=["4G", "6G", "64G"])
def test_swiotlb_size(boot, memory, size, vcpus):
    b = boot(memory, vcpus=vcpus)
    total = ram_of(b).total()
    (ev,) = [e for e in b.accepts("early-init") if e.reason == "swiotlb"]
    # 6% of RAM (4 GiB: ~246 MiB; 6 GiB: ~369 MiB; 64 GiB: ~3.8 GiB, clamped to 1 GiB), rounded
    # up to a power of two of 2 KiB slabs.
    assert ev.end - ev.start == size == swiotlb_bytes(total, vcpus)
    by_ram = min(max(total * 6 // 100, 64 * MiB), 1 * GiB)
    assert by_ram <= size < 2 * by_ram
    # One area per possible CPU, rounded up to a power of two, each of at least one 128-slab
    # segment: 248 vCPUs -> 256 areas -> at least 64 MiB, no more than the RAM rule's minimum;
    # so the vCPU count does not change the size here.
    assert IO_TLB_SEGSIZE * roundup_pow_of_two(vcpus) * IO_TLB_SIZE == (64 * MiB if vcpus == 248 else 256 * KiB)
    assert swiotlb_bytes(total, 1) == swiotlb_bytes(total, 248) == size
    # ... though with more than 256 CPUs the areas alone would ask for more.
    assert swiotlb_bytes(1 * GiB, 512) == 128 * MiB > swiotlb_bytes(1 * GiB, 248) == 64 * MiB


@pytest.mark.parametrize(
    "kernel, amd_mem_encrypt, sized",
    [("6.6", "n", False), ("6.5", "n", False), ("6.6", "y", True), ("6.7", "n", True), ("mainline", "n", True)],
)
def test_swiotlb_sizing_of_a_tdx_guest_needs_amd_mem_encrypt_before_6_7(boot, kernel, amd_mem_encrypt, sized):
    # In 6.5 and 6.6 the 6%-of-RAM sizing is in sev_setup_arch(), built only with
    # CONFIG_AMD_MEM_ENCRYPT; 6.7 moved it to mem_encrypt_setup_arch() for every CoCo guest.
    b = boot(8 * GiB, kernel=kernel, kconfig=(f"AMD_MEM_ENCRYPT={amd_mem_encrypt}",))
    (ev,) = [e for e in b.accepts("early-init") if e.reason == "swiotlb"]
    assert ev.end - ev.start == swiotlb_bytes(ram_of(b).total(), 4, sized_by_ram=sized)
    assert ev.end - ev.start == (512 * MiB if sized else 64 * MiB)


# -- memblock_free_all, early allocations, SWIOTLB conversion, SMP bring-up ---------------------------------
@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_memblock_free_parks_or_accepts_the_non_deferred_memory(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    ram = ram_of(b)
    start = deferred_start(ram)
    assert start == G4 + SECTION  # the Normal zone starts at 4 GiB: one section is initialised early
    assert b.rec.kernel.deferred_start == start
    chunks = chunks_with_unaccepted(b, 0, start)
    assert chunks == [(c, c + CHUNK_SIZE) for c in range(G4, start, CHUNK_SIZE)]
    events = b.accepts("memblock-free")
    after = b.accepted_after("memblock-free")
    if policy == "eager":
        # Every chunk with unaccepted memory is accepted as it is freed (one request per chunk,
        # consecutive chunks in one accept_memory() call): nothing below the deferred part is
        # left unaccepted.
        assert [(e.start, e.end, e.reason, e.requests) for e in events] == [(G4, start, "eager", len(chunks))]
        assert len(chunks) == SECTION // CHUNK_SIZE == 32
        assert all(after.contains(s, e) for s, e in ram.intersection(0, start))
    else:
        # Lazy: whole chunks are parked on the zone's list, untouched.
        assert events == []
        assert after == b.accepted_at_start["memblock-free"]
    assert all(e.actor == "memblock_free_all" and e.vcpu == 0 for e in events)
    # What was freed: the RAM below the deferred part that memblock did not reserve (the first
    # MiB, the kernel image, the table) or allocate.
    assert b.rec.kernel.free_after_memblock == pages(freed_memory(b), 0, start)


@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_without_deferred_struct_page_init_everything_is_freed_at_memblock_free(boot, policy):
    # DEFERRED_STRUCT_PAGE_INIT=n (x86_64_defconfig, Dstack's guest): mem_init() initialises every
    # struct page and memblock_free_all() frees all memory; nothing is left for later.
    b = boot(16 * GiB, policy=policy, kconfig=("DEFERRED_STRUCT_PAGE_INIT=n",))
    ram = ram_of(b)
    assert deferred_start(ram) is not None  # it would defer with =y
    assert b.rec.kernel.deferred_start is None
    (memmap_init,) = b.works("early-init", "memmap_init")
    assert memmap_init.amount == pages(ram)
    freed = freed_memory(b)
    assert b.rec.kernel.free_after_memblock == pages(freed)
    chunks = lazy_free(b, 0, ram.last())[0]  # the whole chunks of the freed memory with unaccepted memory
    assert len(chunks) > 2 * SECTION // CHUNK_SIZE  # all of the Normal zone, not one section of it
    events = b.accepts("memblock-free")
    before, after = b.accepted_at_start["memblock-free"], b.accepted_after("memblock-free")
    if policy == "eager":
        assert sum(e.requests for e in events if e.reason == "eager") == len(chunks)
        assert all(after.contains(s, e) for s, e in ram)
        assert b.accepts("early-allocs") == []
    else:
        # Parked untouched; then each early allocation accepts the chunk at the head of the list.
        assert {e.reason for e in events} <= {"sub-chunk"}
        assert all(after.intersection(s, e) == before.intersection(s, e) for s, e in chunks)
        n = b.rec.config.footprint.early_page_allocs
        assert [(e.start, e.end, e.reason) for e in b.accepts("early-allocs")] == [
            (s, e, "zero-watermark") for s, e in chunks[:n]
        ]
    # No deferred growth and no deferred-init threads.
    assert all(b.works(n, "struct_page_init") == [] for n in KERNEL_PHASES)
    assert b.accepts("deferred-init") == []


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_early_allocations_before_watermarks(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    fp = b.rec.config.footprint
    # early_page_allocs order-0 pages on the boot vCPU, each touched.
    assert b.touched_bytes("early-allocs", "page_alloc:early") == fp.early_page_allocs * PAGE_SIZE
    # Accepted pages were there to take: no zone needed to grow its deferred struct pages.
    assert b.works("early-allocs", "struct_page_init") == []
    events = b.accepts("early-allocs")
    if policy == "eager":
        assert events == []  # nothing is parked
        return
    # Watermarks are all 0: with the mainline rules (cond_accept_memory() accepting one chunk
    # when there is no watermark yet) each allocation takes one chunk off the head of the Normal
    # zone's list (FIFO, i.e. ascending from 4 GiB) and accepts it, while chunks remain.
    start = deferred_start(ram_of(b))
    parked = chunks_with_unaccepted(b, G4, start)
    n = min(fp.early_page_allocs, len(parked))
    assert n == 32 < fp.early_page_allocs  # the list runs dry: one section holds 32 chunks
    assert [(e.start, e.end, e.reason, e.requests) for e in events] == [
        (s, e, "zero-watermark", 1) for s, e in parked[:n]
    ]
    assert all(e.actor == "page_alloc:early" and e.vcpu == 0 for e in events)


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("patch", [None, "late-swiotlb-convert"])
@pytest.mark.parametrize("no_hz_idle", ["y", "n"])
def test_mem_encrypt_init_converts_the_swiotlb_buffer(boot, platform, patch, no_hz_idle):
    vcpus = 4
    b = boot(8 * GiB, platform, vcpus=vcpus, patches=(patch,) if patch else (), kconfig=(f"NO_HZ_IDLE={no_hz_idle}",))
    (swiotlb,) = [e for e in b.accepts("early-init") if e.reason == "swiotlb"]
    npages = (swiotlb.end - swiotlb.start) // PAGE_SIZE
    convert_phases = [n for n in KERNEL_PHASES if b.converts(n)]
    late = patch == "late-swiotlb-convert" and platform == "tdx"  # the patch touches TDX guests only
    if not late:
        # mem_encrypt_init() -> swiotlb_update_mem_attributes(): the whole buffer becomes shared
        # before smp_init(); TDX APs are still spinning in firmware inside the TD (each one must
        # be forced out for every page removed), SNP APs are not running yet.
        assert convert_phases == ["mem-encrypt-init"]
        (c,) = b.converts("mem-encrypt-init")
        in_guest = vcpus - 1 if platform == "tdx" else 0
    else:
        # Dstack 0010: at fs_initcall_sync, after clocksource_done_booting(): the idle APs halt
        # outside the TD, tickless with NO_HZ_IDLE, still ticking without it.
        assert convert_phases == ["fs-initcalls"]
        (c,) = b.converts("fs-initcalls")
        in_guest = 0 if no_hz_idle == "y" else vcpus - 1
    assert (c.actor, c.vcpu, c.pages, c.vcpus_in_guest, c.reason) == ("kernel", 0, npages, in_guest, "swiotlb")
    assert npages == 512 * MiB // PAGE_SIZE
    # Making memory shared accepts nothing.
    assert b.accepts("mem-encrypt-init") == [] and not [op for op in b.ops("mem-encrypt-init") if op[0] == "accept"]


@pytest.mark.parametrize(
    "vcpus, early_allocs", [(1, None), (3, None), (3, 16)], ids=["1", "3", "3-APs-accept-the-rest"]
)
def test_smp_bringup_on_the_boot_vcpu(boot, vcpus, early_allocs):
    footprint = BootFootprint(early_page_allocs=early_allocs) if early_allocs is not None else None
    b = boot(16 * GiB, vcpus=vcpus, footprint=footprint)
    fp = b.rec.config.footprint
    # Dstack measured the boot vCPU accepting ~13 GiB, a 4 MiB chunk per allocation, while it
    # brought up 247 APs: 13 allocations per AP.
    assert fp.page_allocs_per_ap == 13 * GiB // CHUNK_SIZE // 247 == 13
    works = b.works("smp-bringup", "smp_bringup")
    assert len(works) == vcpus - 1 and all(w.vcpu == 0 and w.onlines == 1 for w in works)
    for ap in range(1, vcpus):
        assert b.touched_bytes("smp-bringup", f"page_alloc:smp(cpu{ap})") == fp.page_allocs_per_ap * PAGE_SIZE
    assert {e.vcpu for e in b.phase("smp-bringup").events} <= {0}
    # Watermarks are still 0: each AP's allocations accept one chunk each (from the head of the
    # Normal zone's list) while the early allocations left chunks on it.
    parked = chunks_with_unaccepted(b, G4, deferred_start(ram_of(b)))
    left = parked[min(fp.early_page_allocs, len(parked)) :]
    expected = []
    for ap in range(1, vcpus):
        for _ in range(fp.page_allocs_per_ap):
            if left:
                s, e = left.pop(0)
                expected.append((s, e, "zero-watermark", f"page_alloc:smp(cpu{ap})"))
    assert [(e.start, e.end, e.reason, e.actor) for e in b.accepts("smp-bringup")] == expected
    assert all(e.vcpu == 0 and e.requests == 1 for e in b.accepts("smp-bringup"))
    if early_allocs == 16:
        # 16 chunks left: AP 1 accepts 13, AP 2 the last 3.
        assert [a for *_, a in expected] == ["page_alloc:smp(cpu1)"] * 13 + ["page_alloc:smp(cpu2)"] * 3


# -- deferred init ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "memory, vcpus",
    [(16 * GiB, 4), (16 * GiB, 1), (5 * GiB, 32), (1 * GiB, 2)],
    ids=["16G-4", "16G-1", "5G-32-more-vcpus-than-sections", "1G-2-deferred-in-dma32"],
)
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_deferred_init_threads(boot, memory, vcpus, policy):
    b = boot(memory, vcpus=vcpus, policy=policy)
    ram = ram_of(b)
    start = deferred_start(ram)
    assert start is not None and b.rec.kernel.deferred_start == start
    end = ram.last()
    # Mainline rules: nothing grew the zone before (the early allocations found accepted pages).
    assert all(b.works(n, "struct_page_init") == [] for n in ["early-allocs", "smp-bringup"])
    slices = thread_slices(start, end, vcpus)
    works = b.works("deferred-init", "struct_page_init")
    assert [(w.vcpu, w.amount) for w in works] == [(t, pages(ram, lo, hi)) for t, (lo, hi) in enumerate(slices)]
    assert sum(w.amount for w in works) == pages(ram, start)
    events = b.accepts("deferred-init")
    # Each thread frees (and, eager, accepts) only its own slice, on its own vCPU.
    for e in events:
        lo, hi = slices[e.vcpu]
        assert lo <= e.start < e.end <= hi and e.actor == "deferred_init"
    if policy == "lazy":
        assert {e.reason for e in events} <= {"sub-chunk"}  # whole chunks are parked
    if memory == 5 * GiB:
        # RAM above 4 GiB ends at 7 GiB: 3 GiB less the first section is 23 sections.
        assert len(slices) == math.ceil((end - start) / SECTION) == 23 < vcpus
    if memory == 1 * GiB:
        assert start == 256 * MiB  # DMA32 from 16 MiB: past 16 + 128 MiB, the next section boundary


@pytest.mark.parametrize("kernel", ["6.11", "6.12"])
@pytest.mark.parametrize(
    "memory, vcpus", [(16 * GiB, 4), (8 * GiB, 2), (16 * GiB, 248)], ids=["16G-4", "8G-2", "16G-248"]
)
def test_before_the_zero_watermark_fix_the_boot_vcpu_grows_the_deferred_memory_serially(boot, kernel, memory, vcpus):
    # 6.11 / 6.12.0: at watermark 0 cond_accept_memory() accepts nothing, proactive or forced.
    # get_page_from_freelist() then grows the deferred zone by a section (deferred_grow_zone())
    # and retries, on the allocating CPU: the Normal zone, whose free memory is all parked,
    # grows section after section on vCPU 0 until a section frees accepted pages.
    b = boot(memory, vcpus=vcpus, kernel=kernel)
    fp = b.rec.config.footprint
    ram = ram_of(b)
    start, end = deferred_start(ram), ram.last()
    assert start is not None
    # memblock-free left no accepted page in the Normal zone: [4 GiB, start) is all parked.
    parked, accepted = lazy_free(b, G4, start)
    assert parked == [(c, c + CHUNK_SIZE) for c in range(G4, start, CHUNK_SIZE)] and accepted == 0
    sections = [(lo, min(lo + SECTION, end)) for lo in range(start, end, SECTION)]
    freed_accepted = [lazy_free(b, lo, hi)[1] for lo, hi in sections]
    # Each allocation finding no accepted page in Normal grows the next section until one has.
    grown: dict[str, list[tuple[int, int]]] = {"early-allocs": [], "smp-bringup": []}
    available, i = 0, 0
    for name, allocs in [("early-allocs", fp.early_page_allocs), ("smp-bringup", fp.page_allocs_per_ap * (vcpus - 1))]:
        for _ in range(allocs):
            while available == 0 and i < len(sections):
                grown[name].append(sections[i])
                available += freed_accepted[i]
                i += 1
            available -= 1 if available else 0  # else DMA32 serves it
    left = sections[i:]
    for name, expected in grown.items():
        works = b.works(name, "struct_page_init")
        assert [(w.vcpu, w.amount) for w in works] == [(0, pages(ram, lo, hi)) for lo, hi in expected], name
        # Nothing accepted at watermark 0; only the partial chunks of the grown sections.
        for e in b.accepts(name):
            assert (e.actor, e.vcpu, e.reason) == ("deferred_grow_zone", 0, "sub-chunk")
            assert any(lo <= e.start < e.end <= hi for lo, hi in expected)
    assert len(grown["early-allocs"]) > len(sections) * 9 // 10  # nearly all of it, serially
    # Every section with memory to free was grown serially: the deferred-init threads get only
    # what is left (all of it memblock-reserved), free nothing and accept nothing.
    assert pages(freed_memory(b), left[0][0] if left else end, end) == 0
    assert b.accepts("deferred-init") == [] and not [op for op in b.ops("deferred-init") if op[0] == "accept"]
    threads = thread_slices(left[0][0], end, vcpus) if left else []
    works = b.works("deferred-init", "struct_page_init")
    assert [(w.vcpu, w.amount) for w in works] == [(t, pages(ram, lo, hi)) for t, (lo, hi) in enumerate(threads)]
    # Nothing is accepted before the watermarks exist: the pre-watermark allocations (no
    # deferred memory left to grow) fall back to DMA32.
    assert b.accepts("early-initcalls") == []


# -- what the policies leave -------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("memory, kw", [(16 * GiB, {}), (8 * GiB, {"firmware_accept": "1025M"})])
def test_eager_leaves_nothing_unaccepted_after_memblock_free_and_deferred_init(boot, platform, memory, kw):
    b = boot(memory, platform, policy="eager", **kw)
    ram = ram_of(b)
    start = deferred_start(ram)
    assert b.accepted_at_start["efi-stub"] != b.accepted_after("deferred-init")  # there was work to do
    after_free = b.accepted_after("memblock-free")
    assert all(after_free.contains(s, e) for s, e in ram.intersection(0, start))
    after_deferred = b.accepted_after("deferred-init")
    assert all(after_deferred.contains(s, e) for s, e in ram)
    # Nothing is accepted later, and the bitmap and the zone lists are empty.
    later = ["early-allocs", "mem-encrypt-init", "smp-bringup", "early-initcalls", "fs-initcalls", "initcalls",
             "userspace"]
    assert all(b.accepts(n) == [] for n in later)
    assert not b.rec.kernel.table.bits.any() and b.rec.kernel.allocator.nr_unaccepted() == 0


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize(
    "memory, kw", [(16 * GiB, {}), (8 * GiB, {"firmware_accept": "1025M"}), (5 * GiB, {"vcpus": 32})]
)
def test_lazy_bitmap_is_what_firmware_left_minus_what_the_kernel_accepted(boot, platform, memory, kw):
    b = boot(memory, platform, **kw)
    table = b.rec.kernel.table
    base, unit, n = table.phys_base, table.unit_size, table.bits.size
    assert unit == UNIT and b.rec.config.kernel.guard_unit
    expected = np.zeros(n, dtype=bool)
    for s, e in unaccepted_at_handoff(b):
        lo, hi = max(align_up(s, unit), base), min(align_down(e, unit), base + n * unit)
        if lo < hi:
            expected[(lo - base) // unit : (hi - base) // unit] = True
    for name in KERNEL_PHASES:
        for ev in b.accepts(name):
            # accept_memory() (not the stub's direct accepts) also takes the guard unit.
            end = ev.end + (unit if name != "efi-stub" and ev.end % unit == 0 else 0)
            lo, hi = max((ev.start - base) // unit, 0), min(-(-(end - base) // unit), n)
            if lo < hi:
                expected[lo:hi] = False
    assert expected.any()
    diff = np.flatnonzero(table.bits != expected)
    assert diff.size == 0, [(hex(base + int(i) * unit), bool(table.bits[i])) for i in diff[:10]]
    # ... and it is the truth: the RAM of a set unit is wholly unaccepted, of a clear one accepted.
    ram, acc = ram_of(b), b.rec.platform.accepted()
    for i in range(n):
        for s, e in ram.intersection(base + i * unit, base + (i + 1) * unit):
            assert (not acc.overlaps(s, e)) if expected[i] else acc.contains(s, e), hex(s)


# -- initcalls: the watermarks ---------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_early_initcalls_allocate_then_set_the_watermarks(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    fp = b.rec.config.footprint
    alloc = b.rec.kernel.allocator
    assert alloc.watermarks_ready
    # pre_watermark_allocs order-0 pages before init_per_zone_wmark_min() (postcore).
    assert fp.pre_watermark_allocs == 256
    assert b.touched_bytes("early-initcalls", "page_alloc:initcalls") == fp.pre_watermark_allocs * PAGE_SIZE
    events = b.accepts("early-initcalls")
    if policy == "eager":
        assert events == []
    else:
        # Watermarks still 0: each allocation accepts one chunk from the head of the Normal zone's
        # list, which now holds the chunks the deferred-init threads parked (thread by thread,
        # each ascending from its slice's start: the model runs them in order).
        ram = ram_of(b)
        parked = lazy_free(b, deferred_start(ram), ram.last())[0]
        n = min(fp.pre_watermark_allocs, len(parked))
        assert n == fp.pre_watermark_allocs  # 1 GiB accepted although accepted memory was free
        assert [(e.start, e.end, e.reason, e.requests) for e in events] == [
            (s, e, "zero-watermark", 1) for s, e in parked[:n]
        ]
        assert all(e.actor == "page_alloc:initcalls" and e.vcpu == 0 for e in events)
    # init_per_zone_wmark_min() then, THP being madvise by default, hugepage_init() ->
    # set_recommended_min_free_kbytes(): 11 pageblocks of 512 pages in each of the three
    # populated zones (DMA, DMA32, Normal) is 16,896 pages = 67,584 kB, more than the
    # square-root rule gives for 16 GiB (~15.7 MB), so it replaces it.
    assert b.rec.config.kconfig.transparent_hugepage == "madvise"
    managed = managed_by_zone(b)
    assert list(managed) == ["DMA", "DMA32", "Normal"] and all(managed.values())
    assert {z.name: z.managed_pages for z in alloc.zones} == managed
    sqrt_rule = min_free_kbytes_at_postcore(managed)
    assert sqrt_rule < 67584
    assert alloc.min_free_kbytes == thp_min_free_kbytes(managed, sqrt_rule) == 3 * 11 * 512 * 4 == 67584
    # ... and the per-zone watermarks and lowmem reserves are recomputed from it.
    marks = per_zone_marks(managed, 67584)
    got = {z.name: Marks(z.wmark_min, z.wmark_low, z.wmark_high, z.wmark_promo, z.lowmem_reserve) for z in alloc.zones}
    assert got == marks
    assert marks["Normal"].lowmem_reserve == 0
    assert marks["DMA"].lowmem_reserve == (managed["DMA32"] + managed["Normal"]) // 256
    assert marks["DMA32"].lowmem_reserve == managed["Normal"] // 256
    assert sum(m.min for m in marks.values()) <= 67584 // 4


@pytest.mark.parametrize("memory", [1 * GiB, 16 * GiB])
def test_without_thp_min_free_kbytes_is_the_square_root_rule(boot, memory):
    b = boot(memory, kconfig=("TRANSPARENT_HUGEPAGE=never",))
    alloc = b.rec.kernel.allocator
    managed = managed_by_zone(b)
    # init_per_zone_wmark_min(): min_free_kbytes = int_sqrt(lowmem_kbytes * 16), clamped to [128, 262144].
    lowmem_kbytes = sum(managed.values()) * PAGE_SIZE // KiB
    assert alloc.min_free_kbytes == min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)
    assert alloc.min_free_kbytes == min_free_kbytes_at_postcore(managed)
    got = {z.name: Marks(z.wmark_min, z.wmark_low, z.wmark_high, z.wmark_promo, z.lowmem_reserve) for z in alloc.zones}
    assert got == per_zone_marks(managed, alloc.min_free_kbytes)
    if memory == 1 * GiB:
        # Two populated zones; DMA32 is the highest, so it keeps nothing back.
        assert list(managed) == ["DMA", "DMA32"] and got["DMA32"].lowmem_reserve == 0


def test_thp_always_raises_min_free_kbytes_like_madvise(boot):
    b = boot(16 * GiB, kconfig=("TRANSPARENT_HUGEPAGE=always",))
    assert b.rec.kernel.allocator.min_free_kbytes == 67584


@pytest.mark.parametrize("memory", [5 * GiB, 16 * GiB])
def test_watermark_check_leaves_low_plus_lowmem_reserve_in_each_zone(boot, memory):
    # __zone_watermark_ok() for an order-0 allocation: the zone serves it while its free pages
    # exceed the low watermark plus its lowmem_reserve for the allocation's highest zone (Normal).
    # Eager, so nothing is parked: drain the zones through the allocator after the boot.
    b = boot(memory, policy="eager")
    alloc = b.rec.kernel.allocator
    marks = per_zone_marks(managed_by_zone(b), alloc.min_free_kbytes)
    free = {z.name: z.free_pages for z in alloc.zones}
    allowed = {n: max(0, free[n] - marks[n].low - marks[n].lowmem_reserve) for n in free}
    assert allowed["DMA32"] and allowed["Normal"]
    # DMA keeps back (DMA32 + Normal) / 256 pages, more than its 15 MiB: GFP_KERNEL gets none of it.
    assert marks["DMA"].lowmem_reserve > free["DMA"] and allowed["DMA"] == 0
    got = RangeSet(alloc.alloc(sum(allowed.values()), actor="test:drain", vcpu=0))
    assert {n: pages(got, lo, hi) for n, lo, hi in ZONES if n in allowed} == allowed
    assert {z.name: z.free_pages for z in alloc.zones} == {n: free[n] - allowed[n] for n in free}
    with pytest.raises(BootFailure):
        alloc.alloc(1, actor="test:one-more", vcpu=0)


# -- the later initcalls and user space ----------------------------------------------------------------
@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_fs_and_late_initcalls(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    # clocksource_done_booting() changes no memory; the SWIOTLB was converted earlier (no patch).
    assert b.phase("fs-initcalls").events == [] and not list(b.ops("fs-initcalls"))
    assert len(b.works("initcalls", "initcalls")) == 1 and b.accepts("initcalls") == []
    assert not [op for op in b.ops("initcalls") if op[0] == "accept"]


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
@pytest.mark.parametrize("shell", [256 * MiB, 2 * GiB], ids=["256M", "2G"])
def test_userspace_touches_the_shell_footprint(boot, platform, policy, shell):
    b = boot(16 * GiB, platform, policy=policy, footprint=BootFootprint(shell_footprint=shell))
    fp = b.rec.config.footprint
    assert len(b.works("userspace", "userspace_to_shell")) == 1
    (touch,) = b.works("userspace", "userspace_touch")
    assert touch.amount == fp.shell_footprint == shell
    assert b.touched_bytes("userspace", "page_alloc:userspace") == fp.shell_footprint
    events = b.accepts("userspace")
    if policy == "eager":
        assert events == []
        return
    # Watermarks are set now (v6.12+: accept up to the promo watermark): cond_accept_memory()
    # tops the Normal zone's accepted free memory (NR_FREE_PAGES - NR_UNACCEPTED) up to promo
    # plus the request, in whole chunks.  Before user space: the Normal zone's free memory less
    # what the page allocator handed out, and less the chunks still parked (those freed parked,
    # less those the allocations accepted).
    ram = ram_of(b)
    before = KERNEL_PHASES[: KERNEL_PHASES.index("userspace")]
    taken = page_alloc_taken(b, before)
    free_pages = pages(freed_memory(b), G4) - pages(taken, G4)
    accepted = RangeSet((e.start, e.end) for n in before for e in b.accepts(n) if e.actor.startswith("page_alloc:"))
    on_list = [c for c in lazy_free(b, G4, ram.last())[0] if not accepted.contains(*c)]
    free_accepted = free_pages - len(on_list) * CHUNK_PAGES
    managed = managed_by_zone(b)
    promo = per_zone_marks(managed, thp_min_free_kbytes(managed, min_free_kbytes_at_postcore(managed)))["Normal"].promo
    deficit = promo + shell // PAGE_SIZE - free_accepted
    chunks = max(0, -(-deficit // CHUNK_PAGES))
    assert sum(e.requests for e in events) == chunks
    assert all(e.reason == "watermark" and e.actor == "page_alloc:userspace" and e.vcpu == 0 for e in events)
    assert all((e.end - e.start) == e.requests * CHUNK_SIZE for e in events)
    if shell == 256 * MiB:
        # The pre-watermark allocations already accepted 1 GiB (and the early ones 128 MiB).
        assert chunks == 0
    else:
        assert chunks > 0
