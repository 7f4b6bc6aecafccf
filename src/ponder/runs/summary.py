"""Statistics of a run's summary, and the judge's grading cost beside it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ponder.core.types import Problem, Usage

if TYPE_CHECKING:
    from ponder.runs.store import RunStore

__all__ = ["GradingCost", "grading_cost", "wilson_interval"]


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


@dataclass(frozen=True)
class GradingCost:
    """What a model judge spent grading a run's records: its tokens, its seconds and
    how many problems' records it graded. Not part of the strategy's usage."""

    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    graded: int = 0

    def line(self) -> str:
        """The line ``ponder eval`` prints after its summary."""
        usage = self.usage
        return (
            f"grading: the judge spent {usage.total_tokens} tokens ({usage.completion_tokens} "
            f"generated) in {usage.calls} call(s), {self.seconds:.1f} s, on {self.graded} "
            "problems; not in the strategy's tokens above"
        )


def grading_cost(store: RunStore, problems: Sequence[Problem]) -> GradingCost:
    """What the judge spent grading these problems' records, summed from each
    record's ``meta["grading"]`` in the store (records that errored are left out)."""
    wanted = {p.id for p in problems}
    usage, seconds, graded = Usage(), 0.0, 0
    for r in store.records(include_errors=False):
        grading = r.meta.get("grading")
        if r.problem_id in wanted and isinstance(grading, dict):
            usage = usage + Usage.from_dict(grading.get("usage", {}))
            seconds += float(grading.get("seconds", 0.0))
            graded += 1
    return GradingCost(usage, seconds, graded)
