"""The rich console every command prints through."""

from __future__ import annotations

from rich.console import Console

#: Width used when output goes to a pipe or a file, where rich would assume 80 columns and
#: squeeze the tables.
PIPE_WIDTH = 132


def make_console() -> Console:
    """A console that keeps tables readable on a terminal and in pipes alike."""
    c = Console(highlight=False)
    return c if c.is_terminal else Console(highlight=False, width=PIPE_WIDTH)
