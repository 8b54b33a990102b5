"""The rich console every command prints through, and the rules for what may be printed.

Text read from files (kernel logs, /proc files, firmware tables) is data, never formatting:
:func:`safe` removes terminal control sequences from it and escapes rich markup, so a log line
such as ``Linux version [/]...`` or an escape sequence that would retitle the terminal is shown
as the text it is.  JSON output goes through :func:`json_text`, which refuses the ``Infinity``
and ``NaN`` that :func:`json.dumps` would otherwise write (they are not JSON, RFC 8259 §6).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from ..base.errors import OutputError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: Width used when output goes to a pipe or a file, where rich would assume 80 columns and
#: squeeze the tables.  A wider ``COLUMNS`` in the environment widens it (the docs' examples
#: are run at 200 columns that way, whoever runs them); a narrower one does not squeeze it.
PIPE_WIDTH = 132


def pipe_width() -> int:
    """:data:`PIPE_WIDTH`, or ``COLUMNS`` when that is wider (and sane)."""
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and PIPE_WIDTH < int(columns) <= 1000 else PIPE_WIDTH


def make_console(stderr: bool = False) -> Console:
    """A console that keeps tables readable on a terminal and in pipes alike.

    Emoji codes are off: ``:name:`` in a file's text must stay as typed.  ``stderr``: print to
    standard error (when standard output carries something else, an image say).
    """
    from rich.console import Console  # rich is imported by the commands that print through it

    c = Console(highlight=False, emoji=False, stderr=stderr)
    return c if c.is_terminal else Console(highlight=False, emoji=False, width=pipe_width(), stderr=stderr)


def wrote(path: object, what: str = "") -> str:
    """The one line every command prints for a file it wrote: ``wrote PATH`` (``(WHAT)`` after it
    says what the file holds, when that helps)."""
    return f"wrote {plain(path)}" + (f" ({what})" if what else "")


def table(*args: Any, **kwargs: Any) -> Table:
    """A rich table (rich is imported only for output as tables, not for ``--json``)."""
    from rich.table import Table

    return Table(*args, **kwargs)


class Printer(Protocol):
    """Where a view prints: a :class:`~rich.console.Console`, or a command's wrapper of one."""

    def print(self, what: object, /) -> None: ...


# -- text from files --------------------------------------------------------------------------

# ECMA-48 control sequences: CSI (ESC [ or the 8-bit 0x9b, parameters, intermediates, final
# byte), OSC / DCS / PM / APC / SOS strings up to their terminator, and two-byte ESC sequences.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# What is left of C0, DEL and C1, and the Unicode bidirectional overrides and isolates, which
# reorder what a terminal shows ("Trojan Source", CVE-2021-42574).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(value: object) -> str:
    """``value`` as text a terminal shows as it is: escape sequences and control characters
    removed, tabs and line ends turned into spaces."""
    text = _ESCAPES.sub("", str(value))
    return _CONTROLS.sub("", text.replace("\t", " ").replace("\n", " ").replace("\r", " "))


def safe(value: object) -> str:
    """``value`` ready to be put into rich markup: :func:`plain`, then markup escaped."""
    from rich.markup import escape

    return escape(plain(value))


# -- JSON -------------------------------------------------------------------------------------


def json_text(doc: object) -> str:
    """``doc`` as indented JSON; a non-finite number (or an integer too long to write) is an
    :class:`OutputError` rather than invalid JSON."""
    try:
        return json.dumps(doc, indent=2, allow_nan=False)
    except ValueError as exc:
        raise OutputError(f"cannot write JSON: {exc}") from None


# -- standard output that went away -----------------------------------------------------------


class OutputClosed(BaseException):
    """Whoever read standard output has gone (EPIPE, e.g. ``lazyaccept ... | head -1``).

    Not an error of ours and nothing to report.  A BaseException so that no ``except OSError``
    on the way turns it into an error message.
    """


class _PipeFile(io.FileIO):
    """Standard output's descriptor, with EPIPE raised as :class:`OutputClosed`."""

    def write(self, b: object) -> int | None:  # type: ignore[override]
        try:
            return super().write(b)  # type: ignore[arg-type]
        except BrokenPipeError:
            raise OutputClosed from None


def _silence(fd: int) -> None:
    """Point ``fd`` at /dev/null, so that flushing what is still buffered (now or at exit)
    succeeds quietly: the recipe of Python's signal module documentation, "Note on SIGPIPE"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


@contextmanager
def stdout_guard() -> Iterator[None]:
    """Run the body with ``sys.stdout`` raising :class:`OutputClosed` when its reader has gone.

    When that happens, standard output is pointed at /dev/null before the exception leaves, so
    the caller only has to exit.  Without a real descriptor (output captured by a test) the
    body runs unchanged.
    """
    old = sys.stdout
    try:
        fd = old.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    old.flush()
    raw = _PipeFile(fd, "w", closefd=False)
    new = io.TextIOWrapper(io.BufferedWriter(raw), encoding=old.encoding, errors=old.errors,
                           line_buffering=old.line_buffering)
    sys.stdout = new
    try:
        try:
            yield
        finally:
            sys.stdout = old
            new.flush()
    except OutputClosed:
        _silence(fd)
        raise
