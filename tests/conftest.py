"""Shared fixtures: a TDX platform on a 4K-only host, and tables and allocators built by hand."""

from __future__ import annotations

import pytest

from lazyaccept.formats.unaccepted import new_table
from lazyaccept.guest.rules import kernel_rules
from lazyaccept.guest.unaccepted import UnacceptedMemory
from lazyaccept.platform.host import HostPolicy, HostVMM
from lazyaccept.platform.snp import SnpPlatform
from lazyaccept.platform.tdx import TdxPlatform
from lazyaccept.units import GiB, MiB

G4 = 4 * GiB
M2 = 2 * MiB


def tdx(mapping: str = "4k") -> TdxPlatform:
    return TdxPlatform(host=HostVMM(HostPolicy(mapping=mapping)))


def snp(mapping: str = "4k") -> SnpPlatform:
    return SnpPlatform(host=HostVMM(HostPolicy(mapping=mapping)))


def unaccepted_memory(nunits: int, *, kernel: str = "mainline", platform=None, base: int = G4,
                      set_bits: bool = True, use_list: bool = True) -> UnacceptedMemory:
    """A table at ``base`` with ``nunits`` 2 MiB units, all unaccepted when ``set_bits``."""
    table = new_table(base, -(-nunits // 8))
    if set_bits:
        table.bits[:nunits] = True
    return UnacceptedMemory(table, platform or tdx(), kernel_rules(kernel), "linux", use_accepting_list=use_list)


@pytest.fixture
def platform() -> TdxPlatform:
    return tdx()
