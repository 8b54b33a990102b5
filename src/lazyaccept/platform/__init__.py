"""What the hardware and the host do: the TDX module, SEV-SNP's RMP, and the host VMM."""

from .base import Platform
from .host import HostPolicy, HostVMM
from .snp import PvalidateResult, SnpPlatform
from .tdx import TdxPlatform, TdxResult

__all__ = ["HostPolicy", "HostVMM", "Platform", "PvalidateResult", "SnpPlatform", "TdxPlatform", "TdxResult"]
