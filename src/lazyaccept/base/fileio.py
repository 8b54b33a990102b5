"""Reading artefacts and writing outputs safely.

Inputs are opened once, checked to be regular files before a byte is read (a FIFO without a
writer would block for ever, ``/dev/zero`` never ends, a device may act on being opened), and
read only up to a size limit, so no input can hang the program or exhaust its memory.  Every
problem is one :class:`FormatError` naming the file.

Outputs are written to a temporary file in the target folder and renamed into place, so a
failure never leaves a half-written file behind; only regular files and new paths are
written (never through a symbolic link, never over a device node or a FIFO), and ``-`` means
standard output where a command allows it.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, FormatError
from .units import MiB, format_size

#: Limit of :func:`read_input` when the caller names none: firmware images (``--firmware``;
#: OVMF builds are 2 to 4 MiB, the TDX flash a few MiB) and small tables such as the
#: calibration CSV.
DEFAULT_LIMIT = 64 * MiB
#: How much :meth:`InputFile.head` reads to tell text from binary.
HEAD_SIZE = 64 * 1024
# Read size while the total is unknown (/proc and /sys files report st_size 0 or 4096).
_CHUNK = 1 * MiB

_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in _NOT_REGULAR:
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path: Path, what: str) -> FormatError:
    if what == "a directory":
        return FormatError(f"{path}: is a directory, not a file")
    via = ""
    if path.is_symlink():
        via = f" (a symbolic link to {os.path.realpath(path)})"
    return FormatError(f"{path}: is {what}{via}, not a regular file; save its content to a file first")


class InputFile:
    """An input opened for reading: checked regular, read at most once, front to back."""

    def __init__(self, path: Path, fd: int, st: os.stat_result) -> None:
        self.path = path
        self._fd = fd
        #: The size the file system reports (0 or a page for /proc and /sys files).
        self.size = st.st_size
        self._read: list[bytes] = []
        self._total = 0
        self._eof = False

    def _read_more(self, upto: int) -> None:
        """Read until ``upto`` bytes have been read in all, or the end of the file."""
        while not self._eof and self._total < upto:
            want = min(upto - self._total, max(self.size + 1 - self._total, _CHUNK))
            try:
                chunk = os.read(self._fd, want)
            except OSError as exc:
                raise FormatError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
            if not chunk:
                self._eof = True
                break
            self._read.append(chunk)
            self._total += len(chunk)

    def head(self, size: int = HEAD_SIZE) -> bytes:
        """The first ``size`` bytes (fewer for a shorter file); :meth:`read` goes on after them."""
        self._read_more(size)
        return b"".join(self._read)[:size]

    def read(self, limit: int = DEFAULT_LIMIT, what: str = "input files") -> bytes:
        """The whole file, refused when it is empty or larger than ``limit`` bytes.

        ``what`` names the kind of file the limit is for, in the plural ("firmware images").
        A file whose reported size is already too large is refused before anything more is read.
        """
        if self.size > limit:
            raise self._too_large(self.size, limit, what)
        if self._read and not self._eof and self.size > self._total:
            # Only the head was read: read the whole file again in one piece rather than join
            # the rest to the head (which would hold the file twice).
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._read, self._total = [], 0
        self._read_more(limit + 1)
        if self._total > limit:
            raise self._too_large(self._total, limit, what, more=not self._eof)
        data = self._read[0] if len(self._read) == 1 else b"".join(self._read)
        self._read = [data]
        if not data:
            raise FormatError(f"{self.path}: file is empty")
        return data

    def _too_large(self, size: int, limit: int, what: str, more: bool = False) -> FormatError:
        amount = f"more than {format_size(limit)}" if more else format_size(size)
        return FormatError(f"{self.path}: file is {amount}, over the {format_size(limit)} limit for {what}")


@contextmanager
def open_input(path: str | os.PathLike[str]) -> Iterator[InputFile]:
    """Open ``path`` for reading if it is a regular file; FormatError naming it otherwise.

    The file is checked with ``stat`` before it is opened, so no FIFO, device or socket is
    ever opened, and opened with ``O_NONBLOCK``, so a file swapped for a FIFO in between
    cannot block either (a second check on the open descriptor catches the swap).
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if p.is_symlink():
            raise FormatError(f"{p}: no such file (a broken symbolic link to {os.readlink(p)})") from None
        raise FormatError(f"{p}: no such file") from None
    except OSError as exc:
        raise FormatError(f"{p}: cannot read: {exc.strerror or exc}") from None
    what = _not_regular(st.st_mode)
    if what:
        raise _refuse(p, what)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise FormatError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        what = _not_regular(st.st_mode)
        if what:
            raise _refuse(p, what)
        yield InputFile(p, fd, st)
    finally:
        os.close(fd)


def read_input(path: str | os.PathLike[str], *, limit: int = DEFAULT_LIMIT, what: str = "input files") -> bytes:
    """Read a whole regular file of at most ``limit`` bytes; every problem is one :class:`FormatError`."""
    with open_input(path) as f:
        return f.read(limit, what)


#: The output path that means standard output.
STDOUT = "-"


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` all at once (temporary file + rename).

    Only a regular file or a new path is written: a symbolic link, a device, a FIFO or a
    directory is refused (the rename would replace the device node or the link itself with a
    regular file, which is never what was meant), here and again just before the rename.
    """
    p = Path(path)
    check_writable(p)
    payload = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        # mkstemp creates the file 0600; give it the mode an ordinary new file would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        check_writable(p)  # still a regular file or nothing: it may have changed meanwhile
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}") from None
        raise


def write_output(path: str | os.PathLike[str], data: bytes | str) -> None:
    """:func:`atomic_write`, or standard output for ``-``."""
    if str(path) == STDOUT:
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        if out is None:  # a text-only stream (captured output): text as it is
            sys.stdout.write(data if isinstance(data, str) else data.decode("latin-1"))
        else:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
        return
    atomic_write(path, data)


def check_writable(path: str | os.PathLike[str], *, stdout: bool = False) -> None:
    """Refuse, before any work is done, an output path that cannot be a file of ours: a folder
    that does not exist, a directory, a symbolic link, a device, a FIFO or a socket.
    ``-`` (standard output) passes when ``stdout`` allows it."""
    if stdout and str(path) == STDOUT:
        return
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{p}: folder {parent} does not exist")
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"{p}: is a symbolic link (to {os.readlink(p)}); write to a regular file or a new path")
    what = _not_regular(st.st_mode)
    if what == "a directory":
        raise ConfigError(f"{p}: is a directory, not a file")
    if what:
        raise ConfigError(f"{p}: is {what}, not a regular file; write to a regular file or a new path")
