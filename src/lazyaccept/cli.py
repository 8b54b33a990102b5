"""The ``lazyaccept`` command line: one program, one subcommand per job.

Exit status: 0 done; 2 bad input (every error the project raises on purpose becomes one line on
stderr); 3 the modelled guest failed (``lazyaccept: guest failed: ...``: a crash or an
out-of-memory the model predicts, a result rather than a mistake); 130 Ctrl-C; 141 closed pipe.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .base.errors import GuestFailure, LazyAcceptError

#: Exit status of a modelled guest failure (bad input is 2).
EXIT_GUEST_FAILED = 3


class _Group(click.Group):
    """A click group that turns project errors into one line on stderr and exit status 2, and a
    modelled guest failure into one line and exit status 3."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GuestFailure as exc:
            click.echo(f"lazyaccept: guest failed: {' '.join(str(exc).split())}", err=True)
            sys.exit(EXIT_GUEST_FAILED)
        except LazyAcceptError as exc:
            click.echo(f"lazyaccept: error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            name = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"lazyaccept: error: {name}{exc.strerror or exc}", err=True)
            sys.exit(2)
        except MemoryError:
            click.echo("lazyaccept: error: out of memory", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lazyaccept")
def cli() -> None:
    """See, predict and check lazy memory acceptance in TDX and SEV-SNP guests."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors, too, are one line on stderr and exit status 2.

    Option values are matched without regard to case (``--platform TDX``, ``--kind DMESG``),
    as sizes already are.  A reader that goes away (``lazyaccept ... | head -1``) ends the
    program quietly with status 141, what a shell reports for a tool stopped by SIGPIPE
    (128 + 13); Ctrl-C ends it with one line and status 130 (128 + SIGINT).
    """
    from .presentation.console import OutputClosed, stdout_guard

    args = sys.argv[1:] if argv is None else argv
    stack: list[click.Command] = [cli]
    while stack:
        command = stack.pop()
        for param in command.params:
            if isinstance(param.type, click.Choice):
                param.type.case_sensitive = False
        if isinstance(command, click.Group):
            stack.extend(command.commands.values())
    try:
        with stdout_guard():
            if not args:
                # No command: the help text is the answer, not an error.
                click.echo(cli.get_help(click.Context(cli, info_name="lazyaccept")))
                sys.exit(0)
            try:
                code = cli.main(args=args, prog_name="lazyaccept", standalone_mode=False)
            except click.ClickException as exc:
                click.echo(f"lazyaccept: error: {exc.format_message()}", err=True)
                sys.exit(2)
            except click.exceptions.Abort as exc:
                # click turns Ctrl-C into Abort (after a blank line that closes the "^C" echo).
                if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
                    raise KeyboardInterrupt from None
                click.echo("lazyaccept: aborted", err=True)
                sys.exit(1)
            sys.exit(code if isinstance(code, int) else 0)
    except OutputClosed:
        sys.exit(141)
    except KeyboardInterrupt:
        click.echo("lazyaccept: interrupted", err=True)
        sys.exit(130)


# Subcommands register here, one line each.
from .commands.boot import boot_cmd  # noqa: E402

cli.add_command(boot_cmd)
from .commands.compare import compare_cmd  # noqa: E402

cli.add_command(compare_cmd)
from .commands.calibrate import calibrate_cmd  # noqa: E402

cli.add_command(calibrate_cmd)
from .commands.inspect import inspect_cmd  # noqa: E402

cli.add_command(inspect_cmd)
from .commands.run import run_cmd  # noqa: E402

cli.add_command(run_cmd)
from .commands.advise import advise_cmd  # noqa: E402

cli.add_command(advise_cmd)
from .commands.sweep import sweep_cmd  # noqa: E402

cli.add_command(sweep_cmd)
from .commands.report import report_cmd  # noqa: E402

cli.add_command(report_cmd)
from .commands.check import check_cmd  # noqa: E402

cli.add_command(check_cmd)
from .commands.status import status_cmd  # noqa: E402

cli.add_command(status_cmd)
from .commands.drain import drain_cmd  # noqa: E402

cli.add_command(drain_cmd)
from .commands.attribute import attribute_cmd  # noqa: E402

cli.add_command(attribute_cmd)
