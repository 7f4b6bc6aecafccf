"""``weighted_majority``: n samples, answers weighted by their scores (Li et al. 2023;
Snell et al. 2024 use it with a verifier).

Ties follow the rule in ``ponder.strategies.voting``. Under a token budget, samples
that fit but whose scoring does not (a judge scorer generates) vote unweighted
instead, and ``meta`` says so (``stopped``, ``stop_reason``, ``fallback``). The
sampling and scoring are ``ponder.strategies.sampling.ScoredSampling``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.strategies.base import register
from ponder.strategies.sampling import ScoredSampling
from ponder.strategies.voting import weighted_vote


@register("weighted_majority")
@dataclass(frozen=True)
class WeightedMajority(ScoredSampling):
    """n samples; answers vote with their scores as weights."""

    def pick(
        self, answers: Sequence[str | None], scores: Sequence[float]
    ) -> tuple[str | None, dict[str, float]]:
        return weighted_vote(answers, scores)
