"""A cost profile as JSON: what it is, its defaults with their reasons, every cost with its
source.  A results file's profile lines hold it, and so does every HTML page that names the
profile its figures came from."""

from __future__ import annotations

import hashlib
from typing import Any

from ..base.errors import LazyAcceptError
from ..base.fileio import read_input
from .profile import PROFILE_LIMIT, CostProfile


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
        sha: str | None = hashlib.sha256(read_input(profile.path, limit=PROFILE_LIMIT, what="profiles")).hexdigest()
    except LazyAcceptError:
        sha = None
    return {"kind": "profile", "ref": profile.name, "sha256": sha, "profile": describe_profile(profile, sha)}
