"""--max-vcpus (QEMU's ``-smp N,maxcpus=M``): what the kernel sizes by possible CPUs.

Expected values from the kernel source (v6.12): kernel/dma/swiotlb.c swiotlb_init_remap() calls
``swiotlb_adjust_nareas(num_possible_cpus())`` (areas rounded up to a power of two) and
round_up_default_nslabs() gives each area at least IO_TLB_SEGSIZE = 128 slabs of 2 KiB and rounds
the slab count up to a power of two; mm/percpu.c pcpu_embed_first_chunk() embeds one unit per
possible CPU (512 KiB in the real TDX guest log the footprint cites).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lazyaccept.base.errors import ConfigError
from lazyaccept.base.record import AcceptEvent
from lazyaccept.base.units import GiB, KiB, MiB
from lazyaccept.cli import cli
from lazyaccept.firmware.tdvf import BUILTIN_IMAGE
from lazyaccept.scenario.build import build_record
from lazyaccept.scenario.config import GuestRequest


def _allocs(max_vcpus: int | None, **kw: object) -> dict[str, int]:
    req = GuestRequest(4 * GiB, vcpus=2, max_vcpus=max_vcpus, firmware_path=BUILTIN_IMAGE, **kw)  # type: ignore[arg-type]
    rec = build_record(req.resolve())
    return {e.reason: e.end - e.start for p in rec.phases for e in p.events
            if isinstance(e, AcceptEvent) and e.actor == "memblock"} | {"max_vcpus": rec.config.possible_cpus}


def test_swiotlb_areas_and_percpu_follow_possible_cpus():
    # 6.5 TDX without AMD_MEM_ENCRYPT keeps the 64 MiB default: 32768 slabs.  512 possible CPUs
    # need 512 areas x 128 slabs = 65536 slabs (128 MiB); 1024 need 131072 (256 MiB).
    base = dict(kernel="6.5", kconfig=("AMD_MEM_ENCRYPT=n",))
    online = _allocs(None, **base)
    assert online["max_vcpus"] == 2
    assert online.get("swiotlb", 64 * MiB) == 64 * MiB
    assert _allocs(512, **base)["swiotlb"] == 128 * MiB
    assert _allocs(1024, **base)["swiotlb"] == 256 * MiB


def test_percpu_first_chunk_has_a_unit_per_possible_cpu():
    assert _allocs(64)["percpu"] - _allocs(None)["percpu"] == (64 - 2) * 512 * KiB


def test_fewer_possible_than_online_cpus_is_refused():
    with pytest.raises(ConfigError, match="max-vcpus"):
        GuestRequest(4 * GiB, vcpus=4, max_vcpus=2).resolve()
    r = CliRunner().invoke(cli, ["boot", "--memory", "4G", "--vcpus", "4", "--max-vcpus", "2"])
    assert r.exit_code == 2 and "max-vcpus" in r.output and "Traceback" not in r.output


def test_boot_json_reports_max_vcpus():
    import json

    r = CliRunner().invoke(cli, ["boot", "--memory", "4G", "--vcpus", "2", "--max-vcpus", "8", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["config"]["max_vcpus"] == 8


def test_run_and_compare_take_max_vcpus():
    import json

    r = CliRunner().invoke(cli, ["run", "--memory", "4G", "--vcpus", "2", "--max-vcpus", "16",
                                 "--workload", "touch:256M", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["config"]["max_vcpus"] == 16
    r = CliRunner().invoke(cli, ["compare", "--memory", "4G", "--vcpus", "4", "--max-vcpus", "2"])
    assert r.exit_code == 2 and "max-vcpus" in r.output
