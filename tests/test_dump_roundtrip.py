"""`lazyaccept boot --dump DIR` then `lazyaccept inspect DIR/*`: every artefact reads back and agrees."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lazyaccept.base.units import GiB
from lazyaccept.cli import cli


def run_json(args: list[str]) -> dict:
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("policy", ["lazy", "eager"])
def test_dump_of_64g_tdx_boot_reads_back(tmp_path, policy):
    out = tmp_path / "out"
    boot = run_json(["boot", "--memory", "64G", "--platform", "tdx", "--policy", policy, "--kernel", "mainline",
                     "--firmware-accept", "below-4g", "--json", "--dump", str(out)])
    files = sorted(str(p) for p in out.iterdir())
    names = {p.split("/")[-1] for p in files}
    assert names == {"dmesg.txt", "e820.txt", "efi-memmap.bin", "meminfo", "td-hob.bin", "unaccepted-table.bin",
                     "vmstat", "host-trace.txt"}
    docs = {d["path"].split("/")[-1]: d for d in run_json(["inspect", "--json", *files])["files"]}
    unaccepted = boot["unaccepted_after_boot_bytes"]
    if policy == "eager":
        assert unaccepted == 0
    else:
        # 62 GiB above 4 GiB start unaccepted; the kernel must accept at least the memmap
        # (64 B per 4 KiB page = 1 GiB), the dentry and inode hashes (64 + 32 MiB) and the
        # 256 MiB shell footprint (SWIOTLB sits below 4 GiB, in memory firmware accepted):
        # at most 60.66 GiB remain.
        assert 58 * GiB < unaccepted <= 62 * GiB - 1 * GiB - 96 * 2**20 - 256 * 2**20
    # /proc/meminfo and /proc/vmstat agree with the run and with each other (kB = 4 x pages).
    assert docs["meminfo"]["summary"]["unaccepted_bytes"] == unaccepted
    assert docs["meminfo"]["fields"]["Unaccepted"] == 4 * docs["vmstat"]["nr_unaccepted"]
    assert docs["meminfo"]["fields"]["MemTotal"] == boot["meminfo_kb"]["MemTotal"]
    # The bitmap as the kernel left it.
    table = docs["unaccepted-table.bin"]
    assert table["phys_base"] == 4 * GiB  # first type-15 descriptor starts at 4 GiB
    assert table["unaccepted_bytes"] == boot["bitmap"]["unaccepted_bytes"]
    assert (table["unaccepted_bytes"] == 0) == (policy == "eager")
    # The EFI memory map handed over: everything above 4 GiB (62 GiB for a 64 GiB q35 guest)
    # is type 15; e820 shows it as usable, as real guests do.
    assert docs["efi-memmap.bin"]["unaccepted_bytes"] == 62 * GiB
    assert docs["efi-memmap.bin"]["usable_bytes"] == docs["e820.txt"]["usable_bytes"]
    # The TD HOB QEMU wrote: RAM above 4 GiB is one unaccepted (type 7) resource.
    res = [(r["start"], r["end"]) for r in docs["td-hob.bin"]["resources"] if r["type_code"] == 7]
    assert (4 * GiB, 66 * GiB) in res
    # The dmesg text names the platform and carries the same e820 map as e820.txt.
    dm = docs["dmesg.txt"]
    assert dm["platform"] == "tdx"
    assert dm["e820"] == docs["e820.txt"]["entries"]
    assert dm["memory"]["unaccepted_bytes"] == 62 * GiB
