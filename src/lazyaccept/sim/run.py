"""A run: a resolved configuration and a host profile in, the record and its timeline out.

:func:`run` is a pure function of its (picklable) arguments, so sweeps can fan runs out over
processes and machines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..base.errors import ConfigError
from ..scenario.boot_record import BootRecord
from ..scenario.build import build_record
from ..scenario.config import GuestRequest, VMConfig
from .pricing import price
from .profile import CostProfile
from .timeline import Pricing, Timeline, simulate
from .uncertainty import Range, predict_range


@dataclass
class BootResult:
    record: BootRecord
    timeline: Timeline
    #: The boot time's one-sigma range from the profile's fitted uncertainties (None: none recorded).
    boot_range: Range | None = None

    @property
    def boot_s(self) -> float:
        return self.timeline.total_s

    @property
    def accept_s(self) -> float:
        return self.timeline.accept_s


def check_profile_fits(config: VMConfig | GuestRequest, profile: CostProfile) -> None:
    """A host profile prices one TEE's operations: refuse a guest of another."""
    if profile.tee is not config.tee:
        raise ConfigError(f"profile {profile.name!r} is for {profile.tee.value}, not {config.tee.value}")


def resolve(request: GuestRequest, profile: CostProfile) -> VMConfig:
    """The request with the profile's guest-stack defaults, checked against the profile."""
    check_profile_fits(request, profile)
    return request.resolve(profile.defaults)


def run(config: VMConfig, profile: CostProfile, prices: Callable[[], Pricing] | None = None) -> BootResult:
    """Model one boot and simulate its timeline with ``profile``; ``prices`` makes a fresh
    pricing per simulation (a host feature's, see :mod:`lazyaccept.sim.host_features`)."""
    check_profile_fits(config, profile)
    record = build_record(config)
    at_start = record.platform.host.added_bytes  # pages added at build time
    fresh = prices if prices is not None else (lambda: price)
    timeline = simulate(record.phases, profile, committed_at_start=at_start, pricing=fresh())
    boot_range = predict_range(lambda p: simulate(record.phases, p, pricing=fresh()).total_s, profile,
                               timeline.total_s)
    return BootResult(record, timeline, boot_range)
