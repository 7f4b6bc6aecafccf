"""Parallel scaling: sample independently, then pick.

- ``single``: one sample (greedy by default).
- ``majority``: self-consistency (Wang et al. 2022): n samples, plurality answer.
- ``best_of_n``: n samples, the one the scorer rates highest.
- ``weighted_majority``: n samples, answers weighted by their scores (Li et al. 2023;
  Snell et al. 2024 use it with a verifier).
Ties follow the rule in ``ponder.strategies.voting``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ponder.strategies.base import Context, make_candidates, make_result, register, sample
from ponder.strategies.voting import best_of, best_scores, majority_vote, weighted_vote
from ponder.types import Candidate, Problem, Result
from ponder.verifiers.registry import make_scorer


@register("single")
@dataclass(frozen=True)
class Single:
    """One sample; greedy unless a temperature is set."""

    temperature: float = 0.0
    top_p: float = 1.0

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        comps = await sample(problem, ctx, 1, self.temperature, self.top_p)
        cands = make_candidates(ctx, comps)
        answer = cands[0].answer
        return make_result("single", ctx, t0, answer, cands, {answer: 1.0} if answer else {})


@register("majority")
@dataclass(frozen=True)
class Majority:
    """Self-consistency: n samples, the most frequent answer wins."""

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        comps = await sample(problem, ctx, self.n, self.temperature, self.top_p)
        cands = make_candidates(ctx, comps)
        answer, votes = majority_vote([c.answer for c in cands])
        return make_result("majority", ctx, t0, answer, cands, votes)


async def _sample_and_score(
    problem: Problem, ctx: Context, n: int, temperature: float, top_p: float, scorer_spec: str
) -> tuple[tuple[Candidate, ...], list[float]]:
    scorer = make_scorer(scorer_spec)
    comps = await sample(problem, ctx, n, temperature, top_p, logprobs=scorer.needs_logprobs)
    scores = [s.value for s in await ctx.score(problem, comps, scorer)]
    return make_candidates(ctx, comps, scores), scores


@register("best_of_n")
@dataclass(frozen=True)
class BestOfN:
    """n samples; the one the scorer rates highest wins."""

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    scorer: str = "logprob"

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        cands, scores = await _sample_and_score(
            problem, ctx, self.n, self.temperature, self.top_p, self.scorer
        )
        answers = [c.answer for c in cands]
        best = best_of(answers, scores)
        return make_result("best_of_n", ctx, t0, answers[best], cands, best_scores(answers, scores))


@register("weighted_majority")
@dataclass(frozen=True)
class WeightedMajority:
    """n samples; answers vote with their scores as weights."""

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    scorer: str = "logprob"

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        cands, scores = await _sample_and_score(
            problem, ctx, self.n, self.temperature, self.top_p, self.scorer
        )
        answer, votes = weighted_vote([c.answer for c in cands], scores)
        return make_result("weighted_majority", ctx, t0, answer, cands, votes)
