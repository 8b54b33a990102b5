"""How sure a prediction is: the fitted parameters' uncertainty carried to the times predicted.

``lazyaccept calibrate`` records, for each fitted value, its one-sigma uncertainty relative to
the value (from the Jacobian of the fit, and never below the 10% a rounded published figure
carries).  A prediction made with a profile is re-timed with each fitted parameter moved up by
its uncertainty (the fit works in log space, so by a factor ``exp(sigma)``); the changes, taken
as independent, add in quadrature (first-order propagation):
``sigma_t^2 = sum_i (t(p_i e^sigma_i) - t)^2``.  A range is then ``t - sigma_t`` to
``t + sigma_t``: about two chances in three that the host the profile describes gives a time in
it, as far as its fit can tell (the model's own errors on figures it was not fitted to are
apart: the README's validation table).

The record of a boot does not depend on costs, so the extra cost of a range is re-timing it
once per fitted parameter, never re-modelling it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from .profile import CostProfile


@dataclass(frozen=True)
class Range:
    """A prediction's one-sigma range (seconds, or whatever the prediction is in)."""

    low: float
    high: float

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def perturbed_profiles(profile: CostProfile) -> list[CostProfile]:
    """The profile once per fitted parameter with a recorded uncertainty, that parameter moved
    up by it (``value * exp(sigma)``); bounds do not apply: they bound the fit, not the truth."""
    out = []
    for key, sigma in profile.fitted_uncertainties().items():
        if sigma <= 0:
            continue
        p = profile.params[key]
        factor = math.exp(sigma)
        params = dict(profile.params)
        params[key] = replace(p, value=p.value * factor, si=p.si * factor)
        out.append(replace(profile, params=params))
    return out


def spread(value: float, moved: list[float]) -> Range:
    """The one-sigma range of ``value`` given its values with each parameter moved."""
    sigma = math.sqrt(sum((m - value) ** 2 for m in moved))
    return Range(max(0.0, value - sigma), value + sigma)


def predict_range(predict: Callable[[CostProfile], float], profile: CostProfile,
                  value: float | None = None) -> Range | None:
    """The range of ``predict(profile)`` (``value`` if already known); None when the profile
    records no uncertainty (nothing fitted, or fitted before uncertainties were recorded)."""
    others = perturbed_profiles(profile)
    if not others:
        return None
    base = predict(profile) if value is None else value
    return spread(base, [predict(p) for p in others])


def format_range(value: float, rng: Range | None, digits: int = 2, unit: str = " s") -> str:
    """``29.10 s (24.03-37.21)``: the value with its unit, then its one-sigma range."""
    if rng is None:
        return f"{value:.{digits}f}{unit}"
    return f"{value:.{digits}f}{unit} ({rng.low:.{digits}f}-{rng.high:.{digits}f})"
