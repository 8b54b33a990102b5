"""kexec at run time (``--workload kexec@T``): shared memory back to private before the jump, the
segments' destinations, and the release that fixed each.

Expected behaviour from the kernel source: arch/x86/coco/tdx/tdx.c (TDX kexec series, v6.11)
tdx_kexec_finish() walks the direct map up to get_max_mapped() and, for every PTE with the shared
bit, calls tdx_enc_status_changed(addr, pages, true): tdx_map_gpa() to private, then
``tdx_accept_memory(start, end)`` ("shared->private conversion requires memory to be accepted
before use"), so the first kernel accepts the whole SWIOTLB buffer again before jumping.  The
buffer's size is kernel/dma/swiotlb.c's (6% of RAM clamped to [64 MiB, 1 GiB], 2 KiB slabs rounded
up to a power of two: 512 MiB for 8 GiB).  kernel/kexec_core.c accepts the segments' destinations
since "kexec_core: Accept unaccepted kexec segments' destination addresses" (v6.15).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lazyaccept.base.errors import SafetyViolation
from lazyaccept.base.record import AcceptEvent
from lazyaccept.base.units import GiB, MiB
from lazyaccept.cli import cli
from lazyaccept.guest import kexec
from lazyaccept.guest.policies import Policy
from lazyaccept.guest.rules import kernel_rules
from lazyaccept.scenario.config import GuestRequest
from lazyaccept.scenario.runtime import RunConfig, record_run
from lazyaccept.scenario.workloads import Workload


def _record(kernel: str, *workloads: str):  # noqa: ANN202
    req = GuestRequest(8 * GiB, kernel=kernel)
    cfg = RunConfig(req.resolve(), tuple(Workload.parse(w) for w in workloads), Policy())
    return record_run(cfg)


def test_kexec_accepts_the_whole_swiotlb_buffer_again_before_jumping():
    run = _record("mainline", "kexec@5")
    events = [e for e in run.boot.phases[-1].events if isinstance(e, AcceptEvent) and e.reason == "kexec-unshare"]
    assert sum(e.end - e.start for e in events) == 512 * MiB
    # accepted anew: the host backs every page again (nothing was left of the private pages)
    assert sum(e.stats.bytes_accepted for e in events) == 512 * MiB


@pytest.mark.parametrize(("kernel", "code", "why"), [
    ("6.14", 3, "since v6.15"),  # relocate_kernel copies into unaccepted memory
    ("6.15", 0, ""),
])
def test_kexec_run_by_release(kernel, code, why):
    r = CliRunner().invoke(cli, ["run", "--memory", "8G", "--kernel", kernel, "--workload", "kexec@5", "--json"])
    assert r.exit_code == code, r.output
    assert why in r.output
    if code == 0:
        (w,) = json.loads(r.output)["workloads"]
        assert w["duration_s"] > 0


def test_nothing_runs_in_the_first_kernel_after_kexec():
    run = _record("mainline", "kexec@5", "touch:1G@10")
    assert "touch:1G@10" not in run.owners


def test_before_611_the_buffer_stays_shared_for_the_next_kernel():
    shared = [(3 * GiB, 3 * GiB + 512 * MiB)]
    assert kexec.kexec_unshare(None, kernel_rules("6.10"), shared, None) == 0  # nothing converts it
    with pytest.raises(SafetyViolation, match="still shared"):
        kexec.check_next_kernel_private(kernel_rules("6.10"), shared)
    kexec.check_next_kernel_private(kernel_rules("6.11"), shared)
