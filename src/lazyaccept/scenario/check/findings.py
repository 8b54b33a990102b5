"""What a scenario of the check catalogue can observe: findings of three detectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Detector(StrEnum):
    """The three kinds of check.

    ``safety``: a touch of unaccepted memory, a second acceptance, memory lost or silently zeroed
    (the platform raises or the sanitizer finds it); ``liveness``: an allocation failing, or reclaim
    or a lock wait going on without progress, while unaccepted memory remains; ``latency``: a vCPU
    spinning with IRQs off while the work it waits for does not intersect its own.
    """

    SAFETY = "safety"
    LIVENESS = "liveness"
    LATENCY = "latency"


class ScenarioKind(StrEnum):
    """The three parts of the catalogue."""

    MUTANT = "mutant"
    HOSTILE = "hostile-host"
    INTERLEAVINGS = "interleavings"


@dataclass(frozen=True)
class Finding:
    """One thing a detector caught: its rule, what happened, where, and (for explored
    interleavings) the schedule that leads there."""

    detector: Detector
    rule: str
    detail: str
    address: int | None = None
    schedule: tuple[str, ...] = ()

    def __str__(self) -> str:
        at = f" at {self.address:#x}" if self.address is not None else ""
        return f"{self.detector.value}: {self.rule}{at} ({self.detail})"


@dataclass
class Observation:
    """What one run of a scenario showed: the findings, a note on what it did, and how many
    interleavings it explored (0 when it explored none)."""

    findings: list[Finding] = field(default_factory=list)
    note: str = ""
    explored: int = 0

    @property
    def clean(self) -> bool:
        return not self.findings
