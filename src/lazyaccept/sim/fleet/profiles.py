"""Profiles as a sweep carries them: the file's text, read once on the client.

Workers receive the text (a few KiB), not a path, so a remote Dask worker needs no copy of the
client's files; each worker process parses each profile once (:func:`parsed`) and keeps it.
The SHA-256 of the text identifies a profile in the results: a run made with an edited profile
is another run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...base.errors import FormatError
from ...base.fileio import read_input
from ..profile import PROFILE_LIMIT, CostProfile, parse_profile, profile_path


@dataclass(frozen=True)
class ProfileText:
    """A profile's file: how the grid named it, where it was, its text and digest."""

    ref: str
    path: str
    text: str
    sha256: str


def read_profile_text(ref: str) -> ProfileText:
    """The text of the profile ``ref`` names (a packaged name or a path)."""
    path = profile_path(ref)
    # The checks load_profile makes: a regular file (no FIFO to hang on, no /dev/zero), bounded.
    data = read_input(path, limit=PROFILE_LIMIT, what="profiles")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: cannot read profile: {exc}") from None
    return ProfileText(ref, str(path), text, hashlib.sha256(text.encode()).hexdigest())


#: Profiles parsed in this process, by digest: one parse per worker per profile.
_PARSED: dict[str, CostProfile] = {}


def parsed(profile: ProfileText) -> CostProfile:
    """The parsed profile, from this process's cache after the first call."""
    hit = _PARSED.get(profile.sha256)
    if hit is None:
        hit = _PARSED[profile.sha256] = parse_profile(profile.text, profile.path)
    return hit


def describe_profile(profile: CostProfile, sha256: str | None = None) -> dict[str, Any]:
    """A profile as JSON: what it is, its defaults with their reasons, every cost with its source."""
    defaults = profile.defaults
    return {
        "name": profile.name,
        "platform": profile.tee.value,
        "description": profile.description,
        "path": profile.path,
        "sha256": sha256,
        "defaults": {
            key: {"value": str(getattr(defaults, key)), "why": why} for key, why in profile.defaults_why.items()
        },
        "params": {
            p.key: {
                "value": p.value, "unit": p.unit, "source": p.source, "fit": p.fit,
                "bounds": list(p.bounds) if p.bounds else None, "note": p.note,
            }
            for p in profile.params.values()
        },
    }


def profile_entry(profile: CostProfile) -> dict[str, Any]:
    """A loaded profile as a results file's profile line holds it (digest of its file, if readable)."""
    try:
        sha: str | None = hashlib.sha256(Path(profile.path).read_text(encoding="utf-8").encode()).hexdigest()
    except (OSError, UnicodeDecodeError):
        sha = None
    return {"kind": "profile", "ref": profile.name, "sha256": sha, "profile": describe_profile(profile, sha)}
