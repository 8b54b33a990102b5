"""Profiles as a sweep carries them: the file's text, read once on the client.

Workers receive the text (a few KiB), not a path, so a remote Dask worker needs no copy of the
client's files; each worker process parses each profile once (:func:`parsed`) and keeps it.
The SHA-256 of the text identifies a profile in the results: a run made with an edited profile
is another run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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
