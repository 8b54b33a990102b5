"""Memory hot-add (``--workload hotplug:SIZE@T``): what released kernels do and what the proposals do.

Expected behaviour from the sources: drivers/firmware/efi/libstub/unaccepted_memory.c (every
release to v7.0) sizes the bitmap from the boot EFI memory map only; mm/memory_hotplug.c
online_pages() -> generic_online_page() -> __free_pages_core() accepts or parks a block only if
page_contains_unaccepted() (range_contains_unaccepted_memory(): false outside the bitmap), so
hot-added memory reaches the buddy lists unaccepted, and a TD's first private access to it is fatal.
The proposals: "[RFCv2 PATCH 0/6] Support memory hotplug/unplug for TDX CoCo guests" (Z. Duan, LKML
23 Jun 2026: SRAT parsed by the EFI stub so the bitmap tracks hot-pluggable ranges from boot) and
tianocore/edk2 issue 12810 / PR 12811 (P. Sampat, EFI_MEMORY_UHP: a UHP-aware OS sizes its
unaccepted-memory tracking over the hot-plug window and defers acceptance to the hot-add).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lazyaccept.base.choices import Tee
from lazyaccept.base.errors import ConfigError, SafetyViolation
from lazyaccept.base.units import GiB, MiB
from lazyaccept.cli import cli
from lazyaccept.guest.hotplug import DeviceMemory, hot_add
from lazyaccept.guest.patches import GuestPatch, apply_patches
from lazyaccept.guest.rules import kernel_rules
from lazyaccept.scenario.workloads import Workload
from test_guest_page_alloc import allocator


def test_device_memory_starts_at_the_gib_aligned_end_of_ram_above_4g():
    """QEMU hw/i386/pc.c: device memory base = ROUND_UP(end of RAM above 4 GiB, 1 GiB)."""
    w = DeviceMemory(10 * GiB + 256 * MiB)
    assert w.place(1 * GiB) == (11 * GiB, 12 * GiB)
    assert w.place(128 * MiB) == (12 * GiB, 12 * GiB + 128 * MiB)  # the next DIMM follows
    assert DeviceMemory(2 * GiB).place(128 * MiB)[0] == 4 * GiB  # all RAM below 4 GiB


@pytest.mark.parametrize("kernel", ["6.5", "6.12", "mainline", "7.0"])
def test_released_kernels_leave_hot_added_memory_out_of_the_bitmap(kernel):
    a = allocator(kernel, accepted_mib=16, total_mib=64)
    with pytest.raises(SafetyViolation, match="not in the unaccepted bitmap") as info:
        hot_add(a, DeviceMemory(a.ram.last()), 256 * MiB, Tee.TDX)
    assert info.value.rule == "hotplug-unaccepted" and "fatal to the TD" in str(info.value)


@pytest.mark.parametrize(("patch", "tee", "recorded"), [
    (GuestPatch.TDX_HOTPLUG_RFC2, Tee.TDX, True),
    (GuestPatch.TDX_HOTPLUG_RFC2, Tee.SNP, False),  # a TDX series
    (GuestPatch.EFI_MEMORY_UHP, Tee.TDX, True),
    (GuestPatch.EFI_MEMORY_UHP, Tee.SNP, True),
])
def test_the_proposals_park_hot_added_memory_and_accept_it_on_demand(patch, tee, recorded):
    rules = apply_patches(kernel_rules("mainline"), [patch])
    a = allocator(rules=rules, accepted_mib=16, total_mib=64)
    chunks = a.zones[-1].chunks_on_list()
    window = DeviceMemory(a.ram.last())
    if not recorded:
        with pytest.raises(SafetyViolation):
            hot_add(a, window, 256 * MiB, tee)
        return
    start, end = hot_add(a, window, 256 * MiB, tee)
    assert a.zones[-1].chunks_on_list() == chunks + 64  # 256 MiB of 4 MiB chunks, all parked
    assert a.mem.range_contains_unaccepted(start, end - start)
    assert not a.platform.accepted().overlaps(start, end)  # nothing accepted at the hot-add


def test_hotplug_workload_parses_and_refuses_partial_memory_blocks():
    w = Workload.parse("hotplug:4G@30")
    assert (w.size, w.start) == (4 * GiB, 30.0)
    for bad in ("hotplug:100M", "hotplug", "hotplug:0"):
        with pytest.raises(ConfigError):
            Workload.parse(bad)


def test_run_with_a_hot_add_is_a_guest_failure_on_released_kernels_and_runs_with_the_rfc():
    args = ["run", "--memory", "8G", "--workload", "hotplug:2G@1", "--workload", "touch:8704M@2", "--json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 3 and "hotplug-unaccepted" in r.output
    r = CliRunner().invoke(cli, [*args, "--patch", "tdx-hotplug-rfc2"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    # the touch used memory beyond what booted: the host now backs more than the 8 GiB booted
    assert doc["host_committed_bytes"] > 8 * GiB
