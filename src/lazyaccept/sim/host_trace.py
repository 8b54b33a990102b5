"""The host trace of a modelled boot: what ``tools/lazyaccept-host.bt`` would have printed.

Every recorded event is spread over the intervals its timed work item covers (evenly: the model
times items, not the exits inside them), and each phase's idle-vCPU timer exits over the phase:

* an acceptance: its exits (``stats.exits``) as EPT violations (TDX, exit reason 48) or, on SNP,
  its page-state-change VMGEXITs (0x403) and nested page faults (0x400); each page the host
  backed is a fault on guest memory and a ``TDH.MEM.PAGE.AUG`` (TDX) or an RMP update (SNP),
  timed with the profile's serialised host-path cost per page; each exit is one TD entry back;
* a private-to-shared conversion: one MapGPA exit (TDCALL, 77) per request, and on SNP one RMP
  update per page (``rmp_make_shared``);
* idle ticks: ``PhaseSpan.idle_exits`` as TDCALL(HLT) exits (77) on TDX, HLT (0x78) on SNP.

Time counts from the guest's power-on (the model's t = 0): a real trace starts when bpftrace
does, before QEMU runs the guest.
"""

from __future__ import annotations

import math

from ..base.choices import Tee
from ..base.record import AcceptEvent, ConvertEvent
from ..formats.host_trace import FAULT_EXIT, TICK_EXIT, Counter, HostTrace, Interval
from ..scenario.boot_record import BootRecord
from .profile import CostProfile
from .timeline import Timeline, timed_events

#: The script's interval.
INTERVAL_MS = 100
#: MapGPA is a TDVMCALL: exit reason TDCALL (77); on SNP a page-state change is a VMGEXIT.
_CONVERT_EXIT = {"tdx": 77, "snp": 0x403}
_VMGEXIT = 0x403
_MAP_KEY = "exit"


class _Bins:
    """Float amounts per interval and key, spread over time spans; whole numbers at the end."""

    def __init__(self, total_s: float, interval_s: float) -> None:
        self.dt = interval_s
        self.n = max(1, math.ceil(total_s / interval_s - 1e-9))
        self.bins: dict[object, list[float]] = {}

    def spread(self, key: object, amount: float, start: float, end: float) -> None:
        if not amount:
            return
        row = self.bins.setdefault(key, [0.0] * self.n)
        if end <= start:
            row[min(self.n - 1, int(start / self.dt))] += amount
            return
        k0, k1 = int(start / self.dt), min(self.n - 1, int(end / self.dt))
        for k in range(k0, k1 + 1):
            lo, hi = max(start, k * self.dt), min(end, (k + 1) * self.dt)
            if k == k1:
                hi = end  # the last bin takes what is left (end on the last boundary)
            if hi > lo:
                row[min(k, self.n - 1)] += amount * (hi - lo) / (end - start)

    def whole(self, key: object) -> list[int]:
        """The amounts as whole numbers whose running sums are the rounded running sums (the
        total is preserved to the rounding of the whole)."""
        out, cum, prev = [], 0.0, 0
        for x in self.bins.get(key, [0.0] * self.n):
            cum += x
            r = round(cum)
            out.append(r - prev)
            prev = r
        return out


def model_host_trace(record: BootRecord, timeline: Timeline, profile: CostProfile) -> HostTrace:
    """The host trace of a simulated boot (see the module docstring)."""
    tee = record.config.tee
    plat = tee.value
    bins = _Bins(timeline.total_s, INTERVAL_MS / 1000)
    fault_cost = {4096: profile.si("host.path_fault_4k"), 2 << 20: profile.si("host.path_fault_2m")}
    for phase, span in zip(record.phases, timeline.phases, strict=True):
        bins.spread((_MAP_KEY, TICK_EXIT[plat]), span.idle_exits, span.start, span.end)
        bins.spread(Counter.ENTER, span.idle_exits, span.start, span.end)
        for ev, s, e, _ in timed_events(phase, span):
            if isinstance(ev, AcceptEvent):
                st = ev.stats
                backed = st.host_backed_4k + st.host_backed_2m
                backed_ns = (st.host_backed_4k * fault_cost[4096] + st.host_backed_2m * fault_cost[2 << 20]) * 1e9
                if tee is Tee.TDX:
                    bins.spread((_MAP_KEY, FAULT_EXIT[plat]), st.exits, s, e)
                    bins.spread(Counter.FAULT, backed, s, e)
                    bins.spread(Counter.AUG, backed, s, e)
                    bins.spread(Counter.AUG_NS, backed_ns, s, e)
                else:
                    # On SNP ``exits`` counts the page-state-change VMGEXITs; nested page faults apart.
                    bins.spread((_MAP_KEY, _VMGEXIT), st.exits, s, e)
                    bins.spread((_MAP_KEY, FAULT_EXIT[plat]), st.npf_exits, s, e)
                    bins.spread(Counter.FAULT, st.npf_exits, s, e)
                    bins.spread(Counter.PSC, st.psc_requests, s, e)
                    bins.spread(Counter.RMPUPDATE, backed, s, e)
                    bins.spread(Counter.RMPUPDATE_NS, backed_ns, s, e)
                bins.spread(Counter.ENTER, st.exits + (st.npf_exits if tee is Tee.SNP else 0), s, e)
            elif isinstance(ev, ConvertEvent):
                bins.spread((_MAP_KEY, _CONVERT_EXIT[plat]), 1, s, e)
                bins.spread(Counter.ENTER, 1, s, e)
                if tee is Tee.SNP:
                    bins.spread(Counter.RMPUPDATE, ev.pages, s, e)
    intervals = [Interval(round((k + 1) * INTERVAL_MS * 1_000_000)) for k in range(bins.n)]
    for key in bins.bins:
        for interval, n in zip(intervals, bins.whole(key), strict=True):
            if not n:
                continue
            if isinstance(key, tuple):
                interval.exits[key[1]] = interval.exits.get(key[1], 0) + n
            else:
                interval.counters[key] = n  # type: ignore[index]
    return HostTrace(INTERVAL_MS, intervals, platform=plat)
