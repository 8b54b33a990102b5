"""Cost profiles: loading, validation, pricing (against hand arithmetic), writing."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from lazyaccept.base.choices import FirmwareAccept, FirmwareAcceptMode
from lazyaccept.base.errors import ConfigError, FormatError
from lazyaccept.base.record import AcceptEvent, AcceptStats, WorkEvent
from lazyaccept.guest.rules import GLOBAL_ACCEPT_LOCK as ACCEPT_LOCK
from lazyaccept.sim.pricing import price
from lazyaccept.sim.profile import load_profile, parse_profile, profile_path

MiB = 1 << 20
US = 1e-6


def P(value, unit, **extra):
    return {"value": value, "unit": unit, "source": "test", **extra}


DEFAULTS = {
    "vcpus": {"value": 4, "why": "test"},
    "host_mapping": {"value": "4k", "why": "test"},
    "kernel": {"value": "mainline", "why": "test"},
    "firmware_accept": {"value": "below-4g", "why": "test"},
}
HOST = {
    "memory_bandwidth": P(40, "GB/s"),
    "vcpu_bandwidth": P(10, "GB/s"),
    "path_fault_4k": P(1.5, "us/page"),
    "path_fault_2m": P(10, "us/page"),
    "path_idle_exit": P(6, "us/exit"),
    "page_remove": P(20, "us/page"),
    "kick_vcpu": P(1, "us/exit"),
}
BOOT = {
    "firmware_base": P(1.5, "s"),
    "firmware_ap_init": P(2, "ms/AP"),
    "kernel_decompress": P(0.3, "s"),
    "early_init": P(0.3, "s"),
    "memmap_init": P(20, "ns/page"),
    "memmap_init_bytes": P(64, "B/page"),
    "struct_page_init": P(25, "ns/page", bounds=[2, 2000], fit=True),
    "smp_bringup": P(10, "ms/AP"),
    "initcalls": P(1, "s"),
    "userspace_to_shell": P(2, "s"),
    "userspace_touch": P(1, "B/B"),
    "user_fault": P(0.5, "us/page"),
}
TDX = {
    "profile": {"name": "t", "platform": "tdx", "description": "test"},
    "defaults": DEFAULTS,
    "host": HOST,
    "accept": {
        "tdcall_4k": P(0.25, "us/call"),
        "tdcall_2m": P(0.5, "us/call"),
        "tdcall_1g": P(0.2, "us/call"),
        "td_exit": P(1.0, "us/exit", bounds=[0.2, 10], fit=True),
        "host_fault_4k": P(0.5, "us/page"),
        "host_fault_2m": P(5, "us/page"),
        "accept_request": P(2, "us/request"),
    },
    "boot": BOOT,
}
SNP = {
    "profile": {"name": "s", "platform": "snp", "description": "test"},
    "defaults": DEFAULTS,
    "host": HOST,
    "accept": {
        "psc_request": P(2, "us/request"),
        "psc_entry": P(0.5, "us/entry"),
        "pvalidate_4k": P(0.3, "us/call"),
        "pvalidate_2m": P(0.5, "us/call"),
        "host_fault_4k": P(2, "us/page"),
        "host_fault_2m": P(10, "us/page"),
        "accept_request": P(1, "us/request"),
    },
    "boot": BOOT,
}


def toml(doc: dict) -> str:
    """A tiny TOML writer for these test documents (strings, numbers, lists, booleans)."""

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        return repr(v)

    lines = []
    for section, table in doc.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {val(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def changed(doc: dict, section: str, key: str, field: str | None = None, value=None, drop=False) -> str:
    d = copy.deepcopy(doc)
    if field is None:
        if drop:
            del d[section][key]
        else:
            d[section][key] = value
    elif drop:
        del d[section][key][field]
    else:
        d[section][key][field] = value
    return toml(d)


# --- the shipped profiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tdx", "tdx-seed", "tdx-fast", "snp"])
def test_shipped_profiles_load_and_every_number_has_a_source(name):
    prof = load_profile(name)
    assert prof.name == name and prof.tee == name.split("-")[0]
    raw = tomllib.loads(profile_path(name).read_text())
    for section in ("host", "accept", "boot"):
        for key, entry in raw[section].items():
            assert isinstance(entry, dict) and entry.get("source", "").strip(), f"[{section}] {key}"
            assert "unit" in entry, f"[{section}] {key}"
    for ref in prof.free_parameters():
        assert ref.lo <= ref.value <= ref.hi
    for key in ("vcpus", "host_mapping", "kernel", "firmware_accept"):
        assert prof.defaults_why[key].strip()


def test_shipped_profiles_price_the_kinds_the_model_emits():
    kinds = {
        "firmware_base", "firmware_ap_init", "kernel_decompress", "early_init", "memmap_init",
        "struct_page_init", "smp_bringup", "initcalls", "userspace_to_shell", "userspace_touch", "user_fault",
    }  # fmt: skip
    for name in ("tdx", "tdx-fast", "snp"):
        assert set(load_profile(name).work_kinds) == kinds
    # the catch-all is in the seed's profile only
    assert set(load_profile("tdx-seed").work_kinds) == kinds | {"catch_all_per_page"}


def test_a_profile_can_be_loaded_by_path(tmp_path: Path):
    f = tmp_path / "mine.toml"
    f.write_text(toml(TDX))
    assert load_profile(str(f)).name == "t"


def test_unknown_profile_name():
    with pytest.raises(ConfigError, match="no profile named 'sgx'"):
        load_profile("sgx")
    with pytest.raises(ConfigError, match="no such profile file"):
        load_profile("/nonexistent/x.toml")


# --- units ------------------------------------------------------------------------------------------


def test_units_are_converted_to_si():
    prof = parse_profile(toml(TDX))
    assert prof.si("host.memory_bandwidth") == pytest.approx(40e9)  # 40 GB/s
    assert prof.si("accept.td_exit") == pytest.approx(1e-6)  # 1 us
    assert prof.si("boot.smp_bringup") == pytest.approx(0.010)  # 10 ms per AP
    assert prof.si("boot.memmap_init") == pytest.approx(20e-9)  # 20 ns per page
    assert prof.host.vcpu_bandwidth == pytest.approx(10e9)


# --- validation -------------------------------------------------------------------------------------


def test_missing_source_is_an_error_naming_file_and_key():
    text = changed(TDX, "accept", "td_exit", "source", drop=True)
    with pytest.raises(ConfigError, match=r"my\.toml: \[accept\] td_exit: missing source"):
        parse_profile(text, "my.toml")
    with pytest.raises(ConfigError, match="missing source"):
        parse_profile(changed(TDX, "boot", "initcalls", "source", "  "), "x")


def test_value_outside_bounds_is_an_error():
    text = changed(TDX, "accept", "td_exit", "value", 20.0)
    msg = r"\[accept\] td_exit: value 20.0 is outside its bounds \[0.2, 10.0\]"
    with pytest.raises(ConfigError, match=msg):
        parse_profile(text, "p.toml")


@pytest.mark.parametrize("value", [0, -1.5])
def test_non_positive_cost_is_an_error(value):
    with pytest.raises(ConfigError, match=r"\[boot\] initcalls: value must be positive"):
        parse_profile(changed(TDX, "boot", "initcalls", "value", value))


def test_an_optional_cost_may_be_left_out_and_then_costs_nothing():
    prof = parse_profile(toml(TDX))
    assert "boot.catch_all_per_page" not in prof.params
    assert price(prof, WorkEvent("catch_all_per_page", 0, 1e6)).cpu_s == 0
    with_it = parse_profile(changed(TDX, "boot", "catch_all_per_page", value=P(100, "ns/page")))
    assert price(with_it, WorkEvent("catch_all_per_page", 0, 1e6)).cpu_s == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="catch_all_per_page: value must not be negative"):
        parse_profile(changed(TDX, "boot", "catch_all_per_page", value=P(-1, "ns/page")))
    with pytest.raises(ConfigError, match=r"\[host\] interference: unknown key"):
        parse_profile(changed(TDX, "host", "interference", value=P(0.02, "1/vCPU")))


def test_missing_key_is_an_error():
    with pytest.raises(ConfigError, match=r"\[accept\] host_fault_4k: missing"):
        parse_profile(changed(TDX, "accept", "host_fault_4k", drop=True), "p.toml")
    with pytest.raises(ConfigError, match=r"\[defaults\] kernel: missing"):
        parse_profile(changed(TDX, "defaults", "kernel", drop=True))


def test_another_platforms_key_is_an_error():
    d = copy.deepcopy(TDX)
    d["accept"]["psc_request"] = P(2, "us/request")
    with pytest.raises(ConfigError, match=r"psc_request: unknown key \(a SNP cost; this is a TDX profile\)"):
        parse_profile(toml(d))


def test_wrong_unit_kind_is_an_error():
    with pytest.raises(ConfigError, match=r"td_exit: unit 'GB/s' is not of the right kind"):
        parse_profile(changed(TDX, "accept", "td_exit", "unit", "GB/s"))
    with pytest.raises(ConfigError, match="memmap_init: unit 's' is not of the right kind"):
        parse_profile(changed(TDX, "boot", "memmap_init", "unit", "s"))


def test_fit_needs_bounds_and_defaults_need_why():
    with pytest.raises(ConfigError, match="needs bounds"):
        parse_profile(changed(TDX, "boot", "initcalls", "fit", True))
    with pytest.raises(ConfigError, match="missing why"):
        parse_profile(changed(TDX, "defaults", "vcpus", "why", drop=True))
    with pytest.raises(ConfigError, match="host_mapping: must be one of 4k, 2m"):
        parse_profile(changed(TDX, "defaults", "host_mapping", "value", "1g"))
    fw = parse_profile(changed(TDX, "defaults", "firmware_accept", "value", "512M")).defaults.firmware_accept
    assert fw == FirmwareAccept(FirmwareAcceptMode.SIZE, 512 * MiB)


def test_malformed_toml_is_a_format_error():
    with pytest.raises(FormatError, match="bad.toml: not valid TOML"):
        parse_profile("[profile\nname = ", "bad.toml")


# --- pricing ----------------------------------------------------------------------------------------


def test_price_tdx_accept_by_hand():
    prof = parse_profile(toml(TDX))
    stats = AcceptStats(
        bytes_accepted=4 * MiB, calls_4k=1024, calls_2m=2, calls_1g=1, size_mismatch=1, exits=1024,
        host_backed_4k=1024, host_zeroed_bytes=4 * MiB, accept_zeroed_bytes=4 * MiB,
    )  # fmt: skip
    ev = AcceptEvent("kernel", 3, 0, 4 * MiB, stats, "watermark", requests=1, lock=ACCEPT_LOCK)
    item = price(prof, ev)
    # CPU of the accepting vCPU:
    # 1024 x 0.25 + 2 x 0.5 + 1 x 0.2                    = 256 + 1 + 0.2    = 257.2 us (TDCALLs)
    # 1024 exits x 1.0                                                      = 1024 us
    # 1024 AUGs x 0.5 (the vCPU's own part of a fault)                      = 512 us
    # 1 request x 2                                                         = 2 us
    # total                                                                 = 1795.2 us
    assert item.cpu_s == pytest.approx(1795.2 * US)
    # the serialised host path: 1024 faults x 1.5 us
    assert item.host_s == pytest.approx(1536 * US)
    assert item.bytes == 8 * MiB  # host zeroing + TDX module zeroing
    assert item.lock == ACCEPT_LOCK and item.vcpu == 3
    assert item.accepted_bytes == 4 * MiB and item.committed_bytes == 4 * MiB
    item2 = price(prof, AcceptEvent("kernel", 0, 0, 4 * MiB, stats, requests=1))
    assert item2.lock is None and item2.cpu_s == item.cpu_s


def test_price_snp_accept_by_hand():
    prof = parse_profile(toml(SNP))
    stats = AcceptStats(
        bytes_accepted=4 * MiB, calls_4k=1024, calls_2m=2, size_mismatch=2, exits=1, psc_requests=1,
        psc_entries=2, host_backed_4k=1024, host_zeroed_bytes=4 * MiB,
    )  # fmt: skip
    item = price(prof, AcceptEvent("kernel", 0, 0, 4 * MiB, stats, requests=1))
    # 1 PSC round trip x 2 + 2 entries x 0.5 + 1024 x 0.3 + 2 x 0.5 + 1024 faults x 2 + 1 request x 1
    # = 2 + 1 + 307.2 + 1 + 2048 + 1 = 2360.2 us
    assert item.cpu_s == pytest.approx(2360.2 * US)
    assert item.host_s == pytest.approx(1024 * 1.5 * US)
    assert item.bytes == 4 * MiB


def test_price_of_a_conversion_by_hand():
    from lazyaccept.base.record import ConvertEvent

    prof = parse_profile(toml(TDX))
    # 1000 pages, 7 other vCPUs in guest mode: each removal 20 us + 7 kicks x 1 us, all on the path
    item = price(prof, ConvertEvent("kernel", 0, 1000, 7, "swiotlb"))
    assert item.host_s == pytest.approx(1000 * 27 * US) and item.cpu_s == 0


def test_price_of_requests_that_accepted_nothing():
    prof = parse_profile(toml(TDX))
    # 16 aggregated requests that found nothing to accept: 16 x 2 us of bookkeeping, no bytes
    item = price(prof, AcceptEvent("kernel", 0, 0, 0, AcceptStats(), requests=16))
    assert item.cpu_s == pytest.approx(32 * US) and item.bytes == 0


def test_price_work_events_by_hand():
    prof = parse_profile(toml(TDX))
    # 262144 pages x 20 ns = 5.24288 ms; 262144 x 64 B = 16 MiB written
    item = price(prof, WorkEvent("memmap_init", 0, 262144))
    assert item.cpu_s == pytest.approx(262144 * 20e-9) and item.bytes == pytest.approx(16 * MiB)
    # 3 APs x 10 ms
    assert price(prof, WorkEvent("smp_bringup", 0, 3)).cpu_s == pytest.approx(0.030)
    # an AP's bring-up brings it online when it ends
    assert price(prof, WorkEvent("smp_bringup", 0, 1, onlines=1)).onlines == 1
    # 100 MiB of shell footprint x 1 B/B zeroed, no CPU cost
    item = price(prof, WorkEvent("userspace_touch", 1, 100 * MiB))
    assert item.bytes == pytest.approx(100 * MiB) and item.cpu_s == 0 and item.vcpu == 1
    assert price(prof, WorkEvent("initcalls", 0)).cpu_s == pytest.approx(1.0)


def test_unknown_work_kind_is_an_error_naming_it():
    prof = parse_profile(toml(TDX))
    with pytest.raises(ConfigError, match="unknown work kind 'kexec_load'"):
        price(prof, WorkEvent("kexec_load", 0))
    # a bytes companion is not a kind of its own
    with pytest.raises(ConfigError, match="unknown work kind 'memmap_init_bytes'"):
        price(prof, WorkEvent("memmap_init_bytes", 0))


def test_platform_mismatch_in_a_record_is_an_error():
    with pytest.raises(ConfigError, match="cannot price SNP page-state changes"):
        price(parse_profile(toml(TDX)), AcceptEvent("k", 0, 0, 0, AcceptStats(psc_requests=1)))
    with pytest.raises(ConfigError, match="no 1 GiB size"):
        price(parse_profile(toml(SNP)), AcceptEvent("k", 0, 0, 0, AcceptStats(calls_1g=1)))


# --- free parameters, copies, writing -----------------------------------------------------------------


def test_free_parameters_and_with_values():
    prof = parse_profile(toml(TDX))
    refs = prof.free_parameters()
    assert [(r.key, r.value, r.lo, r.hi) for r in refs] == [
        ("accept.td_exit", 1.0, 0.2, 10.0),
        ("boot.struct_page_init", 25, 2.0, 2000.0),
    ]
    new = prof.with_values({"accept.td_exit": 2.5}, source="fitted to x-1")
    assert new.si("accept.td_exit") == pytest.approx(2.5e-6)
    assert new.params["accept.td_exit"].source == "fitted to x-1"
    assert "was 1 us/exit: test" in new.params["accept.td_exit"].note
    assert prof.si("accept.td_exit") == pytest.approx(1e-6)  # the original is unchanged
    with pytest.raises(ConfigError, match="outside its bounds"):
        prof.with_values({"accept.td_exit": 11.0})
    with pytest.raises(ConfigError, match="no parameter 'accept.nope'"):
        prof.with_values({"accept.nope": 1.0})


@pytest.mark.parametrize("doc", [TDX, SNP], ids=["tdx", "snp"])
def test_to_toml_round_trips(doc):
    d = copy.deepcopy(doc)
    d["profile"]["description"] = 'quotes " and \\ backslash\nand a newline'
    d["accept"]["accept_request"]["value"] = 1.2345678901234567e-3
    prof = parse_profile(toml(d))
    again = parse_profile(prof.to_toml(), prof.path)
    assert again.params == prof.params
    assert again.defaults == prof.defaults
    assert again.description == prof.description


@pytest.mark.parametrize("name", ["tdx", "snp"])
def test_shipped_profiles_round_trip(name):
    prof = load_profile(name)
    assert parse_profile(prof.to_toml(), prof.path).params == prof.params


def test_price_of_guest_exits_by_hand():
    # 1,000 I/O exits: on TDX each a TD exit on the vCPU (td_exit) and an exit and re-entry at the
    # host path (path_idle_exit); on SNP each a VMGEXIT round trip (psc_request).
    from lazyaccept.base.record import GUEST_EXITS

    for name, exit_key in (("tdx", "accept.td_exit"), ("snp", "accept.psc_request")):
        prof = load_profile(name)
        item = price(prof, WorkEvent(GUEST_EXITS, 0, 1000))
        assert item.cpu_s == pytest.approx(1000 * prof.params[exit_key].si)
        assert item.host_s == pytest.approx(1000 * prof.params["host.path_idle_exit"].si)
        assert item.bytes == 0


def test_the_boot_cpus_initcall_exits_pay_the_contended_round_trip():
    # The same exits in early-initcalls cost about their uncontended round trip with one vCPU, and
    # with 248 vCPUs ticking at 1000 Hz (Dstack's guest) about the contended one: Dstack measured
    # the TD-exit round trip at 8-10 us with 32 vCPUs and 160-200 us with 248.
    from lazyaccept.base.record import GUEST_EXITS
    from lazyaccept.base.units import GiB
    from lazyaccept.scenario.build import build_record
    from lazyaccept.scenario.config import GuestRequest
    from lazyaccept.sim.run import resolve
    from lazyaccept.sim.timeline import simulate, timed_events

    prof = load_profile("tdx")

    def per_exit(vcpus: int) -> float:
        req = GuestRequest(32 * GiB, vcpus=vcpus, kernel="6.18",
                           kconfig=("HZ=1000", "DEFERRED_STRUCT_PAGE_INIT=n"))
        rec = build_record(resolve(req, prof))
        tl = simulate(rec.phases, prof)
        for phase, span in zip(rec.phases, tl.phases, strict=True):
            if phase.name == "early-initcalls":
                for ev, s, e, _ in timed_events(phase, span):
                    if isinstance(ev, WorkEvent) and ev.kind == GUEST_EXITS:
                        return (e - s) / ev.amount
        raise AssertionError("no guest exits in early-initcalls")

    alone = prof.si("accept.td_exit") + prof.si("host.path_idle_exit")
    assert per_exit(1) == pytest.approx(alone, rel=0.01)
    assert 160e-6 * 0.75 < per_exit(248) < 200e-6 * 1.25
