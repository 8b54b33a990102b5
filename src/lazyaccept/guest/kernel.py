"""The guest kernel's boot, as far as memory acceptance goes (mm/, init/main.c,
drivers/firmware/efi/unaccepted_memory.c).

Boot order, each a recorded phase (:class:`~lazyaccept.base.choices.BootPhase`):
1. ``efi-stub``: bitmap table, e820, unaligned heads and tails accepted.
2. ``early-init``: memblock from e820; reservations (first MiB, kernel image, the table);
   memblock allocations (direct-map page tables, memmap, large hashes, per-CPU areas,
   SWIOTLB), each accepted before use; struct pages of the non-deferred memory.
3. ``memblock-free``: ``memblock_free_all()`` releases the non-deferred memory to the buddy
   allocator: chunks with unaccepted memory are parked (lazy) or accepted (eager).
4. ``early-allocs``: page allocations before SMP, with the zone watermarks still 0.
5. ``mem-encrypt-init``: the SWIOTLB buffer is converted to shared (unless a patch moves it).
6. ``smp-bringup``: the boot vCPU brings the others online one by one, allocating for each;
   online idle vCPUs take the periodic tick.
7. ``deferred-init``: struct page init of the rest of the last zone, in parallel threads,
   which free (park or accept) that memory.
8. ``early-initcalls``: driver_init and the initcalls up to subsys; the watermarks are set at
   postcore (``init_per_zone_wmark_min``) and raised for THP at subsys (``hugepage_init``).
9. ``fs-initcalls``: ``clocksource_done_booting()``: from here NOHZ idle vCPUs stop ticking.
10. ``initcalls``: device and late initcalls.
11. ``userspace``: init and a shell, touching the shell footprint (watermark-driven acceptance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..base.choices import AcceptPolicy, AcceptRoutine, BootPhase, Tee
from ..base.errors import SafetyViolation
from ..base.ranges import RangeSet
from ..base.record import GUEST_EXITS, Recorder
from ..base.units import PAGE_SIZE, GiB, MiB, align_down, align_up
from ..formats.e820 import E820_TYPE_RAM, E820Entry
from ..formats.efi_memmap import EfiMemoryDescriptor, MemoryType
from ..formats.unaccepted import HEADER_SIZE, UnacceptedTable
from ..platform.base import Platform
from .efistub import EfiStub, StubResult
from .footprint import BootFootprint
from .kconfig import KernelConfig, ThpMode
from .memblock import Memblock, MemblockError
from .numa import NumaLayout
from .page_alloc import PageAllocator, Zone
from .rules import KernelRules
from .unaccepted import UnacceptedMemory

SECTION_SIZE = 128 * MiB  # SPARSEMEM section on x86-64
FIRST_MIB = 1 * MiB


@dataclass
class KernelState:
    """What the booted guest looks like."""

    stub: StubResult
    memblock: Memblock
    mem: UnacceptedMemory
    allocator: PageAllocator
    ram: RangeSet
    deferred_start: int | None
    table_reserved: tuple[int, int] | None
    #: Free pages right after memblock_free_all() (what the kernel's "Memory:" line reports).
    free_after_memblock: int = 0
    #: What memblock kept from the page allocator, by name: ``first-mib``, ``kernel-image``,
    #: ``unaccepted-table`` and each early allocation (``memmap``, ``swiotlb`` ...), ``[start, end)``.
    reservations: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Per node with deferred struct pages, the deferred ``[start, end)`` (node 0's starts at
    #: ``deferred_start``).
    deferred_ranges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def table(self) -> UnacceptedTable | None:
        return self.mem.table

    @property
    def e820(self) -> list[E820Entry]:
        return self.stub.e820


#: Accept routine of the EFI stub, per TEE: TDX shares tdx_accept_memory() with the kernel; SNP
#: uses the GHCB MSR protocol since 2025 (d54d610243a4) and a GHCB page-state-change request before.
STUB_ROUTINE: dict[Tee, Callable[[KernelRules], AcceptRoutine]] = {
    Tee.TDX: lambda rules: AcceptRoutine.LINUX,
    Tee.SNP: lambda rules: AcceptRoutine.MSR if rules.snp_stub_msr_protocol else AcceptRoutine.LINUX,
}


def reserve_unaccepted_range(addr: int, size_bytes: int, fixed: bool) -> tuple[int, int]:
    """``reserve_unaccepted()`` in drivers/firmware/efi/efi.c: the page range reserved for the
    table.  The original aligned the start down but added ``PAGE_ALIGN(24 + size)`` to it,
    which can leave the table's last page out (fixed in 2026)."""
    start = align_down(addr, PAGE_SIZE)
    if fixed:
        return start, align_up(addr + HEADER_SIZE + size_bytes, PAGE_SIZE)
    return start, start + align_up(HEADER_SIZE + size_bytes, PAGE_SIZE)


class Kernel:
    def __init__(
        self,
        platform: Platform,
        rules: KernelRules,
        recorder: Recorder,
        *,
        vcpus: int,
        policy: AcceptPolicy,
        footprint: BootFootprint,
        kconfig: KernelConfig | None = None,
        possible_cpus: int | None = None,
        numa: NumaLayout | None = None,
    ) -> None:
        self.platform = platform
        self.rules = rules
        self.rec = recorder
        self.vcpus = vcpus
        #: num_possible_cpus() (QEMU's maxcpus): at least the vCPUs that come online.
        self.possible_cpus = max(vcpus, possible_cpus or vcpus)
        self.policy = policy
        self.fp = footprint
        self.kconfig = kconfig if kconfig is not None else KernelConfig()
        self.numa = numa if numa is not None else NumaLayout.single(vcpus)

    # -- phases --------------------------------------------------------------------------------
    def boot(
        self,
        memmap: list[EfiMemoryDescriptor],
        kernel_image: tuple[int, int],
        installed_table: UnacceptedTable | None = None,
    ) -> KernelState:
        rec = self.rec
        if self.numa.nodes > 1:
            # From the stub on, each vCPU's memory traffic goes to its own node's share of the
            # host's bandwidth (the firmware knows no nodes: its phases use the one pool).
            rec.vcpu_nodes = tuple(self.numa.node_of_cpu(v) for v in range(self.vcpus))
        rec.begin(BootPhase.EFI_STUB, "efistub")
        rec.work("kernel_decompress", 0)
        table_type = (MemoryType.EfiACPIReclaimMemory if self.rules.table_in_acpi_reclaim
                      else MemoryType.EfiLoaderData)
        stub_routine = STUB_ROUTINE[self.platform.tee](self.rules)
        stub = EfiStub(self.platform, stub_routine, rec, table_type).run(
            memmap, installed_table
        )

        rec.begin(BootPhase.EARLY_INIT, "kernel")
        rec.work("early_init", 0)
        ram = RangeSet((e.addr, e.end) for e in stub.e820 if e.type == E820_TYPE_RAM)
        mb = Memblock(ram)
        mb.reserve(0, FIRST_MIB)  # x86 always reserves the first MiB
        mb.reserve(*kernel_image)
        reservations = {"first-mib": (0, FIRST_MIB), "kernel-image": kernel_image}
        table_reserved = None
        if stub.table is not None and stub.table_addr is not None and not self.rules.table_in_acpi_reclaim:
            # v6.5: the table is loader data, i.e. RAM already mapped; memblock_reserve() it.
            table_reserved = reserve_unaccepted_range(stub.table_addr, stub.table.size, fixed=True)
            mb.reserve(*table_reserved)
        elif stub.table is not None and stub.table_addr is not None:
            table_reserved = reserve_unaccepted_range(stub.table_addr, stub.table.size, self.rules.table_reserve_fixed)
            if self.rules.table_memblock_add:
                mb.memory.add(*table_reserved)  # memblock_add: the ACPI-reclaim table must be mapped
                ram.add(*table_reserved)
            mb.reserve(*table_reserved)
            # Before 8dbe33956d96 the table was only reserved: E820_TYPE_ACPI is not in the direct map.
            mapped = table_reserved if self.rules.table_memblock_add else (stub.table_addr, stub.table_addr)
            self._check_table_mapped(stub.table_addr, stub.table.size, mapped)
        mem = UnacceptedMemory(stub.table, self.platform, self.rules, AcceptRoutine.LINUX)
        alloc = PageAllocator(ram, mem, self.platform, self.rules, rec, lazy=self.policy is AcceptPolicy.LAZY,
                              numa=self.numa)
        if table_reserved is not None:
            reservations["unaccepted-table"] = table_reserved
        swiotlb = self._memblock_allocations(mb, mem, ram, reservations)
        deferred_zones = self._deferred_zones(alloc) if self.kconfig.deferred_struct_page_init else []
        deferred_ranges = [(lo, zone.end) for zone, lo in deferred_zones]
        deferred_start = deferred_ranges[0][0] if deferred_ranges else None
        # What memmap_init() initialises now: everything outside the nodes' deferred ranges.
        now = RangeSet([(0, 1 << 62)])
        for lo, hi in deferred_ranges:
            now.remove(lo, hi)
        early_pages = sum((e - s) // PAGE_SIZE for a, b in now for s, e in ram.intersection(a, b))
        rec.work("memmap_init", 0, early_pages)
        rec.work("catch_all_per_page", 0, ram.total() // PAGE_SIZE)

        rec.begin(BootPhase.MEMBLOCK_FREE, "kernel")
        for a, b in now:
            for s, e in mb.free_ranges(a, b):
                alloc.free_range(s, e, actor="memblock_free_all", vcpu=0)
        free_after_memblock = alloc.free_pages()
        deferred = DeferredPages(mb, alloc, ram, deferred_zones, rec) if deferred_zones else None
        if deferred is not None:
            alloc.deferred_grow = deferred.grow_one_section

        rec.begin(BootPhase.EARLY_ALLOCS, "kernel")
        alloc.alloc(self.fp.early_page_allocs, actor="page_alloc:early", vcpu=0)

        # mem_encrypt_init(), from arch_cpu_finalize_init() in start_kernel() (439e17576eb4, v6.5):
        # the SWIOTLB buffer becomes shared before SMP bring-up.  The APs are still in firmware;
        # TDX APs spin on the ACPI MP wakeup mailbox inside the TD, in guest mode.
        rec.begin(BootPhase.MEM_ENCRYPT_INIT, "kernel")
        late_convert = self.rules.swiotlb_convert_late and self.platform.tee is Tee.TDX
        if not late_convert:
            in_guest = self.vcpus - 1 if self.platform.tee is Tee.TDX else 0
            rec.convert("kernel", 0, swiotlb // PAGE_SIZE, in_guest, "swiotlb")

        # Until NOHZ mode is active every online CPU takes the periodic tick, idle or not: no
        # high-resolution clocksource is chosen before clocksource_done_booting(), an fs_initcall
        # (kernel/time/clocksource.c).
        hz = self.kconfig.hz
        rec.begin(BootPhase.SMP_BRINGUP, "kernel", online_vcpus=1, tick_hz=hz)
        for ap in range(1, self.vcpus):
            rec.work("smp_bringup", 0, onlines=1)
            alloc.alloc(self.fp.page_allocs_per_ap, actor=f"page_alloc:smp(cpu{ap})", vcpu=0)

        rec.begin(BootPhase.DEFERRED_INIT, "deferred_init", online_vcpus=self.vcpus, tick_hz=hz)
        if deferred is not None:
            alloc.deferred_grow = None  # page_alloc_init_late(): the deferred pages are done here
            deferred.init_in_threads(self.numa)

        # do_basic_setup(): driver_init() and the pure, core, postcore (init_per_zone_wmark_min:
        # the watermarks), arch and subsys (hugepage_init: THP's min_free_kbytes) initcalls.
        rec.begin(BootPhase.EARLY_INITCALLS, "kernel", online_vcpus=self.vcpus, tick_hz=hz)
        alloc.alloc(self.fp.pre_watermark_allocs, actor="page_alloc:initcalls", vcpu=0)
        # The boot CPU's device I/O here queues at the host path behind the APs' ticks.
        rec.work(GUEST_EXITS, 0, self.fp.early_initcall_exits)
        alloc.setup_watermarks()
        if self.kconfig.transparent_hugepage is not ThpMode.NEVER:
            alloc.raise_min_free_kbytes_for_thp()

        tick_after_nohz = 0 if self.kconfig.no_hz_idle else hz
        rec.begin(BootPhase.FS_INITCALLS, "kernel", online_vcpus=self.vcpus, tick_hz=tick_after_nohz)
        if late_convert:
            # fs_initcall_sync: the APs halt outside the TD and no longer take the tick.
            in_guest = 0 if self.kconfig.no_hz_idle else self.vcpus - 1
            rec.convert("kernel", 0, swiotlb // PAGE_SIZE, in_guest, "swiotlb")

        rec.begin(BootPhase.INITCALLS, "kernel", online_vcpus=self.vcpus, tick_hz=tick_after_nohz)
        rec.work("initcalls", 0)
        rec.work(GUEST_EXITS, 0, self.fp.initcall_exits)

        rec.begin(BootPhase.USERSPACE, "userspace", online_vcpus=self.vcpus, tick_hz=tick_after_nohz)
        rec.work("userspace_to_shell", 0)
        npages = self.fp.shell_footprint // PAGE_SIZE
        alloc.alloc(npages, actor="page_alloc:userspace", vcpu=0)
        rec.work("userspace_touch", 0, float(self.fp.shell_footprint))
        return KernelState(stub, mb, mem, alloc, ram, deferred_start, table_reserved, free_after_memblock,
                           reservations, deferred_ranges)

    def _check_table_mapped(self, addr: int, size: int, reserved: tuple[int, int]) -> None:
        """The kernel reads the whole table through the direct map: a table page left out of
        the reservation is not mapped, and the first access to it faults (the 2026 bug)."""
        end = addr + HEADER_SIZE + size
        if reserved[1] <= addr:
            raise SafetyViolation(
                "table-unmapped", "kernel", 0, addr,
                f"unaccepted table [{addr:#x}, {end:#x}) is in ACPI reclaim memory that was never memblock_add()ed: "
                "not in the direct map, page fault on first access",
            )
        if end > reserved[1]:
            # The catalogue's table-reservation bug (Feb 2026), not table-unmapped: the table is
            # mapped, but the reservation covers only its first page.
            raise SafetyViolation(
                "table-reservation", "kernel", 0, reserved[1],
                f"unaccepted table [{addr:#x}, {end:#x}) runs past its reservation ending at {reserved[1]:#x}: "
                "page fault in accept_memory()",
            )

    def _memblock_allocations(self, mb: Memblock, mem: UnacceptedMemory, ram: RangeSet,
                              reservations: dict[str, tuple[int, int]]) -> int:
        """memblock allocations of early boot, each accepted before use (memblock_alloc_range_nid),
        each recorded in ``reservations`` by name.  Returns the size of the SWIOTLB buffer it got."""
        total = ram.total()
        pages = total // PAGE_SIZE
        allocs: list[tuple[str, int, int | None]] = []
        # Direct-map page tables: with 1 GiB pages a few pages; model 4 KiB per GiB mapped.
        allocs.append(("page-tables", max(PAGE_SIZE, align_up(total // GiB * PAGE_SIZE, PAGE_SIZE)), None))
        # memmap: 2 MiB of struct pages per present 128 MiB section (sparse vmemmap), each node's
        # from its own memory (sparse_init_nid(): memblock_alloc_try_nid_raw(..., nid)), all on
        # the boot CPU.
        node_lo: dict[str, int] = {}
        rams = [ram] if self.numa.nodes == 1 else [self.numa.node_ram(node, ram) for node in range(self.numa.nodes)]
        for node, node_ram in enumerate(rams):
            if not node_ram:
                continue
            name = "memmap" if node == 0 else f"memmap-node{node}"
            sections = _present_sections(node_ram)
            # A section two nodes share is the later node's: memblocks_present() sets each
            # section's node range by range in address order, the last one winning (mm/sparse.c).
            later = next((r for r in rams[node + 1 :] if r), None)
            last_section = ((node_ram.last() or 1) - 1) // SECTION_SIZE
            if later is not None and last_section == (later.first() or 0) // SECTION_SIZE:
                sections -= 1
            limit = None if self.numa.nodes == 1 else node_ram.last()
            allocs.append((name, sections * (SECTION_SIZE // PAGE_SIZE) * self.fp.memmap_per_page, limit))
            node_lo[name] = 0 if self.numa.nodes == 1 else node_ram.first() or 0
        # Large system hashes (dentry: one 8-byte bucket per two pages; inode: per four pages).
        allocs.append(("dentry-hash", _pow2(pages // 2) * 8, None))
        allocs.append(("inode-hash", _pow2(pages // 4) * 8, None))
        # setup_per_cpu_areas() embeds one unit per *possible* CPU (mm/percpu.c pcpu_embed_first_chunk).
        allocs.append(("percpu", self.possible_cpus * self.fp.percpu_unit, None))
        sized = not (self.rules.swiotlb_sizing_in_sev_setup_arch and self.platform.tee is Tee.TDX
                     and not self.kconfig.amd_mem_encrypt)
        # swiotlb_init_remap() takes one area per possible CPU (swiotlb_adjust_nareas(num_possible_cpus())).
        swiotlb = self.fp.swiotlb_size(total, self.possible_cpus, sized)
        allocs.append(("swiotlb", swiotlb, None if self.fp.swiotlb_anywhere else 4 * GiB))
        got_swiotlb = 0
        for name, size, limit in allocs:
            start, end = self._alloc(mb, name, size, limit, node_lo.get(name, 0))
            reservations[name] = (start, end)
            # memblock_alloc_range_nid() accepts the size it was asked for, not the page-aligned
            # range it reserved (accept_memory(found, size), mm/memblock.c).
            stats = mem.accept_memory(start, min(size, end - start), actor="memblock", vcpu=0)
            self.rec.accept("memblock", 0, start, end, stats, name, lock=self.rules.accept_lock)
            self.platform.touch(start, end, actor=f"memblock:{name}", vcpu=0)
            if name == "swiotlb":
                got_swiotlb = end - start
        return got_swiotlb

    @staticmethod
    def _alloc(mb: Memblock, name: str, size: int, limit: int | None, lo: int = 0) -> tuple[int, int]:
        """memblock_alloc() (within ``[lo, limit)``); for SWIOTLB, swiotlb_init_remap() halves the
        buffer and retries when no free range is big enough, down to its 1 MiB minimum."""
        while True:
            try:
                return mb.alloc(size, limit=limit, lo=lo)
            except MemblockError:
                if name != "swiotlb" or size // 2 < MiB:
                    raise
                size //= 2

    def _deferred_zones(self, alloc: PageAllocator) -> list[tuple[Zone, int]]:
        """Per node, its last zone and the first deferred address in it (``defer_init()``,
        mm/mm_init.c, which keeps ``first_deferred_pfn`` per node): in the node's last zone only,
        the first section-aligned pfn once more than PAGES_PER_SECTION of its pages have been
        initialised, i.e. the zone's start plus one section, aligned up; nodes with nothing
        deferred are left out."""
        out = []
        for node in range(self.numa.nodes):
            zones = alloc.node_zones(node)
            if not zones:
                continue
            zone = zones[-1]
            candidate = align_up(zone.start + SECTION_SIZE, SECTION_SIZE)
            if candidate < zone.end:
                out.append((zone, candidate))
        return out



@dataclass
class NodeDeferred:
    """One node's deferred struct pages: its last zone, and ``[cursor, end)`` left to initialise."""

    zone: Zone
    cursor: int
    end: int


class DeferredPages:
    """The struct pages ``defer_init()`` left for later, in each node's last zone: grown one
    section at a time on demand (``deferred_grow_zone()``, under ``pgdat_resize_lock``, on the
    allocating CPU) and the rest by ``deferred_init_memmap()``, one kthread per node, each
    splitting its node's work among padata threads."""

    def __init__(self, mb: Memblock, alloc: PageAllocator, ram: RangeSet, zones: list[tuple[Zone, int]],
                 rec: Recorder) -> None:
        self.mb = mb
        self.alloc = alloc
        self.ram = ram
        self.nodes = [NodeDeferred(zone, start, zone.end) for zone, start in zones]
        self.rec = rec

    def _init_and_free(self, lo: int, hi: int, vcpu: int, actor: str) -> None:
        pages = sum((e - s) // PAGE_SIZE for s, e in self.ram.intersection(lo, hi))
        self.rec.work("struct_page_init", vcpu, pages)
        for s, e in self.mb.free_ranges(lo, hi):
            self.alloc.free_range(s, e, actor=actor, vcpu=vcpu)

    def grow_one_section(self, zone: Zone) -> bool:
        """Initialise and free the next section of ``zone``'s deferred pages; False if none."""
        for entry in self.nodes:
            if entry.zone is zone and entry.cursor < entry.end:
                lo = entry.cursor
                hi = min(lo + SECTION_SIZE, entry.end)
                self._init_and_free(lo, hi, 0, "deferred_grow_zone")
                entry.cursor = hi
                return True
        return False

    def init_in_threads(self, numa: NumaLayout) -> None:
        """page_alloc_init_late() starts ``deferred_init_memmap()`` on every node with memory, one
        kthread each bound to the node's CPUs (mm/mm_init.c); each splits what is left of its node
        into section-aligned pieces with padata, at most one thread per CPU of the node
        (``deferred_page_init_max_threads()``, arch/x86/mm/init_64.c: the node's CPU count); each
        thread initialises its struct pages and frees them.  The nodes run in parallel."""
        for entry in self.nodes:
            start, end = entry.cursor, entry.end
            if start >= end:
                continue
            cpus = numa.cpus_of_node(entry.zone.node) or [0]
            span_sections = max(1, -(-(end - start) // SECTION_SIZE))
            threads = max(1, min(len(cpus), span_sections))
            per = -(-span_sections // threads) * SECTION_SIZE
            for t in range(threads):
                lo, hi = start + t * per, min(start + (t + 1) * per, end)
                if lo < hi:
                    self._init_and_free(lo, hi, cpus[t], "deferred_init")
            entry.cursor = end


def _present_sections(ram: RangeSet) -> int:
    """Memory sections (128 MiB) holding any RAM, counted per range (a section two ranges share
    counts once), not enumerated."""
    count, last = 0, -1
    for a, b in ram:
        first, end = max(a // SECTION_SIZE, last + 1), (b - 1) // SECTION_SIZE
        if end >= first:
            count += end - first + 1
            last = end
    return count


def _pow2(n: int) -> int:
    """roundup_pow_of_two()."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
