"""Tokens needed to match a reference accuracy, as a ratio to the reference's tokens.

Snell et al. 2024 (arXiv:2408.03314, sections 5-6) state the gain of compute-optimal
scaling as compute saved at equal accuracy (their "4x less test-time compute than a
best-of-N baseline"). This module computes that figure from report curves:

- Reference: an accuracy A and tokens T_ref; by default majority voting at its largest
  n (the last point of the first majority run's curve), or a given run: the last
  point of its curve when it has one, else its own point.
- Tokens to reach A along a run: its curve points (or its own point when it has no
  curve) in order of n. The first point with accuracy >= A - 1e-9 (the tolerance
  absorbs rounding in means) reaches it: the first point of all gives its own tokens;
  a later one gives the tokens at which the straight line between it and the point
  before it crosses A. No such point: not reached.
- Ratio: those tokens / T_ref (below 1: cheaper than the reference); none when the
  reference spent no tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.analysis.curves import CurvePoint

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Reference:
    """The accuracy to reach, and what the reference paid for it."""

    label: str
    accuracy: float
    tokens: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "accuracy": self.accuracy, "tokens": self.tokens, "n": self.n}


@dataclass(frozen=True)
class Efficiency:
    """One run against the reference: ``tokens`` and ``ratio`` are None when it never
    reaches the reference accuracy."""

    label: str
    tokens: float | None
    ratio: float | None

    @property
    def reached(self) -> bool:
        return self.tokens is not None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "tokens": self.tokens, "ratio": self.ratio}


def tokens_to_reach(points: Sequence[CurvePoint], accuracy: float) -> float | None:
    """The tokens at which ``points`` (in order of n) first reach ``accuracy``; see the
    module docstring. None when they never do."""
    previous: CurvePoint | None = None
    for p in points:
        if math.isnan(p.accuracy):
            previous = None
            continue
        if p.accuracy >= accuracy - TOLERANCE:
            if previous is None or p.accuracy <= previous.accuracy:
                return p.tokens
            share = (accuracy - previous.accuracy) / (p.accuracy - previous.accuracy)
            share = min(1.0, max(0.0, share))
            return previous.tokens + share * (p.tokens - previous.tokens)
        previous = p
    return None


def efficiency(label: str, points: Sequence[CurvePoint], reference: Reference) -> Efficiency:
    """How many tokens ``points`` need to reach the reference accuracy, and the ratio."""
    tokens = tokens_to_reach(points, reference.accuracy)
    if tokens is None:
        return Efficiency(label, None, None)
    ratio = tokens / reference.tokens if reference.tokens > 0 else None
    return Efficiency(label, tokens, ratio)
