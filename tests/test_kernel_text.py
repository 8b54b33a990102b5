"""Kernel text: the real guest logs (values read by hand), builders, meminfo/vmstat, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyaccept.base.errors import FormatError
from lazyaccept.formats.e820 import E820Entry
from lazyaccept.formats.efi_memmap import EfiMemoryDescriptor
from lazyaccept.formats.kernel_text import (
    format_dmesg_line,
    format_e820_lines,
    format_efi_memmap_lines,
    format_meminfo,
    format_node_meminfo,
    format_vmstat,
    parse_dmesg,
    parse_meminfo,
    parse_node_meminfo,
    parse_vmstat,
)

LOGS = Path(__file__).resolve().parent / "data" / "real-logs"


def _log(name: str) -> str:
    path = LOGS / name
    # The logs ship with the repository: one missing is a broken checkout, not a reason to skip.
    assert path.is_file(), f"{path}: a shipped fixture is missing"
    return path.read_text()


# -- the real logs ----------------------------------------------------------------------------


def test_tdx_e820_log() -> None:
    info = parse_dmesg(_log("tdx_guest_e820_intel_tdx-tools_issue524.txt"))
    # The four BIOS-e820 lines, inclusive ends turned exclusive (+1):
    assert info.e820 == [
        (0x7E818000, 0x7FF7C000, "usable"),
        (0x7FF7C000, 0x80000000, "reserved"),
        (0xE0000000, 0xF0000000, "reserved"),
        (0x100000000, 0x280000000, "usable"),
    ]
    # Usable, by hand: 0x7ff7c000 - 0x7e818000 = 0x1764000 (5988 pages, 24,526,848 bytes)
    # plus 0x280000000 - 0x100000000 = 0x180000000 (6 GiB): 0x181764000 = 6,466,977,792 bytes.
    assert info.e820_total("usable") == 6_466_977_792
    # Reserved: 0x84000 (540,672) + 0x10000000 (256 MiB).
    assert info.e820_total("reserved") == 540_672 + 256 * 2**20
    # The "e820: update ..." / "e820: remove ..." lines are changes, not the BIOS table.
    assert len(info.e820) == 4
    # Nothing in this excerpt names the platform (the issue says TDX, the text does not).
    assert info.platform is None
    assert info.kernel_version is None


def test_tdx_zones_log_issue1() -> None:
    info = parse_dmesg(_log("tdx_guest_zones_intel_tdx-linux_issue1.txt"))
    assert info.zones == {
        "DMA": (0x1000, 0x1000000),
        "DMA32": (0x1000000, 0x100000000),
        "Normal": (0x100000000, 0x180000000),
        "Device": None,
    }
    assert len(info.node_ranges) == 7
    assert info.node_ranges[0] == (0, 0x1000, 0xA0000)
    assert info.node_ranges[-1] == (0, 0x7D19C000, 0x7D1B7000)


def test_tdx_zones_log_issue5() -> None:
    info = parse_dmesg(_log("tdx_guest_zones_intel_tdx-linux_issue5.txt"))
    assert info.zones["Normal"] == (0x100000000, 0x180000000)
    assert len(info.node_ranges) == 13
    assert info.node_ranges[-1] == (0, 0x100000000, 0x180000000)
    # Sum of the 13 node ranges in 4 KiB pages, by hand from the inclusive hex ends:
    # 0x9f + 0x70c + 0x7c888 + 0xf9 + 0x6 + 0x1d + 0x20c + 0x1c + 0x2 + 0x1206 + 0x1 + 0x1763
    # + 0x80000 = 159 + 1804 + 510088 + 249 + 6 + 29 + 524 + 28 + 2 + 4614 + 1 + 5987 + 524288
    # = 1,047,779 pages.
    assert sum(end - start for _, start, end in info.node_ranges) == 1_047_779 * 4096
    # The file has no "Zone ranges:" header (it starts at the DMA line): zones still parse.
    assert info.lines_ignored == 2  # the "# source" line and "Initmem setup node 0 ..."


def test_tdx_guest_detected_with_caller_ids() -> None:
    info = parse_dmesg(_log("tdx_guest_detected_SUSE_img-proof_pr437.txt"))
    assert info.platform == "tdx"
    assert info.encryption_features == ["TDX"]
    assert info.memory_encryption_active
    # "tdx: Guest detected", "Memory Encryption Features active", two systemd lines.
    assert info.lines_parsed == 4


def test_tdx_boot_start_kernel_version() -> None:
    info = parse_dmesg(_log("tdx_guest_boot_start_NVIDIA_nvtrust_issue46.txt"))
    assert info.platform == "tdx"
    assert info.kernel_version == "6.2.0-mvp10v1+8-generic"


def test_snp_boot_log() -> None:
    info = parse_dmesg(_log("snp_guest_boot_lkml_20260309_bp.txt"))
    assert info.platform == "snp"
    assert info.encryption_features == ["SEV", "SEV-ES", "SEV-SNP"]
    assert info.sev_status == ["SEV", "SEV-ES", "SEV-SNP"]


def test_snp_azure_syslog_line() -> None:
    info = parse_dmesg(_log("snp_sev_status_azure_cvm_lkml_202402.txt"))
    assert info.platform == "snp"
    # Multi-word names as sev_status_feat_names spells them ("Reflect VC", "No HostIBS", ...).
    assert info.sev_status == [
        "SEV", "SEV-ES", "SEV-SNP", "vTom", "Reflect VC", "AI", "DebugSwap", "No HostIBS", "BTB Isol",
        "VMSA reg prot",
    ]


def test_snp_softlockup_log_with_caret_m() -> None:
    info = parse_dmesg(_log("snp_guest_softlockup_accept_memory_lkml_20231101.txt"))
    # Only the oops header names the kernel ("Not tainted 6.6.0-rc5-snp-guest1-no-extend+ #1^M").
    assert info.kernel_version == "6.6.0-rc5-snp-guest1-no-extend+"
    assert info.platform is None


def test_host_pamt_log() -> None:
    info = parse_dmesg(_log("tdx_host_pamt_canonical_tdx_issue385.txt"))
    assert info.tdx_host_cmrs == [
        (0x100000, 0x77800000),
        (0x100000000, 0x1003E000000),
        (0x10080000000, 0x20040000000),
    ]
    assert info.tdx_host_pamt_kb == 8_396_820
    assert info.platform is None  # a host, not a guest


def test_devices_log_encryption_active_only() -> None:
    info = parse_dmesg(_log("tdx_guest_devices_intel_tdx-linux_issue5.txt"))
    assert info.memory_encryption_active
    assert info.platform is None
    assert info.lines_parsed == 1


def test_every_real_log_parses() -> None:
    for path in sorted(LOGS.glob("*.txt")):
        info = parse_dmesg(path.read_text())
        assert info.lines_parsed + info.lines_ignored > 0, path.name


# A real QEMU/OVMF guest booted with efi=debug, quoted in a mail reply ("> " prefixes): Laszlo
# Ersek on qemu-devel, 9 Sep 2020, Message-ID <d3c345b6-c2db-ef61-2ac0-afc0f9f737c2@redhat.com>,
# kernel 5.3.6-200.fc30 (13 attribute columns, long type names).  Excerpt, lines verbatim.
ERSEK = """\
> [    0.000000] Linux version 5.3.6-200.fc30.x86_64 (mockbuild@bkernel04.phx2.fedoraproject.org) (gcc version 9.2.1 20190827 (Red Hat 9.2.1-1) (GCC)) #1 SMP Mon Oct 14 13:11:01 UTC 2019
> [    0.000000] BIOS-provided physical RAM map:
> [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000002ffff] usable
> [    0.000000] BIOS-e820: [mem 0x0000000000030000-0x000000000004ffff] reserved
> [    0.000000] BIOS-e820: [mem 0x0000000000050000-0x000000000009dfff] usable
> [    0.000000] BIOS-e820: [mem 0x000000000009e000-0x000000000009ffff] reserved
> [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x0000000000806fff] usable
> [    0.000000] BIOS-e820: [mem 0x0000000000807000-0x0000000000807fff] ACPI NVS
> [    0.000000] BIOS-e820: [mem 0x0000000000808000-0x000000000080ffff] usable
> [    0.000000] BIOS-e820: [mem 0x0000000000810000-0x000000000170ffff] ACPI NVS
> [    0.000000] BIOS-e820: [mem 0x0000000001710000-0x000000007e728fff] usable
> [    0.000000] BIOS-e820: [mem 0x000000007e729000-0x000000007eb6dfff] reserved
> [    0.000000] BIOS-e820: [mem 0x000000007eb6e000-0x000000007eb7dfff] ACPI data
> [    0.000000] BIOS-e820: [mem 0x000000007eb7e000-0x000000007ebfdfff] ACPI NVS
> [    0.000000] BIOS-e820: [mem 0x000000007ebfe000-0x000000007ef3ffff] usable
> [    0.000000] BIOS-e820: [mem 0x000000007ef40000-0x000000007effffff] ACPI NVS
> [    0.000000] BIOS-e820: [mem 0x000000007f000000-0x000000007fffffff] reserved
> [    0.000000] BIOS-e820: [mem 0x00000000b0000000-0x00000000bfffffff] reserved
> [    0.000000] BIOS-e820: [mem 0x0000000100000000-0x00000001bfffffff] usable
> [    0.000000] e820: update [mem 0x7c273018-0x7c27ca57] usable ==> usable
> [    0.000000] reserve setup_data: [mem 0x0000000000000000-0x000000000002ffff] usable
> [    0.000000] efi: EFI v2.70 by EDK II
> [    0.000000] efi: mem00: [Boot Code          |   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000000000-0x0000000000000fff] (0MB)
> [    0.000000] efi: mem01: [Loader Data        |   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000001000-0x0000000000001fff] (0MB)
> [    0.000000] efi: mem02: [Conventional Memory|   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000002000-0x000000000002ffff] (0MB)
> [    0.000000] efi: mem06: [Reserved           |   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x000000000009e000-0x000000000009ffff] (0MB)
> [    0.000000] efi: mem07: [Conventional Memory|   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000100000-0x0000000000806fff] (7MB)
> [    0.000000] efi: mem08: [ACPI Memory NVS    |   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000807000-0x0000000000807fff] (0MB)
> [    0.000000] efi: mem10: [ACPI Memory NVS    |   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000810000-0x000000000170ffff] (15MB)
> [    0.000000] efi: mem13: [Conventional Memory|   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000004b4b000-0x0000000057f19fff] (1331MB)
> [    0.000000] efi: mem100: [Boot Data          |   |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x000000007dda2000-0x000000007dda6fff] (0MB)
"""  # noqa: E501


def test_real_efi_debug_log_quoted_in_a_mail() -> None:
    info = parse_dmesg(ERSEK)
    assert info.kernel_version == "5.3.6-200.fc30.x86_64"
    assert len(info.e820) == 17  # only BIOS-e820 lines; "reserve setup_data" and "e820: update" are not
    # Usable e820 by hand: 0x30000 + 0x4e000 + 0x707000 + 0x8000 + 0x7d019000 + 0x342000
    # + 0xc0000000 = 0x13dae8000.
    assert info.e820_total("usable") == 0x13DAE8000
    assert info.e820_total("ACPI data") == 0x10000
    efi = info.efi_memmap
    assert [d.index for d in efi] == [0, 1, 2, 6, 7, 8, 10, 13, 100]
    assert [d.type for d in efi] == [3, 2, 7, 0, 7, 10, 10, 7, 4]  # old long names included
    assert efi[4].start == 0x100000 and efi[4].end == 0x807000 and efi[4].size_mb == 7
    assert efi[7].size_mb == 1331 and efi[7].size >> 20 == 1331
    assert all(d.attribute == 0xF for d in efi)  # WB|WT|WC|UC
    assert efi[0].attribute_names == ("WB", "WT", "WC", "UC")
    assert info.efi_total(7) == 0x2E000 + 0x707000 + 0x533CF000


def test_old_exclusive_end_and_attr_forms() -> None:
    # Real lines of 2012-2015 kernels (end printed exclusive with ")", unknown bits as attr=).
    text = (
        "[    0.000000] efi: mem04: [Loader Data        |   |  |  |  |   |WB|WT|WC|UC] "
        "range=[0x0000000000100000-0x0000000000900000) (8MB)\n"
        "[    0.000000] efi: mem01: [Reserved           |attr=0x080000000000000f] "
        "range=[0x0000000000058000-0x0000000000059000) (0MB)\n"
    )
    a, b = parse_dmesg(text).efi_memmap
    assert (a.type, a.start, a.end, a.size_mb) == (2, 0x100000, 0x900000, 8)
    assert (b.type, b.start, b.end, b.attribute) == (0, 0x58000, 0x59000, 0x080000000000000F)


def test_runtime_column() -> None:
    # A real line (linux-mm, 2018, bgrt buffer in Boot Data with EFI_MEMORY_RUNTIME).
    line = (
        "efi: mem00: [Boot Data          |RUN|  |  |  |  |  |  |   |WB|WT|WC|UC] "
        "range=[0x00000000d2c41000-0x00000000d2c85fff] (0MB)"
    )
    (d,) = parse_dmesg(line + "\n").efi_memmap
    assert d.attribute == 0x800000000000000F
    assert (d.type, d.start, d.end) == (4, 0xD2C41000, 0xD2C86000)


def test_other_prefixes_and_size_units() -> None:
    text = (
        "<6>[    0.000000] tdx: Guest detected\n"
        "kern  :info  : [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x0000000000000fff] reserved\n"
        "2024-02-14T16:16:55.123456+00:00 vm kernel: Memory: 2005364K/2096632K available (16384K code)\n"
        "[    0.000000] efi: mem07: [Unaccepted  |   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] "
        "range=[0x0000000100000000-0x000000017fffffff] (2 GB)\n"
    )
    info = parse_dmesg(text)
    assert info.platform == "tdx"
    assert info.e820 == [(0, 0x1000, "reserved")]
    assert (info.memory_available_kb, info.memory_total_kb) == (2005364, 2096632)
    (d,) = info.efi_memmap
    assert d.type == 15 and d.size_mb is None and d.size_text == "2 GB"
    assert info.efi_total(15) == 2 * 2**30


def test_truncated_last_line_is_ignored() -> None:
    text = _log("tdx_guest_e820_intel_tdx-tools_issue524.txt")
    cut = text[: text.index("0x000000027fffffff")]  # cut inside the last e820 line's end address
    info = parse_dmesg(cut)
    assert len(info.e820) == 3
    assert info.partial_last_line
    assert not parse_dmesg(text).partial_last_line


def test_impossible_e820_line_is_an_error() -> None:
    with pytest.raises(FormatError, match="line 2: e820 range .* ends before it starts"):
        parse_dmesg(
            "[    0.000000] Linux version 6.8.0\n"
            "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000000fffff] usable\n"
        )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty text"),
        ("   \n\n", "empty text"),
        ("hello world\nthis is not a kernel log\n", "no kernel log line"),
        ("\x00\x01\x02ELF\x00\x00" * 20, "binary data"),
    ],
)
def test_dmesg_bad_input(text: str, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        parse_dmesg(text)


# -- dmesg builders ---------------------------------------------------------------------------


def test_format_dmesg_line_matches_real_lines() -> None:
    # Lines taken from the real logs.
    assert format_dmesg_line(0.0, "tdx: Guest detected") == "[    0.000000] tdx: Guest detected"
    assert (
        format_dmesg_line(266.312940, "watchdog: BUG: soft lockup - CPU#161 stuck for 21s! [stress:7844]")
        == "[  266.312940] watchdog: BUG: soft lockup - CPU#161 stuck for 21s! [stress:7844]"
    )
    assert format_dmesg_line(123456.5, "x") == "[123456.500000] x"


def test_format_e820_lines_match_the_real_log() -> None:
    real = [
        line
        for line in _log("tdx_guest_e820_intel_tdx-tools_issue524.txt").splitlines()
        if "BIOS-e820" in line
    ]
    entries = parse_dmesg("\n".join(real)).e820
    assert format_e820_lines(entries) == real
    # Types may be given as e820 codes, too.
    assert format_e820_lines([(0x100000000, 0x280000000, 1)], timestamp=None) == [
        "BIOS-e820: [mem 0x0000000100000000-0x000000027fffffff] usable"
    ]


def test_format_e820_lines_takes_e820_entries() -> None:
    entries = [E820Entry(0x0, 0xA0000, 1), E820Entry(0x7FF7C000, 0x84000, 2), E820Entry(0x1000, 0x1000, 12)]
    assert format_e820_lines(entries, timestamp=None) == [
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable",
        "BIOS-e820: [mem 0x000000007ff7c000-0x000000007fffffff] reserved",
        "BIOS-e820: [mem 0x0000000000001000-0x0000000000001fff] persistent (type 12)",
    ]


def test_format_efi_memmap_newest_layout() -> None:
    d = EfiMemoryDescriptor(15, 0x100000000, 0x80000, 0xF)
    (line,) = format_efi_memmap_lines([d], timestamp=None)
    # 12-character type, then RUN|HP|MR|CC|SP|NV|XP|RP|WP|RO|UCE|WB|WT|WC|UC (drivers/firmware/efi/efi.c).
    assert line == (
        "efi: mem00: [Unaccepted  |   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] "
        "range=[0x0000000100000000-0x000000017fffffff] (2048MB)"
    )
    (runtime,) = format_efi_memmap_lines([EfiMemoryDescriptor(5, 0x7FD3C000, 0x100, (1 << 63) | 0xF)],
                                         timestamp=None)
    assert runtime == (
        "efi: mem00: [Runtime Code|RUN|  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] "
        "range=[0x000000007fd3c000-0x000000007fe3bfff] (1MB)"
    )
    (odd,) = format_efi_memmap_lines([EfiMemoryDescriptor(0x80000001, 0, 1, 1 << 40)], timestamp=None)
    assert odd.startswith("efi: mem00: [type=2147483649|attr=0x0000010000000000] ")


_descriptors = st.lists(
    st.builds(
        EfiMemoryDescriptor,
        type=st.integers(0, 2**32 - 1),
        physical_start=st.integers(0, 2**40).map(lambda x: x * 4096),
        number_of_pages=st.integers(1, 2**30),
        attribute=st.integers(0, 2**64 - 1) | st.sampled_from([0, 0xF, 0x800000000000000F, 0x100008]),
    ),
    min_size=1,
    max_size=20,
)


@given(_descriptors)
@settings(max_examples=150, deadline=None)
def test_efi_memmap_lines_round_trip(descs: list[EfiMemoryDescriptor]) -> None:
    info = parse_dmesg("\n".join(format_efi_memmap_lines(descs)) + "\n")
    assert [(d.type, d.start, d.end, d.attribute) for d in info.efi_memmap] == [
        (d.type, d.physical_start, d.end, d.attribute) for d in descs
    ]
    assert [d.size_mb for d in info.efi_memmap] == [d.number_of_pages >> 8 for d in descs]


_E820_TYPES = st.sampled_from(["usable", "reserved", "ACPI data", "ACPI NVS", "unusable", "type 20"])


_E820_ENTRY = st.tuples(st.integers(0, 2**48), st.integers(1, 2**40), _E820_TYPES)


@given(st.lists(_E820_ENTRY, min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_e820_lines_round_trip(raw: list[tuple[int, int, str]]) -> None:
    entries = [(start, start + size, t) for start, size, t in raw]
    assert parse_dmesg("\n".join(format_e820_lines(entries, timestamp=0.000123)) + "\n").e820 == entries


# -- /proc/meminfo ----------------------------------------------------------------------------

# Example output from Documentation/filesystems/proc.rst (torvalds/linux), indentation removed.
MEMINFO_DOC = """\
MemTotal:        3994352 kB
MemFree:         1674616 kB
MemAvailable:    2717216 kB
Buffers:           36756 kB
Cached:          1211780 kB
SwapCached:            0 kB
Active:           666244 kB
Inactive:        1434228 kB
Active(anon):       1820 kB
Inactive(anon):   869696 kB
SwapTotal:       7988220 kB
Committed_AS:    5414284 kB
VmallocTotal:   34359738367 kB
HardwareCorrupted:     0 kB
FileHugePages:    151552 kB
Unaccepted:            0 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
DirectMap2M:     4083712 kB
"""


def test_meminfo_doc_sample() -> None:
    fields = parse_meminfo(MEMINFO_DOC)
    assert fields["MemTotal"] == 3994352
    assert fields["Active(anon)"] == 1820
    assert fields["VmallocTotal"] == 34359738367
    assert fields["Unaccepted"] == 0
    assert fields["HugePages_Total"] == 0
    assert len(fields) == 20
    # The builder reproduces the kernel's layout byte for byte.
    assert format_meminfo(fields) == MEMINFO_DOC


def test_meminfo_unaccepted_and_crlf() -> None:
    text = "MemTotal:        8135076 kB\r\nUnaccepted:      5242880 kB\r\n"
    assert parse_meminfo(text) == {"MemTotal": 8135076, "Unaccepted": 5242880}


@pytest.mark.slow
@given(
    st.dictionaries(
        st.from_regex(r"[A-Z][A-Za-z0-9_()]{0,20}", fullmatch=True),
        st.integers(0, 10**12),
        max_size=30,
    )
)
@settings(max_examples=100, deadline=None)
def test_meminfo_round_trip(extra: dict[str, int]) -> None:
    fields = {"MemTotal": 1000} | {k: v for k, v in extra.items() if k != "MemTotal"}
    assert parse_meminfo(format_meminfo(fields)) == fields


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("MemFree: 12 kB\n", "no MemTotal"),
        ("MemTotal: 12 kB\nMemFree: lots kB\n", "line 2: field 'MemFree' has a non-number value 'lots kB'"),
        ("MemTotal: 12 kB\nMemFree: 1.5 kB\n", "non-number value"),
        ("MemTotal: 12 kB\nMemFree: 12 MB\n", "non-number value"),
        ("MemTotal: 12 kB\nthis is not a field\n", "line 2 is not a 'Name: value' field"),
        ("MemTotal: 12 kB\nMemTotal: 13 kB\n", "appears twice"),
        # Cut mid-number: the last line has no newline and no kB.
        ("MemTotal:        8135076 kB\nUnaccepted:      52428", "cut off mid-number"),
        ("", "empty"),
        ("\x00" * 64, "binary"),
    ],
)
def test_meminfo_errors(text: str, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        parse_meminfo(text)


def test_meminfo_complete_last_line_without_newline_is_fine() -> None:
    assert parse_meminfo("MemTotal:  100 kB\nHugePages_Total:   3") == {"MemTotal": 100, "HugePages_Total": 3}


# -- node meminfo -----------------------------------------------------------------------------

# Real sysfs output: the first node of a two-node host (lines verbatim, indentation removed),
# and `cat /sys/devices/system/node/node*/meminfo | grep Huge` from an Open vSwitch how-to.
NODE_REAL = """\
Node 0 MemTotal:       264048292 kB
Node 0 MemFree:        258531344 kB
Node 0 MemUsed:         5516948 kB
Node 0 Active(anon):      97256 kB
Node 0 Inactive(file):   169952 kB
Node 0 NFS_Unstable:          0 kB
Node 0 AnonHugePages:      8192 kB
Node 0 HugePages_Total:  2048
Node 0 HugePages_Free:   1536
Node 0 HugePages_Surp:      0
"""
NODE_HUGE = """\
Node 0 AnonHugePages:         0 kB
Node 0 ShmemHugePages:        0 kB
Node 0 HugePages_Total:     4
Node 0 HugePages_Free:      0
Node 0 HugePages_Surp:      0
Node 1 AnonHugePages:         0 kB
Node 1 ShmemHugePages:        0 kB
Node 1 HugePages_Total:     4
Node 1 HugePages_Free:      0
Node 1 HugePages_Surp:      0
"""


def test_node_meminfo_real_layout() -> None:
    nodes = parse_node_meminfo(NODE_REAL)
    assert list(nodes) == [0]
    assert nodes[0]["MemTotal"] == 264048292
    assert nodes[0]["HugePages_Total"] == 2048
    assert format_node_meminfo(nodes) == NODE_REAL
    # The grep output has no MemTotal: it is not a whole node meminfo, but its layout is right.
    with pytest.raises(FormatError, match="node 0 has no MemTotal"):
        parse_node_meminfo(NODE_HUGE)
    fake = {n: {"MemTotal": 1} | f for n, f in {0: {}, 1: {}}.items()}
    assert parse_node_meminfo(format_node_meminfo(fake)) == fake


def test_node_meminfo_narrow_names_and_unaccepted() -> None:
    # drivers/base/node.c prints these two one column narrower; Unaccepted like the rest.
    text = format_node_meminfo({1: {"MemTotal": 5, "FileHugePages": 0, "FilePmdMapped": 0, "Unaccepted": 7}})
    assert text == (
        "Node 1 MemTotal:              5 kB\n"
        "Node 1 FileHugePages:        0 kB\n"
        "Node 1 FilePmdMapped:        0 kB\n"
        "Node 1 Unaccepted:            7 kB\n"
    )
    assert parse_node_meminfo(text) == {1: {"MemTotal": 5, "FileHugePages": 0, "FilePmdMapped": 0,
                                            "Unaccepted": 7}}


def test_node_meminfo_errors() -> None:
    with pytest.raises(FormatError, match="not a 'Node N Name: value' field"):
        parse_node_meminfo("MemTotal: 5 kB\n")
    with pytest.raises(FormatError, match="non-number"):
        parse_node_meminfo("Node 0 MemTotal: x kB\n")
    with pytest.raises(FormatError, match="cut off"):
        parse_node_meminfo("Node 0 MemTotal: 5 kB\nNode 0 Unaccepted: 12")


# -- /proc/vmstat -----------------------------------------------------------------------------


def test_vmstat_parse_and_round_trip() -> None:
    text = "nr_free_pages 1993214\nnr_zone_inactive_anon 3\nnr_unaccepted 1310720\npgfault 77\n"
    d = parse_vmstat(text)
    assert d == {
        "nr_free_pages": 1993214, "nr_zone_inactive_anon": 3, "nr_unaccepted": 1310720, "pgfault": 77
    }
    assert format_vmstat(d) == text


_VMSTAT_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True)


@given(st.dictionaries(_VMSTAT_NAME, st.integers(0, 2**63), max_size=40))
@settings(max_examples=100, deadline=None)
def test_vmstat_round_trip(extra: dict[str, int]) -> None:
    d = {"nr_free_pages": 5} | {k: v for k, v in extra.items() if k != "nr_free_pages"}
    assert parse_vmstat(format_vmstat(d)) == d


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("nr_free_pages 12\nnr_unaccepted twelve\n", "line 2: 'nr_unaccepted' has a non-number value"),
        ("nr_free_pages 12\nnr_unaccepted -4\n", "non-number"),
        ("nr_free_pages 12\njust words here\n", "not a 'name value' pair"),
        ("nr_unaccepted 4\n", "no nr_free_pages"),
        ("nr_free_pages 1\nnr_free_pages 2\n", "appears twice"),
    ],
)
def test_vmstat_errors(text: str, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        parse_vmstat(text)


# -- fuzz: only FormatError may escape --------------------------------------------------------

_PARSERS = [parse_dmesg, parse_meminfo, parse_node_meminfo, parse_vmstat]


def _only_format_error(text: str) -> None:
    for parse in _PARSERS:
        try:
            parse(text)
        except FormatError:
            pass


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_random_text(text: str) -> None:
    _only_format_error(text)


@given(st.binary(max_size=400), st.sampled_from(["utf-8", "latin-1"]))
@settings(max_examples=300, deadline=None)
def test_random_bytes_decoded_leniently(data: bytes, encoding: str) -> None:
    _only_format_error(data.decode(encoding, errors="replace"))


_SNIPPETS = st.sampled_from(
    [
        "[    0.000000] ", "BIOS-e820: [mem ", "0x0000000100000000", "-", "] usable", "efi: mem07: [",
        "Unaccepted  |", "|WB|", "] range=[", "] (", "MB)", "  DMA      [mem ", "  node   0: [mem ",
        "MemTotal:", "Unaccepted:", " kB", "Node 0 ", "nr_free_pages ", "HugePages_Total:", "123", "\n",
        "type=", "attr=0x", "SEV: Status: ", "Memory: ", "K/", "K available",
    ]
)


@given(st.lists(_SNIPPETS, max_size=40).map("".join))
@settings(max_examples=400, deadline=None)
def test_plausible_fragments(text: str) -> None:
    _only_format_error(text)
