"""Guests of 0.25-4 TiB: NUMA nodes, the memmap memblock accepts on the boot CPU, a larger
SWIOTLB (``--swiotlb``) and the bitmap's own size.

Expected values come from the rules, computed here by hand: QEMU's split of RAM among nodes
(hw/core/numa.c ``numa_default_auto_assign_ram()``, 8 MiB alignment on x86; SRAT ranges in RAM
order, continuing at 4 GiB, hw/i386/acpi-build.c ``build_srat()``), the kernel's zones per node
(mm/mm_init.c), ``defer_init()`` per node, one ``deferred_init_memmap()`` kthread per node with
at most the node's CPUs as padata threads (``page_alloc_init_late()``, arch/x86/mm/init_64.c
``deferred_page_init_max_threads()``), sparse vmemmap's 64 bytes per 4 KiB page, and
``setup_io_tlb_npages()`` / ``round_up_default_nslabs()`` of kernel/dma/swiotlb.c.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli_helpers import run_cli
from lazyaccept.base.choices import BootPhase, Tee
from lazyaccept.base.ranges import RangeSet
from lazyaccept.base.record import AcceptEvent, ConvertEvent, WorkEvent
from lazyaccept.base.units import PAGE_SIZE, GiB, MiB, TiB
from lazyaccept.guest.footprint import BootFootprint
from lazyaccept.scenario.build import build_record
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.sim.profile import load_profile
from lazyaccept.sim.run import run

G4 = 4 * GiB
SECTION = 128 * MiB
#: q35 keeps 2 GiB below 4 GiB once the guest has at least 2816 MiB (hw/i386/pc_q35.c).
LOWMEM = 2 * GiB


def config(memory: int, vcpus: int, numa: int = 1, swiotlb_slabs: int = 0):
    return GuestRequest(memory=memory, tee=Tee.TDX, vcpus=vcpus, numa_nodes=numa,
                        footprint=BootFootprint(swiotlb_slabs=swiotlb_slabs)).resolve()


def srat(memory: int, nodes: int) -> list[RangeSet]:
    """Each node's RAM by hand: (memory / nodes) rounded down to 8 MiB each, the rest to the
    last, laid in RAM order with the RAM above 2 GiB moved to 4 GiB."""
    per = memory // nodes // (8 * MiB) * (8 * MiB)
    sizes = [per] * (nodes - 1) + [memory - per * (nodes - 1)]
    out, offset = [], 0
    for size in sizes:
        lo, hi = offset, offset + size
        rs = RangeSet()
        if lo < LOWMEM:
            rs.add(lo, min(hi, LOWMEM))
        if hi > LOWMEM:
            rs.add(G4 + max(lo, LOWMEM) - LOWMEM, G4 + hi - LOWMEM)
        out.append(rs)
        offset = hi
    return out


def test_memory_split_per_node_by_hand():
    from lazyaccept.firmware.q35 import numa_node_ranges, numa_node_sizes

    assert numa_node_sizes(4 * TiB, 8) == [512 * GiB] * 8
    # 10 GiB over 3: 3413.3 MiB rounded down to 8 MiB is 3408 MiB; the last takes 10240 - 6816.
    assert numa_node_sizes(10 * GiB, 3) == [3408 * MiB, 3408 * MiB, 3424 * MiB]
    ranges = numa_node_ranges(4 * TiB, 8)
    assert ranges[0] == [(0, 2 * GiB), (G4, G4 + 510 * GiB)]
    assert ranges[1] == [(G4 + 510 * GiB, G4 + 1022 * GiB)]
    assert ranges[7] == [(G4 + (4096 - 512 - 2) * GiB, G4 + (4096 - 2) * GiB)]
    assert [RangeSet(r) for r in numa_node_ranges(10 * GiB, 3)] == srat(10 * GiB, 3)


def test_zones_per_node():
    rec = build_record(config(16 * GiB, 4, numa=2))
    ram = rec.kernel.ram
    nodes = srat(16 * GiB, 2)  # node 0: [0, 2G) + [4G, 10G); node 1: [10G, 18G)
    got = [(z.node, z.name, z.start, z.end) for z in rec.kernel.allocator.zones]
    n0 = RangeSet(p for a, b in nodes[0] for p in ram.intersection(a, b))
    dma32 = n0.intersection(16 * MiB, G4)
    assert got == [
        (0, "DMA", n0.first(), 16 * MiB),
        (0, "DMA32", dma32[0][0], dma32[-1][1]),
        (0, "Normal", G4, G4 + 6 * GiB),
        (1, "Normal", G4 + 6 * GiB, G4 + 14 * GiB),
    ]
    # Every zone's managed pages are its node's RAM in that zone.
    for z in rec.kernel.allocator.zones:
        assert z.managed_pages * PAGE_SIZE <= sum(b - a for a, b in ram.intersection(z.start, z.end))


def test_lowmem_reserve_counts_the_zones_above_on_the_same_node_only():
    rec = build_record(config(16 * GiB, 4, numa=2))
    zones = {(z.node, z.name): z for z in rec.kernel.allocator.zones}
    normal0 = zones[(0, "Normal")].managed_pages
    # setup_per_zone_lowmem_reserve(): per pgdat, the managed pages of the higher zones of that node.
    assert zones[(0, "DMA32")].lowmem_reserve == normal0 // 256
    assert zones[(1, "Normal")].lowmem_reserve == 0


@pytest.mark.parametrize("vcpu,node", [(0, 0), (1, 0), (2, 1), (3, 1)])
def test_allocations_on_a_vcpu_come_from_its_node_first(vcpu, node):
    rec = build_record(config(16 * GiB, 4, numa=2))
    alloc = rec.kernel.allocator
    node_ram = srat(16 * GiB, 2)[node]
    phase = rec.phases[-1]
    before = len(phase.events)
    got = alloc.alloc(2 * GiB // PAGE_SIZE, actor="test", vcpu=vcpu)  # more than the shell left accepted
    assert sum(e - s for s, e in got) == 2 * GiB
    assert all(node_ram.contains(s, e) for s, e in got)
    accepts = [e for e in phase.events[before:] if isinstance(e, AcceptEvent)]
    assert accepts, "the local lists are still full of unaccepted chunks: the allocation accepts"
    assert all(node_ram.contains(e.start, e.end) and e.vcpu == vcpu for e in accepts)
    assert {e.entry.fifo for e in accepts if e.entry is not None} == {"Normal" if node == 0 else "Normal@node1"}


def test_allocations_fall_back_to_the_next_node_when_the_local_one_is_full():
    rec = build_record(config(16 * GiB, 4, numa=2))
    alloc = rec.kernel.allocator
    node1 = srat(16 * GiB, 2)[1]
    local = next(z for z in alloc.zones if z.node == 1)
    usable = local.free_pages - local.wmark_low
    got = alloc.alloc(usable + 1024, actor="test", vcpu=3)
    outside = [(s, e) for s, e in got if not node1.contains(s, e)]
    assert outside and all(srat(16 * GiB, 2)[0].contains(s, e) for s, e in outside)


def deferred_works(rec) -> list[WorkEvent]:
    phase = next(p for p in rec.phases if p.name == BootPhase.DEFERRED_INIT)
    return [e for e in phase.events if isinstance(e, WorkEvent) and e.kind == "struct_page_init"]


def test_deferred_init_one_kthread_per_node_with_the_nodes_cpus():
    # 8 nodes, 12 vCPUs in blocks: node k has the vCPUs v with v * 8 // 12 == k.
    rec = build_record(config(4 * TiB, 12, numa=8))
    cpus = {k: [v for v in range(12) if v * 8 // 12 == k] for k in range(8)}
    assert [len(cpus[k]) for k in range(8)] == [2, 1, 2, 1, 2, 1, 2, 1]
    nodes = srat(4 * TiB, 8)
    works = deferred_works(rec)
    for k in range(8):
        # defer_init(): the node's last zone (Normal) from its start plus one section.
        zone_start, zone_end = nodes[k].first(), nodes[k].last()
        if k == 0:
            zone_start = G4
        lo = -(-(zone_start + SECTION) // SECTION) * SECTION
        mine = [e for e in works if e.vcpu in cpus[k]]
        assert sorted(e.vcpu for e in mine) == cpus[k]  # one padata thread per CPU of the node
        assert sum(e.amount for e in mine) == (zone_end - lo) // PAGE_SIZE


def test_deferred_init_takes_the_slowest_nodes_pages_times_the_per_page_cost():
    profile = load_profile("tdx")
    per_page = profile.si("boot.struct_page_init")
    res = run(config(4 * TiB, 12, numa=8), profile)
    span = next(p for p in res.timeline.phases if p.name == BootPhase.DEFERRED_INIT)
    # Node 1 has one CPU: one thread initialises its whole Normal zone less the first section.
    slowest = (512 * GiB - SECTION) // PAGE_SIZE * per_page
    assert span.end - span.start == pytest.approx(slowest, rel=0.01)
    # One node of 12 vCPUs would split the same memory 12 ways.
    one = run(config(4 * TiB, 12), profile)
    span1 = next(p for p in one.timeline.phases if p.name == BootPhase.DEFERRED_INIT)
    sections = -(-(4 * TiB - 2 * GiB - SECTION) // SECTION)
    assert span1.end - span1.start == pytest.approx(-(-sections // 12) * SECTION // PAGE_SIZE * per_page, rel=0.01)


def test_numa_1_is_no_numa():
    a = run(config(64 * GiB, 8), load_profile("tdx"))
    b = run(GuestRequest(memory=64 * GiB, tee=Tee.TDX, vcpus=8).resolve(), load_profile("tdx"))
    assert a.timeline.total_s == b.timeline.total_s
    with_opt = run_cli("boot", "--memory", "64G", "--vcpus", "8", "--numa", "1", "--json")
    without = run_cli("boot", "--memory", "64G", "--vcpus", "8", "--json")
    assert with_opt.code == without.code == 0
    assert json.loads(with_opt.out)["boot_s"] == json.loads(without.out)["boot_s"]


@pytest.mark.parametrize("numa", [1, 8])
def test_memmap_and_page_tables_accepted_by_memblock_on_the_boot_cpu(numa):
    rec = build_record(config(4 * TiB, 64, numa=numa))
    early = next(p for p in rec.phases if p.name == BootPhase.EARLY_INIT)
    accepts = [e for e in early.events if isinstance(e, AcceptEvent) and e.actor == "memblock"]
    memmap = [e for e in accepts if e.reason.startswith("memmap")]
    assert len(memmap) == numa and all(e.vcpu == 0 for e in memmap)
    # 64 bytes of struct page per 4 KiB page of every present 128 MiB section: 1/64 of RAM,
    # 2 GiB below 4 GiB and 4094 GiB above, all whole sections.
    assert sum(e.end - e.start for e in memmap) == (4 * TiB) * 64 // 4096 == 64 * GiB
    # Each node's memmap is in its own memory (sparse_init_nid()).
    for k, e in enumerate(sorted(memmap, key=lambda e: e.start)):
        assert srat(4 * TiB, numa)[k].contains(e.start, e.end)
    (tables,) = [e for e in accepts if e.reason == "page-tables"]
    assert tables.vcpu == 0 and tables.end - tables.start == rec.kernel.ram.total() // GiB * PAGE_SIZE


def test_the_bitmap_is_one_bit_per_2_mib_and_reserved():
    rec = build_record(config(4 * TiB, 64, numa=8))
    table = rec.kernel.table
    assert table is not None and table.unit_size == 2 * MiB
    end = G4 + (4 * TiB - LOWMEM)  # the unaccepted memory ends with RAM; it starts below that
    assert table.size == -(-(end - table.phys_base) // (2 * MiB * 8))
    assert table.size <= 256 * 1024  # 4 TiB / 2 MiB / 8 bits
    lo, hi = rec.kernel.reservations["unaccepted-table"]
    assert hi - lo >= table.size


def converted_swiotlb(rec) -> int:
    phase = next(p for p in rec.phases if p.name == BootPhase.MEM_ENCRYPT_INIT)
    (conv,) = [e for e in phase.events if isinstance(e, ConvertEvent) and e.reason == "swiotlb"]
    return conv.pages * PAGE_SIZE


@pytest.mark.parametrize("size,vcpus,expected", [
    (256 * MiB, 8, 256 * MiB),  # 131072 slabs: whole segments and a power of two already
    (300 * MiB, 8, 512 * MiB),  # 153600 slabs: rounded up to 262144, a power of two
    (1 * MiB + 2048, 4, 2 * MiB),  # 513 slabs: aligned to 640, then the next power of two, 1024
    (1 * MiB, 16, 4 * MiB),  # 512 slabs, but at least 128 per area for 16 areas: 2048
])
def test_swiotlb_option_size_is_converted_as_the_kernel_rounds(size, vcpus, expected):
    slabs = -(-size // 2048)
    nslabs = -(-slabs // 128) * 128  # setup_io_tlb_npages(): ALIGN(n, IO_TLB_SEGSIZE)
    nareas = 1 << (vcpus - 1).bit_length()
    nslabs = max(nslabs, 128 * nareas)  # round_up_default_nslabs()
    nslabs = 1 << (nslabs - 1).bit_length()
    assert nslabs * 2048 == expected
    rec = build_record(config(16 * GiB, vcpus, swiotlb_slabs=slabs))
    assert converted_swiotlb(rec) == nslabs * 2048


def test_swiotlb_of_the_default_size_is_sized_by_ram_as_without_it():
    # swiotlb_adjust_size() sizes by RAM while default_nslabs is IO_TLB_DEFAULT_SIZE's 32768.
    a = build_record(config(16 * GiB, 4, swiotlb_slabs=32768))
    b = build_record(config(16 * GiB, 4))
    assert converted_swiotlb(a) == converted_swiotlb(b) == 1 * GiB


def test_swiotlb_option_reaches_the_boot():
    r = run_cli("boot", "--memory", "16G", "--vcpus", "8", "--swiotlb", "300M", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["config"]["swiotlb_slabs"] == 153600


@pytest.mark.parametrize("args,message", [
    (["--numa", "0"], "numa must be between 1 and 64 nodes, not 0"),
    (["--numa", "65", "--vcpus", "128"], "numa must be between 1 and 64 nodes, not 65"),
    (["--numa", "8", "--vcpus", "4"], "needs at least one vCPU per node"),
    (["--memory", "1G", "--numa", "4", "--vcpus", "4"], "each node needs at least 512 MiB"),
    (["--swiotlb", "512K"], "swiotlb must be between 1 MiB and half the memory"),
    (["--memory", "4G", "--swiotlb", "3G"], "swiotlb must be between 1 MiB and half the memory"),
    (["--swiotlb", "lots"], "not a size"),
])
def test_bad_numa_and_swiotlb_are_one_line_and_exit_2(args, message):
    argv = ["boot", *(["--memory", "16G"] if "--memory" not in args else []), *args]
    r = subprocess.run([sys.executable, "-m", "lazyaccept", *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_each_node_streams_from_its_own_share_of_the_host_bandwidth():
    from lazyaccept.sim.engine import Host, WorkItem, simulate_phase

    gb = 1e9
    host = Host(memory_bandwidth=100 * gb, vcpu_bandwidth=100 * gb)
    items = {v: [WorkItem(v, 0.0, 1 * gb)] for v in (0, 1, 2)}
    # One pool: three vCPUs share 100 GB/s, 33.3 GB/s each, 1 GB in 30 ms.
    one = simulate_phase(items, 0.0, host)
    assert one.duration == pytest.approx(3 / 100)
    # Two nodes of 50 GB/s: vCPUs 0 and 1 share node 0's (25 GB/s each, 40 ms); vCPU 2 has node 1's
    # alone (20 ms).
    two = simulate_phase(items, 0.0, host.with_nodes((0, 0, 1, 1)))
    assert two.vcpus[2].end == pytest.approx(1 / 50)
    assert two.vcpus[0].end == two.vcpus[1].end == pytest.approx(two.duration) == pytest.approx(4 / 100)


@pytest.mark.parametrize("command", [
    ["boot", "--memory", "64G"],
    ["run", "--memory", "64G", "--workload", "touch:1G"],
    ["compare", "--memory", "64G"],
    ["advise", "--memory", "64G", "--firmware-accept", "below-4g"],
])
def test_every_guest_command_takes_numa_and_swiotlb(command):
    r = run_cli(*command, "--vcpus", "4", "--numa", "2", "--swiotlb", "256M", "--json")
    assert r.code == 0, r.err


def test_a_swiotlb_too_big_for_the_memory_below_4g_is_halved_until_it_fits():
    # 64 GiB on q35: 2 GiB of RAM below 4 GiB, less the first MiB the kernel reserves, so neither
    # 4 GiB nor 2 GiB fits there; swiotlb_init_remap() halves to 1 GiB, which does.
    r = run_cli("boot", "--memory", "64G", "--swiotlb", "4G", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["swiotlb_bytes"] == 1 * GiB
    text = run_cli("boot", "--memory", "64G", "--swiotlb", "4G")
    assert "SWIOTLB (swiotlb=2097152): 1 GiB below 4 GiB, converted to shared; 4 GiB did not fit" in text.out


def test_a_section_two_nodes_share_has_one_memmap():
    # 10 GiB on 3 nodes of 3408, 3408 and 3424 MiB: the node borders fall inside 128 MiB sections.
    # RAM covers 16 sections below 4 GiB and 64 above: 80 sections of 2 MiB of struct pages each,
    # however the nodes divide them.
    def memmap(rec) -> int:
        early = next(p for p in rec.phases if p.name == BootPhase.EARLY_INIT)
        return sum(e.end - e.start for e in early.events
                   if isinstance(e, AcceptEvent) and e.actor == "memblock" and e.reason.startswith("memmap"))

    three, one = build_record(config(10 * GiB, 3, numa=3)), build_record(config(10 * GiB, 3))
    assert memmap(three) == memmap(one) == 80 * 2 * MiB
