"""``single``: one sample of the task's prompt, greedy by default."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ponder.core.context import Context
from ponder.core.types import Problem, Result
from ponder.strategies.base import make_candidates, make_result, register
from ponder.strategies.sampling import sample


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
