"""Pricing: a record event and a host profile in, the work it costs out.

An :class:`~lazyaccept.base.record.AcceptEvent` costs its per-operation counts times the
profile's ``[accept]`` costs, its exits made dearer by interference
(``1 + interference * (online_vcpus - 1)``), and its zeroed bytes as memory traffic; it holds the
lock the record says it held.  How the counts map to costs differs per TEE (one function each,
in :data:`ACCEPT_PRICING`).  A :class:`~lazyaccept.base.record.WorkEvent` costs ``amount`` times
its ``[boot]`` cost (CPU seconds or bytes, by the cost's unit) plus ``amount`` times
``<kind>_bytes`` if the profile has it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..base.choices import Tee
from ..base.errors import ConfigError
from ..base.record import AcceptEvent, AcceptStats, Event, WorkEvent
from .engine import WorkItem
from .profile import CostProfile
from .profile_schema import BOOT


def price(profile: CostProfile, event: Event, online_vcpus: int) -> WorkItem:
    """The work one record event costs, when ``online_vcpus`` vCPUs are running."""
    if online_vcpus < 1:
        raise ConfigError(f"online vCPU count must be >= 1, not {online_vcpus}")
    if isinstance(event, AcceptEvent):
        return _price_accept(profile, event, online_vcpus)
    if isinstance(event, WorkEvent):
        return _price_work(profile, event)
    raise ConfigError(f"cannot price {type(event).__name__}: not an AcceptEvent or WorkEvent")


def _price_work(profile: CostProfile, event: WorkEvent) -> WorkItem:
    kind = event.kind
    if kind not in profile.work_kinds:
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
    return WorkItem(event.vcpu, cpu_s, nbytes, None, kind)


def _tdx_accept_cpu_s(profile: CostProfile, event: AcceptEvent, exit_factor: float) -> float:
    """TDX: TDCALLs by page size, TD exits (dearer with more vCPUs), host faults (AUG)."""
    s, c = event.stats, profile.si
    if s.psc_requests or s.psc_entries:
        raise ConfigError(
            f"TDX profile {profile.name} cannot price SNP page-state changes ({event.actor} on vCPU {event.vcpu})"
        )
    return (
        s.calls_4k * c("accept.tdcall_4k")
        + s.calls_2m * c("accept.tdcall_2m")
        + s.calls_1g * c("accept.tdcall_1g")
        + s.exits * c("accept.td_exit") * exit_factor
        + _host_faults_s(profile, s)
    )


def _snp_accept_cpu_s(profile: CostProfile, event: AcceptEvent, exit_factor: float) -> float:
    """SNP: every exit is one VMGEXIT round trip, and a page-state-change request is always one.
    The host backs a page on the nested page fault the PVALIDATE or first access takes, so a
    host fault is an exit too (dearer with more vCPUs)."""
    s, c = event.stats, profile.si
    if s.calls_1g:
        raise ConfigError(
            f"SNP profile {profile.name}: PVALIDATE has no 1 GiB size "
            f"({event.actor} on vCPU {event.vcpu} counted {s.calls_1g})"
        )
    round_trips = max(s.exits, s.psc_requests)
    return (
        round_trips * c("accept.psc_request") * exit_factor
        + s.psc_entries * c("accept.psc_entry")
        + s.calls_4k * c("accept.pvalidate_4k")
        + s.calls_2m * c("accept.pvalidate_2m")
        + _host_faults_s(profile, s) * exit_factor
    )


def _host_faults_s(profile: CostProfile, s: AcceptStats) -> float:
    return s.host_backed_4k * profile.si("accept.host_fault_4k") + s.host_backed_2m * profile.si("accept.host_fault_2m")


#: How each TEE's acceptance counts turn into CPU time.
ACCEPT_PRICING: dict[Tee, Callable[[CostProfile, AcceptEvent, float], float]] = {
    Tee.TDX: _tdx_accept_cpu_s,
    Tee.SNP: _snp_accept_cpu_s,
}


def _price_accept(profile: CostProfile, event: AcceptEvent, online_vcpus: int) -> WorkItem:
    s = event.stats
    exit_factor = 1.0 + profile.si("host.interference") * (online_vcpus - 1)
    cpu_s = ACCEPT_PRICING[profile.tee](profile, event, exit_factor)
    cpu_s += event.requests * profile.si("accept.accept_request")
    return WorkItem(
        vcpu=event.vcpu,
        cpu_s=cpu_s,
        bytes=float(s.host_zeroed_bytes + s.accept_zeroed_bytes),
        lock=event.lock,
        label=f"accept:{event.actor}:{event.reason}" if event.reason else f"accept:{event.actor}",
        accepted_bytes=s.bytes_accepted,
        committed_bytes=s.host_backed_bytes,
    )
