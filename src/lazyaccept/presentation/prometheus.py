"""``status --prometheus FILE``: node-exporter textfile-collector metrics of a live guest.

The text exposition format (Prometheus "Exposition formats": ``# HELP``, ``# TYPE``, then
``name{labels} value``); node_exporter's textfile collector reads ``*.prom`` files from its
``--collector.textfile.directory`` and wants them replaced atomically, which ``atomic_write`` does.
A metric the guest cannot give (no counters, fewer than two samples for a rate) is left out.
"""

from __future__ import annotations

from ..base.units import KiB
from ..scenario.live import Drain, GuestStatus, Sample

_PREFIX = "lazyaccept_"


def _metric(out: list[str], name: str, help_text: str, value: float, labels: str = "") -> None:
    out.append(f"# HELP {_PREFIX}{name} {help_text}")
    out.append(f"# TYPE {_PREFIX}{name} gauge")
    out.append(f"{_PREFIX}{name}{labels} {value:.17g}")


def prometheus_text(status: GuestStatus, samples: list[Sample], drain: Drain | None) -> str:
    """The metrics as text (see the module docstring)."""
    out: list[str] = []
    platform = status.platform or "none"
    _metric(out, "confidential_guest", "1 on a TDX or SEV-SNP guest, else 0.", 1 if status.confidential else 0,
            f'{{platform="{platform}"}}')
    last = next((s for s in reversed(samples) if s.unaccepted_bytes is not None), None)
    if last is not None:
        unaccepted = last.unaccepted_bytes or 0
        _metric(out, "unaccepted_bytes", "Guest memory not yet accepted (/proc/vmstat nr_unaccepted x 4 KiB).",
                unaccepted)
        # Every accepted page is backed on the host (TDX: AUGed; SNP: assigned in the RMP), so what the
        # kernel manages less what is unaccepted is a lower bound of what the guest has committed there.
        _metric(out, "host_committed_bytes",
                "Host memory the guest has committed, at least: MemTotal less unaccepted memory.",
                max(0, last.mem_total_kb * KiB - unaccepted))
    if drain is not None and drain.rate_bytes_per_s is not None:
        _metric(out, "drain_rate_bytes_per_second", "How fast unaccepted memory fell over the samples taken.",
                drain.rate_bytes_per_s)
        if drain.eta_s is not None:
            _metric(out, "drain_eta_seconds", "Time until no memory is unaccepted, at that rate.", drain.eta_s)
    return "\n".join(out) + "\n"
