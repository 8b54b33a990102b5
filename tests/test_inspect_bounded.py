"""``inspect`` output is bounded by default: long lists are cut with a note, ``--all`` shows all."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from cli_helpers import run_cli
from lazyaccept.firmware.verdict import analyse_firmware
from lazyaccept.formats import igvm as g
from lazyaccept.formats.unaccepted import parse_unaccepted_table
from lazyaccept.scenario.inspect import LIST_LIMIT, inspect_file
from test_tdvf import OVMF_CODE, _real

UNIT = 2 << 20


def _alternating_table(tmp_path: Path, nbytes: int = 2048) -> tuple[Path, bytes]:
    data = struct.pack("<IIQQ", 1, UNIT, 0, nbytes) + b"\x55" * nbytes
    path = tmp_path / "table.bin"
    path.write_bytes(data)
    return path, data


def test_a_table_of_many_runs_shows_the_first_ones_and_counts_them_all(tmp_path: Path) -> None:
    path, data = _alternating_table(tmp_path)
    every = [{"start": a, "end": b, "size": b - a} for a, b in parse_unaccepted_table(data).unaccepted_ranges()]
    assert len(every) == 2048 * 4 > LIST_LIMIT
    doc = inspect_file(path)
    assert doc["unaccepted_ranges"] == every[:LIST_LIMIT]
    assert doc["truncated"] == {"unaccepted_ranges": len(every)}
    assert doc["units_unaccepted"] == len(every) and doc["unaccepted_bytes"] == len(every) * UNIT
    full = inspect_file(path, limit=None)
    assert full["unaccepted_ranges"] == every and "truncated" not in full


def test_the_command_says_what_it_cut_and_all_shows_every_range(tmp_path: Path) -> None:
    path, _ = _alternating_table(tmp_path, 512)
    cut = run_cli("inspect", str(path))
    assert cut.code == 0
    assert f"unaccepted_ranges: the first {LIST_LIMIT} of 2,048 shown (--all shows every one)" in cut.out
    every = run_cli("inspect", "--all", str(path))
    assert every.code == 0 and "--all" not in every.out
    assert len(re.findall(r"(?m)^ +0x[0-9a-f]+ +0x[0-9a-f]+ +2 MiB", every.out)) == 2048
    doc = json.loads(run_cli("inspect", "--all", "--json", str(path)).out)["files"][0]
    assert len(doc["unaccepted_ranges"]) == 2048


def test_a_log_of_many_e820_lines_is_cut_too(tmp_path: Path) -> None:
    lines = [f"[    0.000000] BIOS-e820: [mem {i * 0x2000:#018x}-{i * 0x2000 + 0xfff:#018x}] usable"
             for i in range(LIST_LIMIT + 5)]
    path = tmp_path / "dmesg.txt"
    path.write_text("\n".join(["[    0.000000] Linux version 6.8.0 (x)", *lines]) + "\n")
    doc = inspect_file(path)
    assert doc["kind"] == "dmesg" and len(doc["e820"]) == LIST_LIMIT
    assert doc["truncated"] == {"e820": LIST_LIMIT + 5}
    assert doc["memory"]["usable_bytes"] == (LIST_LIMIT + 5) * 0x1000  # totals count every entry
    assert len(inspect_file(path, limit=None)["e820"]) == LIST_LIMIT + 5


def _igvm_of_many_pages(tmp_path: Path, pages: int) -> Path:
    """An SEV-SNP IGVM file of ``pages`` measured pages, none next to another (a range each)."""
    headers: list[g.Header] = [g.SupportedPlatform(1, 0, g.PlatformType.SEV_SNP, 1, 0)]
    headers += [g.PageData(0x100000 + 2 * i * 4096, 1, 0, 0, g.PageDataType.NORMAL) for i in range(pages)]
    path = tmp_path / "many.igvm"
    path.write_bytes(g.build_igvm(headers, b""))
    return path


def test_an_igvm_file_of_many_headers_is_cut_and_counted(tmp_path: Path) -> None:
    pages = LIST_LIMIT + 10
    path = _igvm_of_many_pages(tmp_path, pages)
    doc = inspect_file(path)
    assert doc["kind"] == "igvm" and doc["header_counts"]["PAGE_DATA"] == pages
    assert len(doc["headers"]) == LIST_LIMIT and len(doc["platforms"][0]["loaded_ranges"]) == LIST_LIMIT
    assert doc["truncated"] == {"headers": pages + 1, "platforms.0.loaded_ranges": pages}
    assert doc["platforms"][0]["measured_bytes"] == pages * 4096  # totals count every page
    full = inspect_file(path, limit=None)
    assert len(full["headers"]) == pages + 1 and "truncated" not in full
    text = run_cli("inspect", str(path))
    assert text.code == 0, text.err
    assert f"and {pages - 8} more" in text.out
    assert f"platforms.0.loaded_ranges: the first {LIST_LIMIT} of {pages:,} shown" in text.out


def test_a_firmware_documents_lists_are_cut_too_verdict_and_measurements_kept() -> None:
    data = _real(OVMF_CODE)
    doc = inspect_file(OVMF_CODE, limit=3)
    modules = analyse_firmware(data).modules
    assert len(doc["modules"]) == 3 and doc["truncated"]["modules"] == len(modules) > 3
    assert [p["platform"] for p in doc["verdict"]] == ["tdx", "snp"]
    assert doc["measurements"]["tdx_mrtd"] is not None
    assert len(inspect_file(OVMF_CODE, limit=None)["modules"]) == len(modules)
    text = run_cli("inspect", "--all", str(OVMF_CODE))
    assert text.code == 0 and f"modules: {len(modules)}" in text.out and "--all shows" not in text.out
