"""Reading artefacts and writing outputs safely.

Outputs are written to a temporary file in the target folder and renamed into place, so a
failure never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError, FormatError


def read_input(path: str | os.PathLike[str]) -> bytes:
    """Read a whole input file, turning OS errors into one clear :class:`FormatError`."""
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: no such file")
    if p.is_dir():
        raise FormatError(f"{p}: is a directory, not a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise FormatError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if not data:
        raise FormatError(f"{p}: file is empty")
    return data


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to ``path`` all at once (temporary file + rename)."""
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
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}") from None
        raise


def check_writable(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work is done, an output path that cannot be a file."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{p}: folder {parent} does not exist")
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a file")
