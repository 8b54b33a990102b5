"""Stages after the shell and before the guest is ready: the orchestrator's agent starting, an
attestation, a model or data set loaded into memory (``--stage NAME[:ARGS]``, in order).

* ``agent[:SECONDS]``: the agent's CPU time on vCPU 0 and its memory, touched like any
  workload's (its first touches accept memory);
* ``attest[:SECONDS]``: the guest's request (a TDX quote, an SNP report) and the host's service
  producing it (SECONDS overrides the host's part), the guest idle while it waits;
* ``modelload:SIZE,from=RATE[,threads=N]``: N loader threads read SIZE from storage at RATE
  (bytes/s in all) and copy it into fresh, lazily accepted memory: a batch is copied once its
  data has arrived and the thread is done with the one before.

Each stage starts when the one before it ends (the first at the shell); the end of the last is
when the guest is *ready*.  What each costs is data (``data/stages.toml``), every value with its
source or ``assumed:``; a stage is a frozen value parsed once at the edge.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

from ..base.choices import Tee
from ..base.errors import ConfigError
from ..base.units import parse_count, parse_size


class StageKind(StrEnum):
    AGENT = "agent"
    ATTEST = "attest"
    MODELLOAD = "modelload"


USAGE = {
    StageKind.AGENT: "agent[:SECONDS]",
    StageKind.ATTEST: "attest[:SECONDS]",
    StageKind.MODELLOAD: "modelload:SIZE,from=RATE[,threads=N]",
}


@dataclass(frozen=True)
class StageCosts:
    """A stage's costs as the shipped data gives them, with their sources."""

    cpu_s: float
    memory: int
    host_s: float
    copy_bps: float
    sources: tuple[str, ...]


@cache
def _data() -> dict[str, object]:
    return tomllib.loads(resources.files("lazyaccept.data").joinpath("stages.toml").read_text())


def _value(section: dict[str, object], key: str) -> tuple[object, str]:
    entry = section[key]
    assert isinstance(entry, dict)
    return entry["value"], str(entry["source"])


def costs(kind: StageKind, tee: Tee) -> StageCosts:
    """The shipped costs of a stage of ``kind`` on ``tee``."""
    data = _data()
    if kind is StageKind.AGENT:
        sec = data["agent"]
        assert isinstance(sec, dict)
        (cpu, s1), (mem, s2) = _value(sec, "cpu_s"), _value(sec, "memory")
        return StageCosts(float(cpu), parse_size(str(mem)), 0.0, 0.0, (s1, s2))  # type: ignore[arg-type]
    if kind is StageKind.ATTEST:
        sec = data["attest"]
        assert isinstance(sec, dict)
        sec = sec[tee.value]
        (guest, s1), (host, s2) = _value(sec, "guest_s"), _value(sec, "host_s")
        return StageCosts(float(guest), 0, float(host), 0.0, (s1, s2))  # type: ignore[arg-type]
    sec = data["modelload"]
    assert isinstance(sec, dict)
    rate, s1 = _value(sec, "copy_bps")
    return StageCosts(0.0, 0, 0.0, float(parse_size(str(rate))), (s1,))


@dataclass(frozen=True)
class Stage:
    """One stage: its kind, and what it was given (``seconds`` overrides the agent's CPU time or
    the attestation's host part; ``size``, ``rate`` and ``threads`` are a model load's)."""

    kind: StageKind
    text: str
    seconds: float | None = None
    size: int = 0
    rate: float = 0.0
    threads: int = 1

    @property
    def name(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> Stage:
        spec = text.strip()
        kind_text, _, args_text = spec.partition(":")
        try:
            kind = StageKind(kind_text.strip().lower())
        except ValueError:
            known = ", ".join(USAGE.values())
            raise ConfigError(f"--stage {text!r}: unknown stage (known: {known})") from None
        args = [a.strip() for a in args_text.split(",") if a.strip()]
        positional = [a for a in args if "=" not in a]
        keyed = {k.strip().lower(): v.strip() for k, v in (a.split("=", 1) for a in args if "=" in a)}
        if kind in (StageKind.AGENT, StageKind.ATTEST):
            if keyed or len(positional) > 1:
                raise ConfigError(f"--stage {text!r}: expected {USAGE[kind]}")
            seconds = _seconds(positional[0], text) if positional else None
            return cls(kind, spec, seconds=seconds)
        if set(keyed) - {"from", "threads"} or len(positional) != 1 or "from" not in keyed:
            raise ConfigError(f"--stage {text!r}: expected {USAGE[kind]}")
        size = parse_size(positional[0])
        rate = float(parse_size(keyed["from"]))
        if size <= 0 or rate <= 0:
            raise ConfigError(f"--stage {text!r}: the size and the rate must be above 0")
        threads = parse_count(keyed.get("threads", "1"), f"--stage {text!r}: thread count")
        return cls(kind, spec, size=size, rate=rate, threads=threads)


def _seconds(value: str, text: str) -> float:
    v = value.strip().lower().removesuffix("s")
    try:
        seconds = float(v)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= 86400):
        raise ConfigError(f"--stage {text!r}: seconds must be a number from 0 to 86400")
    return seconds
