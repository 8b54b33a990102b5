"""Cost profiles: every timing of the simulator, as data with its source.

A profile is a TOML file (``src/lazyaccept/profiles/*.toml``).  Every number is a table
``{ value = ..., unit = "...", source = "..." }``, optionally with ``bounds = [lo, hi]`` and
``fit = true`` (a free parameter that calibration may change) and a ``note``.  ``source`` cites
a public source (commit, mailing-list thread, repository path, spec section), or says
``"assumed: <why>"`` or ``"fitted to <calibration ids>"``.

Sections (the keys of each: :mod:`lazyaccept.sim.profile_schema`):

``[profile]``   name, platform (``"tdx"`` | ``"snp"``), description.
``[defaults]``  the guest stack the calibration assumes and commands use when the user gives no
                option: ``vcpus``, ``host_mapping``, ``kernel``, ``firmware_accept``, each as
                ``{ value = ..., why = "..." }``; read into a
                :class:`~lazyaccept.scenario.config.StackDefaults`.
``[host]``      memory bandwidth (shared, and per vCPU) and per-vCPU exit interference.
``[accept]``    per-operation costs of acceptance; each platform has only its own keys.
``[boot]``      costs of boot steps that do not accept memory, one per :class:`WorkEvent` kind.

:mod:`lazyaccept.sim.pricing` turns record events into work with a profile.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from ..base.choices import FirmwareAccept, HostMapping, Tee, choice_values
from ..base.errors import ConfigError, FormatError
from ..base.fileio import read_input
from ..guest.kconfig import KernelConfig
from ..guest.patches import parse_patches
from ..guest.rules import kernel_rules
from ..scenario.config import StackDefaults
from .engine import Host
from .profile_schema import PARAM_KEYS, SECTION_DOCS, SECTIONS, Spec, schema
from .profile_units import unit_hint, unit_scale

#: The keys of ``[defaults]``, in the order a profile file writes them (the last two optional).
DEFAULT_KEYS = ("vcpus", "host_mapping", "kernel", "firmware_accept", "kconfig", "patches")
_OPTIONAL_DEFAULTS = ("kconfig", "patches")


@dataclass(frozen=True)
class Param:
    """One number of a profile, as written in the file (``value`` in ``unit``)."""

    key: str  # "section.name"
    value: float
    unit: str
    source: str
    si: float  # value in SI units (s, B, B/s, 1/vCPU ...)
    bounds: tuple[float, float] | None = None
    fit: bool = False
    note: str = ""
    #: One standard deviation of a fitted value, relative to it (what calibration found).
    uncertainty: float | None = None


@dataclass(frozen=True)
class FittedTo:
    """What a profile's fitted values were fitted to: the calibration rows (ids) and a digest of
    their contents, so that a change of the table is noticed."""

    rows: tuple[str, ...]
    digest: str


@dataclass(frozen=True)
class ParamRef:
    """A free parameter: its key, current value and bounds, in the file's unit."""

    key: str
    value: float
    unit: str
    lo: float
    hi: float


@dataclass(frozen=True)
class CostProfile:
    """A loaded, validated cost profile.  Immutable: :meth:`with_values` makes a changed copy."""

    name: str
    tee: Tee
    description: str
    path: str
    defaults: StackDefaults
    #: Why the calibration assumes each default (key of :class:`StackDefaults` -> reason).
    defaults_why: dict[str, str]
    params: dict[str, Param]
    fitted_to: FittedTo | None = None

    # -- access --

    def si(self, key: str) -> float:
        """The SI value of ``"section.name"``."""
        try:
            return self.params[key].si
        except KeyError:
            raise ConfigError(f"{self.path}: no cost {key!r}") from None

    # A profile never changes (:meth:`with_values` makes a new one), so what is derived from its
    # parameters is computed once per profile, on first use.

    @cached_property
    def host(self) -> Host:
        return Host(self.si("host.memory_bandwidth"), self.si("host.vcpu_bandwidth"))

    @cached_property
    def fingerprint(self) -> tuple[object, ...]:
        """What a run's result depends on: equal for two profiles that price everything alike."""
        return (self.name, self.tee, self.defaults, tuple((k, p.si) for k, p in self.params.items()))

    @cached_property
    def work_kinds(self) -> tuple[str, ...]:
        """The WorkEvent kinds this profile prices."""
        boot = [k.split(".", 1)[1] for k in self.params if k.startswith("boot.")]
        return tuple(k for k in boot if not (k.endswith("_bytes") and k[: -len("_bytes")] in boot))

    def free_parameters(self) -> list[ParamRef]:
        """The parameters calibration may change (``fit = true``), in file order."""
        out = []
        for p in self.params.values():
            if p.fit:
                assert p.bounds is not None  # validated at load
                out.append(ParamRef(p.key, p.value, p.unit, p.bounds[0], p.bounds[1]))
        return out

    def fitted_uncertainties(self) -> dict[str, float]:
        """Each fitted parameter's relative one-sigma uncertainty (those calibration recorded)."""
        return {p.key: p.uncertainty for p in self.params.values()
                if p.fit and p.uncertainty is not None and math.isfinite(p.uncertainty)}

    def with_values(self, values: dict[str, float], source: str | None = None,
                    uncertainties: dict[str, float] | None = None) -> CostProfile:
        """A copy with the parameters in ``values`` (key -> value in the file's unit) replaced.

        ``source``, if given, becomes the source of every replaced value (the old source is
        kept in its ``note``).  ``uncertainties`` (key -> relative one sigma) replace those
        recorded.  Values are validated like a loaded file's.
        """
        params = dict(self.params)
        for key, unc in (uncertainties or {}).items():
            params[key] = replace(params[key], uncertainty=unc if math.isfinite(unc) else None)
        for key, value in values.items():
            if key not in params:
                raise ConfigError(f"{self.path}: no parameter {key!r} to set")
            old = params[key]
            section, name = key.split(".", 1)
            spec = schema(self.tee)[section][name]
            fval = float(value)
            _check_value(self.path, key, fval, spec, old.bounds)
            note = old.note
            if source is not None and source != old.source:
                was = f"was {_fmt_number(old.value)} {old.unit}: {old.source}"
                note = was if not old.note else f"{was} | {old.note}"
                note = note if len(note) < 400 else note[:397] + "..."
            params[key] = replace(
                old,
                value=fval,
                si=fval * unit_scale(old.unit, spec.dim, spec.per),  # type: ignore[operator]
                source=source if source is not None else old.source,
                note=note,
            )
        return replace(self, params=params)

    # -- writing --

    def to_toml(self) -> str:
        """The profile as TOML, in the schema :func:`load_profile` reads (comments included)."""
        out = [
            f"# lazyaccept cost profile: {self.name} ({self.tee.value.upper()})",
            "# Every number: { value, unit, source } [+ bounds, fit = true for calibration, note].",
            "# Written by lazyaccept; `lazyaccept calibrate` rewrites the fitted values.",
            "",
            "[profile]",
            f"name = {_toml_str(self.name)}",
            f"platform = {_toml_str(self.tee.value)}",
            f"description = {_toml_str(self.description)}",
            *([f"fitted_to = {{ rows = [{', '.join(_toml_str(r) for r in self.fitted_to.rows)}], "
               f"digest = {_toml_str(self.fitted_to.digest)} }}"] if self.fitted_to is not None else []),
            "",
            "# The configuration the calibration assumes; commands use it when given no option.",
            "[defaults]",
        ]
        d = self.defaults
        for key in DEFAULT_KEYS:
            val = getattr(d, key)
            if key in _OPTIONAL_DEFAULTS and key not in self.defaults_why:
                continue
            if key == "kconfig":
                sval = "[" + ", ".join(_toml_str(x) for x in val.items()) + "]"
            elif key == "patches":
                sval = "[" + ", ".join(_toml_str(p.value) for p in val) + "]"
            else:
                sval = str(val) if isinstance(val, int) else _toml_str(str(val))
            out.append(f"{key} = {{ value = {sval}, why = {_toml_str(self.defaults_why.get(key, ''))} }}")
        sections = schema(self.tee)
        for section in SECTIONS:
            out += ["", f"# {SECTION_DOCS[section]}", f"[{section}]"]
            for name, spec in sections[section].items():
                p = self.params.get(f"{section}.{name}")
                if p is None:  # an optional cost this profile leaves out
                    continue
                parts = [
                    f"value = {_toml_num(p.value)}",
                    f"unit = {_toml_str(p.unit)}",
                ]
                if p.bounds is not None:
                    parts.append(f"bounds = [{_toml_num(p.bounds[0])}, {_toml_num(p.bounds[1])}]")
                if p.fit:
                    parts.append("fit = true")
                if p.uncertainty is not None:
                    parts.append(f"uncertainty = {_toml_num(p.uncertainty)}")
                parts.append(f"source = {_toml_str(p.source)}")
                if p.note:
                    parts.append(f"note = {_toml_str(p.note)}")
                out.append(f"# {spec.doc}")
                out.append(f"{name} = {{ {', '.join(parts)} }}")
        return "\n".join(out) + "\n"


# --- TOML writing (the stdlib has a reader only) --------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_num(x: float) -> str:
    if isinstance(x, bool) or not math.isfinite(x):
        raise ConfigError(f"cannot write {x!r} as a profile number")
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x)) if isinstance(x, int) else f"{float(x):.1f}"
    return repr(float(x))  # shortest round-trip form; valid TOML ("2.5e-06", "1e+20")


def _fmt_number(x: float) -> str:
    return f"{x:.6g}"


# --- loading -----------------------------------------------------------------------------------


def packaged_profiles() -> list[str]:
    """Names of the profiles shipped with lazyaccept."""
    folder = resources.files("lazyaccept").joinpath("profiles")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _packaged(name: str) -> Path | None:
    ref = resources.files("lazyaccept").joinpath("profiles", f"{name}.toml")
    return Path(str(ref)) if ref.is_file() else None


def profile_path(name_or_path: str) -> Path:
    """The file of a profile: a packaged name (see :func:`packaged_profiles`) or a path."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        if not p.exists() and not p.is_symlink():
            raise ConfigError(f"{p}: no such profile file")
        return p  # read_input refuses what is not a regular file, naming what it is
    packaged = _packaged(name_or_path)
    if packaged is None:
        raise ConfigError(
            f"no profile named {name_or_path!r} (packaged: {', '.join(packaged_profiles())}; or give a .toml path)"
        )
    return packaged


#: A profile is a few KiB of TOML; a larger file is not one.
PROFILE_LIMIT = 1 << 20


def load_profile(name_or_path: str) -> CostProfile:
    """Load and validate a profile by packaged name (``"tdx"``, ``"snp"``) or file path.

    Raises :class:`FormatError` for a file that is not TOML and :class:`ConfigError`, naming the
    file and key, for a missing key or source, a unit of the wrong kind, a value that is not
    positive where it must be, or a value outside its bounds.
    """
    path = profile_path(name_or_path)
    data = read_input(path, limit=PROFILE_LIMIT, what="profiles")  # a regular file, read once, bounded
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: cannot read profile: {exc}") from None
    return parse_profile(text, str(path))


def parse_profile(text: str, path: str = "<profile>") -> CostProfile:
    """Validate the text of a profile (see :func:`load_profile`)."""
    try:
        doc = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer of more than 4,300 digits
        raise FormatError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise FormatError(f"{path}: not valid TOML: nested too deeply") from None

    def err(msg: str) -> ConfigError:
        return ConfigError(f"{path}: {msg}")

    head = _table(doc, "profile", path)
    for key in ("name", "platform", "description"):
        if not isinstance(head.get(key), str) or not head[key].strip():
            raise err(f"[profile] {key}: missing (a non-empty string)")
    try:
        tee = Tee(head["platform"])
    except ValueError:
        raise err(f"[profile] platform: {head['platform']!r} is not one of {', '.join(choice_values(Tee))}") from None
    unknown_head = set(head) - {"name", "platform", "description", "fitted_to"}
    if unknown_head:
        raise err(f"[profile] {sorted(unknown_head)[0]}: unknown key")
    unknown_top = set(doc) - {"profile", "defaults", *SECTIONS}
    if unknown_top:
        raise err(f"unknown section [{sorted(unknown_top)[0]}]")

    defaults, why = _parse_defaults(_table(doc, "defaults", path), path)

    params: dict[str, Param] = {}
    for section, specs in schema(tee).items():
        table = _table(doc, section, path)
        for name in table:
            if name not in specs:
                other = [t for t in Tee if t is not tee and name in schema(t)[section]]
                hint = f" (a {other[0].value.upper()} cost; this is a {tee.value.upper()} profile)" if other else ""
                raise err(f"[{section}] {name}: unknown key{hint}")
        for name, spec in specs.items():
            if name not in table and spec.optional:
                continue
            if name not in table:
                raise err(
                    f"[{section}] {name}: missing "
                    f'(expected {{ value, unit = "{unit_hint(spec.dim, spec.per)}", source }})'
                )
            params[f"{section}.{name}"] = _parse_param(table[name], section, name, spec, path)
    return CostProfile(
        name=head["name"],
        tee=tee,
        description=head["description"],
        path=path,
        defaults=defaults,
        defaults_why=why,
        params=params,
        fitted_to=_parse_fitted_to(head.get("fitted_to"), path),
    )


def _parse_fitted_to(entry: Any, path: str) -> FittedTo | None:
    if entry is None:
        return None
    where = f"{path}: [profile] fitted_to"
    if not isinstance(entry, dict) or set(entry) != {"rows", "digest"}:
        raise ConfigError(f'{where}: must be {{ rows = ["id", ...], digest = "sha256:..." }}')
    rows, digest = entry["rows"], entry["digest"]
    if not isinstance(rows, list) or not all(isinstance(r, str) for r in rows) or not isinstance(digest, str):
        raise ConfigError(f"{where}: rows must be a list of row ids and digest a string")
    return FittedTo(tuple(rows), digest)


def _table(doc: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    t = doc.get(key)
    if t is None:
        raise ConfigError(f"{path}: [{key}]: missing section")
    if not isinstance(t, dict):
        raise ConfigError(f"{path}: [{key}]: must be a table")
    return t


def _parse_defaults(table: dict[str, Any], path: str) -> tuple[StackDefaults, dict[str, str]]:
    values: dict[str, Any] = {}
    why: dict[str, str] = {}
    for key in DEFAULT_KEYS:
        entry = table.get(key)
        where = f"{path}: [defaults] {key}"
        if entry is None and key in _OPTIONAL_DEFAULTS:
            continue
        if not isinstance(entry, dict) or "value" not in entry:
            raise ConfigError(f'{where}: missing (expected {{ value = ..., why = "..." }})')
        if not isinstance(entry.get("why"), str) or not entry["why"].strip():
            raise ConfigError(f"{where}: missing why (say why the calibration assumes it)")
        v = entry["value"]
        if key in _OPTIONAL_DEFAULTS:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"{where}: must be a list of strings, not {v!r}")
            v = KernelConfig.parse(v) if key == "kconfig" else parse_patches(v)
        elif key == "vcpus":
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}: must be a whole number >= 1, not {v!r}")
        elif not isinstance(v, str):
            raise ConfigError(f"{where}: must be a string, not {v!r}")
        elif key == "firmware_accept":
            v = FirmwareAccept.parse(v)
        elif key == "host_mapping":
            try:
                v = HostMapping(v.lower())
            except ValueError:
                known = ", ".join(choice_values(HostMapping))
                raise ConfigError(f"{where}: must be one of {known}, not {v!r}") from None
        else:
            kernel_rules(v)  # a release the model knows, or a ConfigError naming those it does
        values[key] = v
        why[key] = entry["why"]
    extra = set(table) - set(values)
    if extra:
        raise ConfigError(f"{path}: [defaults] {sorted(extra)[0]}: unknown key")
    return StackDefaults(**values), why


def _parse_param(entry: Any, section: str, name: str, spec: Spec, path: str) -> Param:
    where = f"{path}: [{section}] {name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table {{ value, unit, source }}, not {entry!r}")
    extra = set(entry) - PARAM_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown field {sorted(extra)[0]!r}")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f'{where}: missing source (cite a reference, or say "assumed: <why>")')
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: value must be a number, not {value!r}")
    unit = entry.get("unit")
    if not isinstance(unit, str):
        raise ConfigError(f'{where}: missing unit (expected like "{unit_hint(spec.dim, spec.per)}")')
    scale = unit_scale(unit, spec.dim, spec.per)
    if scale is None:
        raise ConfigError(
            f"{where}: unit {unit!r} is not of the right kind (expected like "
            f'"{unit_hint(spec.dim, spec.per)}")'
        )
    bounds = entry.get("bounds")
    if bounds is not None:
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
            or not bounds[0] < bounds[1]
        ):
            raise ConfigError(f"{where}: bounds must be [lo, hi] with lo < hi, not {bounds!r}")
        bounds = (float(bounds[0]), float(bounds[1]))
        if spec.positive and bounds[0] <= 0:
            raise ConfigError(f"{where}: lower bound must be positive, not {bounds[0]}")
    fit = entry.get("fit", False)
    if not isinstance(fit, bool):
        raise ConfigError(f"{where}: fit must be true or false, not {fit!r}")
    if fit and bounds is None:
        raise ConfigError(f"{where}: a fitted parameter (fit = true) needs bounds = [lo, hi]")
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise ConfigError(f"{where}: note must be a string")
    unc = entry.get("uncertainty")
    if unc is not None:
        if isinstance(unc, bool) or not isinstance(unc, int | float) or not (math.isfinite(unc) and unc >= 0):
            raise ConfigError(f"{where}: uncertainty must be a relative one sigma >= 0, not {unc!r}")
        if not fit:
            raise ConfigError(f"{where}: uncertainty is what calibration finds for a fitted value (fit = true)")
    fval = float(value)
    _check_value(path, f"{section}.{name}", fval, spec, bounds)
    return Param(
        key=f"{section}.{name}",
        value=value if isinstance(value, int) else fval,
        unit=unit,
        source=source,
        si=fval * scale,
        bounds=bounds,
        fit=fit,
        note=note,
        uncertainty=None if unc is None else float(unc),
    )


def _check_value(path: str, key: str, value: float, spec: Spec, bounds: tuple[float, float] | None) -> None:
    section, name = key.split(".", 1)
    where = f"{path}: [{section}] {name}"
    if not math.isfinite(value):
        raise ConfigError(f"{where}: value must be finite, not {value!r}")
    if spec.positive and value <= 0:
        raise ConfigError(f"{where}: value must be positive, not {value!r}")
    if value < 0:
        raise ConfigError(f"{where}: value must not be negative, not {value!r}")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{where}: value {value!r} is outside its bounds [{bounds[0]}, {bounds[1]}]")
