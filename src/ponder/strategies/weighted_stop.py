"""``weighted_stop``: sample in batches, weigh each sample by a scorer, and stop once the
weighted vote has settled; the live form of ``ponder bank stop``'s rules
(``ponder.analysis.stop_replay``), so a rule chosen there by replay runs as it was
measured.

After each batch, with the scores of the samples drawn so far summed per answer
(samples without an answer cast nothing), sampling stops at the first batch that brings
the samples to ``min_n`` or more and where

- ``by="share"``: the leader holds at least ``tau`` of the weight cast, or
- ``by="margin"``: the leader's weight exceeds the runner-up's by ``tau`` or more
  (weights that are probabilities of being right, as the combined verifier's and the
  hidden-state probe's are, let one sample the scorer is sure of end the draw);

or, with ``give_up`` > 0, once ``give_up_after`` samples or more are drawn and the
leader holds less than ``give_up`` of the weight (the samples scatter; more rarely
help). The answer is the weighted vote of every sample drawn. With ``batch=1`` the
rule is checked after every sample, as the replay checks it; a larger batch decodes
the samples together (faster on the embedded engine) and may overshoot by up to
``batch - 1`` samples.

An empty ``scorer`` counts every sample once (unweighted: the vote share or vote lead of
adaptive consistency). ``go_on`` starts the draw from samples already drawn (the pilot of
the compute-optimal strategy, ``ponder.strategies.optimal``).

The scorer's own cost is on the ledger as usual; ``logprob``, ``combined:PATH`` and
``hidden:PATH`` read what each sample was drawn with and cost nothing. A batch that a
token budget refuses ends sampling with what was drawn (``meta["stopped"]``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ponder.core.context import Context, sample_hidden, sample_top_logprobs
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Candidate, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.sampling import check_sampling, sample
from ponder.strategies.stopping import GIVE_UP_AFTER, check_vote_stop, vote_stop
from ponder.strategies.voting import weighted_vote
from ponder.verifiers.registry import make_scorer


@register("weighted_stop")
@dataclass(frozen=True)
class WeightedStop:
    """Sample until the scorer-weighted vote settles (see the module docstring)."""

    name: ClassVar[str]  # set by register

    max_n: int = 16
    batch: int = 1
    min_n: int = 1
    by: str = "margin"
    tau: float = 0.7
    give_up: float = 0.0
    give_up_after: int = GIVE_UP_AFTER
    scorer: str = "logprob"
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.max_n < 1 or self.batch < 1:
            raise ConfigError(
                f"weighted_stop: max_n and batch must be >= 1, got {self.max_n}, {self.batch}"
            )
        if self.min_n > self.max_n:
            raise ConfigError(f"weighted_stop: need min_n <= max_n, got {self.min_n}, {self.max_n}")
        try:
            check_vote_stop(self.by, self.tau, self.min_n, self.give_up, self.give_up_after)
        except ValueError as e:
            raise ConfigError(f"weighted_stop: {e}") from e
        check_sampling(self.temperature, self.top_p)
        if self.scorer:
            make_scorer(self.scorer)  # an unknown or unreadable scorer fails before sampling

    def check(self, cands: Sequence[Candidate]) -> tuple[dict[str, Any], str | None]:
        """The tallies, the leader's share and lead after ``cands``, and why to stop (None:
        go on)."""
        return vote_stop(
            [c.answer for c in cands],
            [_weight(c) for c in cands],
            by=self.by,
            tau=self.tau,
            min_n=self.min_n,
            give_up=self.give_up,
            give_up_after=self.give_up_after,
        )

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        return await self.go_on(problem, ctx, [])

    async def go_on(
        self, problem: Problem, ctx: Context, drawn: Sequence[Candidate], t0: float | None = None
    ) -> Result:
        """The draw, with ``drawn`` (samples at this strategy's temperature and top_p,
        scored by its scorer: a compute-optimal pilot) as its first samples: the rule is
        checked on them first, and sampling goes on only while it is not settled."""
        t0 = time.perf_counter() if t0 is None else t0
        scorer = make_scorer(self.scorer) if self.scorer else None
        cands = list(drawn[: self.max_n])
        history: list[dict[str, Any]] = []
        reason, stopped = "cap reached", {}
        why = None
        if cands:
            entry, why = self.check(cands)
            history.append(entry)
            if why is not None:
                reason = why
        while why is None and len(cands) < self.max_n:
            n = min(self.batch, self.max_n - len(cands))
            try:
                comps = await sample(
                    problem,
                    ctx,
                    n,
                    self.temperature,
                    self.top_p,
                    logprobs=scorer is not None and scorer.needs_logprobs,
                    top_logprobs=0 if scorer is None else sample_top_logprobs(scorer),
                    hidden=scorer is not None and sample_hidden(scorer),
                    label=self.name,
                )
                scores = (
                    [1.0] * len(comps)
                    if scorer is None
                    else [s.value for s in await ctx.score(problem, comps, scorer)]
                )
            except BudgetExceeded as e:
                if not cands:
                    raise
                stopped = stopped_by_budget(e)
                break
            cands.extend(make_candidates(ctx, comps, scores))
            entry, why = self.check(cands)
            history.append(entry)
            if why is not None:
                reason = why
        answers = [c.answer for c in cands]
        answer, votes = weighted_vote(answers, [_weight(c) for c in cands])
        meta = {
            "samples": len(cands),
            "stop_reason": reason,
            "by": self.by,
            "tau": self.tau,
            "scorer": "count" if scorer is None else scorer.name,
            "history": history,
            **stopped,
        }
        return make_result(self.name, ctx, t0, answer, cands, votes, meta)


def _weight(c: Candidate) -> float:
    """A sample's vote: its score, at least 0 (an unscored sample counts one)."""
    return 1.0 if c.score is None else max(c.score, 0.0)
