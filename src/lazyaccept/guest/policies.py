"""Acceptance policies: the kernel's two (``lazy``, ``eager``) and those it does not ship, each a
small swappable piece beside the page allocator (``--policy NAME[:ARGS]``).

* ``lazy`` / ``eager``: ``accept_memory=lazy|eager`` (mm/mm_init.c, drivers/firmware/efi).
* ``background:threads=N,rate=R``: N kernel threads accept unaccepted chunks from the shell on, at
  R bytes/s in all (the "background threads" strategy of the original series, and Mel Gorman's
  thread per zone in the review of v8, LKML Jan 2023).  Allocations still accept on their own
  when they run ahead of the threads.
* ``accept-ahead:chunks=K``: every watermark-driven acceptance takes K chunks past its target.
* ``userspace-drain:rate=R``: an operator's low-priority process touches and holds memory at R
  bytes/s to force its acceptance, then frees it (what LKVS's ``tail /dev/zero`` does on purpose).
* ``accepted-reserve``: lazy with the Dstack patch of that name (see :mod:`.patches`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..base.choices import AcceptPolicy
from ..base.errors import ConfigError
from ..base.units import parse_count, parse_size
from .patches import GuestPatch


class PolicyKind(StrEnum):
    LAZY = "lazy"
    EAGER = "eager"
    BACKGROUND = "background"
    ACCEPT_AHEAD = "accept-ahead"
    USERSPACE_DRAIN = "userspace-drain"
    ACCEPTED_RESERVE = "accepted-reserve"


@dataclass(frozen=True)
class Policy:
    """One acceptance policy with its arguments."""

    kind: PolicyKind = PolicyKind.LAZY
    threads: int = 1
    rate: int = 0  # bytes per second
    chunks: int = 0

    @property
    def accept_memory(self) -> AcceptPolicy:
        """The ``accept_memory=`` kernel parameter the policy boots with."""
        return AcceptPolicy.EAGER if self.kind is PolicyKind.EAGER else AcceptPolicy.LAZY

    @property
    def patches(self) -> tuple[GuestPatch, ...]:
        return (GuestPatch.ACCEPTED_RESERVE,) if self.kind is PolicyKind.ACCEPTED_RESERVE else ()

    def with_patches(self, given: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """Patch names ``given`` for the guest plus the policy's own, each once; ``None`` (the
        profile's) when there are none."""
        merged = tuple(dict.fromkeys((*(given or ()), *(p.value for p in self.patches))))
        return merged or None

    def __str__(self) -> str:
        if self.kind is PolicyKind.BACKGROUND:
            return f"background:threads={self.threads},rate={_rate(self.rate)}"
        if self.kind is PolicyKind.ACCEPT_AHEAD:
            return f"accept-ahead:chunks={self.chunks}"
        if self.kind is PolicyKind.USERSPACE_DRAIN:
            return f"userspace-drain:rate={_rate(self.rate)}"
        return self.kind.value

    @classmethod
    def parse(cls, text: str) -> Policy:
        """``NAME[:KEY=VALUE,...]``: ``lazy``, ``eager``, ``background:threads=1,rate=2G``,
        ``accept-ahead:chunks=8``, ``userspace-drain:rate=1G``, ``accepted-reserve``."""
        name, _, args = text.strip().partition(":")
        try:
            kind = PolicyKind(name.strip().lower())
        except ValueError:
            known = ", ".join(k.value for k in PolicyKind)
            raise ConfigError(f"--policy {text!r}: unknown policy (known: {known})") from None
        values: dict[str, str] = {}
        for item in filter(None, (a.strip() for a in args.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--policy {text!r}: expected KEY=VALUE, not {item!r}")
            values[key.strip().lower()] = value.strip()
        allowed = {PolicyKind.BACKGROUND: {"threads", "rate"}, PolicyKind.ACCEPT_AHEAD: {"chunks"},
                   PolicyKind.USERSPACE_DRAIN: {"rate"}}.get(kind, set())
        extra = set(values) - allowed
        if extra:
            raise ConfigError(f"--policy {text!r}: {kind.value} takes no {sorted(extra)[0]!r}"
                              + (f" (it takes {', '.join(sorted(allowed))})" if allowed else ""))
        threads = _positive_int(values.get("threads", "1"), text, "threads")
        chunks = _positive_int(values.get("chunks", "8"), text, "chunks") if kind is PolicyKind.ACCEPT_AHEAD else 0
        rate = 0
        if kind in (PolicyKind.BACKGROUND, PolicyKind.USERSPACE_DRAIN):
            rate = parse_size(values.get("rate", "1G"))  # per second; a plain number is MiB, as sizes
        return cls(kind, threads, rate, chunks)


def _positive_int(value: str, text: str, key: str) -> int:
    return parse_count(value, f"--policy {text!r}: {key}")


def _rate(nbytes: int) -> str:
    for suffix, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{suffix}"
    return str(nbytes)
