"""Writing a matplotlib figure: the image format by the file's suffix, the bytes to a file or
to standard output."""

from __future__ import annotations

import io
from pathlib import PurePath

from ..base.errors import ConfigError
from ..base.fileio import STDOUT

#: Image formats by file suffix; standard output (``-``) gets PNG.
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(path: str) -> str:
    """The image format a plot path asks for, by its suffix; ConfigError for any other."""
    if path == STDOUT:
        return "png"
    suffix = PurePath(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        named = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ConfigError(f"{path}: a plot is written as PNG, SVG or PDF by its suffix (.png, .svg, .pdf); "
                          f"this name has {named}")
    return PLOT_FORMATS[suffix]


def figure_bytes(fig: object, path: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    fmt = plot_format(path)
    # Fixed metadata: the same plot gives the same bytes (no creation date in SVG or PDF).
    meta = {"Date": None} if fmt in ("svg", "pdf") else {}
    fig.savefig(buf, format=fmt, metadata=meta, **kw)  # type: ignore[attr-defined]
    return buf.getvalue()
