"""The one narrow interface between the guest model and the platform.

The guest (firmware, EFI stub, kernel) asks the platform to *accept* a page-aligned range with
the accept routine it runs (``routine``), and tells it when it *touches* memory.  The platform
keeps the true state of every page (the ground truth the sanitizer checks against) and raises
:class:`~lazyaccept.base.errors.SafetyViolation` at once when a rule of the real hardware is broken:
touching memory that is not accepted, or accepting a 4 KiB page twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..base.choices import AcceptRoutine, Tee
from ..base.errors import ConfigError
from ..base.ranges import RangeSet
from ..base.record import AcceptStats
from ..base.units import PAGE_SIZE, align_down, align_up, is_aligned
from .host import HostVMM


class Platform(ABC):
    """A TEE platform (TDX module or SNP RMP) together with its host VMM."""

    #: The TEE this platform is.
    tee: Tee
    #: Accept routines this platform's guests run (see each subclass).
    routines: tuple[AcceptRoutine, ...]
    #: The host VMM backing this guest.
    host: HostVMM

    @abstractmethod
    def add_at_build(self, start: int, end: int) -> None:
        """Host adds ``[start, end)`` before the guest runs, already accepted and measured
        (TDX ``TDH.MEM.PAGE.ADD`` of TDVF sections; SNP ``SNP_LAUNCH_UPDATE`` pre-validation)."""

    @abstractmethod
    def accept(self, start: int, end: int, *, routine: AcceptRoutine, actor: str, vcpu: int) -> AcceptStats:
        """Run the accept routine ``routine`` over ``[start, end)`` (4 KiB aligned).

        Returns the counts of what was done.  Raises ``SafetyViolation("double-accept", ...)``
        if any 4 KiB page in the range was already accepted (Linux panics on TDX; SNP guests
        terminate on PVALIDATE with CF=1), or ``SafetyViolation("host-refused", ...)`` when the
        host does not back memory the guest asked for.
        """

    @abstractmethod
    def touch(self, start: int, end: int, *, actor: str, vcpu: int) -> None:
        """The guest reads or writes ``[start, end)``.  Raises
        ``SafetyViolation("touch-unaccepted", ...)`` naming the first page that is not accepted."""

    @abstractmethod
    def accepted(self) -> RangeSet:
        """Ground truth: every range the guest may touch (accepted or added at build time)."""

    def is_accepted(self, start: int, end: int) -> bool:
        return self.accepted().contains(start, end)

    def check_routine(self, routine: AcceptRoutine | str) -> AcceptRoutine:
        """``routine`` as an :class:`AcceptRoutine` this platform runs, or a ConfigError."""
        try:
            r = AcceptRoutine(routine)
        except ValueError:
            r = None
        if r not in self.routines:
            known = ", ".join(x.value for x in self.routines)
            raise ConfigError(f"unknown {self.tee.value.upper()} accept routine {routine!r} (use one of {known})")
        return r

    @property
    def host_committed(self) -> int:
        """Bytes of host memory committed to this guest so far."""
        return self.host.committed_bytes

    # Pages the guest had accepted that a hostile host took back (TDX REMOVE, SNP RMPUPDATE),
    # and those the guest accepted again afterwards: the hardware allows it, the contents are
    # gone, so the sanitizer reports them.  Subclasses create both sets.
    _lost: RangeSet
    _reaccepted: RangeSet

    def lost(self) -> RangeSet:
        """Pages the guest had accepted that the host took back, not accepted again since."""
        return self._lost.copy()

    def reaccepted(self) -> RangeSet:
        """Pages accepted again after the host took them back."""
        return self._reaccepted.copy()

    # Pages holding data the guest wrote (every successful guest access counts: the model does
    # not tell reads from writes, and a page the guest reads is one whose contents it relies on).
    # Subclasses create the set and record each successful touch.
    _written: RangeSet

    def written(self) -> RangeSet:
        """Pages the guest has written (touched) so far."""
        return self._written.copy()

    def _note_written(self, start: int, end: int) -> None:
        self._written.add(align_down(start, PAGE_SIZE), align_up(end, PAGE_SIZE))

    def _note_accepted_again(self, s: int, e: int) -> None:
        """``[s, e)`` was just accepted: any of it the host had taken back is now re-accepted."""
        if self._lost.overlaps(s, e):
            for x, y in self._lost.intersection(s, e):
                self._reaccepted.add(x, y)
            self._lost.remove(s, e)


def check_range(start: int, end: int) -> None:
    """A platform request must be a 4 KiB-aligned ``[start, end)`` with ``start <= end``."""
    if start < 0 or end < start:
        raise ConfigError(f"bad range [{start:#x}, {end:#x})")
    if not (is_aligned(start, PAGE_SIZE) and is_aligned(end, PAGE_SIZE)):
        raise ConfigError(f"range [{start:#x}, {end:#x}) is not 4 KiB aligned")
