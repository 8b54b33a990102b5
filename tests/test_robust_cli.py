"""The entry point: a reader that goes away, Ctrl-C, and JSON that must stay JSON."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lazyaccept.base.errors import LazyAcceptError, OutputError
from lazyaccept.formats.kernel_text import format_e820_lines
from lazyaccept.presentation.console import json_text, plain, safe

SRC = str(Path(__file__).resolve().parent.parent / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_reader_that_goes_away_is_quiet(tmp_path: Path) -> None:
    # 4000 e820 rows print as a table of several hundred KiB, far more than a pipe holds (64 KiB
    # on Linux), so the program is still writing when the reader leaves.
    log = tmp_path / "e820.txt"
    entries = [(i * 0x200000, i * 0x200000 + 0x100000, "usable") for i in range(4000)]
    log.write_text("\n".join(format_e820_lines(entries)) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "lazyaccept", "inspect", str(log)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read()
    proc.stderr.close()
    code = proc.wait(timeout=60)
    assert first  # it did print
    assert err == b"", err.decode(errors="replace")
    assert code == 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by SIGPIPE


def test_ctrl_c_is_one_line_and_status_130(tmp_path: Path) -> None:
    # The command blocks in the middle of its work; a real SIGINT is sent once it says so.
    script = textwrap.dedent(
        """
        import signal, sys, time
        # A shell that starts a job in the background hands it SIGINT ignored, and Python then
        # leaves it ignored; a user at a terminal has Python's own handler, which this restores.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import lazyaccept.commands.inspect as cmd
        def slow(path, kind=None, boot=-1, **options):
            print("READY", file=sys.stderr, flush=True)
            time.sleep(60)
        cmd.inspect_file = slow
        from lazyaccept.cli import main
        main(["inspect", "whatever"])
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env(), text=True)
    assert proc.stderr is not None
    assert proc.stderr.readline().strip() == "READY"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert out == ""
    assert err.strip().splitlines() == ["lazyaccept: interrupted"]


def test_ctrl_c_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import lazyaccept.commands.inspect as cmd
    from lazyaccept.cli import main

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "inspect_file", interrupted)
    with pytest.raises(SystemExit) as info:
        main(["inspect", "x"])
    assert info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["lazyaccept: interrupted"]


def test_json_refuses_non_finite_numbers() -> None:
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(OutputError, match="cannot write JSON"):
            json_text({"files": [{"unaccepted_fraction": bad}]})
    assert issubclass(OutputError, LazyAcceptError)  # so the CLI prints one line, exit 2
    assert json.loads(json_text({"a": 1.5, "b": [None, "x"]})) == {"a": 1.5, "b": [None, "x"]}


def test_plain_and_safe_text() -> None:
    # Escape sequences: SGR colour, an OSC window title, cursor movement; a CR that would
    # overwrite the line; a bidi override.
    assert plain("\x1b[31mred\x1b[0m") == "red"
    assert plain("a\x1b]0;owned\x07b") == "ab"
    assert plain("x\x1b[2Ay\rz\x08") == "xy z"
    assert plain("abc\u202edef") == "abcdef"
    assert plain("tab\there") == "tab here"
    # Markup is escaped so rich prints the brackets.
    assert safe("Linux version [/]6.8") == "Linux version \\[/]6.8"
    assert safe("[bold]x") == "\\[bold]x"
