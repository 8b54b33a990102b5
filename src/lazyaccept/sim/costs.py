"""Cost profiles: every timing of the simulator, as data with its source.

A profile is a TOML file (``src/lazyaccept/profiles/tdx.toml``, ``snp.toml``).  Every number is
a table ``{ value = ..., unit = "...", source = "..." }``, optionally with ``bounds = [lo, hi]``
and ``fit = true`` (a free parameter that calibration may change) and a ``note``.  ``source``
cites a reference (document and section, or a public source), or says ``"assumed: <why>"`` or
``"fitted to <calibration ids>"``.

Sections:

``[profile]``   name, platform (``"tdx"`` | ``"snp"``), description.
``[defaults]``  the configuration the calibration assumes and commands use when the user gives
                no option: ``vcpus``, ``host_mapping``, ``kernel``, ``firmware_accept``, each as
                ``{ value = ..., why = "..." }``.
``[host]``      memory bandwidth (shared, and per vCPU) and per-vCPU exit interference.
``[accept]``    per-operation costs of acceptance; each platform has only its own keys.
``[boot]``      costs of boot steps that do not accept memory, one per :class:`WorkEvent` kind.

:meth:`CostProfile.price` turns one record event into a :class:`~lazyaccept.sim.engine.WorkItem`.
No timing constant lives in code: the schema below only says which keys exist and in which
dimension their units must be.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FormatError
from ..record import AcceptEvent, Event, WorkEvent
from .engine import Host, WorkItem

PLATFORMS = ("tdx", "snp")
#: The lock every acceptance takes in kernel v6.5 (``unaccepted_memory_lock`` held across the
#: arch accept call); events with ``serialized=True`` take it.
ACCEPT_LOCK = "unaccepted_memory_lock"

# --- units -------------------------------------------------------------------------------------

_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_BYTES = {"B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}
_COUNT = {"1": 1.0}
#: What a unit may be "per": countable things (scale 1), or a time or byte unit.
_PER_COUNT = ("page", "AP", "vCPU", "call", "exit", "request", "entry")
_DIM_UNITS = {"time": _TIME, "bytes": _BYTES, "1": _COUNT}


def _unit_scale(unit: str, dim: str, per: str | None) -> float | None:
    """SI scale of ``unit`` if it has dimension ``dim`` [per ``per``], else None.

    ``per`` is a count name (``"page"``) or ``"time"`` / ``"bytes"`` (any unit of that kind).
    """
    num, sep, den = unit.partition("/")
    scale = _DIM_UNITS[dim].get(num.strip())
    if scale is None:
        return None
    den = den.strip()
    if per is None:
        return scale if not sep else None
    if per in _DIM_UNITS:
        d = _DIM_UNITS[per].get(den)
        return None if d is None else scale / d
    return scale if den == per else None


def _unit_hint(dim: str, per: str | None) -> str:
    num = {"time": "s|ms|us|ns", "bytes": "B|KiB|MiB|GiB|kB|MB|GB", "1": "1"}[dim]
    if per is None:
        return num
    den = {"time": "s", "bytes": "B"}.get(per, per)
    return f"{num.split('|')[0]}/{den}" if dim != "1" else f"1/{den}"


# --- schema ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    dim: str  # "time" | "bytes" | "1"
    per: str | None  # None, a count name, or "time"/"bytes"
    doc: str
    positive: bool = True  # False: zero allowed (never negative)


_HOST = {
    "memory_bandwidth": _Spec("bytes", "time", "zeroing bandwidth of the host memory, shared by all vCPUs"),
    "vcpu_bandwidth": _Spec("bytes", "time", "what one vCPU can stream (zeroing) on its own"),
    "interference": _Spec(
        "1", "vCPU", "fractional increase of every exit's cost per additional online vCPU", positive=False
    ),
}
_ACCEPT = {
    "tdx": {
        "tdcall_4k": _Spec("time", "call", "one TDG.MEM.PAGE.ACCEPT TDCALL at 4 KiB (failed ones too)"),
        "tdcall_2m": _Spec("time", "call", "one TDG.MEM.PAGE.ACCEPT TDCALL at 2 MiB, zeroing excluded"),
        "tdcall_1g": _Spec(
            "time", "call", "one TDG.MEM.PAGE.ACCEPT TDCALL at 1 GiB (rejected by the module)"
        ),
        "td_exit": _Spec("time", "exit", "TD exit + KVM EPT-violation handling + TD re-entry"),
        "host_fault_4k": _Spec(
            "time", "page", "guest_memfd allocation + TDH.MEM.PAGE.AUG of 4 KiB, no zeroing"
        ),
        "host_fault_2m": _Spec(
            "time", "page", "guest_memfd allocation + TDH.MEM.PAGE.AUG of 2 MiB, no zeroing"
        ),
        "accept_request": _Spec("time", "request", "kernel bookkeeping of one accept_memory() request"),
    },
    "snp": {
        "psc_request": _Spec("time", "request", "one VMGEXIT round trip (page-state change or other exit)"),
        "psc_entry": _Spec("time", "entry", "host handling of one page-state-change entry (RMPUPDATE)"),
        "pvalidate_4k": _Spec("time", "call", "one PVALIDATE at 4 KiB (failed ones too)"),
        "pvalidate_2m": _Spec("time", "call", "one PVALIDATE at 2 MiB (failed ones too)"),
        "host_fault_4k": _Spec(
            "time", "page", "guest_memfd allocation + RMP assignment of 4 KiB, no zeroing"
        ),
        "host_fault_2m": _Spec(
            "time", "page", "guest_memfd allocation + RMP assignment of 2 MiB, no zeroing"
        ),
        "accept_request": _Spec("time", "request", "kernel bookkeeping of one accept_memory() request"),
    },
}
#: Boot-step costs; each key is a WorkEvent kind, except ``<kind>_bytes`` companions, which add
#: bytes moved through memory per unit of that kind.
_BOOT = {
    "firmware_base": _Spec("time", None, "firmware from reset to the OS loader, acceptance excluded"),
    "firmware_ap_init": _Spec("time", "AP", "firmware bring-up of one application processor"),
    "kernel_decompress": _Spec("time", None, "EFI stub + decompression of the kernel image"),
    "early_init": _Spec("time", None, "start_kernel up to memory init, acceptance excluded"),
    "memmap_init": _Spec("time", "page", "initialising one struct page in memmap_init"),
    "memmap_init_bytes": _Spec("bytes", "page", "bytes written per struct page initialised (memory traffic)"),
    "struct_page_init": _Spec("time", "page", "deferred struct page init and freeing, per page"),
    "smp_bringup": _Spec("time", "AP", "bring-up of one AP, done serially by the BSP"),
    "initcalls": _Spec("time", None, "driver and subsystem initcalls"),
    "userspace_to_shell": _Spec("time", None, "init to a shell prompt, first-touch cost excluded"),
    "userspace_touch": _Spec("bytes", "bytes", "bytes zeroed per byte of the shell's memory footprint"),
}
_SECTIONS = ("host", "accept", "boot")
_PARAM_KEYS = {"value", "unit", "source", "bounds", "fit", "note"}
_SECTION_DOCS = {
    "host": "The host's memory system and how exits get dearer as vCPUs are added.",
    "accept": "Per-operation costs of accepting memory (zeroing is priced by bandwidth, in [host]).",
    "boot": "Boot steps that do not accept memory; each key is a WorkEvent kind, priced per its unit.",
}

_DEFAULT_CHOICES = {
    "host_mapping": ("4k", "2m"),
    "kernel": ("mainline", "6.5"),
}
_FW_ACCEPT_RE = re.compile(r"^\d+(\.\d+)?\s*[KMGT]i?B?$", re.IGNORECASE)


def _schema(platform: str) -> dict[str, dict[str, _Spec]]:
    return {"host": _HOST, "accept": _ACCEPT[platform], "boot": _BOOT}


# --- data --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ParamRef:
    """A free parameter: its key, current value and bounds, in the file's unit."""

    key: str
    value: float
    unit: str
    lo: float
    hi: float


@dataclass(frozen=True)
class Defaults:
    """The configuration a profile was calibrated for, and the reason for each choice."""

    vcpus: int
    host_mapping: str
    kernel: str
    firmware_accept: str
    why: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CostProfile:
    """A loaded, validated cost profile.  Immutable: :meth:`with_values` makes a changed copy."""

    name: str
    platform: str
    description: str
    path: str
    defaults: Defaults
    params: dict[str, Param]

    # -- access --

    def si(self, key: str) -> float:
        """The SI value of ``"section.name"``."""
        try:
            return self.params[key].si
        except KeyError:
            raise ConfigError(f"{self.path}: no cost {key!r}") from None

    @property
    def host(self) -> Host:
        return Host(self.si("host.memory_bandwidth"), self.si("host.vcpu_bandwidth"))

    @property
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

    def with_values(self, values: dict[str, float], source: str | None = None) -> CostProfile:
        """A copy with the parameters in ``values`` (key -> value in the file's unit) replaced.

        ``source``, if given, becomes the source of every replaced value (the old source is
        kept in its ``note``).  Values are validated like a loaded file's.
        """
        params = dict(self.params)
        for key, value in values.items():
            if key not in params:
                raise ConfigError(f"{self.path}: no parameter {key!r} to set")
            old = params[key]
            section, name = key.split(".", 1)
            spec = _schema(self.platform)[section][name]
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
                si=fval * _unit_scale(old.unit, spec.dim, spec.per),  # type: ignore[operator]
                source=source if source is not None else old.source,
                note=note,
            )
        return replace(self, params=params)

    # -- pricing --

    def price(self, event: Event, online_vcpus: int) -> WorkItem:
        """The work one record event costs, when ``online_vcpus`` vCPUs are running.

        An :class:`AcceptEvent` costs its per-operation counts times the ``[accept]`` costs,
        its exits made dearer by interference (``1 + interference * (online_vcpus - 1)``), and
        its zeroed bytes as memory traffic; serialized events take :data:`ACCEPT_LOCK`.  On TDX
        the exits are ``td_exit``; on SNP every VMGEXIT round trip (``psc_request``) and every
        host fault (each taken on a nested page fault) is an exit.  A
        :class:`WorkEvent` costs ``amount`` times its ``[boot]`` cost (CPU seconds or bytes, by
        the cost's unit) plus ``amount`` times ``<kind>_bytes`` if the profile has it.
        """
        if online_vcpus < 1:
            raise ConfigError(f"online vCPU count must be >= 1, not {online_vcpus}")
        if isinstance(event, AcceptEvent):
            return self._price_accept(event, online_vcpus)
        if isinstance(event, WorkEvent):
            return self._price_work(event)
        raise ConfigError(f"cannot price {type(event).__name__}: not an AcceptEvent or WorkEvent")

    def _price_work(self, event: WorkEvent) -> WorkItem:
        kind = event.kind
        if kind not in self.work_kinds:
            raise ConfigError(
                f"unknown work kind {kind!r}: profile {self.name} ({self.path}) has no [boot] cost for it "
                f"(known: {', '.join(self.work_kinds)})"
            )
        amount = float(event.amount)
        if not (math.isfinite(amount) and amount >= 0):
            raise ConfigError(
                f"work event {kind!r} on vCPU {event.vcpu}: amount must be >= 0, not {event.amount!r}"
            )
        p = self.params[f"boot.{kind}"]
        spec = _BOOT[kind]
        cpu_s = amount * p.si if spec.dim == "time" else 0.0
        nbytes = amount * p.si if spec.dim == "bytes" else 0.0
        extra = self.params.get(f"boot.{kind}_bytes")
        if extra is not None:
            nbytes += amount * extra.si
        return WorkItem(event.vcpu, cpu_s, nbytes, None, kind)

    def _price_accept(self, event: AcceptEvent, online_vcpus: int) -> WorkItem:
        s = event.stats
        c = self.si
        exit_factor = 1.0 + c("host.interference") * (online_vcpus - 1)
        if self.platform == "tdx":
            if s.psc_requests or s.psc_entries:
                raise ConfigError(
                    f"TDX profile {self.name} cannot price SNP page-state changes "
                    f"({event.actor} on vCPU {event.vcpu})"
                )
            cpu_s = (
                s.calls_4k * c("accept.tdcall_4k")
                + s.calls_2m * c("accept.tdcall_2m")
                + s.calls_1g * c("accept.tdcall_1g")
                + s.exits * c("accept.td_exit") * exit_factor
            )
        else:
            if s.calls_1g:
                raise ConfigError(
                    f"SNP profile {self.name}: PVALIDATE has no 1 GiB size "
                    f"({event.actor} on vCPU {event.vcpu} counted {s.calls_1g})"
                )
            # Every exit is one VMGEXIT round trip; a page-state-change request is always one.
            # The host backs a page on the nested page fault the PVALIDATE or first access
            # takes, so a host fault is an exit too.
            round_trips = max(s.exits, s.psc_requests)
            cpu_s = (
                round_trips * c("accept.psc_request") * exit_factor
                + s.psc_entries * c("accept.psc_entry")
                + s.calls_4k * c("accept.pvalidate_4k")
                + s.calls_2m * c("accept.pvalidate_2m")
                + (s.host_backed_4k * c("accept.host_fault_4k") + s.host_backed_2m * c("accept.host_fault_2m"))
                * exit_factor
            )
        if self.platform == "tdx":
            cpu_s += s.host_backed_4k * c("accept.host_fault_4k") + s.host_backed_2m * c("accept.host_fault_2m")
        cpu_s += event.requests * c("accept.accept_request")
        return WorkItem(
            vcpu=event.vcpu,
            cpu_s=cpu_s,
            bytes=float(s.host_zeroed_bytes + s.accept_zeroed_bytes),
            lock=ACCEPT_LOCK if event.serialized else None,
            label=f"accept:{event.actor}:{event.reason}" if event.reason else f"accept:{event.actor}",
            accepted_bytes=s.bytes_accepted,
            committed_bytes=s.host_backed_bytes,
        )

    # -- writing --

    def to_toml(self) -> str:
        """The profile as TOML, in the schema :func:`load_profile` reads (comments included)."""
        out = [
            f"# lazyaccept cost profile: {self.name} ({self.platform.upper()})",
            "# Every number: { value, unit, source } [+ bounds, fit = true for calibration, note].",
            "# Written by lazyaccept; `lazyaccept calibrate` rewrites the fitted values.",
            "",
            "[profile]",
            f"name = {_toml_str(self.name)}",
            f"platform = {_toml_str(self.platform)}",
            f"description = {_toml_str(self.description)}",
            "",
            "# The configuration the calibration assumes; commands use it when given no option.",
            "[defaults]",
        ]
        d = self.defaults
        for key in ("vcpus", "host_mapping", "kernel", "firmware_accept"):
            val = getattr(d, key)
            sval = str(val) if isinstance(val, int) else _toml_str(val)
            out.append(f"{key} = {{ value = {sval}, why = {_toml_str(d.why.get(key, ''))} }}")
        schema = _schema(self.platform)
        for section in _SECTIONS:
            out += ["", f"# {_SECTION_DOCS[section]}", f"[{section}]"]
            for name, spec in schema[section].items():
                p = self.params[f"{section}.{name}"]
                parts = [
                    f"value = {_toml_num(p.value)}",
                    f"unit = {_toml_str(p.unit)}",
                ]
                if p.bounds is not None:
                    parts.append(f"bounds = [{_toml_num(p.bounds[0])}, {_toml_num(p.bounds[1])}]")
                if p.fit:
                    parts.append("fit = true")
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


def _packaged(name: str) -> Path | None:
    ref = resources.files("lazyaccept").joinpath("profiles", f"{name}.toml")
    return Path(str(ref)) if ref.is_file() else None


def profile_path(name_or_path: str) -> Path:
    """The file of a profile: a packaged name (``"tdx"``, ``"snp"``) or a path."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists() or "/" in name_or_path:
        if not p.is_file():
            raise ConfigError(f"{p}: no such profile file")
        return p
    packaged = _packaged(name_or_path)
    if packaged is None:
        raise ConfigError(
            f"no profile named {name_or_path!r} (packaged: {', '.join(PLATFORMS)}; or give a .toml path)"
        )
    return packaged


def load_profile(name_or_path: str) -> CostProfile:
    """Load and validate a profile by packaged name (``"tdx"``, ``"snp"``) or file path.

    Raises :class:`FormatError` for a file that is not TOML and :class:`ConfigError`, naming the
    file and key, for a missing key or source, a unit of the wrong kind, a value that is not
    positive where it must be, or a value outside its bounds.
    """
    path = profile_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: cannot read profile: {exc}") from None
    return parse_profile(text, str(path))


def parse_profile(text: str, path: str = "<profile>") -> CostProfile:
    """Validate the text of a profile (see :func:`load_profile`)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{path}: not valid TOML: {exc}") from None

    def err(msg: str) -> ConfigError:
        return ConfigError(f"{path}: {msg}")

    head = _table(doc, "profile", path)
    for key in ("name", "platform", "description"):
        if not isinstance(head.get(key), str) or not head[key].strip():
            raise err(f"[profile] {key}: missing (a non-empty string)")
    platform = head["platform"]
    if platform not in PLATFORMS:
        raise err(f"[profile] platform: {platform!r} is not one of {', '.join(PLATFORMS)}")
    unknown_top = set(doc) - {"profile", "defaults", *_SECTIONS}
    if unknown_top:
        raise err(f"unknown section [{sorted(unknown_top)[0]}]")

    defaults = _parse_defaults(_table(doc, "defaults", path), path)

    params: dict[str, Param] = {}
    for section, specs in _schema(platform).items():
        table = _table(doc, section, path)
        for name in table:
            if name not in specs:
                other = [p for p in PLATFORMS if p != platform and name in _schema(p)[section]]
                why = f" (a {other[0].upper()} cost; this is a {platform.upper()} profile)" if other else ""
                raise err(f"[{section}] {name}: unknown key{why}")
        for name, spec in specs.items():
            if name not in table:
                raise err(
                    f"[{section}] {name}: missing "
                    f'(expected {{ value, unit = "{_unit_hint(spec.dim, spec.per)}", source }})'
                )
            params[f"{section}.{name}"] = _parse_param(table[name], section, name, spec, path)
    return CostProfile(
        name=head["name"],
        platform=platform,
        description=head["description"],
        path=path,
        defaults=defaults,
        params=params,
    )


def _table(doc: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    t = doc.get(key)
    if t is None:
        raise ConfigError(f"{path}: [{key}]: missing section")
    if not isinstance(t, dict):
        raise ConfigError(f"{path}: [{key}]: must be a table")
    return t


def _parse_defaults(table: dict[str, Any], path: str) -> Defaults:
    values: dict[str, Any] = {}
    why: dict[str, str] = {}
    for key in ("vcpus", "host_mapping", "kernel", "firmware_accept"):
        entry = table.get(key)
        where = f"{path}: [defaults] {key}"
        if not isinstance(entry, dict) or "value" not in entry:
            raise ConfigError(f'{where}: missing (expected {{ value = ..., why = "..." }})')
        if not isinstance(entry.get("why"), str) or not entry["why"].strip():
            raise ConfigError(f"{where}: missing why (say why the calibration assumes it)")
        v = entry["value"]
        if key == "vcpus":
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}: must be a whole number >= 1, not {v!r}")
        elif key == "firmware_accept":
            if not isinstance(v, str) or not (v in ("below-4g", "all") or _FW_ACCEPT_RE.match(v)):
                raise ConfigError(f'{where}: must be "below-4g", "all" or a size like "512M", not {v!r}')
        elif v not in _DEFAULT_CHOICES[key]:
            raise ConfigError(f"{where}: must be one of {', '.join(_DEFAULT_CHOICES[key])}, not {v!r}")
        values[key] = v
        why[key] = entry["why"]
    extra = set(table) - set(values)
    if extra:
        raise ConfigError(f"{path}: [defaults] {sorted(extra)[0]}: unknown key")
    return Defaults(why=why, **values)


def _parse_param(entry: Any, section: str, name: str, spec: _Spec, path: str) -> Param:
    where = f"{path}: [{section}] {name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table {{ value, unit, source }}, not {entry!r}")
    extra = set(entry) - _PARAM_KEYS
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
        raise ConfigError(f'{where}: missing unit (expected like "{_unit_hint(spec.dim, spec.per)}")')
    scale = _unit_scale(unit, spec.dim, spec.per)
    if scale is None:
        raise ConfigError(
            f"{where}: unit {unit!r} is not of the right kind (expected like "
            f'"{_unit_hint(spec.dim, spec.per)}")'
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
    )


def _check_value(path: str, key: str, value: float, spec: _Spec, bounds: tuple[float, float] | None) -> None:
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
