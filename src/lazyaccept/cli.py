"""The ``lazyaccept`` command line: one program, one subcommand per job.

Exit status: 0 done; 2 bad input (every error the project raises on purpose becomes one line on
stderr); 3 the modelled guest failed (``lazyaccept: guest failed: ...``: a crash or an
out-of-memory the model predicts, a result rather than a mistake); 130 Ctrl-C; 141 closed pipe.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C while the program is still importing (about a second): the same one line and status
    130 as later, not a traceback out of whichever import it hit."""
    sys.stderr.write("lazyaccept: interrupted\n")
    raise SystemExit(130)


# Installed before the heavy imports below; main() hands SIGINT back to Python's own handler.
_main_thread = threading.current_thread() is threading.main_thread()
if _main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import click  # noqa: E402

from . import __version__  # noqa: E402
from .base.errors import GuestFailure, LazyAcceptError  # noqa: E402

#: Exit status of a modelled guest failure (bad input is 2).
EXIT_GUEST_FAILED = 3


#: The subcommands: name -> (module under ``lazyaccept.commands``, attribute, the first sentence of its
#: help).  A command's module is imported only when that command runs or shows its own help, so
#: ``lazyaccept --help`` and each command pay only for what they use; the summaries here are what
#: the command list prints (``tests/test_startup.py`` checks them against the commands' own help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "boot": ("boot", "boot_cmd", "Simulate one boot of a confidential guest and report its acceptance."),
    "compare": ("compare", "compare_cmd",
                "Boot time with eager and with lazy acceptance, for each memory size and host profile; with "
                "--policy or --workload, each policy's boot time and run-time price (stalls, slowdown, IRQs off, "
                "time to fully accepted, host memory committed)."),
    "calibrate": ("calibrate", "calibrate_cmd",
                  "Fit each profile's free parameters to the calibration rows of its platform."),
    "inspect": ("inspect", "inspect_cmd",
                "Read firmware images (OVMF, IGVM), kernel logs, /proc/meminfo, /proc/vmstat and binary dumps."),
    "run": ("run", "run_cmd",
            "Boot a confidential guest, then run workloads and the stages to ready on the same clock: "
            "first-touch stalls, slowdown against an eagerly accepted guest, IRQs-off time, when memory is "
            "fully accepted, when the guest is ready, and the deadlines it meets or misses."),
    "advise": ("advise", "advise_cmd",
               "Does this guest meet its deadlines, and which change makes it? Moves every lever (policy, "
               "firmware accept, vCPUs, kconfig, patches, kernel, host mapping, THP, the timeout) from the "
               "configuration given and names the cheapest change that meets every deadline, and why."),
    "sweep": ("sweep", "sweep_cmd",
              "Run every configuration of one grid, GRID.toml, and stream the results to RESULTS.jsonl."),
    "report": ("report", "report_cmd",
               "Write one HTML page (inline SVG plots, no network) from the results of one or more sweeps."),
    "check": ("check", "check_cmd",
              "Show that the checks catch what broke real kernels: historic bugs as mutants, hostile hosts, "
              "explored interleavings."),
    "status": ("status", "status_cmd",
               "Is this a TDX or SEV-SNP guest, how does it accept memory, how much is still unaccepted?"),
    "drain": ("drain", "drain_cmd",
              "Accept this guest's unaccepted memory in the background, within a rate and CPU budget."),
    "size": ("size", "size_cmd",
             "Find the smallest guest that boots and leaves a workload its memory; show where the rest goes "
             "(MemTotal, MemAvailable), the host memory committed and the overhead an orchestrator needs."),
    "host": ("host", "host_cmd",
             "Boot many guests on one host, on one clock: each guest's boot and workloads together and alone, "
             "and the host memory they commit against its RAM."),
    "attribute": ("attribute", "attribute_cmd",
                  "Attribute a boot's measured seconds to mechanisms and put the model's prediction beside each."),
}


def _case_insensitive(command: click.Command) -> click.Command:
    """Option values are matched without regard to case (``--platform TDX``), as sizes already are."""
    for param in command.params:
        if isinstance(param.type, click.Choice):
            param.type.case_sensitive = False
    return command


class _Group(click.Group):
    """A click group that loads a subcommand's module only when it is used, turns project errors
    into one line on stderr and exit status 2, and a modelled guest failure into one line and exit
    status 3."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute, _ = COMMANDS[cmd_name]
            loaded = getattr(importlib.import_module(f".commands.{module}", __package__), attribute)
            self.add_command(_case_insensitive(loaded), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the summaries, without importing any command."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in self.commands:
                if self.commands[name].hidden:
                    continue
                summary = self.commands[name].get_short_help_str(limit)
            else:
                summary = click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on: KeyboardInterrupt, caught below
    from .presentation.console import OutputClosed, stdout_guard

    args = sys.argv[1:] if argv is None else argv
    _case_insensitive(cli)
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
