"""The kernel's boot, phase by phase (guest/kernel.py through scenario.build.build_record).

Each expected value is computed here from the kernel's rule (linux-kernel.md §2-§4, the
BootFootprint defaults), from the firmware's hand-off and from the configuration, never read from
the model's output.  The boot is instrumented: every platform accept and touch is logged in order,
and the platform's accepted memory is recorded at the start of every phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from conftest import config_for
from lazyaccept.base.choices import BootPhase
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptEvent, AcceptStats, Phase, Recorder, WorkEvent
from lazyaccept.base.units import CHUNK_SIZE, PAGE_SIZE, GiB, KiB, MiB, align_down, align_up
from lazyaccept.formats.e820 import E820_TYPE_RAM
from lazyaccept.formats.efi_memmap import MemoryType
from lazyaccept.formats.unaccepted import HEADER_SIZE
from lazyaccept.platform.base import Platform
from lazyaccept.scenario import build
from lazyaccept.scenario.boot_record import BootRecord
from lazyaccept.scenario.config import VMConfig

G4 = 4 * GiB
SECTION = 128 * MiB  # SPARSEMEM section on x86-64
UNIT = 2 * MiB  # the bitmap unit the EFI stub uses
KERNEL_PHASES = [p.value for p in BootPhase][list(BootPhase).index(BootPhase.EFI_STUB) :]
BEFORE_SMP = ["efi-stub", "early-init", "memblock-free", "early-allocs"]
MEMBLOCK_ALLOCS = ["page-tables", "memmap", "dentry-hash", "inode-hash", "percpu", "swiotlb"]

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

    def phase(self, name: str) -> Phase:
        (p,) = [p for p in self.rec.phases if p.name == name]
        return p

    def accepts(self, name: str) -> list[AcceptEvent]:
        return [e for e in self.phase(name).events if isinstance(e, AcceptEvent)]

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
    """``boot(memory, platform, **request)``: an instrumented mainline boot, 4 vCPUs unless told."""

    def run(memory: int, platform: str = "tdx", **kw: object) -> Boot:
        kw.setdefault("vcpus", 4)
        return instrumented_boot(monkeypatch, config_for(memory, platform, kernel="mainline", **kw))

    return run


# -- the kernel's inputs, derived from the firmware's hand-off -----------------------------------------
def ram_of(b: Boot) -> RangeSet:
    """memblock.memory: the e820 RAM, plus the unaccepted table's pages (in ACPI-reclaim memory,
    memblock_add()ed so the kernel can map it: [page of the table, page after its end))."""
    ram = RangeSet((e.addr, e.end) for e in b.rec.kernel.e820 if e.type == E820_TYPE_RAM)
    ram.update(table_pages(b))
    return ram


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


def highest_zone(ram: RangeSet) -> tuple[int, int]:
    """The highest populated zone (Normal from 4 GiB, else DMA32 from 16 MiB): first and last RAM byte."""
    lo = G4 if ram.overlaps(G4, 1 << 62) else 16 * MiB
    pieces = ram.intersection(lo, 1 << 62)
    return pieces[0][0], pieces[-1][1]


def deferred_start(ram: RangeSet) -> int | None:
    """defer_init(): struct pages of the highest zone are deferred from the first section boundary
    after its first section plus one page; nothing is deferred if that is past the zone."""
    start, end = highest_zone(ram)
    first = align_up(start + SECTION + PAGE_SIZE, SECTION)
    return first if first < end else None


def roundup_pow_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


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
        # mem_encrypt_setup_arch(): 6% of memory, clamped to [IO_TLB_DEFAULT_SIZE = 64 MiB, 1 GiB]
        "swiotlb": min(max(total * 6 // 100, 64 * MiB), 1 * GiB),
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


# -- order and vCPUs -------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_phases_come_in_boot_order(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    assert [p.name for p in b.rec.phases] == [p.value for p in BootPhase]
    assert [op[1] for op in b.log if op[0] == "phase"] == [p.value for p in BootPhase]


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("vcpus", [1, 4])
def test_online_vcpus_per_phase(boot, platform, vcpus):
    b = boot(16 * GiB, platform, vcpus=vcpus)
    online = {p.name: p.online_vcpus for p in b.rec.phases}
    # The boot vCPU alone until the kernel brings the others up; all of them from then on.
    assert {n: online[n] for n in KERNEL_PHASES} == {n: 1 if n in BEFORE_SMP else vcpus for n in KERNEL_PHASES}
    # No phase runs work on a vCPU that is not online.
    for p in b.rec.phases:
        assert all(0 <= v < p.online_vcpus for v in p.vcpus()), p.name


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
    if memory == 1 * GiB:
        assert swiotlb.end - swiotlb.start == 64 * MiB  # 6% of ~1 GiB is below the minimum
    if memory == 64 * GiB:
        assert swiotlb.end - swiotlb.start == 1 * GiB  # 6% of 64 GiB is above the maximum
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


# -- memblock_free_all, early allocations, SMP bring-up --------------------------------------------------
def chunks_with_unaccepted(b: Boot, lo: int, hi: int) -> list[tuple[int, int]]:
    """Whole 4 MiB chunks of [lo, hi) that still had unaccepted memory (or a guard unit after them)
    at the start of memblock-free."""
    acc = b.accepted_at_start["memblock-free"]
    ram = ram_of(b)
    out = []
    for c in range(align_up(lo, CHUNK_SIZE), align_down(hi, CHUNK_SIZE), CHUNK_SIZE):
        if not ram.contains(c, c + CHUNK_SIZE):
            continue
        span = (c, min(c + CHUNK_SIZE + UNIT, ram.last()))
        if any(ram.overlaps(s, e) for s, e in acc.gaps(*span)):
            out.append((c, c + CHUNK_SIZE))
    return out


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_memblock_free_parks_or_accepts_the_non_deferred_memory(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    ram = ram_of(b)
    start = deferred_start(ram)
    assert start == G4 + 2 * SECTION  # the Normal zone starts at 4 GiB
    chunks = chunks_with_unaccepted(b, 0, start)
    assert chunks == [(c, c + CHUNK_SIZE) for c in range(G4, start, CHUNK_SIZE)]
    events = b.accepts("memblock-free")
    after = b.accepted_after("memblock-free")
    if policy == "eager":
        # Every chunk with unaccepted memory is accepted as it is freed (one request per chunk,
        # consecutive chunks in one accept_memory() call): nothing below the deferred part is
        # left unaccepted.
        assert [(e.start, e.end, e.reason, e.requests) for e in events] == [(G4, start, "eager", len(chunks))]
        assert all(after.contains(s, e) for s, e in ram.intersection(0, start))
    else:
        # Lazy: whole chunks are parked on the zone's list, untouched.
        assert events == []
        assert after == b.accepted_at_start["memblock-free"]
    assert all(e.actor == "memblock_free_all" and e.vcpu == 0 for e in events)
    # What was freed: the RAM below the deferred part that memblock did not reserve (the first
    # MiB, the kernel image, the table) or allocate.
    freed = ram.copy()
    for s, e in [(0, 1 * MiB), b.rec.firmware.kernel_image, *table_pages(b)]:
        freed.remove(s, e)
    for e in b.accepts("early-init"):
        freed.remove(e.start, e.end)
    assert b.rec.kernel.free_after_memblock == pages(freed, 0, start)


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_early_allocations_before_watermarks(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    fp = b.rec.config.footprint
    # early_page_allocs order-0 pages on the boot vCPU, each touched.
    assert b.touched_bytes("early-allocs", "page_alloc:early") == fp.early_page_allocs * PAGE_SIZE
    events = b.accepts("early-allocs")
    if policy == "eager":
        assert events == []  # nothing is parked
        return
    # Watermarks are all 0: each allocation takes one chunk off the head of the Normal zone's
    # list (FIFO, i.e. ascending from 4 GiB) and accepts it, while chunks remain.
    start = deferred_start(ram_of(b))
    n = min(fp.early_page_allocs, (start - G4) // CHUNK_SIZE)
    assert [(e.start, e.end, e.reason, e.requests) for e in events] == [
        (G4 + i * CHUNK_SIZE, G4 + (i + 1) * CHUNK_SIZE, "zero-watermark", 1) for i in range(n)
    ]
    assert all(e.actor == "page_alloc:early" and e.vcpu == 0 for e in events)


@pytest.mark.parametrize("vcpus", [1, 3])
def test_smp_bringup_on_the_boot_vcpu(boot, vcpus):
    b = boot(16 * GiB, vcpus=vcpus)
    fp = b.rec.config.footprint
    works = b.works("smp-bringup", "smp_bringup")
    assert len(works) == vcpus - 1 and all(w.vcpu == 0 for w in works)
    for ap in range(1, vcpus):
        assert b.touched_bytes("smp-bringup", f"page_alloc:smp(cpu{ap})") == fp.page_allocs_per_ap * PAGE_SIZE
    assert {e.vcpu for e in b.phase("smp-bringup").events} <= {0}


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
    assert start is not None
    end = ram.last()
    sections = math.ceil((end - start) / SECTION)
    threads = min(vcpus, sections)
    per = math.ceil(sections / threads) * SECTION
    slices = [(start + t * per, min(start + (t + 1) * per, end)) for t in range(threads)]
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
        assert threads == sections == 22 < vcpus


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
    later = ["early-allocs", "smp-bringup", "initcalls", "userspace"]
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


# -- initcalls and user space ----------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_initcalls_set_the_watermarks(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    alloc = b.rec.kernel.allocator
    assert alloc.watermarks_ready
    assert len(b.works("initcalls", "initcalls")) == 1 and b.accepts("initcalls") == []
    # init_per_zone_wmark_min(): min_free_kbytes = sqrt(lowmem_kbytes * 16), clamped to [128, 262144].
    lowmem_kbytes = alloc.managed_pages() * PAGE_SIZE // KiB
    assert alloc.min_free_kbytes == min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)


@pytest.mark.parametrize("platform", ["tdx", "snp"])
@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_userspace_touches_the_shell_footprint(boot, platform, policy):
    b = boot(16 * GiB, platform, policy=policy)
    fp = b.rec.config.footprint
    assert len(b.works("userspace", "userspace_to_shell")) == 1
    (touch,) = b.works("userspace", "userspace_touch")
    assert touch.amount == fp.shell_footprint
    assert b.touched_bytes("userspace", "page_alloc:userspace") == fp.shell_footprint
    events = b.accepts("userspace")
    if policy == "eager":
        assert events == []
    else:
        # Watermarks are set now: the allocations accept whole chunks to keep the zone topped up.
        assert events and all(e.reason == "watermark" and e.actor == "page_alloc:userspace" for e in events)
        assert all((e.end - e.start) == e.requests * CHUNK_SIZE for e in events)
