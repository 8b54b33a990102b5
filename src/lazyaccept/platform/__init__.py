"""What the hardware and the host do: the TDX module, SEV-SNP's RMP, and the host VMM."""

from .base import Platform

__all__ = ["Platform"]
