"""``hybrid``: chain-of-thought samples and programs vote together.

A chain of thought (CoT) and a program (``pal``) fail in different ways, so a vote over
both can beat either at the same tokens (``ponder bank hybrid`` measures that by replay
and chooses the mix on train banks). This strategy runs the mix live: ``n`` plain
samples of the task's prompt, then ``programs`` programs run in the sandbox as ``pal``
runs them, and one vote over the ``n + programs`` answers, CoT samples first (ties as in
``ponder.strategies.voting``). With a ``scorer`` each CoT sample weighs its score and
each program ``program_weight``; without one, every CoT sample weighs 1 and each program
``program_weight`` (1 by default: a plain majority). This is the rule the replay's
``hybrid[k,m]`` (no scorer) and ``hybrid[k,m,w]`` (a scorer, ``program_weight`` w) count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Candidate, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.pal import ProgramAided
from ponder.strategies.sampling import check_sampling, sample, sample_and_score
from ponder.strategies.voting import weighted_vote

__all__ = ["Hybrid"]


@register("hybrid")
@dataclass(frozen=True)
class Hybrid:
    """``n`` CoT samples and ``programs`` programs; one (weighted) vote over both.

    CoT samples: ``temperature`` and ``top_p``, scored by ``scorer`` when given (as
    ``weighted_majority`` scores them; a budget that leaves no room to score them makes
    them weigh 1, and ``meta`` says so). Programs: ``pal`` with ``programs`` programs at
    ``program_temperature`` (None: greedy for one program, 0.7 for more), ``shots``
    worked examples, ``max_program_tokens``, the sandbox limits and ``isolation`` as
    ``pal`` takes them, and no chain-of-thought fallback (the CoT samples are there). A
    program budget that does not fit leaves the vote to the CoT samples (``meta``:
    ``stopped``, ``stop_reason``).
    Candidates: the CoT samples, then the programs (text: the fenced program; answer: what
    it printed). ``meta``: ``cot`` (chains drawn), ``programs``, ``program_weight``,
    ``scored`` and the programs' ``pal`` meta under ``pal``. ``go_on`` starts from chains
    drawn elsewhere (``optimal``'s pilot).
    """

    n: int = 4
    programs: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    scorer: str | None = None
    program_weight: float = 1.0
    program_temperature: float | None = None
    shots: int = 0
    max_program_tokens: int | None = None
    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 512
    isolation: str = "auto"
    require_isolation: bool = False

    def __post_init__(self) -> None:
        if self.n < 0 or self.programs < 0 or self.n + self.programs == 0:
            raise ConfigError(
                f"hybrid: n and programs must be >= 0 and not both 0, got {self.n} and "
                f"{self.programs}"
            )
        if not self.program_weight > 0:
            raise ConfigError(f"hybrid: program_weight must be > 0, got {self.program_weight}")
        if self.scorer is not None and self.n == 0:
            raise ConfigError("hybrid: a scorer weighs CoT samples, and n is 0")
        check_sampling(self.temperature, self.top_p)
        if self.programs:
            _ = self.pal  # a bad sandbox setting is a ConfigError now

    @property
    def pal(self) -> ProgramAided:
        return ProgramAided(
            n=max(self.programs, 1),
            temperature=self.program_temperature,
            top_p=self.top_p,
            shots=self.shots,
            max_program_tokens=self.max_program_tokens,
            fallback="none",
            cpu_seconds=self.cpu_seconds,
            wall_seconds=self.wall_seconds,
            memory_mb=self.memory_mb,
            isolation=self.isolation,
            require_isolation=self.require_isolation,
        )

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        meta: dict[str, Any] = {}
        cot: tuple[Candidate, ...] = ()
        weights: list[float] = []
        if self.n and self.scorer is not None:
            cot, scores, stopped = await sample_and_score(
                problem, ctx, self.n, self.temperature, self.top_p, self.scorer
            )
            meta.update(stopped)
            weights = list(scores) if scores is not None else [1.0] * len(cot)
            meta["scored"] = scores is not None
        elif self.n:
            comps = await sample(problem, ctx, self.n, self.temperature, self.top_p)
            cot = make_candidates(ctx, comps)
            weights = [1.0] * len(cot)
        return await self.go_on(problem, ctx, cot, weights, t0, meta)

    async def go_on(
        self,
        problem: Problem,
        ctx: Context,
        cot: Sequence[Candidate],
        weights: Sequence[float],
        t0: float,
        meta: Mapping[str, Any] | None = None,
    ) -> Result:
        """The programs and the vote, given the chains and their weights (drawn here, or
        by ``optimal``, whose pilot's samples are the first chains); ``meta`` is added
        to the result's."""
        out: dict[str, Any] = {
            "cot": len(cot),
            "programs": self.programs,
            "program_weight": self.program_weight,
            "scored": False,
            **(meta or {}),
        }
        programs: tuple[Candidate, ...] = ()
        if self.programs:
            try:
                ran = await self.pal(problem, ctx)
            except BudgetExceeded as e:
                if not cot:
                    raise
                out.update(stopped_by_budget(e))
            else:
                programs = ran.candidates
                out["pal"] = dict(ran.meta)
        answers = [c.answer for c in (*cot, *programs)]
        answer, votes = weighted_vote(answers, [*weights, *[self.program_weight] * len(programs)])
        return make_result("hybrid", ctx, t0, answer, (*cot, *programs), votes, out)
