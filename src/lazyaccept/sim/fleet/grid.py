"""A sweep grid: values per dimension, fixed values, exclusions; its runs are the cross product.

The file (TOML)::

    [sweep]                      # optional
    name = "fleet sizing"

    [dimensions]                 # a list per dimension, or a range
    memory = { from = "1G", to = "256G", times = 2 }
    vcpus = [1, 4, 16, 64]
    profile = ["tdx", "snp"]
    policy = ["lazy", "eager"]

    [fixed]                      # one value each, the same in every run
    host_mapping = "4k"

    [[exclude]]                  # a run matching every key of one table is left out
    profile = "snp"
    vcpus = [16, 64]             # a list matches any of its values

Ranges, for whole numbers and sizes: ``{ from, to }`` (step 1), ``{ from, to, step }``,
``{ from, to, times }`` (multiply by ``times`` while <= ``to``), ``{ from, to, count }``
(``count`` values, ``spacing = "log"`` (default) or ``"linear"``; sizes rounded to whole MiB).
A dimension given nowhere takes the profile's default.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...base.errors import ConfigError, FormatError
from ...base.fileio import read_input
from ...base.units import MiB
from .dimensions import DEFAULT_PROFILE, SPECS, Dimension, Value, dimension, normalize

#: More runs than this is a typo in a range, not a fleet (and would not fit in memory as points).
MAX_RUNS = 1_000_000
_RANGE_KEYS = {"from", "to", "step", "times", "count", "spacing"}
_TOP_KEYS = {"sweep", "dimensions", "fixed", "exclude"}


@dataclass(frozen=True)
class Grid:
    """A parsed grid; dimensions in file order, every value canonical."""

    path: str
    name: str
    dimensions: tuple[tuple[Dimension, tuple[Value, ...]], ...]
    fixed: tuple[tuple[Dimension, Value], ...]
    #: Each exclusion: (dimension, values any of which match) pairs, all of which must match.
    exclude: tuple[tuple[tuple[Dimension, tuple[Value, ...]], ...], ...]

    def points(self) -> Iterator[dict[str, Value]]:
        """Every run of the grid, in cross-product order, fixed values included."""
        names = [d.value for d, _ in self.dimensions]
        fixed = {d.value: v for d, v in self.fixed}
        for combo in itertools.product(*(values for _, values in self.dimensions)):
            point = dict(zip(names, combo, strict=True))
            if not any(all(point[d.value] in vs for d, vs in ex) for ex in self.exclude):
                yield point | fixed

    def as_dict(self) -> dict[str, Any]:
        """The grid as JSON (canonical values), as the results file records it."""
        return {
            "path": self.path,
            "name": self.name,
            "dimensions": {d.value: list(vs) for d, vs in self.dimensions},
            "fixed": {d.value: v for d, v in self.fixed},
            "exclude": [{d.value: list(vs) for d, vs in ex} for ex in self.exclude],
        }


def load_grid(path: str) -> Grid:
    """Read and check a grid file; :class:`ConfigError` or :class:`FormatError` names the file."""
    data = read_input(path)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FormatError(f"{path}: not a TOML grid: {exc}") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise FormatError(f"{path}: not a TOML grid: {exc}") from None
    except RecursionError:
        raise FormatError(f"{path}: not a TOML grid: nested too deeply") from None
    try:
        return parse_grid(doc, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_grid(doc: dict[str, Any], path: str = "<grid>") -> Grid:
    """A grid from a parsed TOML document (see the module's docstring for the format)."""
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown section [{sorted(unknown)[0]}] (a grid has {', '.join(sorted(_TOP_KEYS))})")
    head = _table(doc, "sweep")
    extra = set(head) - {"name", "description"}
    if extra:
        raise ConfigError(f"[sweep] {sorted(extra)[0]}: unknown key")
    # Counted before any range is expanded: a typo such as times = 1.000000001 or a range of
    # fifty million vCPUs is refused at once instead of filling memory first.
    table = {dimension(name): spec for name, spec in _table(doc, "dimensions").items()}
    full = 1
    for dim, spec in table.items():
        full *= _count_values(dim, spec)
        if full > MAX_RUNS:
            raise ConfigError(f"the grid has more runs than the {MAX_RUNS:,} a sweep takes "
                              f"(counted up to dimensions.{dim.value})")
    dims = {dim: _values(dim, spec) for dim, spec in table.items()}
    fixed: dict[Dimension, Value] = {}
    for name, value in _table(doc, "fixed").items():
        dim = dimension(name)
        if dim in dims:
            raise ConfigError(f"{name} is both a dimension and fixed")
        if isinstance(value, list | dict):
            raise ConfigError(f"fixed {name}: one value, not {value!r} (several values make a dimension)")
        fixed[dim] = normalize(dim, value)
    if Dimension.MEMORY not in dims and Dimension.MEMORY not in fixed:
        raise ConfigError("a grid needs memory, as a dimension or a fixed value")
    if Dimension.PROFILE not in dims:
        fixed.setdefault(Dimension.PROFILE, DEFAULT_PROFILE)
    grid = Grid(
        path=path,
        name=str(head.get("name", "")),
        dimensions=tuple(dims.items()),
        fixed=tuple(fixed.items()),
        exclude=tuple(_exclusion(i, ex, dims) for i, ex in enumerate(_exclusions(doc))),
    )
    if next(grid.points(), None) is None:
        raise ConfigError("every run of the grid is excluded")
    return grid


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    t = doc.get(key, {})
    if not isinstance(t, dict):
        raise ConfigError(f"{key} must be a table [{key}]")
    return t


def _values(dim: Dimension, spec: Any) -> tuple[Value, ...]:
    if isinstance(spec, dict):
        values = _range(dim, spec)
    elif isinstance(spec, list):
        values = [normalize(dim, v) for v in spec]
    else:
        raise ConfigError(
            f"dimensions.{dim.value}: a list of values or a range {{ from, to, ... }}, not {spec!r} "
            "(a single value goes in [fixed])"
        )
    if not values:
        raise ConfigError(f"dimensions.{dim.value}: no values")
    seen: set[Value] = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"dimensions.{dim.value}: {v!r} is listed twice")
        seen.add(v)
    return tuple(values)


def _bounds(dim: Dimension, spec: dict[str, Any]) -> tuple[str, int, int, str]:
    """A range's place in the file, its ends and how it steps; every check that needs no expansion."""
    where = f"dimensions.{dim.value}"
    if not SPECS[dim].numeric:
        raise ConfigError(f"{where}: ranges are for numbers and sizes; list the values")
    extra = set(spec) - _RANGE_KEYS
    if extra or "from" not in spec or "to" not in spec:
        raise ConfigError(f"{where}: a range is {{ from, to }} with step, times or count, not {spec!r}")
    lo, hi = int(normalize(dim, spec["from"])), int(normalize(dim, spec["to"]))
    if not lo <= hi:
        raise ConfigError(f"{where}: from must not be above to")
    ways = [k for k in ("step", "times", "count") if k in spec]
    if len(ways) > 1:
        raise ConfigError(f"{where}: give one of step, times, count, not {' and '.join(ways)}")
    way = ways[0] if ways else "step"
    if way == "times":
        factor = spec["times"]
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not (math.isfinite(factor)
                                                                                    and factor > 1):
            raise ConfigError(f"{where}: times must be a finite number above 1, not {factor!r}")
    if way == "count":
        count = spec["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 2:
            raise ConfigError(f"{where}: count must be a whole number >= 2, not {count!r}")
        spacing = spec.get("spacing", "log")
        if spacing not in ("log", "linear"):
            raise ConfigError(f'{where}: spacing must be "log" or "linear", not {spacing!r}')
    if lo <= 0 and (way == "times" or (way == "count" and spec.get("spacing", "log") == "log")):
        # Multiplying from zero never gets anywhere; a log scale has no zero.
        raise ConfigError(f"{where}: a range by times or log spacing must start above 0")
    return where, lo, hi, way


def _count_values(dim: Dimension, spec: Any) -> int:
    """How many values a dimension has, without expanding a range (an upper bound for ``times``)."""
    if not isinstance(spec, dict):
        return len(spec) if isinstance(spec, list) else 1
    where, lo, hi, way = _bounds(dim, spec)
    if way == "step":
        step = int(normalize(dim, spec["step"])) if "step" in spec else 1
        if step <= 0:
            raise ConfigError(f"{where}: step must be positive")
        return (hi - lo) // step + 1
    if way == "times":
        return math.floor(math.log(hi / lo) / math.log(spec["times"]) + 1e-9) + 1
    return int(spec["count"])


def _range(dim: Dimension, spec: dict[str, Any]) -> list[Value]:
    where, lo, hi, way = _bounds(dim, spec)
    if way == "step":
        step = int(normalize(dim, spec["step"])) if "step" in spec else 1
        return list(range(lo, hi + 1, step))
    if way == "times":
        factor = spec["times"]
        out, x = [], float(lo)
        while x <= hi * (1 + 1e-12):
            out.append(_round(dim, x))
            x *= factor
        return out
    count = spec["count"]
    if spec.get("spacing", "log") == "log":
        xs = [lo * (hi / lo) ** (i / (count - 1)) for i in range(count)]
    else:
        xs = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    return [_round(dim, x) for x in xs]


def _round(dim: Dimension, x: float) -> int:
    # Sizes land on whole MiB (a guest of 1.07 GiB is fine, of 1.07 GiB + 37 bytes is not).
    unit = MiB if dim in (Dimension.MEMORY, Dimension.SHELL_FOOTPRINT) else 1
    return max(unit, round(x / unit) * unit)


def _exclusions(doc: dict[str, Any]) -> list[dict[str, Any]]:
    ex = doc.get("exclude", [])
    if not isinstance(ex, list) or not all(isinstance(e, dict) for e in ex):
        raise ConfigError("exclude must be a list of tables [[exclude]]")
    return ex


def _exclusion(
    index: int, table: dict[str, Any], dims: dict[Dimension, tuple[Value, ...]]
) -> tuple[tuple[Dimension, tuple[Value, ...]], ...]:
    if not table:
        raise ConfigError(f"exclude #{index + 1} is empty (it would exclude every run)")
    out = []
    for name, value in table.items():
        dim = dimension(name)
        if dim not in dims:
            raise ConfigError(f"exclude #{index + 1} names {name}, which is not a dimension of the grid")
        values = tuple(normalize(dim, v) for v in (value if isinstance(value, list) else [value]))
        unknown = [v for v in values if v not in dims[dim]]
        if unknown:
            # A value the grid does not have excludes nothing: most likely a typo.
            raise ConfigError(f"exclude #{index + 1}: {name} {unknown[0]!r} is not a value of the grid")
        out.append((dim, values))
    return tuple(out)
