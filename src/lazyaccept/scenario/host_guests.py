"""The guests of ``lazyaccept host``: ``--guest [Nx]SIZE[,KEY=VALUE...]`` texts, read.

``8x64G,vcpus=8,policy=lazy,kernel=6.6,workload=touch:32G,threads=4,start=5`` is eight identical
64 GiB guests.  Keys: ``vcpus``, ``policy``, ``kernel``, ``workload`` (repeatable), ``start``
(seconds, added to the guest's place in the ``--stagger``).  A policy's or a workload's own
arguments are comma separated too: a key the guest does not know continues the policy or
workload before it (``workload=touch:32G,threads=4``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..base.errors import ConfigError
from ..base.units import parse_size

#: Guests a host takes at most from all ``--guest`` options together (bounds a run's size).
MAX_GUESTS = 1024

_COUNT = re.compile(r"^\s*(\d+)\s*x\s*(.+)$", re.IGNORECASE)
_KEYS = ("vcpus", "policy", "kernel", "workload", "start")


@dataclass(frozen=True)
class GuestSpec:
    """One ``--guest`` option: ``count`` identical guests."""

    text: str
    count: int
    memory: int
    vcpus: int | None = None
    policy: str = "lazy"
    kernel: str | None = None
    workloads: tuple[str, ...] = ()
    start: float = 0.0

    @classmethod
    def parse(cls, text: str) -> GuestSpec:
        parts = text.split(",")
        head = parts[0].strip()
        count = 1
        m = _COUNT.match(head)
        if m:
            count, head = int(m.group(1)), m.group(2).strip()
            if not 1 <= count <= MAX_GUESTS:
                raise ConfigError(f"--guest {text!r}: the count must be 1 to {MAX_GUESTS}, not {count}")
        if not head:
            raise ConfigError(f"--guest {text!r}: starts with the guest's memory, e.g. 64G or 8x64G")
        try:
            memory = parse_size(head)
        except ConfigError as exc:
            raise ConfigError(f"--guest {text!r}: {exc}") from None
        values: dict[str, str] = {}
        workloads: list[str] = []
        last: str | None = None  # the policy or workload an unknown key continues
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            key = key.strip().lower()
            if key in _KEYS and eq:
                value = value.strip()
                if not value:
                    raise ConfigError(f"--guest {text!r}: {key}= needs a value")
                if key == "workload":
                    workloads.append(value)
                elif key in values:
                    raise ConfigError(f"--guest {text!r}: {key} given twice")
                else:
                    values[key] = value
                last = key if key in ("policy", "workload") else None
            elif last == "workload" and part.strip():
                workloads[-1] += "," + part.strip()
            elif last == "policy" and part.strip():
                values["policy"] += "," + part.strip()
            else:
                raise ConfigError(
                    f"--guest {text!r}: unknown part {part.strip()!r} (keys: {', '.join(_KEYS)})"
                )
        vcpus = None
        if "vcpus" in values:
            if not values["vcpus"].isdigit() or not 1 <= int(values["vcpus"]) <= 4096:
                raise ConfigError(f"--guest {text!r}: vcpus must be a whole number 1 to 4096, not {values['vcpus']!r}")
            vcpus = int(values["vcpus"])
        start = 0.0
        if "start" in values:
            try:
                start = float(values["start"])
            except ValueError:
                start = math.nan
            if not (math.isfinite(start) and start >= 0):
                raise ConfigError(f"--guest {text!r}: start must be seconds >= 0, not {values['start']!r}")
        return cls(text, count, memory, vcpus, values.get("policy", "lazy"), values.get("kernel"),
                   tuple(workloads), start)
