"""``lazyaccept inspect``: real artefacts, files built with the format builders, and bad input."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyaccept.base.errors import FormatError
from lazyaccept.cli import cli
from lazyaccept.formats.efi_memmap import EfiMemoryDescriptor, build_memory_map
from lazyaccept.formats.hob import HobList, ResourceDescriptor, build_hob_list
from lazyaccept.formats.kernel_text import (
    format_dmesg_line,
    format_e820_lines,
    format_efi_memmap_lines,
    format_meminfo,
    format_node_meminfo,
    format_vmstat,
)
from lazyaccept.formats.tdvf import TdvfMetadata, TdvfSection, build_tdvf_image
from lazyaccept.scenario.inspect import detect_kind, inspect_file

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
LOGS = Path(__file__).resolve().parent / "data" / "real-logs"
GiB, MiB = 1 << 30, 1 << 20


def _real(path: Path) -> Path:
    if not path.exists():
        msg = f"{path} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + "; CI must provide it")
        pytest.skip(msg)
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["inspect", *args])


def run_json(*args: str) -> dict[str, Any]:
    result = run("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Any, path: str, needle: str) -> None:
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert path in lines[0]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr


# -- real artefacts ---------------------------------------------------------------------------


def test_real_ovmf_image_json() -> None:
    doc = run_json(str(_real(OVMF_CODE)))["files"][0]
    assert doc["kind"] == "firmware"
    assert doc["size_bytes"] == 1966080
    td = doc["tdvf"]
    assert td["descriptor_offset"] == 0x1DF7C0
    # Values checked by hand from a hexdump (see tests/test_tdvf.py for the derivation).
    keys = ("type", "data_offset", "raw_data_size", "memory_address", "memory_size", "attributes")
    assert [tuple(s[k] for k in keys) for s in td["sections"]] == [
        ("BFV", 0x20000, 0x1E0000, 0xFFE20000, 0x1E0000, 1),
        ("CFV", 0, 0x20000, 0xFFE00000, 0x20000, 0),
        ("TEMP_MEM", 0, 0, 0x810000, 0x10000, 0),
        ("TEMP_MEM", 0, 0, 0x80B000, 0x2000, 0),
        ("TD_HOB", 0, 0, 0x809000, 0x2000, 0),
        ("TEMP_MEM", 0, 0, 0x800000, 0x6000, 0),
    ]
    assert td["valid"] is True
    assert [(r["start"], r["end"]) for r in td["host_added_ranges"]][:2] == [(0x800000, 0x806000),
                                                                             (0x809000, 0x80B000)]
    assert td["host_added_bytes"] == 104 * 1024 + 2 * MiB
    assert [e["name"] for e in doc["ovmf_table"]][-1] == "TDX metadata offset"


def test_real_ovmf_image_table() -> None:
    result = run(str(_real(OVMF_CODE)))
    assert result.exit_code == 0, result.output
    for text in ("TD_HOB", "0xffe20000", "0x100000000", "MR.EXTEND", "KVM_TDX_INIT_MEM_REGION", "all met"):
        assert text in result.stdout


def test_real_logs_in_one_invocation() -> None:
    paths = sorted(str(p) for p in LOGS.glob("*.txt"))
    assert len(paths) >= 5, f"{LOGS}: the shipped real logs are missing"
    files = run_json(*paths)["files"]
    assert len(files) == len(paths)
    by_name = {Path(f["path"]).name: f for f in files}
    assert all(f["kind"] == "dmesg" for f in files)
    e820 = by_name["tdx_guest_e820_intel_tdx-tools_issue524.txt"]
    # 0x1764000 + 0x180000000 bytes usable (hand sum in tests/test_kernel_text.py).
    assert e820["memory"]["usable_bytes"] == 6_466_977_792
    assert e820["memory"]["usable_from"] == "e820"
    assert e820["memory"]["unaccepted_bytes"] is None  # no EFI map in that excerpt
    assert by_name["snp_guest_boot_lkml_20260309_bp.txt"]["platform"] == "snp"
    assert by_name["tdx_guest_detected_SUSE_img-proof_pr437.txt"]["platform"] == "tdx"
    zones = by_name["tdx_guest_zones_intel_tdx-linux_issue1.txt"]["zones"]
    assert zones[2] == {"name": "Normal", "start": 0x100000000, "end": 0x180000000, "empty": False}
    assert zones[3]["empty"] is True
    host = by_name["tdx_host_pamt_canonical_tdx_issue385.txt"]["tdx_host"]
    assert host["pamt_bytes"] == 8_396_820 * 1024


def test_real_log_table() -> None:
    result = run(str(_real(LOGS / "tdx_guest_e820_intel_tdx-tools_issue524.txt")))
    assert result.exit_code == 0, result.output
    assert "BIOS-e820 map" in result.stdout and "0x280000000" in result.stdout


# -- files built with the format builders -----------------------------------------------------


def test_efi_memmap_file(tmp_path: Path) -> None:
    descs = [
        EfiMemoryDescriptor(7, 0x0, 0xA0, 0xF),  # Conventional, 640 KiB
        EfiMemoryDescriptor(4, 0x100000, 0x100, 0xF),  # Boot Data, 1 MiB
        EfiMemoryDescriptor(0, 0xE0000000, 0x10000, 0),  # Reserved, 256 MiB
        EfiMemoryDescriptor(15, 0x100000000, 0x40000, 0xF),  # Unaccepted, 1 GiB
    ]
    path = tmp_path / "memmap.bin"
    path.write_bytes(build_memory_map(descs))  # 48-byte descriptors, as EDK2 reports
    doc = run_json(str(path))["files"][0]
    assert doc["kind"] == "efi-memmap"
    assert doc["descriptor_size"] == 48
    # Usable = what becomes e820 RAM: 640 KiB + 1 MiB + 1 GiB (unaccepted is RAM to e820).
    assert doc["usable_bytes"] == 0xA0000 + 0x100000 + GiB
    assert doc["unaccepted_bytes"] == GiB
    assert doc["descriptors"][3]["type"] == "EfiUnacceptedMemoryType"
    assert (doc["descriptors"][3]["start"], doc["descriptors"][3]["end"]) == (0x100000000, 0x140000000)


def test_unaccepted_table_file_built_by_hand(tmp_path: Path) -> None:
    # Header {version 1, unit 2 MiB, phys_base 4 GiB, 8 bitmap bytes}; bits 0-3 (byte 0 = 0x0f)
    # and bit 10 (byte 1, bit 2 = 0x04) set.
    data = struct.pack("<IIQQ", 1, 2 * MiB, 0x100000000, 8) + bytes([0x0F, 0x04, 0, 0, 0, 0, 0, 0])
    path = tmp_path / "table.bin"
    path.write_bytes(data)
    doc = run_json(str(path))["files"][0]
    assert doc["kind"] == "unaccepted-table"
    assert doc["units"] == 64 and doc["units_unaccepted"] == 5
    assert doc["max_addr"] == 0x100000000 + 64 * 2 * MiB
    assert [(r["start"], r["end"]) for r in doc["unaccepted_ranges"]] == [
        (0x100000000, 0x100800000),  # units 0-3
        (0x101400000, 0x101600000),  # unit 10: 4 GiB + 20 MiB
    ]
    assert doc["unaccepted_bytes"] == 10 * MiB


def test_hob_list_file(tmp_path: Path) -> None:
    hl = HobList(
        hobs=[
            ResourceDescriptor(7, 0x7, 0x0, 0x800000),
            ResourceDescriptor(0, 0x7, 0x800000, 0x6000),
            ResourceDescriptor(7, 0x7, 0x100000000, 6 * GiB, uuid.UUID(int=0)),
        ]
    )
    path = tmp_path / "td-hob.bin"
    path.write_bytes(build_hob_list(hl, base_address=0x809000))
    doc = run_json(str(path))["files"][0]
    assert doc["kind"] == "hob-list"
    assert [r["type"] for r in doc["resources"]] == [
        "EFI_RESOURCE_MEMORY_UNACCEPTED", "EFI_RESOURCE_SYSTEM_MEMORY", "EFI_RESOURCE_MEMORY_UNACCEPTED"
    ]
    assert doc["unaccepted_bytes"] == 8 * MiB + 6 * GiB
    assert doc["system_memory_bytes"] == 0x6000
    assert doc["resources"][0]["attribute_names"] == ["PRESENT", "INITIALIZED", "TESTED"]


def test_meminfo_vmstat_and_cross_check(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(format_meminfo({"MemTotal": 8 * 1024 * 1024, "MemFree": 1024, "Unaccepted": 4096}))
    vmstat = tmp_path / "vmstat"
    vmstat.write_text(format_vmstat({"nr_free_pages": 256, "nr_unaccepted": 1024}))
    out = run_json(str(meminfo), str(vmstat))
    m, v = out["files"]
    assert m["kind"] == "meminfo" and v["kind"] == "vmstat"
    assert m["summary"]["unaccepted_bytes"] == 4096 * 1024
    assert m["summary"]["unaccepted_fraction"] == 4096 / (8 * 1024 * 1024)
    assert v["unaccepted_bytes"] == 1024 * 4096 and v["free_bytes"] == 256 * 4096
    # 4096 kB == 4 * 1024 pages.
    assert out["checks"][0]["consistent"] is True
    vmstat.write_text(format_vmstat({"nr_free_pages": 256, "nr_unaccepted": 1000}))
    assert run_json(str(meminfo), str(vmstat))["checks"][0]["consistent"] is False
    human = run(str(meminfo), str(vmstat)).stdout
    assert "DIFFERENT" in human and "4096 kB" in human


def test_node_meminfo_file(tmp_path: Path) -> None:
    path = tmp_path / "node-meminfo"
    path.write_text(format_node_meminfo({0: {"MemTotal": 2048, "Unaccepted": 1024},
                                         1: {"MemTotal": 4096, "Unaccepted": 0}}))
    doc = run_json(str(path))["files"][0]
    assert doc["kind"] == "node-meminfo"
    assert [n["node"] for n in doc["nodes"]] == [0, 1]
    assert doc["summary"]["mem_total_bytes"] == 6144 * 1024
    assert doc["summary"]["unaccepted_bytes"] == 1024 * 1024


def test_built_dmesg_with_unaccepted_memory(tmp_path: Path) -> None:
    descs = [
        EfiMemoryDescriptor(7, 0x100000, 0x7FF00, 0xF),
        EfiMemoryDescriptor(15, 0x100000000, 0x100000, 0xF),
    ]
    lines = [format_dmesg_line(0.0, "Linux version 6.8.0-test (x@y) #1 SMP"),
             format_dmesg_line(0.0, "tdx: Guest detected")]
    lines += format_e820_lines([(0x100000, 0x80000000, "usable"), (0x100000000, 0x200000000, "usable")])
    lines += format_efi_memmap_lines(descs)
    path = tmp_path / "dmesg.txt"
    path.write_text("\n".join(lines) + "\n")
    doc = run_json(str(path))["files"][0]
    assert doc["kind"] == "dmesg"
    assert doc["platform"] == "tdx"
    assert doc["kernel_version"] == "6.8.0-test"
    # e820: [1 MiB, 2 GiB) + [4 GiB, 8 GiB); EFI type 15: 0x100000 pages = 4 GiB.
    assert doc["memory"]["usable_bytes"] == (2 * GiB - MiB) + 4 * GiB
    assert doc["memory"]["unaccepted_bytes"] == 4 * GiB


def test_e820_text_and_binary(tmp_path: Path) -> None:
    text = tmp_path / "e820.txt"
    text.write_text("\n".join(format_e820_lines([(0, 0xA0000, 1), (0xE0000000, 0xF0000000, 2)])) + "\n")
    doc = run_json(str(text))["files"][0]
    assert doc["kind"] == "e820" and doc["format"] == "text"
    assert doc["usable_bytes"] == 0xA0000
    assert doc["bytes_by_type"] == {"usable": 0xA0000, "reserved": 256 * MiB}
    binary = tmp_path / "e820.bin"
    binary.write_bytes(struct.pack("<QQI", 0, 0xA0000, 1) + struct.pack("<QQI", 0x100000000, GiB, 1))
    doc = run_json("--kind", "e820", str(binary))["files"][0]
    assert doc["format"] == "binary" and doc["usable_bytes"] == 0xA0000 + GiB


def _tdvf_image(tmp_path: Path) -> Path:
    sections = [
        TdvfSection(0, 0x1000, 0x3000, 0xFFFFC000, 0x4000, 1),
        TdvfSection(2, 0, 0, 0x809000, 0x2000, 0),
    ]
    path = tmp_path / "tdvf.fd"
    path.write_bytes(build_tdvf_image(TdvfMetadata(1, sections), 0x4000))
    return path


def test_built_tdvf_image(tmp_path: Path) -> None:
    doc = run_json(str(_tdvf_image(tmp_path)))["files"][0]
    assert doc["kind"] == "firmware"
    assert [s["type"] for s in doc["tdvf"]["sections"]] == ["BFV", "TD_HOB"]
    assert doc["tdvf"]["host_added_bytes"] == 0x4000 + 0x2000


# -- bad input --------------------------------------------------------------------------------


def test_corrupt_firmware(tmp_path: Path) -> None:
    path = _tdvf_image(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(b"TDVF")
    data[at : at + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    assert_one_line_error(run(str(path)), str(path), "firmware: bad TDVF descriptor signature")


def test_empty_file_directory_and_missing_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert_one_line_error(run(str(empty)), str(empty), "file is empty")
    assert_one_line_error(run(str(tmp_path)), str(tmp_path), "is a directory")
    missing = tmp_path / "nope.bin"
    assert_one_line_error(run(str(missing)), str(missing), "no such file")


def test_garbage_text_and_binary(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("shopping list\neggs\nmilk\n")
    assert_one_line_error(run(str(text)), str(text), "cannot tell what kind of file this is; use --kind")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 3 + b"\x00\x01")
    assert_one_line_error(run(str(blob)), str(blob), "cannot tell what kind of file this is; use --kind")


def test_ambiguous_binary(tmp_path: Path) -> None:
    # Starts like an unaccepted table and ends with the OVMF footer.
    data = bytearray(_tdvf_image(tmp_path).read_bytes())
    data[0:8] = struct.pack("<II", 1, 2 * MiB)
    path = tmp_path / "both.bin"
    path.write_bytes(bytes(data))
    assert_one_line_error(run(str(path)), str(path), "looks like firmware and unaccepted-table); use --kind")
    # --kind settles it.
    assert run_json("--kind", "firmware", str(path))["files"][0]["tdvf"]["valid"] is True


def test_truncated_binary_and_text(tmp_path: Path) -> None:
    table = tmp_path / "table.bin"
    table.write_bytes(struct.pack("<IIQQ", 1, 2 * MiB, 0x100000000, 64) + bytes(10))
    assert_one_line_error(run(str(table)), str(table), "unaccepted-table: bitmap size field says 64 bytes")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        8135076 kB\nUnaccepted:      52428")
    assert_one_line_error(run(str(meminfo)), str(meminfo), "cut off mid-number")


def test_wrong_kind_forced(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(format_meminfo({"MemTotal": 1}))
    assert_one_line_error(run("--kind", "vmstat", str(meminfo)), str(meminfo), "vmstat:")
    blob = tmp_path / "x.bin"
    blob.write_bytes(b"\x00\x01\x02\x03" * 8)
    assert_one_line_error(run("--kind", "meminfo", str(blob)), str(blob), "binary data, not a meminfo text")


def test_one_bad_path_among_good_ones_prints_nothing_else(tmp_path: Path) -> None:
    good = tmp_path / "vmstat"
    good.write_text(format_vmstat({"nr_free_pages": 1}))
    bad = tmp_path / "bad"
    bad.write_text("nr_free_pages 1\nnr_unaccepted lots\n")
    for args in ((str(good), str(bad)), ("--json", str(good), str(bad))):
        assert_one_line_error(run(*args), str(bad), "non-number value")


def test_console_script_gives_one_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x7fELF" + bytes(200))
    proc = subprocess.run(
        [sys.executable, "-c", "from lazyaccept.cli import main; main()", "inspect", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and str(bad) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_inspect_file_api(tmp_path: Path) -> None:
    path = tmp_path / "vmstat"
    path.write_text(format_vmstat({"nr_free_pages": 3, "nr_unaccepted": 2}))
    assert detect_kind(path, path.read_bytes()) == "vmstat"
    doc = inspect_file(path)
    assert doc["nr_unaccepted"] == 2 and doc["unaccepted_bytes"] == 8192
    with pytest.raises(FormatError, match="unknown kind"):
        inspect_file(path, kind="pdf")


# -- fuzz: whatever the bytes, inspect_file returns a document or raises FormatError -----------

_SEEDS = [
    struct.pack("<IIQQ", 1, 2 * MiB, 0x100000000, 4) + bytes([0xFF, 0, 1, 0]),
    build_memory_map([EfiMemoryDescriptor(7, 0, 16, 0xF), EfiMemoryDescriptor(15, 0x100000000, 512, 0xF)]),
    build_hob_list(HobList(hobs=[ResourceDescriptor(7, 0x7, 0, 0x800000)])),
    build_tdvf_image(TdvfMetadata(1, [TdvfSection(0, 0x1000, 0x1000, 0xFFFFF000, 0x1000, 1),
                                      TdvfSection(2, 0, 0, 0x809000, 0x2000, 0)]), 0x2000),
    format_meminfo({"MemTotal": 5, "Unaccepted": 4}).encode(),
    "\n".join(format_efi_memmap_lines([EfiMemoryDescriptor(15, 0x100000000, 512, 0xF)])).encode(),
]


@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=6),
       st.integers(0, 64))
@settings(max_examples=300, deadline=None)
def test_mutated_artefacts_only_raise_format_error(seed: bytes, edits: list[tuple[int, int]],
                                                   cut: int) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(1, len(data) - cut)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "artefact"
        path.write_bytes(bytes(data))
        try:
            json.dumps(inspect_file(path))
        except FormatError as exc:
            assert str(exc).startswith(str(path))
