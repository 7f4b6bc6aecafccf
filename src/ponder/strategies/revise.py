"""``revise``: sequential revisions (Snell et al. 2024, "Scaling LLM Test-Time Compute
Optimally can be More Effective than Scaling Model Parameters", section 6).

The model answers; then it is shown its latest attempts and asked to find and fix
their mistakes and to write a corrected solution in full; and so on. ``chains`` splits
the ``n`` attempts into k independent chains of n/k attempts each, Snell's mix of
sequential and parallel compute. The chains advance together: one engine call per
depth holds every chain's request (the first depth is one request with ``n = k``, so
its prompt is prefilled once). The answer is chosen over every attempt of every chain,
by majority vote or (``select="verifier"``) by Snell's "best-of-N weighted" rule: each
answer's votes are weighted by the verifier's scores. Ties follow the rule in
``ponder.strategies.voting``.

An attempt after the first is a prompt of its own (``GenRequest.messages``): the
task's messages, then the chain's latest attempts as assistant turns, each followed by
the revision request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context, sample_top_logprobs
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Completion, GenRequest, Message, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.sampling import check_sampling
from ponder.strategies.voting import majority_vote, weighted_vote
from ponder.verifiers.registry import make_scorer

__all__ = ["REVISION_REQUEST", "Revise"]

REVISION_REQUEST = (
    "Check the solution above step by step. Find any mistakes in the reasoning or in "
    "the arithmetic and fix them. Then write the corrected solution in full, from the "
    "start, and give the final answer in the format the problem asks for."
)
"""The user turn that follows each earlier attempt in a revision prompt."""

SELECT_RULES = ("majority", "verifier")


@register("revise")
@dataclass(frozen=True)
class Revise:
    """Sequential revisions: each attempt corrects the previous ones of its chain.

    ``n`` attempts in all, in ``chains`` chains of ``n / chains``; each attempt is
    shown the chain's last ``context_attempts`` attempts, which bounds the prompt.
    The prompt of an attempt at depth d > 0 is the task's own messages (so its answer
    format instructions stay), then, for each shown earlier attempt of the chain, that
    attempt as an assistant turn followed by ``REVISION_REQUEST`` as a user turn.

    ``select="majority"``: the most frequent answer over all attempts.
    ``select="verifier"``: all attempts are scored by ``scorer`` and each answer's
    votes are weighted by its attempts' scores (Snell's best-of-N weighted).
    Candidates are in generation order (depth by depth, chains in order within a
    depth); ``Result.meta["chains"][c]`` lists chain c's candidate indices by depth
    and ``Result.meta["attempts"][i]`` gives candidate i's chain and depth. A depth
    that would not fit a token budget is not drawn, and scoring that would not fit
    leaves a majority vote: the attempts so far decide, and ``meta`` has
    ``stopped="budget"`` and the ``stop_reason``.
    """

    n: int = 4
    chains: int = 1
    context_attempts: int = 2
    temperature: float = 0.7
    top_p: float = 0.95
    select: str = "majority"
    scorer: str = "logprob"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"revise: n must be >= 1, got {self.n}")
        if self.chains < 1:
            raise ConfigError(f"revise: chains must be >= 1, got {self.chains}")
        if self.n % self.chains:
            raise ConfigError(
                f"revise: n ({self.n}) must be a multiple of chains ({self.chains}), "
                "so that every chain has n / chains attempts"
            )
        if self.context_attempts < 1:
            raise ConfigError(f"revise: context_attempts must be >= 1, got {self.context_attempts}")
        if self.select not in SELECT_RULES:
            raise ConfigError(
                f"revise: select must be one of {', '.join(SELECT_RULES)}, got {self.select!r}"
            )
        check_sampling(self.temperature, self.top_p)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        scorer = make_scorer(self.scorer) if self.select == "verifier" else None
        logprobs = scorer is not None and scorer.needs_logprobs
        top = sample_top_logprobs(scorer) if scorer is not None else 0
        base = ctx.task.messages(problem)
        history: list[list[Completion]] = [[] for _ in range(self.chains)]
        completions: list[Completion] = []
        placement: list[tuple[int, int]] = []  # (chain, depth) of each completion
        stopped: dict[str, str] = {}
        for depth in range(self.n // self.chains):
            if depth == 0:
                # every chain starts from the same prompt: one request, prefilled once
                requests = [self._request(problem, ctx, base, self.chains, logprobs, top)]
            else:
                requests = [
                    self._request(problem, ctx, self._revision_prompt(base, past), 1, logprobs, top)
                    for past in history
                ]
            try:
                out = await ctx.generate(requests, label=f"revise depth {depth}")
            except BudgetExceeded as e:
                if not completions:
                    raise
                stopped = stopped_by_budget(e)  # the attempts so far decide
                break
            for chain, completion in enumerate(c for comps in out for c in comps):
                history[chain].append(completion)
                completions.append(completion)
                placement.append((chain, depth))

        scores: list[float] | None = None
        if scorer is not None:
            try:
                scores = [s.value for s in await ctx.score(problem, completions, scorer)]
            except BudgetExceeded as e:
                stopped = stopped or stopped_by_budget(e)
                stopped["fallback"] = "majority vote of the unscored attempts"
        cands = make_candidates(ctx, completions, scores)
        answers = [c.answer for c in cands]
        if scores is None:
            answer, votes = majority_vote(answers)
        else:
            answer, votes = weighted_vote(answers, scores)
        meta: dict[str, Any] = {
            "select": self.select,
            "chains": [
                [i for i, (c, _) in enumerate(placement) if c == chain]
                for chain in range(self.chains)
            ],
            "attempts": [{"chain": c, "depth": d} for c, d in placement],
            **stopped,
        }
        return make_result("revise", ctx, t0, answer, cands, votes, meta)

    def _revision_prompt(
        self, base: Sequence[Message], past: Sequence[Completion]
    ) -> tuple[Message, ...]:
        turns: list[Message] = list(base)
        for attempt in past[-self.context_attempts :]:
            turns.append(Message("assistant", attempt.text.strip()))
            turns.append(Message("user", REVISION_REQUEST))
        return tuple(turns)

    def _request(
        self,
        problem: Problem,
        ctx: Context,
        messages: Sequence[Message],
        n: int,
        logprobs: bool,
        top_logprobs: int,
    ) -> GenRequest:
        return ctx.request(
            problem,
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            messages=messages,
        )
