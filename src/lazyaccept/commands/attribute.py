"""``lazyaccept attribute``: a real (or dumped) boot's seconds by mechanism, beside the model's.

Exit status 0; 2 for bad input (a log without milestones or a memory size, a broken trace); 3
when the modelled guest fails.
"""

from __future__ import annotations

import click

from ..base.choices import AcceptPolicy
from ..base.errors import ConfigError, FormatError
from ..base.fileio import STDOUT, read_input
from ..base.units import parse_size
from ..formats.host_trace import parse_host_trace
from ..presentation.attribution_report import attribution_document, plot_attribution, print_attribution
from ..presentation.console import json_text, make_console
from ..presentation.like_report import like_document, print_like
from ..scenario.like import add_assumed
from ..sim.attribute import attribute
from ..sim.outcome import Failure, try_run
from ..sim.run import resolve
from .options import check_plot_file, check_stdout_once, guest_options, guest_profile, guest_request, like_options

#: Host traces are read up to this size (as inspect reads them; ~200 bytes per 100 ms interval: days).
TRACE_LIMIT = 256 << 20


@click.command("attribute")
@click.option("--guest-log", "guest_log", required=True, metavar="DMESG",
              help="The guest's kernel log (any format inspect reads; of several boots, the last).")
@click.option("--host-trace", "host_trace", default=None, metavar="TRACE",
              help="The host trace of the same boot (tools/lazyaccept-host.bt, or a boot --dump's host-trace.txt).")
@click.option("--memory", default=None, metavar="SIZE", help="Guest memory, when the log does not say.")
@click.option("--policy", type=click.Choice([p.value for p in AcceptPolicy], case_sensitive=False), default=None,
              help="accept_memory=, when the log does not say.")
@guest_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--plot", "plot_file", default=None, metavar="FILE",
              help="Draw the measured and modelled timelines one above the other (.png, .svg, .pdf; - for PNG).")
def attribute_cmd(guest_log: str, host_trace: str | None, memory: str | None, policy: str | None,
                  profile: str | None, as_json: bool, plot_file: str | None, **guest: object) -> None:
    """Attribute a boot's measured seconds to mechanisms and put the model's prediction beside each."""
    check_plot_file(plot_file)
    check_stdout_once(("--json", as_json), ("--plot -", plot_file == STDOUT))
    likeness = like_options(guest_log, guest, memory=memory, policy=policy)
    trace = None
    if host_trace is not None:
        text = read_input(host_trace, limit=TRACE_LIMIT, what="host traces").decode("utf-8", errors="replace")
        try:
            trace = parse_host_trace(text)
        except FormatError as exc:
            raise FormatError(f"{host_trace}: {exc}") from None
    if not likeness.log.milestones:
        raise ConfigError(f"{guest_log}: the log time-stamps none of the milestones (Linux version, Memory:, "
                          "smp: ..., Run /init): nothing to line up")
    memory, policy = likeness.values["memory"], likeness.values.get("policy")
    prof = guest_profile(profile, guest)
    request = guest_request(parse_size(memory), policy=policy or AcceptPolicy.LAZY.value, **guest)  # type: ignore[arg-type]
    config = resolve(request, prof)
    add_assumed(likeness, config)
    result = try_run(config, prof)
    if isinstance(result, Failure):
        from .boot import report_failure  # here: attribute's --help loads no other command

        report_failure(result, {"ok": False, "like": like_document(likeness, None)} if as_json else None)
        return
    if trace is not None and trace.platform is not None and trace.platform != config.tee.value:
        raise ConfigError(f"{host_trace}: a {trace.platform} host's trace, but the guest is {config.tee.value}")
    att = attribute(result, prof, likeness.log.milestones, trace)
    title = f"{config.tee.value.upper()} guest like {guest_log}, profile {prof.name}"
    if plot_file is not None:
        plot_attribution(att, plot_file, title)
    if as_json:
        click.echo(json_text({"ok": True, "like": like_document(likeness, result), **attribution_document(att)}))
        return
    console = make_console(stderr=plot_file == STDOUT)
    print_like(console, likeness)
    print_attribution(console, att, title)
    if plot_file is not None and plot_file != STDOUT:
        console.print(f"Plot written to {plot_file}", markup=False, highlight=False)
