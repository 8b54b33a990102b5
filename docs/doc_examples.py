"""The command examples of README.md and docs/*.md: found, run, compared and rewritten.

An example is a fenced ``text`` or ``console`` block whose first line is ``$ lazyaccept ...``.
Each ``$ `` line is a step and the lines under it, up to the next step, are what it prints
(standard output and standard error, as a terminal shows them).  Steps run in order in one
scratch folder (where ``tests``, ``examples`` and ``profiles`` of the repository are linked, so
the docs' relative paths work), in this process, with standard output a pipe and ``COLUMNS``
fixed (:data:`COLUMNS`): the width of tables does not depend on who runs them.  A step may end
in ``| head -N`` (the first N lines: how a long report is shortened, reproducibly).  Steps
other than ``lazyaccept``: ``echo $?`` (the last exit status) and ``cat FILE``.

A line of the form ``... (what is left out) ...`` (indented or not) stands for the lines the
docs leave out.  The line before it and the line after it anchor it: each is found in the
output by its beginning (up to its first digit, at most :data:`ANCHOR_CHARS` characters), so
a left-out stretch follows the code as the code changes; everything else must be equal.

A block whose info string says ``unchecked`` (```` ```console unchecked: why ````) shows a session
that cannot be replayed (this machine's own status, a guest tree rewritten while it is watched)
and is left alone.

Used by ``tests/test_docs_drift.py`` (the docs must show what the code prints) and by
``docs/regenerate.py`` (rewrite them from the code).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Terminal width the examples are run at.
COLUMNS = 200
#: Repository folders the examples refer to by relative path.
LINKED = ("tests", "examples", "profiles")

#: How much of an anchor line's beginning is matched.
ANCHOR_CHARS = 16
_ELISION = re.compile(r"^\s*\.\.\. \(.*\) \.\.\.$")
_FENCE = re.compile(r"^```(text|console)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass
class Step:
    command: str
    expected: str


@dataclass
class Example:
    path: Path
    line: int
    #: Character offsets of the block's body (between the fences) in the file.
    start: int
    end: int
    steps: list[Step]

    @property
    def ident(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def examples(paths: list[Path] | None = None) -> list[Example]:
    """Every checked example of ``paths`` (default: README.md and docs/*.md)."""
    out = []
    for path in paths or doc_files():
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            body, info = m[3], m[2]
            if not body.startswith("$ lazyaccept") or "unchecked" in info:
                continue
            out.append(Example(path, text.count("\n", 0, m.start()) + 1, m.start(3), m.end(3), _steps(body)))
    return out


def _steps(body: str) -> list[Step]:
    steps: list[Step] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append(Step(line[2:], ""))
        else:
            steps[-1].expected += line + "\n"
    for s in steps:
        s.expected = normalise(s.expected)
    return steps


def normalise(text: str) -> str:
    """Trailing spaces of each line and blank lines at the end dropped: what a reader cannot see."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def _anchor(line: str) -> str:
    head = re.match(r"[^\d]*", line)
    return (head[0] if head else "")[:ANCHOR_CHARS] or line


def _find(lines: list[str], start: int, anchor: str) -> int | None:
    return next((i for i in range(start, len(lines)) if lines[i].startswith(anchor)), None)


def merged(expected: str, actual: str) -> str | None:
    """``actual`` with the stretches ``expected`` leaves out (``... (why) ...`` lines) left out
    again; None when an anchor is not found (the block needs a hand edit).  The output matches
    the docs exactly when ``merged(expected, actual) == expected``."""
    exp, act = expected.splitlines(), actual.splitlines()
    if not any(_ELISION.match(x) for x in exp):
        return actual
    out: list[str] = []
    pos = 0
    for i, line in enumerate(exp):
        if not _ELISION.match(line):
            continue
        before = [x for x in exp[:i] if not _ELISION.match(x)]
        after = next((x for x in exp[i + 1:] if not _ELISION.match(x)), None)
        if before:
            end = _find(act, pos, _anchor(exp[i - 1]))
            if end is None:
                return None
            out += act[pos:end + 1]
            pos = end + 1
        if after is None:
            return "\n".join([*out, line])
        resume = _find(act, pos, _anchor(after))
        if resume is None:
            return None
        out.append(line)
        pos = resume
    return "\n".join(out + act[pos:])


def scratch(folder: Path) -> Path:
    """``folder`` with the repository's folders the examples name linked into it."""
    for name in LINKED:
        link = folder / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)
    return folder


@dataclass
class Ran:
    output: str
    code: int
    seconds: float


def run_step(command: str, cwd: Path, last_code: int) -> Ran:
    """One step in ``cwd``: its output (stdout and stderr in the order written) and exit status."""
    command, _, pipe = command.partition(" | ")
    if pipe:
        head = re.fullmatch(r"head -(?:n )?(\d+)", pipe.strip())
        if head is None:
            raise ValueError(f"cannot replay {pipe!r}: the one pipe understood is head -N")
        ran = run_step(command, cwd, last_code)
        ran.output = "\n".join(ran.output.splitlines()[: int(head[1])])
        return ran
    argv = shlex.split(command)
    if argv == ["echo", "$?"]:
        return Ran(str(last_code), last_code, 0.0)
    if argv[0] == "cat" and len(argv) == 2:
        return Ran(normalise((cwd / argv[1]).read_text()), 0, 0.0)
    if argv[0] != "lazyaccept":
        raise ValueError(f"cannot replay {command!r}: only lazyaccept, echo $? and cat FILE")
    from lazyaccept.cli import main

    raw = io.BytesIO()
    both = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    old_cwd, old_columns = Path.cwd(), os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(COLUMNS)
    code: object = 0
    began = time.perf_counter()
    try:
        os.chdir(cwd)
        with redirect_stdout(both), redirect_stderr(both):
            try:
                main(argv[1:])
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(old_cwd)
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns
    both.flush()
    status = code if isinstance(code, int) else (0 if code is None else 1)
    return Ran(normalise(raw.getvalue().decode("utf-8", errors="replace")), status, time.perf_counter() - began)


def run_example(example: Example, cwd: Path) -> list[Ran]:
    """Every step of ``example``, in order, in ``cwd``."""
    out: list[Ran] = []
    for step in example.steps:
        out.append(run_step(step.command, cwd, out[-1].code if out else 0))
    return out


def drift(example: Example, ran: list[Ran]) -> list[str]:
    """Where what ``example`` shows differs from what its steps printed: a unified diff per step."""
    import difflib

    out = []
    for step, r in zip(example.steps, ran, strict=True):
        now = merged(step.expected, r.output)
        if now != step.expected:
            diff = difflib.unified_diff(step.expected.splitlines(), (now or r.output).splitlines(), "docs", "code",
                                        lineterm="", n=1)
            out.append(f"$ {step.command}\n" + "\n".join(diff))
    return out


def rendered(example: Example, ran: list[Ran]) -> str:
    """The block's new body: each step and what it printed (left-out stretches kept out)."""
    parts = []
    for step, r in zip(example.steps, ran, strict=True):
        now = merged(step.expected, r.output)
        if now is None:
            raise ValueError(f"{example.ident}: $ {step.command}: a left-out stretch lost its anchors; edit by hand")
        parts.append(f"$ {step.command}\n" + (now + "\n" if now else ""))
    return "".join(parts)
