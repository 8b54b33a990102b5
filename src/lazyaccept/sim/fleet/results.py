"""The results file: JSON lines, written as runs finish, read back to resume or to report.

Each line is one object with a ``kind``:

* ``"sweep"``: one per invocation of ``lazyaccept sweep``: the lazyaccept version, the grid
  (canonical values), the number of runs it has, and when it started;
* ``"profile"``: one per profile text a run used (written once per digest), with every cost
  and its source, so the file alone says what the numbers assumed;
* ``"run"``: one per run (schema: :mod:`lazyaccept.sim.fleet.worker`).

A sweep killed mid-line leaves a last line without its newline; reading ignores it and
resuming cuts it off before appending, so the file stays one object per line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ...base.errors import ConfigError, FormatError


@dataclass
class Results:
    """What one or more results files hold; runs by key (the first row of a key wins)."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    #: Bytes of whole lines read from the last file (where a resumed sweep appends).
    valid_bytes: int = 0

    def add(self, obj: dict[str, Any]) -> None:
        kind = obj.get("kind")
        if kind == "run":
            self.runs.setdefault(obj["key"], obj)
        elif kind == "profile":
            self.profiles.setdefault(obj["sha256"], obj)
        elif kind == "sweep":
            self.sweeps.append(obj)


def read_results(paths: Iterable[str | os.PathLike[str]]) -> Results:
    """Every line of every file; :class:`FormatError` names the file and line of a bad one."""
    out = Results()
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FormatError(f"{p}: no such results file")
        data = p.read_bytes()
        whole = data.rfind(b"\n") + 1  # a last line without newline was cut off mid-write
        for n, line in enumerate(data[:whole].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise FormatError(f"{p}: line {n} is not JSON: not a lazyaccept results file?") from None
            if not isinstance(obj, dict) or obj.get("kind") not in ("run", "profile", "sweep"):
                raise FormatError(f"{p}: line {n} is not a sweep, profile or run object")
            if obj["kind"] == "run" and not isinstance(obj.get("key"), str):
                raise FormatError(f"{p}: line {n}: a run without a key")
            out.add(obj)
        out.valid_bytes = whole
    return out


class ResultsWriter:
    """Appends lines to a results file, each batch flushed to the OS as it is written."""

    def __init__(self, path: str | os.PathLike[str], *, truncate_to: int | None = None) -> None:
        p = Path(path)
        try:
            if truncate_to is None:
                self._fh: IO[str] = p.open("x", encoding="utf-8")  # a new file: never clobber one
            else:
                with p.open("r+b") as raw:
                    raw.truncate(truncate_to)  # drop a line a killed sweep left half-written
                self._fh = p.open("a", encoding="utf-8")
        except FileExistsError:
            raise ConfigError(f"{p}: exists; --resume continues it, or remove it") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}") from None

    def write(self, objs: Iterable[dict[str, Any]]) -> None:
        self._fh.write("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs))
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
