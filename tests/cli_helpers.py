"""Running the ``lazyaccept`` program in-process, as ``main()`` runs it: exit status, standard
output as bytes (an image may go there) and standard error as text."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from lazyaccept.cli import main


@dataclass
class Ran:
    code: int
    out_bytes: bytes
    err: str

    @property
    def out(self) -> str:
        return self.out_bytes.decode("utf-8", errors="replace")

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


def run_cli(*args: str) -> Ran:
    """``lazyaccept ARGS`` in this process."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    err = io.StringIO()
    code: object = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    out.flush()
    return Ran(code if isinstance(code, int) else (0 if code is None else 1), raw.getvalue(), err.getvalue())
