"""Statistics of a run's summary."""

from __future__ import annotations

import math


def wilson_interval(
    successes: float, trials: int, z: float = 1.959963984540054
) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (nan, nan) for 0 trials."""
    if trials <= 0:
        return (math.nan, math.nan)
    p = successes / trials
    denom = 1.0 + z * z / trials
    center = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # the exact ends at 0 and at trials, which rounding would leave a hair inside
    low = 0.0 if successes <= 0 else max(0.0, center - half)
    high = 1.0 if successes >= trials else min(1.0, center + half)
    return (low, high)
