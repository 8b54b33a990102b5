"""Named sets of deadlines: the stages and timeouts a stack applies to a starting guest.

Each is a TOML file shipped with the package (``lazyaccept/data/orchestrators/NAME.toml``):
``name``, ``description`` and one ``[[deadline]]`` table per timeout, with ``stage``,
``timeout_s``, ``key`` (the setting as the stack spells it), and ``source`` (the configuration
file and key in the public repository, or the documentation page) and/or ``assumed`` (what
could not be confirmed, and why); ``note`` is optional.  A value with neither is refused.  An
optional ``[overhead]`` table gives the memory the stack adds to a workload's limit to size the
VM (``memory_mib``, ``key``, ``source``), which ``lazyaccept size`` sets its answer beside.
Optional ``stages`` (``--stage`` texts) are what the stack runs from the shell to ready, with
``stages_source``; commands that run stages use them when given no ``--stage``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from ..base.errors import ConfigError
from ..base.units import MiB
from .deadlines import Deadline, check_timeout, parse_stage

_FOLDER = ("data", "orchestrators")
_KEYS = {"stage", "timeout_s", "key", "source", "assumed", "note"}


@dataclass(frozen=True)
class Overhead:
    """The memory a stack adds to a workload's limit to size its VM, as it ships it."""

    memory: int
    key: str
    source: str


@dataclass(frozen=True)
class Orchestrator:
    name: str
    description: str
    deadlines: tuple[Deadline, ...]
    overhead: Overhead | None = None
    #: The stages the stack runs from the shell to ready (``--stage`` texts), and their source.
    stages: tuple[str, ...] = ()
    stages_source: str = ""


def orchestrator_names() -> list[str]:
    """The names ``--orchestrator`` accepts, sorted."""
    folder = resources.files("lazyaccept").joinpath(*_FOLDER)
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_orchestrator(name: str) -> Orchestrator:
    """The packaged orchestrator ``name`` (any case); unknown names are refused with the known ones."""
    key = name.strip().lower()
    known = orchestrator_names()
    if key not in known:
        raise ConfigError(f"unknown orchestrator {name!r}: known are {', '.join(known)}")
    text = resources.files("lazyaccept").joinpath(*_FOLDER, f"{key}.toml").read_text()
    return parse_orchestrator(text, key)


def parse_orchestrator(text: str, where: str) -> Orchestrator:
    """An orchestrator file's text, checked: every deadline names a known stage, a finite
    timeout above 0, and its source or what was assumed."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"orchestrator {where}: {exc}") from None
    entries = doc.get("deadline")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"orchestrator {where}: no [[deadline]] tables")
    out = []
    for i, e in enumerate(entries, 1):
        at = f"orchestrator {where}, deadline {i}"
        unknown = set(e) - _KEYS
        if unknown:
            raise ConfigError(f"{at}: unknown keys {', '.join(sorted(unknown))}")
        if not e.get("source") and not e.get("assumed"):
            raise ConfigError(f"{at}: a value needs its source or what was assumed")
        timeout = e.get("timeout_s")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError(f"{at}: timeout_s must be a number of seconds")
        setting = str(e.get("key", e.get("stage"))).split("=")[0].split()[-1]
        out.append(Deadline(parse_stage(str(e.get("stage", ""))), check_timeout(at, float(timeout)),
                            f"{doc.get('name', where)} {setting}", e.get("source") or "assumed", e.get("assumed"),
                            e.get("note")))
    stages = doc.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(x, str) for x in stages):
        raise ConfigError(f"orchestrator {where}: stages must be a list of --stage texts")
    if stages and not doc.get("stages_source"):
        raise ConfigError(f"orchestrator {where}: its stages need stages_source")
    return Orchestrator(str(doc.get("name", where)), str(doc.get("description", "")), tuple(out),
                        _overhead(doc.get("overhead"), where), tuple(stages), str(doc.get("stages_source", "")))


def _overhead(table: object, where: str) -> Overhead | None:
    if table is None:
        return None
    if not isinstance(table, dict) or not isinstance(table.get("memory_mib"), int) or table["memory_mib"] < 0:
        raise ConfigError(f"orchestrator {where}: [overhead] needs memory_mib, a whole number of MiB")
    if not table.get("source"):
        raise ConfigError(f"orchestrator {where}: [overhead] needs its source")
    return Overhead(table["memory_mib"] * MiB, str(table.get("key", "memory_mib")), str(table["source"]))
