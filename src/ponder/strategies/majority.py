"""``majority``: self-consistency (Wang et al. 2022): n samples, the plurality answer.

Ties follow the rule in ``ponder.strategies.voting``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ponder.core.context import Context
from ponder.core.types import Problem, Result
from ponder.strategies.base import make_candidates, make_result, register
from ponder.strategies.sampling import sample
from ponder.strategies.voting import majority_vote


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
