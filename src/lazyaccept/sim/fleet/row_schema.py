"""The schema of a results file's lines, checked once per line where the file is read.

A results file is user input as much as a grid is: it may be edited, truncated, merged from
other tools or written by another version.  The report and ``sweep --resume`` use every field of
a row, so each line is checked here, before any of them is used: the keys present, their types,
numbers finite, strings free of lone surrogates (which JSON allows and no page can encode).
:func:`problem` says in a few words what is wrong with a line, or returns ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

#: Nesting deeper than this is no row of ours (a row nests three levels).
MAX_DEPTH = 16


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _or_none(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _dict_of(check: Check) -> Check:
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and check(x) for k, x in v.items())


def _list_of(check: Check) -> Check:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _value(v: Any) -> bool:
    return isinstance(v, int | str | bool)


def _fields(spec: dict[str, Check]) -> Check:
    return lambda v: isinstance(v, dict) and all(k in v and check(v[k]) for k, check in spec.items())


_RUN: dict[str, Check] = {
    "key": lambda v: isinstance(v, str) and v != "",
    "point": _dict_of(_value),
    "profile": _fields({"ref": _str, "name": _str, "sha256": _or_none(_str)}),
    "config": _fields({
        "memory_bytes": lambda v: _int(v) and v > 0, "vcpus": lambda v: _int(v) and v > 0, "platform": _str,
        "policy": _str, "kernel": _str, "firmware_accept": _str, "host_mapping": _str,
    }),
    "ok": _bool,
    "failure": _or_none(_str),
    "failure_kind": _or_none(_str),
    "boot_s": _or_none(_num),
    "accept_s": _or_none(_num),
    "accept_wall_s": _or_none(_num),
    "accepted_bytes": _or_none(_int),
    "accepted_by": _or_none(_dict_of(_int)),
    "exits": _or_none(_int),
    "host_committed_bytes": _or_none(_int),
    "unaccepted_after_boot_bytes": _or_none(_int),
    "phases_s": _or_none(_dict_of(_num)),
}
#: What a successful run must have (a failed one has nulls there).
_OK_METRICS = ("boot_s", "accept_s", "accept_wall_s", "accepted_bytes", "host_committed_bytes",
               "unaccepted_after_boot_bytes")
_WORKLOAD: dict[str, Check] = {
    "name": _str,
    "slowdown": _or_none(_num),
    "stalls_s": _list_of(_num),
}
_SWEEP: dict[str, Check] = {
    "lazyaccept": _str,
    "grid": _fields({
        "path": _str, "name": _str, "dimensions": _dict_of(_list_of(_value)), "fixed": _dict_of(_value),
        "exclude": _list_of(_dict_of(_list_of(_value))),
    }),
}
_PROFILE: dict[str, Check] = {
    "sha256": _str,
    "ref": _or_none(_str),
    "profile": _fields({
        "name": _str, "platform": _str, "description": _str, "path": _str,
        "defaults": _dict_of(_fields({"value": _str, "why": _str})),
        "params": _dict_of(_fields({"value": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                                    "unit": _str, "source": _str, "fit": _bool})),
    }),
}


def _clean(v: Any, depth: int = 0) -> str | None:
    """What makes a JSON value unusable anywhere: too deep, a non-finite number, a lone surrogate."""
    if depth > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels"
    if isinstance(v, float) and not math.isfinite(v):
        return f"a non-finite number ({v})"
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return "a string with a lone surrogate (not text)"
        return None
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        bad = _clean(k, depth + 1) if isinstance(k, str) else None
        bad = bad or _clean(x, depth + 1)
        if bad:
            return bad
    return None


def _missing(obj: dict[str, Any], spec: dict[str, Check], what: str) -> str | None:
    for key, check in spec.items():
        if key not in obj:
            return f"a {what} without {key!r}"
        if not check(obj[key]):
            return f"a {what} whose {key!r} is not what a lazyaccept results file holds ({str(obj[key])[:60]!r})"
    return None


def problem(obj: Any) -> str | None:
    """What is wrong with one parsed line of a results file, in a few words; ``None`` if nothing."""
    if not isinstance(obj, dict) or obj.get("kind") not in ("run", "profile", "sweep"):
        return "not a sweep, profile or run object"
    bad = _clean(obj)
    if bad:
        return bad
    kind = obj["kind"]
    if kind == "sweep":
        return _missing(obj, _SWEEP, "sweep line")
    if kind == "profile":
        return _missing(obj, _PROFILE, "profile line")
    bad = _missing(obj, _RUN, "run")
    if bad:
        return bad
    if obj["ok"]:
        for key in _OK_METRICS:
            if obj[key] is None:
                return f"a successful run without {key!r}"
        workload = obj.get("workload")
        if workload is not None:
            if not isinstance(workload, dict):
                return "a run whose 'workload' is not an object"
            return _missing(workload, _WORKLOAD, "run's workload")
    elif not (isinstance(obj["failure"], str) and isinstance(obj["failure_kind"], str)):
        return "a failed run without its failure and failure_kind"
    return None
