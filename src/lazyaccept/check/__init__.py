"""Safety invariants of the acceptance path, checked against the platform's true state."""

from .invariants import check_boot, check_no_memory_lost

__all__ = ["check_boot", "check_no_memory_lost"]
