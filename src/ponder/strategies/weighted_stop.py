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
from ponder.strategies.stopping import GIVE_UP_AFTER, check_vote_stop
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
        make_scorer(self.scorer)  # an unknown or unreadable scorer fails before sampling

    def check(self, cands: Sequence[Candidate]) -> tuple[dict[str, Any], str | None]:
        """The tallies, the leader's share and lead after ``cands``, and why to stop (None:
        go on)."""
        _, totals = weighted_vote(
            [c.answer for c in cands], [max(c.score or 0.0, 0.0) for c in cands]
        )
        ranked = [*sorted(totals.values(), reverse=True), 0.0, 0.0]
        cast = sum(totals.values())
        share = ranked[0] / cast if cast > 0 else 0.0
        lead = ranked[0] - ranked[1]
        entry = {"samples": len(cands), "weights": totals, "share": share, "lead": lead}
        k = len(cands)
        settled = share if self.by == "share" else lead
        if k >= self.min_n and settled >= self.tau - 1e-12:
            return entry, f"{self.by} {settled:.4f} >= {self.tau:g}"
        if self.give_up and k >= self.give_up_after and share < self.give_up:
            return entry, f"gave up: share {share:.4f} < {self.give_up:g}"
        return entry, None

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        scorer = make_scorer(self.scorer)
        cands: list[Candidate] = []
        history: list[dict[str, Any]] = []
        reason, stopped = "cap reached", {}
        while len(cands) < self.max_n:
            n = min(self.batch, self.max_n - len(cands))
            try:
                comps = await sample(
                    problem,
                    ctx,
                    n,
                    self.temperature,
                    self.top_p,
                    logprobs=scorer.needs_logprobs,
                    top_logprobs=sample_top_logprobs(scorer),
                    hidden=sample_hidden(scorer),
                    label=self.name,
                )
                scores = [s.value for s in await ctx.score(problem, comps, scorer)]
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
                break
        answers = [c.answer for c in cands]
        answer, votes = weighted_vote(answers, [max(c.score or 0.0, 0.0) for c in cands])
        meta = {
            "samples": len(cands),
            "stop_reason": reason,
            "by": self.by,
            "tau": self.tau,
            "scorer": scorer.name,
            "history": history,
            **stopped,
        }
        return make_result(self.name, ctx, t0, answer, cands, votes, meta)
