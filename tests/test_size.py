"""``lazyaccept size``: the answer is the smallest guest that leaves the workload its memory
(checked by booting the model independently one step, and more, below it), the guest's memory
adds up from the VM's size to MemTotal to MemAvailable, and the kernel's sizes match hand
arithmetic (struct page: 64 B per 4 KiB page; the SWIOTLB default)."""

from __future__ import annotations

import json
import math

import pytest

from cli_helpers import run_cli
from lazyaccept.base.units import GiB, KiB, MiB
from lazyaccept.scenario.artefacts import meminfo_fields
from lazyaccept.scenario.build import build_record
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.scenario.memory_budget import memory_budget
from lazyaccept.sim.profile import load_profile


def _available(memory: int, profile: str = "tdx") -> int:
    """MemAvailable of the modelled guest of ``memory`` bytes, straight from its /proc/meminfo."""
    p = load_profile(profile)
    rec = build_record(GuestRequest(memory=memory, tee=p.tee).resolve(p.defaults))
    return meminfo_fields(rec)["MemAvailable"] * KiB


def _size(*args: str) -> dict:
    r = run_cli("size", *args, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


@pytest.fixture(scope="module")
def four_gib() -> dict:
    return _size("--limit", "4G")


def test_the_answer_leaves_the_limit_and_no_smaller_step_does(four_gib: dict) -> None:
    limit, m, step = 4 * GiB, four_gib["memory_bytes"], four_gib["step_bytes"]
    assert step == 2 * MiB and m % step == 0
    assert _available(m) >= limit
    # Every size from one step below down to 128 MiB below leaves less than the limit.
    for smaller in range(m - step, m - 128 * MiB, -step):
        assert _available(smaller) < limit, smaller
    assert four_gib["one_step_smaller"]["available_bytes"] == _available(m - step)


def test_memtotal_and_its_differences_add_up_to_the_vm_size(four_gib: dict) -> None:
    d = four_gib
    assert d["memory_bytes"] == sum(i["bytes"] for i in d["to_mem_total"]) + d["mem_total_bytes"]
    assert d["mem_total_bytes"] == sum(i["bytes"] for i in d["to_available"]) + d["mem_available_bytes"]
    assert all(i["source"] for i in d["to_mem_total"] + d["to_available"])
    # The model's own /proc/meminfo says the same MemTotal.
    p = load_profile("tdx")
    rec = build_record(GuestRequest(memory=d["memory_bytes"]).resolve(p.defaults))
    assert meminfo_fields(rec)["MemTotal"] * KiB == d["mem_total_bytes"]


def test_memmap_is_64_bytes_per_4k_page_of_each_present_section(four_gib: dict) -> None:
    # QEMU q35 with at least 2816 MiB: 2 GiB below 4 GiB, the rest from 4 GiB; sparse memory
    # maps whole 128 MiB sections (32,768 pages of 64 B: 2 MiB each).
    m = four_gib["memory_bytes"]
    below, above = 2 * GiB, m - 2 * GiB
    sections = math.ceil(below / (128 * MiB)) + math.ceil(above / (128 * MiB))
    memmap = next(i["bytes"] for i in four_gib["to_mem_total"] if i["name"].startswith("memmap"))
    assert memmap == sections * (128 * MiB // (4 * KiB)) * 64


def test_a_section_aligned_guest_has_exactly_64_bytes_of_memmap_per_page() -> None:
    p = load_profile("tdx")
    budget = memory_budget(build_record(GuestRequest(memory=4 * GiB).resolve(p.defaults)))
    items = {i.name.split(" (")[0]: i.bytes for i in budget.to_mem_total}
    assert items["memmap"] == 4 * GiB // (4 * KiB) * 64 == 64 * MiB
    # SWIOTLB: 6% of 4096 MiB = 245.76 MiB = 125,830 slabs of 2 KiB (rounded up), a power of two
    # of slabs above that is 131,072: 256 MiB.
    assert items["SWIOTLB bounce buffer"] == 256 * MiB
    assert items["crash kernel"] == 0


def test_the_overheads_an_orchestrator_needs(four_gib: dict) -> None:
    o = four_gib["overhead"]
    assert o["kata_overhead_memory_mib"] == math.ceil((four_gib["memory_bytes"] - 4 * GiB) / MiB)
    # The pod's cgroup holds what the host committed: at least the VM once the workload has
    # touched its whole limit.
    steady = four_gib["host_committed_steady_bytes"]
    assert steady >= four_gib["memory_bytes"] - four_gib["to_mem_total"][0]["bytes"]
    assert o["pod_fixed_memory_min_mib"] == math.ceil((steady - 4 * GiB) / MiB)
    assert four_gib["host_committed_at_boot_bytes"] < steady
    assert "kubernetes.io" in o["pod_fixed_source"] and "kata-containers" in o["kata_overhead_source"]


def test_beside_what_kata_ships() -> None:
    d = _size("--limit", "1G", "--orchestrator", "kata-qemu-tdx")
    orch = d["overhead"]["orchestrator"]
    assert orch["overhead_memory_mib"] == 128  # runtime-rs DEFOVERHEADMEMSZ_TEE
    assert orch["short_by_mib"] == max(0, d["overhead"]["kata_overhead_memory_mib"] - 128)


def test_snp_is_sized_on_its_own_profile() -> None:
    d = _size("--limit", "2G", "--tee", "snp")
    assert d["config"]["platform"] == "snp"
    assert _available(d["memory_bytes"], "snp") >= 2 * GiB > _available(d["memory_bytes"] - 2 * MiB, "snp")


@pytest.mark.parametrize("args,needle", [
    (["--limit", "lots"], "size"),
    (["--limit", "4G", "--orchestrator", "nomad"], "known are cloud-vm"),
    (["--limit", "4G", "--step", "1000B"], "4 KiB pages"),
    (["--limit", "65T"], "at most 64 TiB"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    r = run_cli("size", *args)
    assert r.code == 2 and len(r.err_lines) == 1 and needle in r.err, r.err
