"""Deadlines on a boot's milestones: met or missed, by how much, and which one fails first.

An orchestrator gives a starting guest a budget per stage (Kata's agent reconnect budget, a
cloud's host-error detection); ``--deadline STAGE=SECONDS`` adds one's own.  A prediction carries
a one-sigma range (:mod:`lazyaccept.sim.uncertainty`), and a deadline is met only when the UPPER
end of that range is within it: a nominal time that fits while its range does not is a guest
that misses one time in six.

Milestones are looked up by name, so stages the model adds later (agent start, attestation,
workload ready) plug in as further :class:`Milestone` entries; ``ready`` is the last of them, or
the boot's end while there are none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..base.errors import ConfigError
from .uncertainty import Range


class Stage(StrEnum):
    """The milestones a deadline can name."""

    #: The kernel runs /init (``Run /init as init process``): the start of user space.
    INIT = "init"
    #: The model's boot end: a shell, the boot time every command reports (``boot_s``).
    BOOT = "boot"
    #: The orchestrator's agent has started (``--stage agent``), the attestation has its answer
    #: (``--stage attest``), the model or data set is in memory (``--stage modelload:...``).
    #: A stage the run does not model is reached when the one before it is: with no agent stage,
    #: the agent is taken to answer at the shell.
    AGENT = "agent"
    ATTEST = "attest"
    MODELLOAD = "modelload"
    #: The guest is ready for work: the end of the last later stage, else the boot end.
    READY = "ready"


#: Other names for a stage (``shell`` is what the boot report calls its end).
ALIASES: dict[str, Stage] = {"shell": Stage.BOOT}


def stage_names() -> list[str]:
    """Every name ``--deadline`` accepts, in boot order, aliases after."""
    return [s.value for s in Stage] + sorted(ALIASES)


def parse_stage(name: str) -> Stage:
    """A stage from its name or alias (any case); unknown names are refused with the known ones."""
    key = name.strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    try:
        return Stage(key)
    except ValueError:
        raise ConfigError(f"unknown stage {name!r}: known stages are {', '.join(stage_names())}") from None


@dataclass(frozen=True)
class Deadline:
    """A budget for a stage: reached within ``timeout_s`` seconds of the VM's start.

    ``source`` says where the value comes from (a configuration file and key, a documentation
    page); ``assumed`` says what was assumed when a value could not be confirmed or applies to
    the model only by a reading of it."""

    stage: Stage
    timeout_s: float
    #: A short name: ``kata-qemu-tdx reconnect_timeout_ms``, ``--deadline ready=45``.
    label: str
    source: str
    assumed: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"stage": self.stage.value, "timeout_s": self.timeout_s, "label": self.label, "source": self.source,
                "assumed": self.assumed}


def check_timeout(text: str, value: float) -> float:
    """A timeout must be a finite number of seconds, more than zero."""
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{text}: the seconds must be a finite number above 0, not {value!r}")
    return value


def parse_deadline(text: str) -> Deadline:
    """``STAGE=SECONDS`` (``--deadline``), e.g. ``ready=45``."""
    stage, sep, seconds = text.partition("=")
    if not sep or not stage.strip() or not seconds.strip():
        raise ConfigError(f"--deadline {text!r}: give STAGE=SECONDS, e.g. ready=45 "
                          f"(stages: {', '.join(stage_names())})")
    try:
        value = float(seconds)
    except ValueError:
        raise ConfigError(f"--deadline {text!r}: {seconds.strip()!r} is not a number of seconds") from None
    return Deadline(parse_stage(stage), check_timeout(f"--deadline {text!r}", value), f"--deadline {text.strip()}",
                    "given on the command line")


@dataclass(frozen=True)
class Milestone:
    """When a stage is reached (seconds from the VM's start), with its one-sigma range if known."""

    at_s: float
    range: Range | None = None

    @property
    def upper_s(self) -> float:
        """The time a deadline is held against: the range's upper end, else the time itself."""
        return self.range.high if self.range is not None else self.at_s


@dataclass(frozen=True)
class LaterStage:
    """A stage after the boot (agent start, attestation, workload ready), as the model gives it."""

    name: str
    start_s: float
    end_s: float
    end_range: Range | None = None


#: The later stages in the order a guest reaches them.
LATER = (Stage.AGENT, Stage.ATTEST, Stage.MODELLOAD)


def milestones(init: Milestone, boot: Milestone, later: Sequence[LaterStage] = ()) -> dict[str, Milestone]:
    """Every named milestone of one boot: ``init``, ``boot``, each later stage by its name (a
    stage's kind, ``agent``, ``attest``, ``modelload``, names the last stage of that kind; a kind
    the run does not have is reached with the stage before it), and ``ready`` (the last later
    stage's end, else the boot's end)."""
    out = {Stage.INIT.value: init, Stage.BOOT.value: boot}
    for st in later:
        out[st.name] = Milestone(st.end_s, st.end_range)
    last = max(later, key=lambda s: s.end_s, default=None)
    out[Stage.READY.value] = boot if last is None else Milestone(last.end_s, last.end_range)
    before = boot
    for kind in LATER:
        ends = [st for st in later if st.name.split(":")[0].lower() == kind.value]
        out[kind.value] = before = Milestone(ends[-1].end_s, ends[-1].end_range) if ends else before
    return out


@dataclass(frozen=True)
class Verdict:
    """One deadline held against its milestone: ``margin_s`` is the timeout less the upper end
    of the prediction (negative: missed by that much)."""

    deadline: Deadline
    milestone: Milestone

    @property
    def margin_s(self) -> float:
        return self.deadline.timeout_s - self.milestone.upper_s

    @property
    def met(self) -> bool:
        return self.margin_s >= 0

    def as_dict(self) -> dict[str, object]:
        return self.deadline.as_dict() | {
            "predicted_s": self.milestone.at_s,
            "range": None if self.milestone.range is None else self.milestone.range.as_list(),
            "margin_s": self.margin_s, "met": self.met,
        }


def evaluate(deadlines: Iterable[Deadline], marks: Mapping[str, Milestone]) -> list[Verdict]:
    """Each deadline against the milestone of its stage, in the order given."""
    out = []
    for d in deadlines:
        if d.stage.value not in marks:
            raise ConfigError(f"stage {d.stage.value!r} is not a milestone of this run "
                              f"(it has {', '.join(marks)})")
        out.append(Verdict(d, marks[d.stage.value]))
    return out


def first_failing(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The missed deadline the orchestrator acts on first: the one whose timer runs out first
    (smallest timeout); of two that run out together, the one missed by more.  None when all
    are met."""
    missed = [v for v in verdicts if not v.met]
    return min(missed, key=lambda v: (v.deadline.timeout_s, v.margin_s), default=None)


def describe_miss(v: Verdict) -> str:
    """One line for a missed deadline, as the command line prints it."""
    d, m = v.deadline, v.milestone
    upper = "" if m.range is None else f" (upper end {m.upper_s:.2f} s)"
    return (f"deadline missed: {d.stage.value} predicted at {m.at_s:.2f} s{upper}, over the {d.timeout_s:g} s "
            f"of {d.label} by {-v.margin_s:.2f} s")
