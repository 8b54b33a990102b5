"""A run that may fail: the modelled guest crashing or running out of memory is a result.

:func:`try_run` runs a configuration and returns either its :class:`~lazyaccept.sim.run.BootResult`
or a :class:`Failure` record; errors of the input (:class:`~lazyaccept.base.errors.ConfigError`,
:class:`~lazyaccept.base.errors.FormatError`) still raise.  A sweep writes a failed run as the
row ``{"ok": false, "failure": "<one line>"}`` (:meth:`Failure.row`) and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.errors import GuestFailure
from ..scenario.config import VMConfig
from .profile import CostProfile
from .run import BootResult, run


@dataclass(frozen=True)
class Failure:
    """How a modelled guest failed: ``kind`` (crash, out-of-memory, boot-refused), the ``rule``
    or check that failed, and the ``detail`` in words."""

    kind: str
    rule: str
    detail: str

    @classmethod
    def of(cls, exc: GuestFailure) -> Failure:
        d = exc.as_dict()
        return cls(d["kind"], d["rule"], d["detail"])

    def one_line(self) -> str:
        """``rule: detail`` on one line, as the command line prints it."""
        text = f"{self.rule}: {self.detail}"
        return " ".join(text.split())

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "rule": self.rule, "detail": self.detail}

    def row(self) -> dict[str, object]:
        """A sweep's failed row."""
        return {"ok": False, "failure": self.one_line()}


def try_run(config: VMConfig, profile: CostProfile) -> BootResult | Failure:
    """:func:`~lazyaccept.sim.run.run`, with a modelled failure returned instead of raised."""
    try:
        return run(config, profile)
    except GuestFailure as exc:
        return Failure.of(exc)
