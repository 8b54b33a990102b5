"""EFI stub rules (linux-kernel.md §1.4, §2.2-§2.4), each checked against a hand calculation."""

from __future__ import annotations

import pytest

from conftest import G4, tdx
from lazyaccept.base.record import Recorder
from lazyaccept.base.units import GiB, KiB, MiB
from lazyaccept.formats.efi_memmap import EfiMemoryDescriptor, MemoryType
from lazyaccept.formats.unaccepted import new_table
from lazyaccept.guest.efistub import POOL_OFFSET, EfiStub, StubError

UNACC = MemoryType.EfiUnacceptedMemoryType
CONV = MemoryType.EfiConventionalMemory


def desc(t: int, start: int, size: int) -> EfiMemoryDescriptor:
    return EfiMemoryDescriptor(t, start, size // 4096, 0xF)


def run_stub(memmap, installed=None, platform=None):
    p = platform or tdx()
    rec = Recorder()
    rec.begin("efi-stub", "efistub")
    return EfiStub(p, "linux", rec).run(memmap, installed), p, rec


def low_ram() -> EfiMemoryDescriptor:
    # Conventional memory below 4 GiB where allocate_pool places the table.
    return desc(CONV, 0x100000, 64 * MiB)


def test_descriptor_of_4mib_minus_4k_is_accepted_whole():
    # [4G+4K, 4G+4M) is 4092 KiB < 2 units: accepted whole even though [4G+2M, 4G+4M) is an
    # aligned unit (the "4k + 2044k + 2048k" example in the stub's comment).
    start, size = G4 + 4 * KiB, 4 * MiB - 4 * KiB
    res, p, _ = run_stub([low_ram(), desc(UNACC, start, size)])
    assert p.accepted().contains(start, start + size)
    assert res.accepted_bytes == size
    assert not res.table.bits.any()


def test_two_descriptors_meeting_inside_a_unit():
    # D1 = [4G, 4G+5M), D2 = [4G+5M, 4G+10M).  D1: tail [4M,5M) accepted, units 0-1 recorded.
    # D2: head [5M,6M) accepted, units 3-4 recorded.  Unit 2 = [4M,6M) ends fully accepted, bit 0.
    d1, d2 = desc(UNACC, G4, 5 * MiB), desc(UNACC, G4 + 5 * MiB, 5 * MiB)
    res, p, _ = run_stub([low_ram(), d1, d2])
    assert res.table.phys_base == G4
    assert res.table.bits[:5].tolist() == [True, True, False, True, True]
    assert p.accepted().contains(G4 + 4 * MiB, G4 + 6 * MiB)
    assert not p.accepted().overlaps(G4, G4 + 4 * MiB)
    assert not p.accepted().overlaps(G4 + 6 * MiB, G4 + 10 * MiB)
    assert res.accepted_bytes == 2 * MiB


def test_geometry_and_table_placement():
    # [4G, 6G) and [6G+4K, 8G): phys_base = 4G, end = 8G, (4 GiB / 2 MiB) bits = 2048 bits = 256 bytes.
    res, _, _ = run_stub([low_ram(), desc(UNACC, G4, 2 * GiB), desc(UNACC, 6 * GiB + 4 * KiB, 2 * GiB - 4 * KiB)])
    assert (res.table.phys_base, res.table.size) == (G4, 256)
    # Pool allocation: top of the highest conventional memory below 4 GiB, at the pool offset.
    acpi = [d for d in res.memory_map if d.type == MemoryType.EfiACPIReclaimMemory]
    assert len(acpi) == 1 and acpi[0].end == 0x100000 + 64 * MiB
    assert res.table_addr == acpi[0].physical_start + POOL_OFFSET
    # The unit holding 6G..6G+2M: descriptor 2 starts 4K into it: head accepted, bit clear.
    assert not res.table.bits[1024]
    assert res.table.bits[1023] and res.table.bits[1025]


def test_installed_table_with_other_geometry():
    # Firmware installed a table for [8G, 9G) only.  A [4G, 12G) descriptor: [4G, 8G) is below
    # phys_base and [9G, 12G) beyond the bitmap: both accepted now; [8G, 9G) recorded.
    installed = new_table(8 * GiB, 64)  # 64 bytes = 512 units = 1 GiB
    res, p, _ = run_stub([low_ram(), desc(UNACC, G4, 8 * GiB)], installed)
    assert res.table is installed
    assert installed.bits.all()
    assert p.accepted().contains(G4, 8 * GiB) and p.accepted().contains(9 * GiB, 12 * GiB)
    assert not p.accepted().overlaps(8 * GiB, 9 * GiB)


def test_installed_table_of_unknown_version_is_refused():
    t = new_table(G4, 8)
    t.version = 2
    with pytest.raises(StubError, match="Unknown version"):
        run_stub([low_ram(), desc(UNACC, G4, 16 * MiB)], t)


def test_unaccepted_memory_becomes_e820_ram_and_merges():
    # Conventional [1M, 65M) and unaccepted [65M, 129M) are adjacent: one e820 RAM entry, minus
    # the pages allocate_pool took for the table (ACPI data in e820).
    res, _, _ = run_stub([low_ram(), desc(UNACC, 0x100000 + 64 * MiB, 64 * MiB)])
    ram = [e for e in res.e820 if e.type == 1]
    acpi = [e for e in res.e820 if e.type == 3]
    assert len(acpi) == 1
    assert [(e.addr, e.end) for e in ram] == [(0x100000, acpi[0].addr), (acpi[0].end, 0x100000 + 128 * MiB)]


def test_stub_records_whole_units_only():
    # Unaligned at both ends: [4G+1M, 4G+9M+4K): head [4G+1M, 4G+2M), tail [4G+8M, 4G+9M+4K).
    res, p, rec = run_stub([low_ram(), desc(UNACC, G4 + MiB, 8 * MiB + 4 * KiB)])
    assert res.table.bits[:5].tolist() == [False, True, True, True, False]
    reasons = sorted(e.reason for e in rec.phases[0].events)
    assert reasons == ["head", "tail"]
    assert res.accepted_bytes == MiB + MiB + 4 * KiB
