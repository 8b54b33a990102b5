"""Cost profiles in a page: what each is, its defaults and why, every cost with its source."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .html import Cell, esc, facts, note, table


def _number(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def profile_section(entry: dict[str, Any], index: int) -> str:
    """One profile line of a results file (``{ref, sha256, profile: describe_profile(...)}``)."""
    p = entry["profile"]
    head = facts([
        ("platform", p["platform"]),
        ("description", p["description"]),
        ("file", p["path"]),
        ("SHA-256", entry.get("sha256") or "-"),
    ])
    defaults = table(
        ["default", "value", "why the calibration assumes it"],
        [[k, d["value"], d["why"]] for k, d in p["defaults"].items()],
        ident=f"profile-{index}-defaults",
    )
    params = table(
        ["cost", "value", "unit", "fitted", "source"],
        [[k, Cell(_number(q["value"])), q["unit"], "yes" if q["fit"] else "", q["source"]]
         for k, q in p["params"].items()],
        ident=f"profile-{index}-costs", numeric=[1],
    )
    ref = entry.get("ref") or p["name"]
    title = ref if ref == p["name"] else f"{ref} ({p['name']})"
    return f"<h3>{esc(title)}</h3>{head}{defaults}<p></p>{params}"


def profile_sections(entries: Iterable[dict[str, Any]], used: set[str] | None = None) -> str:
    """Every profile in ``entries`` (those whose digest is in ``used``, when given)."""
    picked = [e for e in entries if used is None or e.get("sha256") in used]
    if not picked:
        return note("The results hold no profile lines (they were written without them).")
    return "".join(profile_section(e, i) for i, e in enumerate(picked))
