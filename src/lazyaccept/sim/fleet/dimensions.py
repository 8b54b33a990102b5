"""The dimensions of a sweep grid, and the one translation of a grid point into a run.

Each :class:`Dimension` is named after the :class:`~lazyaccept.scenario.config.GuestRequest`
field it sets (``profile`` picks the cost profile, and with it the platform).  A value is read
from the grid file once, by :func:`normalize`, into its *canonical* JSON form (sizes in bytes,
enum values, ``str(FirmwareAccept)``): two spellings of one run ("4G", "4096M") are one run,
with one key in the results.  :func:`to_run` is the only place a grid point becomes a
request, a profile and run options.

A dimension the model cannot run yet is declared, so that a grid naming it fails with one clear
line instead of being silently ignored; giving it a parser here is what turns it on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ...base.choices import FirmwareAccept, HostFeature, HostMapping, Tee, choice_values
from ...base.errors import ConfigError
from ...base.units import parse_size
from ...guest.footprint import BootFootprint
from ...guest.kconfig import KernelConfig
from ...guest.patches import parse_patches
from ...guest.policies import Policy
from ...guest.rules import kernel_rules
from ...scenario.config import GuestRequest
from ...scenario.stages import Stage
from ...scenario.workloads import Workload

#: A canonical value: what a row's ``point`` holds.
Value = int | str | bool


class Dimension(StrEnum):
    """A grid dimension, named after the request field it sets."""

    MEMORY = "memory"
    VCPUS = "vcpus"
    PROFILE = "profile"
    POLICY = "policy"
    KERNEL = "kernel"
    KCONFIG = "kconfig"
    PATCHES = "patches"
    FIRMWARE_ACCEPT = "firmware_accept"
    HOST_MAPPING = "host_mapping"
    WORKLOAD = "workload"
    STAGE = "stage"
    HOST_FEATURE = "host_feature"
    SHELL_FOOTPRINT = "shell_footprint"
    OS_OPT_IN = "os_opt_in"
    FIRMWARE = "firmware"


def _size(v: object) -> int:
    # Sizes are strings: a bare number is ambiguous (bytes? GiB?), so it is refused.
    if not isinstance(v, str):
        raise ConfigError(f'write sizes as strings like "4G", not {v!r}')
    return parse_size(v)


def _count(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"must be a whole number, not {v!r}")
    return v


def _choice(enum: type[StrEnum]) -> Callable[[object], str]:
    def parse(v: object) -> str:
        try:
            return enum(str(v).lower()).value if isinstance(v, str) else enum(v).value
        except ValueError:
            raise ConfigError(f"must be one of {', '.join(choice_values(enum))}, not {v!r}") from None

    return parse


def _kernel(v: object) -> str:
    # TOML reads 6.10 as the float 6.1: only strings name a release unambiguously.
    if not isinstance(v, str):
        raise ConfigError(f'write kernel releases as strings ("6.10"), not {v!r}')
    kernel_rules(v)  # a release the model knows, or a ConfigError listing those it does
    return v


def _firmware_accept(v: object) -> str:
    if not isinstance(v, str):
        raise ConfigError(f'must be "below-4g", "all" or a size like "256M", not {v!r}')
    return str(FirmwareAccept.parse(v))


def _items(parse: Callable[[list[str]], object]) -> Callable[[object], str]:
    """A list of strings (``["HZ=1000", "NO_HZ_IDLE=n"]``) or one comma-separated string, checked
    by ``parse`` and written canonically (sorted, comma-separated; "" for none)."""

    def canonical(v: object) -> str:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
            raise ConfigError(f"must be a list of strings, not {v!r}")
        clean = sorted({x.strip() for x in items if x.strip()})
        parse(clean)
        return ",".join(clean)

    return canonical


def _split(v: Value) -> tuple[str, ...]:
    return tuple(x for x in str(v).split(",") if x)


def _policy(v: object) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"must be a policy like lazy, eager or background:threads=1,rate=2G, not {v!r}")
    return str(Policy.parse(v))


def _run_items(v: object, parse: Callable[[str], object], example: str, *, split: bool) -> str:
    """Run options given as one text or a list of them, each checked with ``parse``, joined with
    ";" (their canonical form); with ``split``, one text may list several with ";"."""
    items = (v.split(";") if split else [v]) if isinstance(v, str) else v
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise ConfigError(f"must be {example} or a list of them, not {v!r}")
    for item in items:
        if item:
            parse(item)
    return ";".join(item for item in items if item)


def _stages(v: object) -> str:
    """The stages from the shell to ready, in order: one (``agent``), several in one string
    (``agent;attest``: how a fixed value gives several) or a list of them; "" for none."""
    return _run_items(v, Stage.parse, "a stage like agent or modelload:40G,from=2G,", split=True)


def _host_feature(v: object) -> str:
    """A host feature pending upstream (``lazyaccept host --host-feature``), or "none"."""
    if not isinstance(v, str):
        raise ConfigError(f"must be a host feature name or \"none\", not {v!r}")
    name = v.strip().lower()
    if name in ("", "none"):
        return "none"
    try:
        return HostFeature(name).value
    except ValueError:
        known = ", ".join(f.value for f in HostFeature)
        raise ConfigError(f"must be none or a host feature ({known}), not {v!r}") from None


def _workloads(v: object) -> str:
    """One workload (``touch:32G``) or several run together (a list); "" for none."""
    return _run_items(v, Workload.parse, "a workload like touch:32G", split=False)


def _profile(v: object) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"must be a profile name or a .toml path, not {v!r}")
    return v


def _flag(v: object) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"must be true or false, not {v!r}")
    return v


def _image(v: object) -> str:
    if not isinstance(v, str) or not Path(v).is_file():
        raise ConfigError(f"{v!r}: no such firmware image")
    return v


@dataclass(frozen=True)
class DimensionSpec:
    """How a dimension's values are read, and which request field they set."""

    #: The :class:`GuestRequest` keyword it sets; ``None`` for ``profile``.
    field: str | None
    #: File value -> canonical value; raises :class:`ConfigError`.  ``None``: not modelled yet.
    normalize: Callable[[object], Value] | None
    #: Canonical value -> the request field's value.
    to_field: Callable[[Value], object] = lambda v: v
    #: Whether ``{ from, to, ... }`` ranges make sense for it (whole numbers, sizes).
    numeric: bool = False


SPECS: dict[Dimension, DimensionSpec] = {
    Dimension.MEMORY: DimensionSpec("memory", _size, numeric=True),
    Dimension.VCPUS: DimensionSpec("vcpus", _count, numeric=True),
    Dimension.PROFILE: DimensionSpec(None, _profile),
    Dimension.POLICY: DimensionSpec("policy", _policy, lambda v: Policy.parse(str(v)).accept_memory),
    Dimension.KERNEL: DimensionSpec("kernel", _kernel),
    Dimension.FIRMWARE_ACCEPT: DimensionSpec("firmware_accept", _firmware_accept, FirmwareAccept.parse),
    Dimension.HOST_MAPPING: DimensionSpec("host_mapping", _choice(HostMapping), HostMapping),
    Dimension.SHELL_FOOTPRINT: DimensionSpec(
        "footprint", _size, lambda v: BootFootprint(shell_footprint=v), numeric=True  # type: ignore[arg-type]
    ),
    Dimension.OS_OPT_IN: DimensionSpec("snp_os_opt_in", _flag),
    Dimension.FIRMWARE: DimensionSpec("firmware_path", _image),
    Dimension.KCONFIG: DimensionSpec("kconfig", _items(KernelConfig.parse), _split),
    Dimension.PATCHES: DimensionSpec("patches", _items(parse_patches), lambda v: _split(v) or None),
    # Run options, not fields of the guest: see RunOptions.
    Dimension.WORKLOAD: DimensionSpec(None, _workloads),
    Dimension.STAGE: DimensionSpec(None, _stages),
    Dimension.HOST_FEATURE: DimensionSpec(None, _host_feature),
}

#: The profile a grid uses when it names none (as the commands default to TDX).
DEFAULT_PROFILE = Tee.TDX.value


def modelled() -> list[str]:
    return [d.value for d, s in SPECS.items() if s.normalize is not None]


def dimension(name: str) -> Dimension:
    """The dimension called ``name``; a clear error for one the model cannot run yet or does not know."""
    try:
        dim = Dimension(name)
    except ValueError:
        raise ConfigError(f"unknown dimension {name!r} (known: {', '.join(modelled())})") from None
    if SPECS[dim].normalize is None:
        raise ConfigError(
            f"dimension {name!r} is not modelled yet by this lazyaccept (it runs: {', '.join(modelled())})"
        )
    return dim


def normalize(dim: Dimension, value: object) -> Value:
    """The canonical form of one value of ``dim``; :class:`ConfigError` names the dimension."""
    parse = SPECS[dim].normalize
    assert parse is not None  # dimension() refused it
    try:
        return parse(value)
    except ConfigError as exc:
        raise ConfigError(f"{dim.value}: {exc}") from None


@dataclass(frozen=True)
class RunOptions:
    """What a run needs beyond the guest and the profile: the acceptance policy in full (the
    guest only boots with its ``accept_memory=``) and the workloads after the shell."""

    policy: str = "lazy"
    workloads: tuple[str, ...] = ()
    #: Stages from the shell to ready (``--stage`` texts), in order.
    stages: tuple[str, ...] = ()
    #: A host feature pending upstream the run's host has ("" for none).
    host_feature: str = ""

    @property
    def runs_after_boot(self) -> bool:
        return (bool(self.workloads) or bool(self.stages)
                or Policy.parse(self.policy).kind.value not in ("lazy", "eager"))


@dataclass(frozen=True)
class RunSpec:
    request: GuestRequest
    #: The profile as the grid names it (a packaged name or a path).
    profile: str
    options: RunOptions


def to_run(point: Mapping[str, Value], tees: Mapping[str, Tee]) -> RunSpec:
    """A grid point (canonical values by dimension name) as a request, a profile and run options.

    ``tees`` gives each profile's platform: the platform of a run is its profile's."""
    profile = str(point.get(Dimension.PROFILE, DEFAULT_PROFILE))
    fields: dict[str, object] = {}
    for name, value in point.items():
        spec = SPECS[Dimension(name)]
        if spec.field is not None:
            fields[spec.field] = spec.to_field(value)
    if "memory" not in fields:
        raise ConfigError("a grid needs memory, as a dimension or a fixed value")
    policy = str(point.get(Dimension.POLICY, "lazy"))
    if Dimension.POLICY in point:
        fields["patches"] = Policy.parse(policy).with_patches(fields.get("patches"))  # type: ignore[arg-type]
    workloads = tuple(w for w in str(point.get(Dimension.WORKLOAD, "")).split(";") if w)
    stages = tuple(st for st in str(point.get(Dimension.STAGE, "")).split(";") if st)
    feature = str(point.get(Dimension.HOST_FEATURE, "none"))
    options = RunOptions(policy, workloads, stages, "" if feature == "none" else feature)
    return RunSpec(GuestRequest(tee=tees[profile], **fields), profile, options)  # type: ignore[arg-type]
