"""Shared fixtures: a TDX platform on a 4K-only host, and tables and allocators built by hand."""

from __future__ import annotations

import os

import pytest

from lazyaccept.base.choices import AcceptPolicy, AcceptRoutine, FirmwareAccept, HostMapping, Tee
from lazyaccept.base.units import GiB, MiB
from lazyaccept.formats.unaccepted import new_table
from lazyaccept.guest.rules import kernel_rules
from lazyaccept.guest.unaccepted import UnacceptedMemory
from lazyaccept.platform.host import HostPolicy, HostVMM
from lazyaccept.platform.snp import SnpPlatform
from lazyaccept.platform.tdx import TdxPlatform
from lazyaccept.scenario.config import GuestRequest, VMConfig


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run the tests marked slow (CI=true runs them too)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes long; run in CI (CI=true) or with --runslow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The README's test command stays under 3 minutes on 2 cores; CI runs everything.
    if config.getoption("--runslow") or os.environ.get("CI", "").lower() == "true":
        return
    skip = pytest.mark.skip(reason="slow: runs in CI (CI=true) or with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# The shared helpers assert too: have pytest explain their failures as it does the tests'.
pytest.register_assert_rewrite("platform_harness")

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
    rules = kernel_rules(kernel)
    return UnacceptedMemory(table, platform or tdx(), rules, AcceptRoutine.LINUX, use_accepting_list=use_list)


def request_for(memory: int, platform: str = "tdx", *, policy: str = "lazy", vcpus: int | None = None,
                kernel: str | None = None, host_mapping: str | None = None, firmware_accept: str | None = None,
                snp_os_opt_in: bool = True) -> GuestRequest:
    """A guest request from the strings a user would type."""
    return GuestRequest(
        memory=memory, tee=Tee(platform), policy=AcceptPolicy(policy), vcpus=vcpus, kernel=kernel,
        host_mapping=HostMapping(host_mapping) if host_mapping else None,
        firmware_accept=FirmwareAccept.parse(firmware_accept) if firmware_accept else None,
        snp_os_opt_in=snp_os_opt_in,
    )


def config_for(memory: int, platform: str = "tdx", **kw: object) -> VMConfig:
    """A resolved configuration with the plain defaults (1 vCPU, 4K host, mainline, below-4g)."""
    return request_for(memory, platform, **kw).resolve()  # type: ignore[arg-type]


@pytest.fixture
def platform() -> TdxPlatform:
    return tdx()
