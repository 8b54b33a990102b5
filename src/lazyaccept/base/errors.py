"""The project's exception types.

Every parser raises :class:`FormatError`; every bad configuration raises :class:`ConfigError`;
a result that cannot be written as asked raises :class:`OutputError`;
every broken safety rule raises :class:`SafetyViolation`.  All derive from
:class:`LazyAcceptError`, which the command line turns into one line on stderr and exit status 2.

A :class:`GuestFailure` is different: the input was fine and the *modelled guest* failed (a
crash such as a broken safety rule, an out-of-memory at boot).  It is a result of the model,
not a mistake of the user: the command line reports it as ``lazyaccept: guest failed: ...``
with exit status 3, and a sweep records it as a failed row and goes on.
"""

from __future__ import annotations


class LazyAcceptError(Exception):
    """Base of every error lazyaccept raises on purpose."""


class FormatError(LazyAcceptError):
    """An artefact (binary or text) is malformed, truncated or of the wrong kind."""


class ConfigError(LazyAcceptError):
    """A configuration, size or option value makes no sense."""


class OutputError(LazyAcceptError):
    """A result cannot be written in the form asked for (a non-finite number in JSON, say)."""


class GuestFailure(LazyAcceptError):
    """The modelled guest failed: a result, not bad input.

    ``kind`` says how it failed (``"crash"``, ``"out-of-memory"``, ``"boot-refused"``), ``rule``
    names the rule or check that failed, ``detail`` says the rest in words.
    """

    kind = "crash"
    rule = "guest-failure"

    def explain(self) -> str:
        """What happened, without the rule's name."""
        return str(self)

    def as_dict(self) -> dict[str, str]:
        """``{"kind", "rule", "detail"}``: the failure as JSON values."""
        return {"kind": self.kind, "rule": self.rule, "detail": self.explain()}


class SafetyViolation(GuestFailure):
    """A safety rule of the real system was broken (fatal on real hardware).

    ``rule`` names the rule (for example ``"touch-unaccepted"`` or ``"double-accept"``),
    ``actor`` who broke it (``"kernel"``, ``"firmware"``, ``"efistub"`` ...), ``vcpu`` on which
    vCPU, and ``address`` the first guest-physical address concerned.
    """

    def __init__(self, rule: str, actor: str, vcpu: int | None, address: int, detail: str = "") -> None:
        self.rule = rule
        self.actor = actor
        self.vcpu = vcpu
        self.address = address
        self.detail = detail
        where = f"vCPU {vcpu}" if vcpu is not None else "no vCPU"
        msg = f"{rule}: {actor} on {where} at {address:#x}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)

    def explain(self) -> str:
        """Who broke the rule, where, and why (the message without the rule's name)."""
        return str(self).removeprefix(f"{self.rule}: ")

class GuestStopped(LazyAcceptError):
    """The guest (or its firmware) stopped itself on purpose because something it was handed is
    wrong: Linux panics or asks the host to terminate it (SEV-SNP ``GHCB_TERM_*`` reason codes),
    TDVF halts on a TD HOB it does not trust.  Against a hostile host this is the expected, safe
    outcome, not a bug of the guest.

    ``actor`` is who stopped, ``reason`` a short name (``"GHCB_TERM_PSC"``, ``"tdvf-hob-refused"``
    ...), ``address`` the guest-physical address concerned, if any.
    """

    def __init__(self, actor: str, reason: str, detail: str = "", address: int | None = None) -> None:
        self.actor = actor
        self.reason = reason
        self.detail = detail
        self.address = address
        where = f" at {address:#x}" if address is not None else ""
        super().__init__(f"{actor} stopped: {reason}{where}" + (f" ({detail})" if detail else ""))
