"""Difficulty signals the compute-optimal strategy reads from its pilot, and the bins
they fall in. The definitions (and the oracle pass rates the bins are fitted against)
are in ``ponder.analysis.difficulty``'s docstring."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ponder.core.errors import ConfigError
from ponder.core.types import Candidate

Signal = Literal["agreement", "score"]
SIGNALS: tuple[Signal, ...] = get_args(Signal)
DEFAULT_BINS = 5


def agreement(answers: Sequence[str | None]) -> float:
    """The share of the samples that give the most common answer (None agrees with
    nothing); 0 for no samples."""
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    if not answers:
        return 0.0
    return max(counts.values(), default=0) / len(answers)


def mean_score(scores: Sequence[float | None]) -> float:
    """The mean of the samples' scores; every sample must have one."""
    if not scores:
        raise ConfigError("the score signal needs at least one scored sample")
    if any(s is None for s in scores):
        raise ConfigError(
            "the score signal needs every pilot sample scored; a sample has no score "
            "(was the run a best_of_n or weighted_majority run?)"
        )
    return sum(float(s) for s in scores if s is not None) / len(scores)


def signal_value(signal: Signal, candidates: Sequence[Candidate]) -> float:
    """The signal of a pilot's candidates (all of them; pass the first k)."""
    if signal == "agreement":
        return agreement([c.answer for c in candidates])
    if signal == "score":
        return mean_score([c.score for c in candidates])
    raise ConfigError(f"unknown difficulty signal {signal!r}; choose from {', '.join(SIGNALS)}")


@dataclass(frozen=True)
class Bins:
    """Difficulty bins by thresholds; see the module docstring for the rule."""

    thresholds: tuple[float, ...]

    def __post_init__(self) -> None:
        if any(not math.isfinite(t) for t in self.thresholds):
            raise ConfigError(f"bin thresholds must be finite numbers, got {self.thresholds}")
        if any(a <= b for a, b in itertools.pairwise(self.thresholds)):
            raise ConfigError(
                f"bin thresholds must be strictly decreasing, got {list(self.thresholds)}"
            )

    @property
    def count(self) -> int:
        return len(self.thresholds) + 1

    def assign(self, value: float) -> int:
        """The bin (1 = easiest) of a signal or pass-rate value."""
        if math.isnan(value):
            raise ValueError("a difficulty value is NaN")
        return 1 + sum(value < t for t in self.thresholds)

    @classmethod
    def fit(cls, values: Sequence[float], count: int = DEFAULT_BINS) -> Bins:
        """Quantile thresholds of ``values`` for at most ``count`` bins."""
        if count < 1:
            raise ConfigError(f"the number of difficulty bins must be >= 1, got {count}")
        if not values:
            raise ConfigError("no problems to fit difficulty bins on")
        ordered = sorted((float(v) for v in values), reverse=True)
        p = len(ordered)
        lowest = ordered[-1]
        picked: list[float] = []
        for j in range(1, count):
            t = ordered[math.ceil(j * p / count) - 1]
            if t != lowest and (not picked or t < picked[-1]):
                picked.append(t)
        return cls(tuple(picked))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "thresholds": list(self.thresholds)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Bins:
        thresholds = d.get("thresholds")
        if not isinstance(thresholds, list) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) for t in thresholds
        ):
            raise ConfigError("bins.thresholds must be a list of numbers")
        bins = cls(tuple(float(t) for t in thresholds))
        if "count" in d and d["count"] != bins.count:
            raise ConfigError(
                f"bins.count is {d['count']} but {len(thresholds)} thresholds make "
                f"{bins.count} bins"
            )
        return bins
