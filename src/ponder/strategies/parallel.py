"""Parallel scaling: sample independently, then pick.

- ``single``: one sample (greedy by default).
- ``majority``: self-consistency (Wang et al. 2022): n samples, plurality answer.
- ``best_of_n``: n samples, the one the scorer rates highest.
- ``weighted_majority``: n samples, answers weighted by their scores (Li et al. 2023;
  Snell et al. 2024 use it with a verifier).
Ties follow the rule in ``ponder.strategies.voting``.

Under a token budget, samples that fit but whose scoring does not (a judge scorer
generates) vote unweighted instead, and ``meta`` says so (``stopped``, ``stop_reason``,
``fallback``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded
from ponder.core.types import Candidate, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, sample, stopped_by_budget
from ponder.strategies.voting import best_of, best_scores, majority_vote, weighted_vote
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
) -> tuple[tuple[Candidate, ...], list[float] | None, dict[str, Any]]:
    """The samples with their scores, or with None and why when the budget left no room
    to score them."""
    scorer = make_scorer(scorer_spec)
    comps = await sample(problem, ctx, n, temperature, top_p, logprobs=scorer.needs_logprobs)
    try:
        scores = [s.value for s in await ctx.score(problem, comps, scorer)]
    except BudgetExceeded as e:
        meta = {**stopped_by_budget(e), "fallback": "majority vote of the unscored samples"}
        return make_candidates(ctx, comps), None, meta
    return make_candidates(ctx, comps, scores), scores, {}


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
        cands, scores, meta = await _sample_and_score(
            problem, ctx, self.n, self.temperature, self.top_p, self.scorer
        )
        answers = [c.answer for c in cands]
        if scores is None:
            answer, votes = majority_vote(answers)
        else:
            answer, votes = answers[best_of(answers, scores)], best_scores(answers, scores)
        return make_result("best_of_n", ctx, t0, answer, cands, votes, meta)


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
        cands, scores, meta = await _sample_and_score(
            problem, ctx, self.n, self.temperature, self.top_p, self.scorer
        )
        answers = [c.answer for c in cands]
        if scores is None:
            answer, votes = majority_vote(answers)
        else:
            answer, votes = weighted_vote(answers, scores)
        return make_result("weighted_majority", ctx, t0, answer, cands, votes, meta)
