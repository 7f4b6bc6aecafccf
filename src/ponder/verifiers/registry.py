"""Scorers by name, as the CLI and strategy configs spell them."""

from __future__ import annotations

from ponder.errors import ConfigError
from ponder.verifiers.base import Scorer
from ponder.verifiers.confidence import ConfidenceScorer
from ponder.verifiers.judge import JudgeScorer

SCORER_NAMES = ("logprob", "logprob:mean", "logprob:lowest_group", "judge")


def make_scorer(spec: str) -> Scorer:
    """``logprob`` (= ``logprob:mean``), ``logprob:lowest_group[:WINDOW]``, or ``judge``."""
    parts = spec.split(":")
    if parts[0] == "logprob" and len(parts) <= 3:
        method = parts[1] if len(parts) > 1 else "mean"
        if method == "mean" and len(parts) <= 2:
            return ConfidenceScorer("mean")
        if method == "lowest_group":
            try:
                window = int(parts[2]) if len(parts) == 3 else 64
            except ValueError:
                raise ConfigError(f"bad window in scorer {spec!r}") from None
            return ConfidenceScorer("lowest_group", window)
    if spec == "judge":
        return JudgeScorer()
    raise ConfigError(f"unknown scorer {spec!r}; choose from {', '.join(SCORER_NAMES)}")
