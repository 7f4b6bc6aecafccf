"""``best_of_n``: n samples, the one the scorer rates highest.

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
from ponder.strategies.voting import best_of, best_scores


@register("best_of_n")
@dataclass(frozen=True)
class BestOfN(ScoredSampling):
    """n samples; the one the scorer rates highest wins."""

    def pick(
        self, answers: Sequence[str | None], scores: Sequence[float]
    ) -> tuple[str | None, dict[str, float]]:
        return answers[best_of(answers, scores)], best_scores(answers, scores)
