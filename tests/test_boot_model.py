"""Whole boots through the model: firmware, stub, kernel, sanitizer (issue: the acceptance path)."""

from __future__ import annotations

import pytest

from conftest import config_for
from lazyaccept.base.errors import ConfigError, SafetyViolation
from lazyaccept.base.record import AcceptEvent
from lazyaccept.base.units import GiB, MiB, TiB
from lazyaccept.firmware.q35 import q35_split
from lazyaccept.formats.efi_memmap import MemoryType
from lazyaccept.scenario.build import build_record
from lazyaccept.scenario.sanitizer import check_no_memory_lost

G4 = 4 * GiB


def boot(memory: int, **kw) -> object:
    kw.setdefault("kernel", "mainline")
    kw.setdefault("vcpus", 2)
    return build_record(config_for(memory, **kw))


@pytest.mark.parametrize(
    "ram,below,above",
    [
        (4 * GiB, 2 * GiB, 2 * GiB),  # >= 2816 MiB: 2 GiB below 4 GiB
        (2816 * MiB, 2 * GiB, 768 * MiB),
        (2815 * MiB, 2815 * MiB, 0),  # below the threshold everything stays low
        (1 * GiB, 1 * GiB, 0),
    ],
)
def test_q35_split(ram, below, above):
    assert q35_split(ram) == (below, above)


@pytest.mark.parametrize("memory", [1 * GiB, 4095 * MiB, 4 * GiB, 67000 * MiB, 64 * GiB, 1 * TiB])
@pytest.mark.parametrize("platform", ["tdx", "snp"])
def test_guest_sizes_boot_clean_and_lose_nothing(memory, platform):
    lazy = boot(memory, platform=platform, policy="lazy")
    eager = boot(memory, platform=platform, policy="eager")
    _, above = q35_split(memory)
    # Eager: nothing left unaccepted, bitmap clear.
    assert eager.kernel.allocator.nr_unaccepted() == 0
    assert eager.kernel.table is None or not eager.kernel.table.bits.any()
    # Lazy: only memory above 4 GiB can still be unaccepted (firmware took everything below).
    assert lazy.unaccepted_after_boot <= above
    if above >= 8 * GiB:
        assert lazy.unaccepted_after_boot > above // 2
    # Same memory in the end (the sanitizer's nothing-lost check drains the lazy guest).
    check_no_memory_lost(lazy, eager)


def test_16_tib_guest():
    lazy = boot(16 * TiB, policy="lazy")
    # The memmap alone is 64 bytes per 4 KiB page = 256 GiB, accepted by memblock at boot.
    memblock = sum(e.stats.bytes_accepted for p in lazy.phases for e in p.events
                   if isinstance(e, AcceptEvent) and e.reason == "memmap")
    assert memblock >= 256 * GiB - 16 * 2 * MiB  # minus units accepted earlier as neighbours
    assert lazy.unaccepted_after_boot > 15 * TiB


def test_firmware_stripes_32mib_chunks_over_vcpus():
    # 4 GiB TDX guest, 4 vCPUs, firmware accepts below 4 GiB.  The big low region is
    # [0x820000, 2G) (TDVF sections end at 0x820000): head [0x820000, 0xA00000) by the BSP, body
    # [0xA00000, 2G) = 2038 MiB = 63 full 32 MiB chunks + one of 22 MiB; chunk k goes to
    # vCPU k % 4: vCPU 1 gets 16 full chunks (512 MiB), vCPU 3 15 full + the 22 MiB one.
    rec = boot(4 * GiB, vcpus=4, firmware_accept="below-4g")
    per_cpu: dict[int, int] = {}
    for e in rec.phases[1].events:
        if isinstance(e, AcceptEvent) and e.reason == "pre-accept-mp":
            per_cpu[e.vcpu] = per_cpu.get(e.vcpu, 0) + e.stats.bytes_accepted
    assert per_cpu[1] == per_cpu[2] == 512 * MiB
    assert per_cpu[3] == 15 * 32 * MiB + 22 * MiB
    assert per_cpu[0] == 512 * MiB


def test_tdvf_sections_are_added_not_accepted():
    rec = boot(4 * GiB)
    # TD_HOB at 0x809000 (Debian OVMF): added by the host, never accepted by the guest.
    assert rec.platform.accepted().contains(0x809000, 0x80B000)
    events = [e for p in rec.phases for e in p.events if isinstance(e, AcceptEvent)]
    assert not any(e.start < 0x80B000 and e.end > 0x809000 for e in events)


def test_partial_firmware_accept_size():
    rec = boot(8 * GiB, firmware_accept="512M")
    types = {d.type for d in rec.firmware.memory_map}
    assert MemoryType.EfiUnacceptedMemoryType in types
    # Unaccepted memory then starts below 4 GiB: phys_base is the first unaccepted unit.
    assert rec.kernel.table.phys_base < 4 * GiB


def test_firmware_accept_too_small_is_a_clear_error():
    with pytest.raises(ConfigError, match="firmware accepts too little"):
        boot(8 * GiB, firmware_accept="16M")


def test_snp_without_os_opt_in_firmware_accepts_everything():
    rec = build_record(config_for(8 * GiB, "snp", kernel="mainline", vcpus=1, snp_os_opt_in=False))
    assert not any(d.type == MemoryType.EfiUnacceptedMemoryType for d in rec.firmware.memory_map)
    assert rec.kernel.table is None
    assert rec.firmware.pre_accepted_bytes >= 8 * GiB - 64 * MiB


def test_snp_with_opt_in_leaves_memory_above_4g_unaccepted():
    rec = build_record(config_for(8 * GiB, "snp", kernel="mainline", vcpus=1))
    unacc = [d for d in rec.firmware.memory_map if d.type == MemoryType.EfiUnacceptedMemoryType]
    assert [(d.physical_start, d.end) for d in unacc] == [(G4, G4 + 6 * GiB)]


@pytest.mark.parametrize("kernel,fails", [("6.5", False), ("6.6", True), ("6.7", True), ("6.11", True),
                                          ("6.12", True), ("6.15", True), ("mainline", False)])
def test_unaccepted_table_reservation_bug_at_67000m(kernel, fails):
    # The 2026 report: -m 67000M TDX guests fault in accept_memory() just past the first page of
    # the table (table at ...4030, size 0xfdc).  Bitmap: (67000 MiB - 2 GiB) / 2 MiB = 32476 bits
    # = 4059.5 -> 4060 = 0xfdc bytes; at page offset 0x30 it ends at 0x30 + 24 + 0xfdc = 0x1024:
    # past the first page, which is all the unfixed reservation covers.
    if fails:
        with pytest.raises(SafetyViolation) as e:
            boot(67000 * MiB, kernel=kernel)
        assert e.value.rule == "table-reservation"
    else:
        rec = boot(67000 * MiB, kernel=kernel)
        assert rec.kernel.table.size == 0xFDC
        assert rec.kernel.stub.table_addr % 4096 == 0x30


def test_sanitizer_fires_on_touch_of_unaccepted_memory():
    rec = boot(64 * GiB)
    zone = rec.kernel.allocator.zones[-1]
    start, _ = zone.unaccepted[0]
    with pytest.raises(SafetyViolation) as e:
        rec.platform.touch(start + 2 * MiB, start + 2 * MiB + 64, actor="test", vcpu=3)
    assert e.value.rule == "touch-unaccepted" and e.value.vcpu == 3 and e.value.address == start + 2 * MiB


def test_early_boot_zero_watermark_acceptance_is_bounded_by_the_non_deferred_memory():
    # Mainline, before watermarks, each page allocation accepts one 4 MiB chunk.  But before
    # deferred init only what memblock_free_all() released is on the list: the highest zone's
    # first section (defer_init() stops at the first section boundary once more than
    # PAGES_PER_SECTION pages are initialised: 4G + 128M), i.e. 32 chunks, which the early and
    # SMP allocations (more than 32) drain.  After deferred init the list is full again, and each
    # allocation until init_per_zone_wmark_min() accepts one more chunk.
    from lazyaccept.guest.footprint import BootFootprint

    fp = BootFootprint()
    for vcpus in (1, 9):
        rec = boot(64 * GiB, vcpus=vcpus)
        assert rec.kernel.deferred_start == G4 + 128 * MiB
        assert fp.early_page_allocs + fp.page_allocs_per_ap * (vcpus - 1) > 32

        def chunks(*phases: str, rec=rec) -> int:
            return sum(e.requests for p in rec.phases if p.name in phases for e in p.events
                       if isinstance(e, AcceptEvent) and e.reason == "zero-watermark")

        assert chunks("early-allocs", "smp-bringup") == 32
        assert chunks("early-initcalls") == fp.pre_watermark_allocs


def test_application_processors_accept_whole_chunks_at_2mib():
    # MP accept of a 34 MiB 2 MiB-aligned body on 2 vCPUs and a 2M host: chunk 0 (32 MiB) on
    # vCPU 0, chunk 1 (2 MiB) on vCPU 1.  APs run TdAcceptPages at 2 MiB on their chunk: 17
    # blocks, each one exit (host AUGs 2 MiB) and two 2M TDCALLs; no 4 KiB accept at all (the
    # BSP's "body only above 2 MiB" rule would have made chunk 1 512 x 4K).
    from lazyaccept.base.choices import FirmwareAccept
    from lazyaccept.base.record import Recorder
    from lazyaccept.firmware.tdvf import Tdvf, load_tdvf
    from lazyaccept.platform.host import HostPolicy, HostVMM
    from lazyaccept.platform.tdx import TdxPlatform

    p = TdxPlatform(host=HostVMM(HostPolicy(mapping="2m")))
    rec = Recorder()
    rec.begin("firmware-accept", "firmware", online_vcpus=2)
    fw = Tdvf(p, rec, ram=8 * GiB, vcpus=2, firmware_accept=FirmwareAccept.parse("below-4g"),
              kernel_image=64 * MiB, tdvf=load_tdvf("builtin"))
    fw._mp_accept(G4, G4 + 34 * MiB)
    events = [e for e in rec.phases[0].events if isinstance(e, AcceptEvent)]
    by_cpu = {e.vcpu: e.stats for e in events}
    assert by_cpu[0].calls_2m == 2 * 16 and by_cpu[0].exits == 16
    assert by_cpu[1].calls_2m == 2 and by_cpu[1].exits == 1 and by_cpu[1].calls_4k == 0
    assert sum(e.stats.bytes_accepted for e in events) == 34 * MiB


def test_swiotlb_halves_until_it_fits():
    # 40 GiB guest, firmware accepts 1 GiB: the firmware area splits accepted low memory so no
    # free 1 GiB range is left below 4 GiB for the 1 GiB SWIOTLB (6% of 40 GiB, clamped);
    # swiotlb_init_remap() halves it and retries, so the guest still boots with 512 MiB.
    rec = boot(40 * GiB, firmware_accept="1G", kernel="mainline")
    swiotlb = [e for p in rec.phases for e in p.events if isinstance(e, AcceptEvent) and e.reason == "swiotlb"]
    assert len(swiotlb) == 1 and swiotlb[0].end - swiotlb[0].start == 512 * MiB
