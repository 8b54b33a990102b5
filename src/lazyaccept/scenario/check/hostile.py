"""Hostile hosts: the host's policy replaced (platform/hostile.py), the guest left as today's
kernel and firmware, and what must happen.

A modelled stop of the guest -- Linux asking the host to terminate it, a TD exit the host can only
answer by killing or stalling the TD, TDVF halting -- is the *expected* outcome, not an error.  What
must never happen is that the guest goes on with its data silently replaced: the sanitizer's record
of the pages the guest wrote (:func:`~lazyaccept.scenario.sanitizer.silent_data_losses`) must stay
empty.  Denial of service -- a host that simply never backs memory, or keeps the guest looping --
is outside the TDX and SEV-SNP threat models: the requirement there is no progress at that page
and no corruption.

Each scenario is a list of probes; each probe runs a small guest (:mod:`.mini`) against the host
and compares the guest's fate with the one expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from ...base.choices import Tee
from ...base.errors import GuestStopped, SafetyViolation
from ...base.ranges import RangeSet
from ...base.units import PAGE_SIZE, MiB
from ...firmware.q35 import ram_ranges
from ...firmware.td_hob_check import HobCheck, tdvf_accept_from_hob
from ...firmware.tdvf import BUILTIN_IMAGE, build_td_hob, load_tdvf, qemu_td_hob_resources
from ...formats.tdvf import TdvfSectionType
from ...guest.rules import KernelRules
from ...guest.snp_psc import SnpProtocolMemory, pvalidate_pages
from ...platform.base import Platform
from ...platform.host import HostPolicy, HostVMM, PscAnswer
from ...platform.hostile import ForgedHob, PscHost, RefuseToBack, RemapPage, RemoveAndReadd
from ...platform.snp import SnpPlatform
from ...platform.tdx import TdxPlatform
from ..sanitizer import silent_data_losses
from . import detectors
from .findings import Finding
from .mini import BASE, UNIT, MiniGuest, mini_guest


class Fate(StrEnum):
    """How a probe ended for the guest."""

    #: The guest (or the hardware on its behalf) stopped it: panic, terminate, TD killed.
    STOPPED = "stopped"
    #: The guest makes no progress at one page; nothing it had is lost (denial of service).
    STUCK = "stuck"
    #: The firmware refused the host's input before using any of it.
    REFUSED = "refused"
    #: The guest broke a safety rule (the detectors caught it).
    VIOLATION = "violation"
    #: The guest carried on.
    CONTINUED = "continued"


@dataclass
class Probe:
    """One run of a hostile scenario: what the guest's fate should be and was."""

    label: str
    expected: Fate
    fate: Fate
    detail: str
    silent_loss_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fate is self.expected and self.silent_loss_bytes == 0


@dataclass(frozen=True)
class HostileScenario:
    name: str
    tee: Tee
    source: str
    host: str
    expected: str
    probes: Callable[[KernelRules], list[Probe]]


def probe(label: str, expected: Fate, platform: Platform, steps: Callable[[], str]) -> Probe:
    """Run the guest's ``steps`` against the hostile host and classify how they ended."""
    findings: list[Finding] = []
    try:
        fate, detail = Fate.CONTINUED, steps()
    except GuestStopped as exc:
        fate = Fate.REFUSED if exc.actor == "tdvf" else Fate.STOPPED
        detail = str(exc)
    except SafetyViolation as exc:
        if exc.rule == "touch-unaccepted" and ("by the host" in exc.detail or "never assigned" in exc.detail):
            # The hardware stops the guest at a page the host took away: no recovery in the guest.
            fate, detail = Fate.STOPPED, f"{exc}: the guest cannot go on"
        elif exc.rule == "host-refused":
            fate, detail = Fate.STUCK, f"{exc}: the accept re-executes forever at that page"
        else:
            fate, detail = Fate.VIOLATION, str(exc)
            findings.append(detectors.safety(exc))
    data = detectors.guest_data(platform)
    if data is not None and data.rule == "silent-data-loss":
        findings.append(data)
    lost = silent_data_losses(platform).total()
    return Probe(label, expected, fate, detail, lost, findings)


# -- TDX ---------------------------------------------------------------------------------------------
def _write(g: MiniGuest, start: int, end: int) -> None:
    g.platform.touch(start, end, actor="guest data", vcpu=0)


def tdx_remove_readd(rules: KernelRules) -> list[Probe]:
    page = BASE + 5 * PAGE_SIZE
    g = mini_guest(rules, units=4, policy=RemoveAndReadd(page, page + PAGE_SIZE))

    def steps() -> str:
        g.mem.accept_memory(BASE, UNIT - PAGE_SIZE, actor="page_alloc")
        _write(g, BASE, BASE + UNIT - PAGE_SIZE)
        g.platform.host.policy.strike(g.platform)  # REMOVE, then AUG: a zeroed PENDING page
        # Any path that asks for the range again finds its bit clear and accepts nothing.
        again = g.mem.accept_memory(BASE, UNIT - PAGE_SIZE, actor="page_alloc")
        assert again.bytes_accepted == 0
        _write(g, page, page + 64)  # the guest's next access
        return "the guest read the page back"

    p = probe("next access to the re-added page", Fate.STOPPED, g.platform, steps)
    if p.fate is Fate.STOPPED:
        p.detail += ("; TD exit on a PENDING page with SEPT_VE_DISABLE, which Linux insists on (373e715e31bf): "
                     "the host can only kill or stall the TD; accept_memory() did not re-accept it")
    return [p]


def tdx_refuse_aug(rules: KernelRules) -> list[Probe]:
    refused = (BASE + UNIT, BASE + 2 * UNIT)
    g = mini_guest(rules, units=4, policy=RefuseToBack(*refused))

    def steps() -> str:
        g.mem.accept_memory(BASE, UNIT - PAGE_SIZE, actor="page_alloc")
        _write(g, BASE, BASE + UNIT - PAGE_SIZE)
        g.mem.accept_memory(refused[0], UNIT - PAGE_SIZE, actor="page_alloc")
        return "the host backed the page after all"

    p = probe("accept of a unit the host never backs", Fate.STUCK, g.platform, steps)
    intact = g.platform.accepted().contains(BASE, BASE + UNIT - PAGE_SIZE) and bool(g.mem.table.bits[1])
    if p.fate is Fate.STUCK:
        p.detail += ("; unit 0 and its data intact, unit 1 still marked unaccepted, nothing zeroed: denial of "
                     "service only, which is outside the TDX threat model")
        if not intact:
            p.fate, p.detail = Fate.VIOLATION, "memory the guest had accepted changed under a refusing host"
    return [p]


def tdx_forged_hob(rules: KernelRules) -> list[Probe]:
    meta = load_tdvf(BUILTIN_IMAGE)
    bfv = next(s for s in meta.sections if s.type == TdvfSectionType.BFV)
    forged = (bfv.memory_address, bfv.memory_address + bfv.memory_size)
    hob_section = next(s for s in meta.sections if s.type == TdvfSectionType.TD_HOB)
    ram = RangeSet(ram_ranges(512 * MiB))
    out = []
    for check, expected in ((HobCheck.METADATA, Fate.REFUSED), (HobCheck.TEMP_MEM, Fate.VIOLATION),
                            (HobCheck.NONE, Fate.VIOLATION)):
        policy = ForgedHob([forged])
        platform = TdxPlatform(HostVMM(policy))
        added = []
        for sec in meta.sections:
            platform.add_at_build(sec.memory_address, sec.memory_address + sec.memory_size)
            if ram.overlaps(sec.memory_address, sec.memory_address + sec.memory_size):
                added.append((sec.memory_address, sec.memory_address + sec.memory_size))
        platform.finalize()
        hob = build_td_hob(hob_section, policy.td_hob_resources(qemu_td_hob_resources(ram, added)))

        def steps(platform: TdxPlatform = platform, hob: bytes = hob, check: HobCheck = check) -> str:
            tdvf_accept_from_hob(platform, meta, hob, check)
            return "TDVF accepted the forged range without complaint"

        label = {HobCheck.METADATA: "with the Bugzilla 4363 check (TDVF metadata, part of MRTD)",
                 HobCheck.TEMP_MEM: "with upstream's TEMP_MEM-only check",
                 HobCheck.NONE: "without a check"}[check]
        p = probe(label, expected, platform, steps)
        if p.fate is Fate.VIOLATION:
            p.detail += " (EDK2's TdAcceptPages only warns on TDX_PAGE_ALREADY_ACCEPTED)"
        out.append(p)
    return out


# -- SEV-SNP -----------------------------------------------------------------------------------------
def _snp_guest(rules: KernelRules, policy: HostPolicy) -> MiniGuest:
    return mini_guest(rules, units=4, tee=Tee.SNP, policy=policy, memory=SnpProtocolMemory)


def snp_rmp_remap(rules: KernelRules) -> list[Probe]:
    old, new = BASE + 5 * PAGE_SIZE, BASE + 2 * UNIT + 5 * PAGE_SIZE
    g = _snp_guest(rules, RemapPage(old, new))

    def steps() -> str:
        g.mem.accept_memory(BASE, UNIT - PAGE_SIZE, actor="page_alloc")
        _write(g, BASE, BASE + UNIT - PAGE_SIZE)
        g.platform.host.policy.strike(g.platform)  # RMPUPDATE of the page to GPA ``new``: Validated clear
        again = g.mem.accept_memory(BASE, UNIT - PAGE_SIZE, actor="page_alloc")
        assert again.bytes_accepted == 0  # the bitmap says accepted: never validated again
        _write(g, old, old + 64)  # the guest's next access at the old address
        return "the guest read the page back"

    moved = probe("next access at the old address", Fate.STOPPED, g.platform, steps)
    if moved.fate is Fate.STOPPED:
        moved.detail += "; the guest never re-validated it"
    h = _snp_guest(rules, HostPolicy())
    assert isinstance(h.platform, SnpPlatform)
    platform = h.platform

    def twice() -> str:
        h.mem.accept_memory(BASE, UNIT - PAGE_SIZE, actor="page_alloc")
        # A validation of a page already validated, as a guest tricked into it would issue.
        pvalidate_pages(platform, [(BASE, PAGE_SIZE)], actor="guest", vcpu=0)
        return "the second PVALIDATE went through"

    return [moved, probe("a second validation (PVALIDATE, CF=1)", Fate.STOPPED, h.platform, twice)]


def _psc_probe(rules: KernelRules, label: str, expected: Fate, *answers: PscAnswer) -> Probe:
    g = _snp_guest(rules, PscHost(*answers))

    end = BASE + 3 * UNIT - PAGE_SIZE  # units 0-2: one request of three 2 MiB entries

    def steps() -> str:
        stats = g.mem.accept_memory(BASE, end - BASE, actor="page_alloc")
        _write(g, BASE, end)
        once = g.platform.accepted().contains(BASE, end) and not g.platform.reaccepted()
        return (f"the guest accepted and used units 0-2 after {stats.exits} VMGEXITs, every page validated once"
                if once else "the guest went on with pages not validated")

    return probe(label, expected, g.platform, steps)


def snp_psc_lies(rules: KernelRules) -> list[Probe]:
    return [_psc_probe(rules, "PSC answered 'done' with the RMP unchanged", Fate.STOPPED, PscAnswer.CLAIM_DONE)]


def snp_psc_backwards(rules: KernelRules) -> list[Probe]:
    return [
        _psc_probe(rules, "header moved back past the request (end_entry raised, cur_entry 0)", Fate.STOPPED,
                   PscAnswer.BACKWARDS),
        _psc_probe(rules, "cur_entry moved back after partial progress (1 -> 0), then processed", Fate.CONTINUED,
                   PscAnswer.REWIND, PscAnswer.REWIND, PscAnswer.PROCESS),
    ]


def snp_refuse(rules: KernelRules) -> list[Probe]:
    return [_psc_probe(rules, "PSC refused (error in sw_exit_info_2)", Fate.STOPPED, PscAnswer.FAIL)]


HOSTILE: tuple[HostileScenario, ...] = (
    HostileScenario(
        "tdx-remove-readd", Tee.TDX,
        "TDX module TDH.MEM.PAGE.REMOVE / AUG; LKML \"x86/tdx: Fix memory hotplug in TDX guests\" "
        "(2026-03: re-accepting zeroes data)",
        "removes an accepted page the guest wrote and AUGs a fresh one at the same GPA",
        "the guest's next access stops it (TD exit on the PENDING page); it never re-accepts silently",
        tdx_remove_readd,
    ),
    HostileScenario(
        "tdx-refuse-aug", Tee.TDX, "KVM TDX: TDH.MEM.PAGE.AUG on the accept's EPT violation (arch/x86/kvm/vmx/tdx.c)",
        "never AUGs the pages of one unit",
        "the guest makes no progress at that unit, nothing lost or zeroed (denial of service: outside the "
        "threat model)",
        tdx_refuse_aug,
    ),
    HostileScenario(
        "tdx-forged-hob", Tee.TDX, "EDK2 Bugzilla 4363 (tianocore/edk2 issue #10384); upstream check PR #4002",
        "writes a TD HOB that declares the boot firmware volume (added and measured) unaccepted",
        "refused by TDVF with the Bugzilla 4363 check; without it (or with TEMP_MEM only) TDVF accepts it a "
        "second time, which the sanitizer catches",
        tdx_forged_hob,
    ),
    HostileScenario(
        "snp-rmp-remap", Tee.SNP,
        "AMD APM vol. 2 §15.36 (RMPUPDATE clears Validated; #VC 0x404); EDK2 treats CF=1 as fatal",
        "moves a validated page the guest wrote to another guest address",
        "the guest's next access at the old address terminates it (#VC 0x404); it never re-validates; a "
        "second PVALIDATE (CF=1) terminates it too",
        snp_rmp_remap,
    ),
    HostileScenario(
        "snp-psc-lies", Tee.SNP, "Linux pvalidate_pages() (arch/x86/coco/sev/core.c)",
        "answers a page-state change with success but leaves the RMP unchanged",
        "the guest's PVALIDATE fails and it terminates (GHCB_TERM_PVALIDATE)",
        snp_psc_lies,
    ),
    HostileScenario(
        "snp-psc-backwards", Tee.SNP, "Linux vmgexit_psc(): \"PSC processing going backward\"",
        "moves the page-state-change header backwards",
        "the guest refuses a header gone back past its request (GHCB_TERM_PSC); a rewind inside the request "
        "only makes it ask again",
        snp_psc_backwards,
    ),
    HostileScenario(
        "snp-refuse", Tee.SNP, "Linux vmgexit_psc() / __set_pages_state()",
        "refuses a page-state change",
        "the guest terminates with GHCB_TERM_PSC",
        snp_refuse,
    ),
)
