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

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ...base.errors import ConfigError, FormatError
from ...base.fileio import open_input
from ...base.units import GiB
from .row_schema import problem

#: Largest results file read (a million runs of ~1.5 KiB each fit): past it, not ours.
RESULTS_LIMIT = 4 * GiB


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


def grid_digest(grid: dict[str, Any]) -> str:
    """A grid's identity as a results file records it: its dimensions, fixed values and
    exclusions (not its path or name: the same grid run from another folder is the same grid)."""
    canon = {k: grid.get(k) for k in ("dimensions", "fixed", "exclude")}
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_results(data: bytes, name: str | os.PathLike[str], out: Results) -> None:
    """Add the whole lines of ``data`` (a results file called ``name``) to ``out``; each line is
    checked against the schema, and :class:`FormatError` names the file and line of a bad one."""
    whole = data.rfind(b"\n") + 1  # a last line without newline was cut off mid-write
    for n, line in enumerate(data[:whole].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError):  # JSONDecodeError, NaN, a number of 5,000 digits
            raise FormatError(f"{name}: line {n} is not JSON: not a lazyaccept results file?") from None
        except RecursionError:
            raise FormatError(f"{name}: line {n}: nested too deeply: not a lazyaccept results file") from None
        bad = problem(obj)
        if bad:
            raise FormatError(f"{name}: line {n}: {bad}")
        out.add(obj)
    out.valid_bytes = whole


def read_results(paths: Iterable[str | os.PathLike[str]]) -> Results:
    """Every line of every file; :class:`FormatError` names the file and line of a bad one."""
    out = Results()
    for path in paths:
        with open_input(path) as f:
            parse_results(f.read(RESULTS_LIMIT, "results files"), path, out)
    return out


class ResultsWriter:
    """Appends lines to a results file, each batch flushed to the OS as it is written.

    The file is locked (``flock``, exclusive) from opening to closing, so two sweeps never append
    to one file: the second is refused.  A resumed sweep reads what the file holds through
    :meth:`existing`, under the lock, so nothing another sweep wrote meanwhile is run twice.
    """

    def __init__(self, path: str | os.PathLike[str], *, resume: bool = False) -> None:
        p = self.path = Path(path)
        try:
            # A new file is created exclusively (never clobber one); resuming opens it for update.
            flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if resume else os.O_CREAT | os.O_EXCL)
            fd = os.open(p, flags | os.O_NOFOLLOW, 0o666)
        except FileExistsError:
            raise ConfigError(f"{p}: exists; --resume continues it, or remove it") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}") from None
        self._fh: IO[bytes] = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise ConfigError(f"{p}: another sweep is writing to it (the file is locked); wait for it to "
                              "finish, then --resume") from None

    def existing(self) -> Results:
        """What the file holds, read under the lock; the file is cut back to its whole lines
        (a line a killed sweep left half-written goes) and appends go after them."""
        out = Results()
        self._fh.seek(0)
        data = self._fh.read(RESULTS_LIMIT + 1)
        if len(data) > RESULTS_LIMIT:
            raise FormatError(f"{self.path}: file is over the {RESULTS_LIMIT // GiB} GiB limit for results files")
        parse_results(data, self.path, out)
        self._fh.truncate(out.valid_bytes)
        self._fh.seek(out.valid_bytes)
        return out

    def write(self, objs: Iterable[dict[str, Any]]) -> None:
        # allow_nan=False: a row is only written if it can be read back.
        text = "".join(json.dumps(o, separators=(",", ":"), allow_nan=False) + "\n" for o in objs)
        self._fh.write(text.encode("utf-8"))
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
