"""Compute-optimal allocation (Snell et al. 2024, arXiv:2408.03314, section 3.2).

Per question: draw a small pilot, predict the question's difficulty bin from it, and
spend the budget the way a policy fitted on calibration problems says is best for
that bin (``ponder optimize`` writes the policy; ``ponder.strategies.optimal.policy`` defines it).

1. Pilot: ``k`` plain samples of the task's prompt at the policy's pilot temperature
   and top_p, in one request, so a replay engine serves them from its bank; scored by
   the pilot's scorer when the signal is ``score``. The samples carry token logprobs
   only when that scorer needs them and the policy scores pilot samples (the
   ``score`` signal, or a cell that reuses the pilot with best_of_n or
   weighted_majority).
2. The signal of the ``k`` samples (``difficulty.signal_value``) gives the bin.
3. The cell of (bin, budget) names a configuration. When it reuses the pilot (the
   pilot run's own rule, majority, best_of_n or weighted_majority, over n samples),
   the pilot samples are its first ones: only samples k+1..n are drawn (one more
   request), only samples not yet scored are scored, and the rule applies to the
   first n samples; with n < k it applies to the first n pilot samples. A weighted stop
   (``weighted_stop`` with ``min_n`` >= k) that reuses the pilot checks its rule on the
   pilot's samples (scored by the pilot's scorer when it weighs them) and samples on, one
   batch at a time, until the rule settles. A hybrid that reuses the pilot takes the
   pilot's samples as its first chains, draws the chains after them (scored by the
   pilot's scorer when it weighs them), then its programs, and votes. Any other
   configuration runs as its own strategy on the same context, after the pilot, and
   generates what it needs.

The result's candidates are every sample drawn, pilot first; ``Result.meta`` holds the
pilot size, the signal and its value, the bin, the budget column used, the chosen
configuration, whether it reused the pilot, how many candidates decided the answer
(reuse) or the inner strategy's meta (otherwise). The cost is everything on the ledger,
pilot included.

Under a token budget (``--budget`` limits each problem's tokens for other strategies;
here it is the policy's mean, and a limit comes only from a budget opened on the
context): what does not fit after the pilot is not drawn. Samples beyond the pilot
that do not fit leave the rule to the pilot's samples, scores that do not fit leave a
majority vote, and a chosen configuration that cannot start leaves the pilot's
majority; an inner strategy that stopped for its budget says so. ``meta`` then has
``stopped="budget"`` and the ``stop_reason``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ponder.core.context import (
    DEFAULT_SAMPLE_TOP_LOGPROBS,
    Context,
    Scorer,
    sample_hidden,
    sample_top_logprobs,
)
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Candidate, Completion, Problem, Result
from ponder.strategies.base import (
    make_candidates,
    make_result,
    make_strategy,
    register,
    stopped_by_budget,
)
from ponder.strategies.hybrid import Hybrid
from ponder.strategies.optimal.policy import (
    HYBRID_STRATEGY,
    Cell,
    Configuration,
    Policy,
    load_policy,
)
from ponder.strategies.optimal.signals import signal_value
from ponder.strategies.sampling import sample
from ponder.strategies.voting import best_of, best_scores, majority_vote, weighted_vote
from ponder.strategies.weighted_stop import WeightedStop
from ponder.verifiers.registry import make_scorer


@register("optimal")
@dataclass(frozen=True)
class ComputeOptimal:
    """Compute-optimal (Snell et al. 2024): a pilot predicts the bin, a policy the config.

    ``policy`` is a file from ``ponder optimize``; ``budget`` the mean tokens per problem
    (the policy's largest budget <= it is used). See the module docstring.
    """

    policy: str = ""
    budget: float = 0.0

    def __post_init__(self) -> None:
        if not self.policy:
            raise ConfigError(
                "optimal needs a policy file: --strategy optimal:POLICY.json or "
                "-o policy=POLICY.json (written by `ponder optimize`)"
            )
        if not self.budget > 0:
            raise ConfigError(
                "optimal needs a positive token budget per problem: --budget TOKENS or "
                f"-o budget=TOKENS, got {self.budget!r}"
            )
        policy = load_policy(self.policy)
        policy.column(self.budget)
        for cell in policy.cells:
            if not cell.config.reuses_pilot:
                make_strategy(cell.config.strategy, cell.config.options)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        policy = load_policy(self.policy)
        pilot = policy.pilot
        scorer = _pilot_scorer(policy)
        logprobs = scorer is not None and scorer.needs_logprobs
        drawn = await sample(
            problem, ctx, pilot.samples, pilot.temperature, pilot.top_p,
            logprobs=logprobs, top_logprobs=_top_logprobs(scorer), hidden=_hidden(scorer),
            label="optimal:pilot",
        )  # fmt: skip
        scores: list[float] = []
        if pilot.signal == "score":
            assert scorer is not None  # the policy checks that the score signal has one
            try:
                scores = await _score(problem, ctx, scorer, drawn)
            except BudgetExceeded as e:
                account = {"pilot": pilot.samples, "signal": pilot.signal}
                return _pilot_majority(ctx, t0, drawn, [], {**account, **stopped_by_budget(e)})
        value = signal_value(pilot.signal, make_candidates(ctx, drawn, scores or None))
        bin = policy.bins.assign(value)
        cell = policy.cell(bin, self.budget)
        meta: dict[str, Any] = {
            "pilot": pilot.samples,
            "signal": pilot.signal,
            "signal_value": value,
            "bin": bin,
            "budget": cell.budget,
            "config": cell.config.to_dict(),
            "reused_pilot": cell.config.reuses_pilot,
        }
        if cell.config.reuses_pilot and cell.config.strategy == WeightedStop.name:
            return await _stop_after_pilot(problem, ctx, t0, cell, drawn, scores, scorer, meta)
        if cell.config.reuses_pilot and cell.config.strategy == HYBRID_STRATEGY:
            return await _hybrid_after_pilot(
                problem, ctx, t0, policy, cell, drawn, scores, scorer, meta
            )
        if cell.config.reuses_pilot:
            answer, cands, votes, used, stopped = await self._reuse(
                problem, ctx, policy, cell, drawn, scores, scorer, logprobs
            )
            meta["decided_by"] = used
            meta.update(stopped)
            return make_result("optimal", ctx, t0, answer, cands, votes, meta)
        return await _run_inner(problem, ctx, t0, cell, drawn, scores, meta)

    async def _reuse(
        self,
        problem: Problem,
        ctx: Context,
        policy: Policy,
        cell: Cell,
        drawn: list[Completion],
        scores: list[float],
        scorer: Scorer | None,
        logprobs: bool,
    ) -> tuple[str | None, list[Candidate], dict[str, float], int, dict[str, str]]:
        """The pilot run's rule over its first n samples, pilot samples first, and why
        it stopped short of them when a token budget did (the pilot's samples decide;
        unscored, by majority)."""
        n, rule = cell.config.n, cell.config.rule
        assert n is not None and rule is not None  # the policy checks reusing cells
        k = len(drawn)
        stopped: dict[str, str] = {}
        if n > k:
            more_logprobs = logprobs and rule != "majority"
            try:
                more = await sample(
                    problem, ctx, n - k, policy.pilot.temperature, policy.pilot.top_p,
                    logprobs=more_logprobs, top_logprobs=_top_logprobs(scorer),
                    hidden=more_logprobs and _hidden(scorer), label="optimal:rest",
                )  # fmt: skip
            except BudgetExceeded as e:
                stopped, n = stopped_by_budget(e), k
            else:
                drawn = drawn + more
        if rule != "majority":
            if scorer is None:
                raise ConfigError(f"{cell.config.label} reuses the pilot, which has no scorer")
            # score what is not scored yet among the samples the rule reads
            try:
                scores = scores + await _score(problem, ctx, scorer, drawn[len(scores) : n])
            except BudgetExceeded as e:
                stopped, rule = stopped or stopped_by_budget(e), "majority"
        padded = [*scores, *([None] * (len(drawn) - len(scores)))]
        cands = [
            replace(c, score=s) for c, s in zip(make_candidates(ctx, drawn), padded, strict=True)
        ]
        answers = [c.answer for c in cands[:n]]
        if rule == "majority":
            answer, votes = majority_vote(answers)
        elif rule == "best_of_n":
            picked = best_of(answers, scores[:n])
            answer, votes = answers[picked], best_scores(answers, scores[:n])
        else:
            answer, votes = weighted_vote(answers, scores[:n])
        return answer, cands, votes, n, stopped


def _pilot_scorer(policy: Policy) -> Scorer | None:
    """The pilot's scorer where it is needed: when the signal is a score or a cell that
    reuses the pilot ranks by scores (only then do the samples need their logprobs)."""
    pilot = policy.pilot
    scores_needed = pilot.signal == "score" or any(
        c.config.reuses_pilot and _weighs(c.config) for c in policy.cells
    )
    return make_scorer(pilot.scorer) if pilot.scorer and scores_needed else None


def _weighs(config: Configuration) -> bool:
    """Whether a configuration that reuses the pilot reads the pilot's scores: a scored
    sampling rule, or a weighted stop or hybrid with a scorer."""
    if config.strategy in (WeightedStop.name, HYBRID_STRATEGY):
        return bool(config.options.get("scorer"))
    return config.rule != "majority"


def _hidden(scorer: Scorer | None) -> bool:
    """Whether the pilot's samples are drawn with hidden states (for a hidden-state probe)."""
    return scorer is not None and sample_hidden(scorer)


async def _stop_after_pilot(
    problem: Problem,
    ctx: Context,
    t0: float,
    cell: Cell,
    drawn: list[Completion],
    scores: list[float],
    scorer: Scorer | None,
    meta: dict[str, Any],
) -> Result:
    """A weighted stop that reuses the pilot: the pilot's samples (scored by the pilot's
    scorer when the stop weighs them) are its first ones; the rule is checked on them,
    then sampling goes on until it settles. When the pilot's scores do not fit the
    budget, the pilot's majority answers."""
    inner = make_strategy(cell.config.strategy, cell.config.options)
    assert isinstance(inner, WeightedStop)  # the policy checks reusing cells
    weighted = bool(inner.scorer)
    if weighted:
        if scorer is None:
            raise ConfigError(f"{cell.config.label} reuses the pilot, which has no scorer")
        try:
            scores = scores + await _score(problem, ctx, scorer, drawn[len(scores) :])
        except BudgetExceeded as e:
            meta.update(stopped_by_budget(e))
            return _pilot_majority(ctx, t0, drawn, [], meta)
    pilot = make_candidates(ctx, drawn, scores if weighted else None)
    result = await inner.go_on(problem, ctx, pilot, t0)
    meta["decided_by"] = result.meta["samples"]
    meta["inner"] = dict(result.meta)
    if result.meta.get("stopped"):
        meta.update(stopped=result.meta["stopped"], stop_reason=result.meta["stop_reason"])
    return make_result("optimal", ctx, t0, result.answer, result.candidates, result.votes, meta)


async def _hybrid_after_pilot(
    problem: Problem,
    ctx: Context,
    t0: float,
    policy: Policy,
    cell: Cell,
    drawn: list[Completion],
    scores: list[float],
    scorer: Scorer | None,
    meta: dict[str, Any],
) -> Result:
    """A hybrid that reuses the pilot: the pilot's samples are its first chains; the
    chains after them are drawn (as the pilot draws), scored by the pilot's scorer when
    the hybrid weighs them, then its programs run and everything votes. Chains past the
    budget leave the pilot's; scores past it leave every chain one vote."""
    inner = make_strategy(cell.config.strategy, cell.config.options)
    assert isinstance(inner, Hybrid)  # the policy checks reusing cells
    if inner.scorer is not None and scorer is None:
        raise ConfigError(f"{cell.config.label} reuses the pilot, which has no scorer")
    weigher = scorer if inner.scorer is not None else None  # the pilot's, when it weighs
    n, k = inner.n, len(drawn)
    if n > k:
        try:
            more = await sample(
                problem, ctx, n - k, policy.pilot.temperature, policy.pilot.top_p,
                logprobs=weigher is not None and weigher.needs_logprobs,
                top_logprobs=_top_logprobs(scorer), hidden=_hidden(weigher),
                label="optimal:rest",
            )  # fmt: skip
        except BudgetExceeded as e:
            meta.update(stopped_by_budget(e))
            n = k
        else:
            drawn = drawn + more
    weights = [1.0] * n
    if weigher is not None:
        try:
            scores = scores + await _score(problem, ctx, weigher, drawn[len(scores) : n])
        except BudgetExceeded as e:
            meta.update(stopped_by_budget(e))
            weigher = None
        else:
            weights = scores[:n]
    padded = [*scores, *([None] * (len(drawn) - len(scores)))]
    cands = [replace(c, score=s) for c, s in zip(make_candidates(ctx, drawn), padded, strict=True)]
    scored = {"scored": weigher is not None}
    result = await inner.go_on(problem, ctx, cands[:n], weights, t0, scored)
    meta["decided_by"] = len(result.candidates)  # the chains and the programs
    meta["inner"] = dict(result.meta)
    if result.meta.get("stopped"):
        meta.update(stopped=result.meta["stopped"], stop_reason=result.meta["stop_reason"])
    candidates = [*cands, *result.candidates[n:]]
    return make_result("optimal", ctx, t0, result.answer, candidates, result.votes, meta)


def _top_logprobs(scorer: Scorer | None) -> int:
    """The alternatives per token the pilot's samples are drawn with, when with logprobs."""
    return DEFAULT_SAMPLE_TOP_LOGPROBS if scorer is None else sample_top_logprobs(scorer)


async def _run_inner(
    problem: Problem,
    ctx: Context,
    t0: float,
    cell: Cell,
    drawn: list[Completion],
    scores: list[float],
    meta: dict[str, Any],
) -> Result:
    """The cell's configuration run as its own strategy after the pilot; its candidates
    follow the pilot's, its meta is ``meta["inner"]``. When it cannot start within the
    budget, the pilot's majority answers."""
    inner = make_strategy(cell.config.strategy, cell.config.options)
    try:
        result = await inner(problem, ctx)
    except BudgetExceeded as e:
        meta.update(stopped_by_budget(e))
        return _pilot_majority(ctx, t0, drawn, scores, meta)
    meta["inner"] = dict(result.meta)
    if result.meta.get("stopped"):
        meta.update(stopped=result.meta["stopped"], stop_reason=result.meta["stop_reason"])
    pilot_cands = make_candidates(ctx, drawn, scores or None)
    return make_result(
        "optimal",
        ctx,
        t0,
        result.answer,
        [*pilot_cands, *result.candidates],
        result.votes,
        meta,
    )


def _pilot_majority(
    ctx: Context, t0: float, drawn: list[Completion], scores: list[float], meta: dict[str, Any]
) -> Result:
    """The pilot's majority answer, for a budget that leaves no room to go on."""
    cands = make_candidates(ctx, drawn, scores or None)
    answer, votes = majority_vote([c.answer for c in cands])
    meta = {**meta, "fallback": "majority vote of the pilot"}
    return make_result("optimal", ctx, t0, answer, cands, votes, meta)


async def _score(
    problem: Problem, ctx: Context, scorer: Scorer, completions: Sequence[Completion]
) -> list[float]:
    if not completions:
        return []
    return [s.value for s in await ctx.score(problem, completions, scorer)]
