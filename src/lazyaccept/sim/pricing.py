"""Pricing: a record event and a host profile in, the work it costs out.

An :class:`~lazyaccept.base.record.AcceptEvent` costs its per-operation counts times the
profile's ``[accept]`` costs in CPU time of the accepting vCPU, each host fault a slice of the
host's serialised path (``[host] path_fault_*``), and its zeroed bytes as memory traffic; it
holds the lock the record says it held.  How the counts map to costs differs per TEE (one
function each, in :data:`ACCEPT_PRICING`).  A :class:`~lazyaccept.base.record.ConvertEvent`
costs, per page, the host's removal of a private page plus forcing every vCPU in guest mode out
(``page_remove + vcpus_in_guest * kick_vcpu``), all on the serialised path.  A
:class:`~lazyaccept.base.record.WorkEvent` costs ``amount`` times its ``[boot]`` cost (CPU
seconds or bytes, by the cost's unit) plus ``amount`` times ``<kind>_bytes`` if the profile has
it; a cost a profile leaves out (only optional ones may be) is 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..base.choices import Tee
from ..base.errors import ConfigError
from ..base.record import CPU_SECONDS, GUEST_EXITS, AcceptEvent, AcceptStats, ConvertEvent, Event, WaitEvent, WorkEvent
from .engine import WorkItem
from .profile import CostProfile
from .profile_schema import BOOT


def price(profile: CostProfile, event: Event) -> WorkItem:
    """The work one record event costs."""
    if isinstance(event, AcceptEvent):
        return _price_accept(profile, event)
    if isinstance(event, WorkEvent):
        return _price_work(profile, event)
    if isinstance(event, ConvertEvent):
        return _price_convert(profile, event)
    if isinstance(event, WaitEvent):
        return WorkItem(event.vcpu, 0.0, 0.0, label=f"wait:{event.actor}", not_before=event.at_s)
    raise ConfigError(f"cannot price {type(event).__name__}: not an accept, convert or work event")


def _price_convert(profile: CostProfile, event: ConvertEvent) -> WorkItem:
    per_page = profile.si("host.page_remove") + event.vcpus_in_guest * profile.si("host.kick_vcpu")
    return WorkItem(
        vcpu=event.vcpu, cpu_s=0.0, bytes=0.0, label=f"convert:{event.actor}:{event.reason}",
        host_s=event.pages * per_page,
    )


#: One exit out of the guest and back, outside the host path, by TEE: a TD exit (TDVMCALL) on
#: TDX, a VMGEXIT round trip on SNP.
EXIT_COST = {Tee.TDX: "accept.td_exit", Tee.SNP: "accept.psc_request"}


def _price_guest_exits(profile: CostProfile, event: WorkEvent) -> WorkItem:
    """``amount`` exits of the guest: each the TEE's round trip on the vCPU and, at the host's
    serialised path, the exit and re-entry an idle vCPU's tick also makes (``path_idle_exit``)."""
    n = float(event.amount)
    if not (math.isfinite(n) and n >= 0):
        raise ConfigError(f"{GUEST_EXITS} on vCPU {event.vcpu}: the count must be >= 0, not {event.amount!r}")
    return WorkItem(event.vcpu, n * profile.si(EXIT_COST[profile.tee]), 0.0, None, GUEST_EXITS,
                    host_s=n * profile.si("host.path_idle_exit"), onlines=event.onlines)


def _price_work(profile: CostProfile, event: WorkEvent) -> WorkItem:
    kind = event.kind
    if kind == GUEST_EXITS:
        return _price_guest_exits(profile, event)
    if kind == CPU_SECONDS:  # a stage's own CPU time, from the stage's data
        return WorkItem(event.vcpu, float(event.amount), 0.0, None, kind, onlines=event.onlines)
    if kind not in profile.work_kinds:
        if kind in BOOT and BOOT[kind].optional:
            return WorkItem(event.vcpu, 0.0, 0.0, None, kind, onlines=event.onlines)
        raise ConfigError(
            f"unknown work kind {kind!r}: profile {profile.name} ({profile.path}) has no [boot] cost for it "
            f"(known: {', '.join(profile.work_kinds)})"
        )
    amount = float(event.amount)
    if not (math.isfinite(amount) and amount >= 0):
        raise ConfigError(f"work event {kind!r} on vCPU {event.vcpu}: amount must be >= 0, not {event.amount!r}")
    p = profile.params[f"boot.{kind}"]
    spec = BOOT[kind]
    cpu_s = amount * p.si if spec.dim == "time" else 0.0
    nbytes = amount * p.si if spec.dim == "bytes" else 0.0
    extra = profile.params.get(f"boot.{kind}_bytes")
    if extra is not None:
        nbytes += amount * extra.si
    return WorkItem(event.vcpu, cpu_s, nbytes, None, kind, onlines=event.onlines)


def _tdx_accept_cpu_s(profile: CostProfile, event: AcceptEvent) -> float:
    """TDX: TDCALLs by page size, TD exits, and the vCPU's own share of host faults (AUG)."""
    s, c = event.stats, profile.si
    if s.psc_requests or s.psc_entries:
        raise ConfigError(
            f"TDX profile {profile.name} cannot price SNP page-state changes ({event.actor} on vCPU {event.vcpu})"
        )
    return (
        s.calls_4k * c("accept.tdcall_4k")
        + s.calls_2m * c("accept.tdcall_2m")
        + s.calls_1g * c("accept.tdcall_1g")
        + s.exits * c("accept.td_exit")
        + _host_faults_s(profile, s)
    )


def _snp_accept_cpu_s(profile: CostProfile, event: AcceptEvent) -> float:
    """SNP: every exit is one VMGEXIT round trip, and a page-state-change request is always one.
    The host backs a page on the nested page fault the PVALIDATE or first access takes."""
    s, c = event.stats, profile.si
    if s.calls_1g:
        raise ConfigError(
            f"SNP profile {profile.name}: PVALIDATE has no 1 GiB size "
            f"({event.actor} on vCPU {event.vcpu} counted {s.calls_1g})"
        )
    round_trips = max(s.exits, s.psc_requests)
    npf = s.npf_exits * c("accept.npf_exit") if "accept.npf_exit" in profile.params else 0.0
    return (
        npf
        + round_trips * c("accept.psc_request")
        + s.psc_entries * c("accept.psc_entry")
        + s.calls_4k * c("accept.pvalidate_4k")
        + s.calls_2m * c("accept.pvalidate_2m")
        + _host_faults_s(profile, s)
    )


def _host_faults_s(profile: CostProfile, s: AcceptStats) -> float:
    return s.host_backed_4k * profile.si("accept.host_fault_4k") + s.host_backed_2m * profile.si("accept.host_fault_2m")


#: How each TEE's acceptance counts turn into CPU time of the accepting vCPU.
ACCEPT_PRICING: dict[Tee, Callable[[CostProfile, AcceptEvent], float]] = {
    Tee.TDX: _tdx_accept_cpu_s,
    Tee.SNP: _snp_accept_cpu_s,
}


def _price_accept(profile: CostProfile, event: AcceptEvent) -> WorkItem:
    s = event.stats
    cpu_s = ACCEPT_PRICING[profile.tee](profile, event)
    cpu_s += event.requests * profile.si("accept.accept_request")
    host_s = s.host_backed_4k * profile.si("host.path_fault_4k") + s.host_backed_2m * profile.si("host.path_fault_2m")
    return WorkItem(
        vcpu=event.vcpu,
        cpu_s=cpu_s,
        bytes=float(s.host_zeroed_bytes + s.accept_zeroed_bytes),
        lock=event.lock,
        label=f"accept:{event.actor}:{event.reason}" if event.reason else f"accept:{event.actor}",
        accepted_bytes=s.bytes_accepted,
        committed_bytes=s.host_backed_bytes,
        host_s=host_s,
        entry=event.entry,
        requests=max(1, event.requests),
    )
