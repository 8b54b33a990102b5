"""Sweeps: many runs, each a pure function of its configuration.

:func:`compare_policies` boots each memory size eager and lazy, the comparison behind
``lazyaccept compare``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..base.choices import AcceptPolicy
from ..base.units import format_size
from ..scenario.config import GuestRequest, VMConfig
from .outcome import Failure, try_run
from .profile import CostProfile
from .run import resolve
from .uncertainty import Range


@dataclass(frozen=True)
class CompareRow:
    memory_bytes: int
    eager_s: float
    lazy_s: float
    eager_accept_s: float
    lazy_accept_s: float
    eager_accept_wall_s: float
    lazy_accept_wall_s: float
    eager_range: Range | None = None
    lazy_range: Range | None = None

    @property
    def speedup(self) -> float:
        return self.eager_s / self.lazy_s

    def as_dict(self) -> dict[str, object]:
        return {
            "memory_bytes": self.memory_bytes,
            "memory": format_size(self.memory_bytes),
            "ok": True,
            "eager_s": self.eager_s,
            "lazy_s": self.lazy_s,
            "speedup": self.speedup,
            "eager_accept_s": self.eager_accept_s,
            "lazy_accept_s": self.lazy_accept_s,
            "eager_accept_wall_s": self.eager_accept_wall_s,
            "lazy_accept_wall_s": self.lazy_accept_wall_s,
            "eager_s_range": None if self.eager_range is None else self.eager_range.as_list(),
            "lazy_s_range": None if self.lazy_range is None else self.lazy_range.as_list(),
        }


@dataclass(frozen=True)
class FailedRow:
    """A memory size whose guest failed under one policy (the first that failed)."""

    memory_bytes: int
    policy: AcceptPolicy
    failure: Failure

    def one_line(self) -> str:
        return f"{self.policy.value}: {self.failure.one_line()}"

    def as_dict(self) -> dict[str, object]:
        return {
            "memory_bytes": self.memory_bytes,
            "memory": format_size(self.memory_bytes),
            "ok": False,
            "failure": self.one_line(),
            "failed_policy": self.policy.value,
            "failure_record": self.failure.as_dict(),
        }


def compare_policies(
    request: GuestRequest,
    sizes: list[int],
    profile: CostProfile,
    *,
    on_size_done: Callable[[int], None] | None = None,
) -> tuple[VMConfig, list[CompareRow | FailedRow]]:
    """Boot each size of ``sizes`` eager and lazy, the rest as ``request`` says (profile defaults
    filled in).  Returns the resolved configuration of the first size and one row per size, a
    :class:`FailedRow` where the modelled guest failed; ``on_size_done`` is called with each size
    once both its boots are simulated."""
    configs = [resolve(replace(request, memory=size), profile) for size in sizes]  # all checked before any run
    rows: list[CompareRow | FailedRow] = []
    for size, config in zip(sizes, configs, strict=True):
        eager = try_run(replace(config, policy=AcceptPolicy.EAGER), profile)
        lazy = try_run(replace(config, policy=AcceptPolicy.LAZY), profile)
        if isinstance(eager, Failure) or isinstance(lazy, Failure):
            policy, failure = (AcceptPolicy.EAGER, eager) if isinstance(eager, Failure) else (AcceptPolicy.LAZY, lazy)
            rows.append(FailedRow(size, policy, failure))  # type: ignore[arg-type]
        else:
            rows.append(
                CompareRow(
                    size, eager.boot_s, lazy.boot_s, eager.accept_s, lazy.accept_s,
                    eager.timeline.accept_wall_s, lazy.timeline.accept_wall_s, eager.boot_range, lazy.boot_range,
                )
            )
        if on_size_done is not None:
            on_size_done(size)
    return configs[0], rows
