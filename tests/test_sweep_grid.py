"""Sweep grids: the cross product, ranges, exclusions, canonical values, and bad grids refused."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from lazyaccept.base.choices import AcceptPolicy, FirmwareAccept, HostMapping, Tee
from lazyaccept.base.errors import ConfigError, FormatError
from lazyaccept.base.units import GiB, MiB
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.sim.fleet.dimensions import SPECS, Dimension, to_run
from lazyaccept.sim.fleet.grid import load_grid, parse_grid


def grid(text: str):
    return parse_grid(tomllib.loads(text))


BASE = """
[dimensions]
memory = ["1G", "4G", "16G"]
vcpus = [1, 8]
profile = ["tdx", "snp"]
policy = ["lazy", "eager"]
"""


def test_cross_product_count_and_content():
    g = grid(BASE)
    points = list(g.points())
    assert len(points) == 3 * 2 * 2 * 2
    combos = {(p["memory"], p["vcpus"], p["profile"], p["policy"]) for p in points}
    assert len(combos) == 24  # no duplicates
    assert (16 * GiB, 8, "snp", "eager") in combos


def test_exclusion_removes_exactly_the_matching_runs():
    g = grid(BASE + """
[[exclude]]
profile = "snp"
vcpus = 8
[[exclude]]
memory = ["1G", "4G"]
policy = "eager"
""")
    points = list(g.points())
    # First: snp with 8 vCPUs, 3 sizes x 2 policies = 6.  Second: 2 sizes x eager x 2 vCPUs x 2 profiles = 8.
    # Both: snp, 8 vCPUs, eager, 1G or 4G = 2, counted twice above.
    assert len(points) == 24 - 6 - 8 + 2
    assert not any(p["profile"] == "snp" and p["vcpus"] == 8 for p in points)
    assert not any(p["memory"] in (GiB, 4 * GiB) and p["policy"] == "eager" for p in points)


def test_fixed_values_go_in_every_point_and_profile_defaults_to_tdx():
    g = grid("""
[dimensions]
memory = ["2G", "3G"]
[fixed]
vcpus = 4
firmware_accept = "256m"
""")
    assert list(g.points()) == [
        {"memory": 2 * GiB, "vcpus": 4, "firmware_accept": "256M", "profile": "tdx"},
        {"memory": 3 * GiB, "vcpus": 4, "firmware_accept": "256M", "profile": "tdx"},
    ]


@pytest.mark.parametrize("spec,expected", [
    ('{ from = "1G", to = "256G", times = 2 }', [2**k * GiB for k in range(9)]),
    ('{ from = "1G", to = "3G", step = "512M" }', [1024 * MiB, 1536 * MiB, 2048 * MiB, 2560 * MiB, 3072 * MiB]),
    ('{ from = "1G", to = "4G", count = 3 }', [GiB, 2 * GiB, 4 * GiB]),
    ('{ from = "1G", to = "3G", count = 3, spacing = "linear" }', [GiB, 2 * GiB, 3 * GiB]),
])
def test_memory_ranges(spec, expected):
    g = grid(f"[dimensions]\nmemory = {spec}\n")
    assert [p["memory"] for p in g.points()] == expected


def test_vcpu_ranges_and_a_40_size_log_range():
    g = grid('[dimensions]\nvcpus = { from = 1, to = 64 }\nmemory = { from = "1G", to = "256G", count = 40 }\n')
    dims = dict(g.dimensions)
    assert list(dims[Dimension.VCPUS]) == list(range(1, 65))
    sizes = dims[Dimension.MEMORY]
    assert len(sizes) == 40 and sizes[0] == GiB and sizes[-1] == 256 * GiB
    assert all(s % MiB == 0 for s in sizes) and list(sizes) == sorted(set(sizes))
    # Log spacing: every step multiplies by 256 ** (1/39) = 1.153, within MiB rounding.
    ratios = [b / a for a, b in zip(sizes, sizes[1:], strict=False)]
    assert all(abs(r - 256 ** (1 / 39)) < 1e-3 for r in ratios)
    assert sum(1 for _ in g.points()) == 64 * 40


@pytest.mark.parametrize("text,message", [
    ('[dimensions]\nmemory = ["4G"]\ncolour = ["red"]', "unknown dimension 'colour'"),
    ('[dimensions]\nmemory = ["4G"]\nworkload = ["redis"]', "workload: --workload 'redis': unknown workload"),
    ('[dimensions]\nmemory = ["4G"]\nkconfig = ["defconfig"]', "kconfig: --kconfig 'defconfig': expected NAME=VALUE"),
    ('[dimensions]\nmemory = ["4G"]\n[fixed]\npatches = "v2"', "patches: --patch 'v2': unknown patch"),
    ('[dimensions]\nmemory = [4]', 'memory: write sizes as strings like "4G", not 4'),
    ('[dimensions]\nmemory = ["lots"]', "memory: not a size: 'lots'"),
    ('[dimensions]\nmemory = ["4G", "4096M"]', "4294967296 is listed twice"),
    ('[dimensions]\nmemory = ["4G"]\nkernel = [6.10]', 'write kernel releases as strings ("6.10"), not 6.1'),
    ('[dimensions]\nmemory = ["4G"]\nkernel = ["5.0"]', "unaccepted memory support arrived in Linux 6.5"),
    ('[dimensions]\nmemory = ["4G"]\npolicy = ["sometimes"]', "policy: --policy 'sometimes': unknown policy"),
    ('[dimensions]\nmemory = "4G"', "a single value goes in [fixed]"),
    ('[dimensions]\nvcpus = [1]', "a grid needs memory"),
    ('[dimensions]\nmemory = ["4G"]\n[fixed]\nmemory = "8G"', "memory is both a dimension and fixed"),
    ('[dimensions]\nmemory = ["4G"]\n[[exclude]]\nmemory = "8G"', "exclude #1: memory 8589934592 is not a value"),
    ('[dimensions]\nmemory = ["4G"]\n[[exclude]]\nvcpus = 2', "exclude #1 names vcpus, which is not a dimension"),
    ('[dimensions]\nmemory = ["4G"]\n[[exclude]]\nmemory = "4G"', "every run of the grid is excluded"),
    ('[dimensions]\nmemory = ["4G"]\n[runs]\nx = 1', "unknown section [runs]"),
    ('[dimensions]\nmemory = { from = "4G", to = "1G" }', "from must not be above to"),
    ('[dimensions]\npolicy = { from = 1, to = 2 }\n[fixed]\nmemory = "4G"', "ranges are for numbers and sizes"),
    ('[dimensions]\nvcpus = { from = 1, to = 1000000 }\nmemory = { from = "1G", to = "2000G", step = "1G" }',
     "more runs than the 1,000,000 a sweep takes"),
])
def test_bad_grids_are_refused_with_the_reason(text, message):
    with pytest.raises(ConfigError) as err:
        grid(text)
    assert message in str(err.value)


def test_a_file_names_itself_in_errors(tmp_path):
    bad = tmp_path / "g.toml"
    bad.write_text("[dimensions\nmemory = 1")
    with pytest.raises(FormatError, match=f"{bad}: not a TOML grid"):
        load_grid(str(bad))
    bad.write_text('[dimensions]\nmemory = ["4G"]\nworkload = ["idle"]\n')
    with pytest.raises(ConfigError, match=f"^{bad}: workload: --workload 'idle': unknown workload"):
        load_grid(str(bad))


def test_a_point_becomes_the_request_it_names():
    point = {"memory": 8 * GiB, "vcpus": 16, "profile": "snp", "policy": "eager", "kernel": "6.12",
             "firmware_accept": "512M", "host_mapping": "2m", "shell_footprint": 64 * MiB, "os_opt_in": False}
    spec = to_run(point, {"snp": Tee.SNP})
    r = spec.request
    assert spec.profile == "snp"
    assert (r.memory, r.vcpus, r.tee, r.policy, r.kernel) == (8 * GiB, 16, Tee.SNP, AcceptPolicy.EAGER, "6.12")
    assert r.firmware_accept == FirmwareAccept.parse("512M")
    assert r.host_mapping is HostMapping.PAGE_2M
    assert r.footprint.shell_footprint == 64 * MiB and r.snp_os_opt_in is False


def test_every_modelled_dimension_sets_a_field_of_the_request():
    fields = {f.name for f in dataclasses.fields(GuestRequest)}
    for dim, spec in SPECS.items():
        if spec.normalize is not None and spec.field is not None:
            assert spec.field in fields, dim
        if spec.normalize is None:
            # Tripwire: when the guest model gains this field, the grid must learn to read it.
            assert spec.field not in fields, f"GuestRequest has {spec.field!r} now: give dimension {dim} a parser"


def test_kconfig_and_patches_are_dimensions_of_their_own():
    # Two kconfig choices x two patch sets = 4 runs; spellings are made canonical (sorted, any case
    # of the option names is kept as written), and each reaches the request.
    g = grid('[dimensions]\nmemory = ["4G"]\nkconfig = [["HZ=1000", "DEFERRED_STRUCT_PAGE_INIT=n"], []]\n'
             'patches = [["accepted-reserve"], []]')
    runs = [to_run(p, {"tdx": Tee.TDX}).request for p in g.points()]
    assert len(runs) == 4
    kc = {r.kconfig for r in runs}
    assert kc == {("DEFERRED_STRUCT_PAGE_INIT=n", "HZ=1000"), ()}
    assert {r.patches for r in runs} == {("accepted-reserve",), None}


def test_workloads_and_run_time_policies_are_run_options():
    # A workload and a policy the kernel does not ship go to the run, not to the guest: the
    # guest boots with accept_memory=lazy, the run carries the policy and the workload.
    g = grid('[dimensions]\nmemory = ["16G"]\npolicy = ["background:threads=2,rate=4G", "eager"]\n'
             'workload = ["touch:4G", ["touch:1G", "drain,workers=2@60"]]')
    specs = [to_run(p, {"tdx": Tee.TDX}) for p in g.points()]
    assert len(specs) == 4
    bg = [s for s in specs if s.options.policy.startswith("background")]
    assert {s.request.policy for s in bg} == {AcceptPolicy.LAZY}
    assert {s.options.workloads for s in specs} == {("touch:4G",), ("touch:1G", "drain,workers=2@60")}
    assert all(s.options.runs_after_boot for s in specs)
