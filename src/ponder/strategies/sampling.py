"""Drawing plain samples of a task's prompt, the way the sampling strategies do.

- ``sample``: ``n`` samples in one request (what a replay engine can serve);
- ``sample_and_score``: the same, scored, for the strategies that rank or weight them
  (``ScoredSampling``, the frame of ``best_of_n`` and ``weighted_majority``);
- ``sample_until``: batches until a stopping check is met or a cap is reached, for the
  adaptive strategies.

A draw that would not fit a token budget raises ``BudgetExceeded`` like any call;
``sample_and_score`` and ``sample_until`` turn it into an early stop where there is
already something to answer from (``base.stopped_by_budget``).

A context that captures samples (``Context.capture_top_logprobs``, ``ponder eval
--features``) has every plain sample drawn here with logprobs and that many
alternatives, kept in ``Context.captured``; the caller still gets what it asked for.
With ``Context.capture_hidden`` those samples carry their hidden states as well
(``GenRequest.hidden``), which the caller does not see either.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from ponder.core.context import (
    DEFAULT_SAMPLE_TOP_LOGPROBS,
    Context,
    sample_hidden,
    sample_top_logprobs,
)
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Candidate, Completion, Problem, Result, TokenLogprob
from ponder.strategies.base import make_candidates, make_result, stopped_by_budget
from ponder.strategies.voting import majority_vote
from ponder.verifiers.registry import make_scorer


def check_sampling(temperature: float, top_p: float) -> None:
    """``ConfigError`` for a sampling temperature below 0 or a top_p outside (0, 1]."""
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")


async def sample(
    problem: Problem,
    ctx: Context,
    n: int,
    temperature: float,
    top_p: float,
    *,
    logprobs: bool = False,
    top_logprobs: int = DEFAULT_SAMPLE_TOP_LOGPROBS,
    hidden: bool = False,
    label: str = "",
) -> list[Completion]:
    """``n`` plain samples of the task's prompt in one request (no stop strings, no
    continuation: what a replay engine can serve), with logprobs and ``top_logprobs``
    alternatives per token when asked, and their hidden states with ``hidden``. A
    capturing context (see the module docstring) draws them with its own logprobs (and
    hidden states) as well and hands back only what was asked."""
    asked = top_logprobs if logprobs else 0
    capture = ctx.capture_top_logprobs
    request = ctx.request(
        problem,
        n=n,
        temperature=temperature,
        top_p=top_p,
        logprobs=logprobs or capture > 0,
        top_logprobs=max(asked, capture),
    )
    if hidden or (capture > 0 and ctx.capture_hidden):
        request = replace(request, hidden=True)
    (completions,) = await ctx.generate([request], label=label)
    if capture <= 0:
        return completions
    ctx.captured.extend(completions)
    return [_as_asked(c, logprobs, asked, hidden) for c in completions]


def _as_asked(
    completion: Completion, logprobs: bool, top_logprobs: int, hidden: bool
) -> Completion:
    """A captured completion as a request for ``logprobs`` with ``top_logprobs``
    alternatives (and ``hidden`` states) would have returned it: without logprobs, or
    with the first ``top_logprobs`` alternatives of each token (the engine lists them
    most likely first, so these are the top ones)."""
    if not hidden:
        completion = replace(completion, hidden=None)
    if not logprobs or completion.logprobs is None:
        return replace(completion, logprobs=None)
    return replace(
        completion,
        logprobs=tuple(
            TokenLogprob(t.token, t.logprob, t.top[:top_logprobs]) for t in completion.logprobs
        ),
    )


async def sample_and_score(
    problem: Problem, ctx: Context, n: int, temperature: float, top_p: float, scorer_spec: str
) -> tuple[tuple[Candidate, ...], list[float] | None, dict[str, Any]]:
    """The samples with their scores, or with None and why when the budget left no room
    to score them."""
    scorer = make_scorer(scorer_spec)
    comps = await sample(
        problem,
        ctx,
        n,
        temperature,
        top_p,
        logprobs=scorer.needs_logprobs,
        top_logprobs=sample_top_logprobs(scorer),
        hidden=sample_hidden(scorer),
    )
    try:
        scores = [s.value for s in await ctx.score(problem, comps, scorer)]
    except BudgetExceeded as e:
        meta = {**stopped_by_budget(e), "fallback": "majority vote of the unscored samples"}
        return make_candidates(ctx, comps), None, meta
    return make_candidates(ctx, comps, scores), scores, {}


@dataclass(frozen=True)
class ScoredSampling(ABC):
    """n samples, scored by ``scorer``; a subclass picks the answer from the answers
    and their scores (``pick``). When a token budget leaves no room to score them, the
    unscored samples vote by majority instead (``sample_and_score``)."""

    name: ClassVar[str]
    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    scorer: str = "logprob"

    @abstractmethod
    def pick(
        self, answers: Sequence[str | None], scores: Sequence[float]
    ) -> tuple[str | None, dict[str, float]]:
        """The answer and the votes behind it."""

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        cands, scores, meta = await sample_and_score(
            problem, ctx, self.n, self.temperature, self.top_p, self.scorer
        )
        answers = [c.answer for c in cands]
        if scores is None:
            answer, votes = majority_vote(answers)
        else:
            answer, votes = self.pick(answers, scores)
        return make_result(self.name, ctx, t0, answer, cands, votes, meta)


BatchCheck = Callable[
    [Sequence[Candidate], Sequence[Candidate], int], tuple[dict[str, Any], str | None]
]
"""``check(drawn so far, this batch, size asked for)``: the batch's history entry, and
the reason to stop sampling or None to go on."""


@dataclass
class Sampled:
    """What ``sample_until`` drew: every candidate in order, one history entry per
    batch, why it stopped, and the budget's keys (``stopped_by_budget``) when a batch
    did not fit."""

    candidates: list[Candidate] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "cap reached"
    stopped: dict[str, str] = field(default_factory=dict)

    def majority_result(
        self, name: str, ctx: Context, t0: float, settings: Mapping[str, Any]
    ) -> Result:
        """Strategy ``name``'s result: the plurality of every candidate drawn, and in
        ``meta`` the samples, the stop reason, the strategy's ``settings``, the history
        and the budget's keys."""
        answer, votes = majority_vote([c.answer for c in self.candidates])
        meta = {
            "samples": len(self.candidates),
            "stop_reason": self.stop_reason,
            **settings,
            "history": self.history,
            **self.stopped,
        }
        return make_result(name, ctx, t0, answer, self.candidates, votes, meta)


async def sample_until(
    problem: Problem,
    ctx: Context,
    check: BatchCheck,
    *,
    max_n: int,
    batch: int,
    temperature: float,
    top_p: float,
    label: str,
) -> Sampled:
    """Plain samples in batches of ``batch`` (the last one smaller, so that at most
    ``max_n`` are drawn) until ``check`` gives a reason to stop. A batch that would not
    fit a token budget ends sampling with what was drawn; before the first batch there
    is nothing to answer from, so the ``BudgetExceeded`` propagates."""
    out = Sampled()
    while len(out.candidates) < max_n:
        n = min(batch, max_n - len(out.candidates))
        try:
            comps = await sample(problem, ctx, n, temperature, top_p, label=label)
        except BudgetExceeded as e:
            if not out.candidates:
                raise
            out.stopped = stopped_by_budget(e)
            break
        drawn = make_candidates(ctx, comps)
        out.candidates.extend(drawn)
        entry, reason = check(out.candidates, drawn, n)
        out.history.append(entry)
        if reason is not None:
            out.stop_reason = reason
            break
    return out


class SamplesUntilStopped(Protocol):
    """What ``vote_until`` reads of a strategy that samples until its rule stops it
    (``name`` is set by ``register``)."""

    name: ClassVar[str]

    @property
    def max_n(self) -> int: ...

    @property
    def temperature(self) -> float: ...

    @property
    def top_p(self) -> float: ...


async def vote_until(
    strategy: SamplesUntilStopped,
    problem: Problem,
    ctx: Context,
    check: BatchCheck,
    batch: int,
    settings: Mapping[str, Any],
) -> Result:
    """The whole run of a strategy that samples until ``check`` stops it:
    ``sample_until`` with the strategy's cap and sampling, then the plurality of every
    sample (``Sampled.majority_result``) with its ``settings`` in ``meta``."""
    t0 = time.perf_counter()
    drawn = await sample_until(
        problem,
        ctx,
        check,
        max_n=strategy.max_n,
        batch=batch,
        temperature=strategy.temperature,
        top_p=strategy.top_p,
        label=strategy.name,
    )
    return drawn.majority_result(strategy.name, ctx, t0, settings)
