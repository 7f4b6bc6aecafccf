"""``adaptive_consistency`` (Aggarwal et al. 2023, "Let's Sample Step by Step:
Adaptive-Consistency for Efficient Reasoning and Coding with LLMs"): samples in
batches and stops once a stopping rule on the answer counts
(``ponder.strategies.stopping``) says the plurality is settled.

It draws plain samples of the task's prompt (no stop strings, no logprobs), so a
replay engine can serve them from a recorded bank and a stopping rule can be swept
without new generation. ``Result.meta`` has ``samples`` (traces drawn),
``stop_reason`` and ``history`` (one entry per batch); the cost is the ledger's, as
always. A batch that would not fit a token budget ends sampling: the vote so far is
the answer, and ``meta`` has ``stopped="budget"`` and the budget's ``stop_reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ponder.core.context import Context
from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Problem, Result
from ponder.strategies.base import register
from ponder.strategies.sampling import check_sampling, vote_until
from ponder.strategies.stopping import RULE_TEXT, RULES, rule_statistic
from ponder.strategies.voting import majority_vote


@register("adaptive_consistency")
@dataclass(frozen=True)
class AdaptiveConsistency:
    """Sample in batches until a stopping rule says the majority is settled.

    After each batch of ``batch`` samples (the last one smaller, so that at most
    ``max_n`` are drawn), with v1 >= v2 >= ... the counts of the answers seen so far
    (samples without an answer count as samples, not votes), the rule gives a
    statistic ``p``; once at least ``min_n`` samples are drawn, sampling stops when
    ``p >= threshold``:

    - ``"beta"``: P(p1 > p2) under Beta(v1 + 1, v2 + 1), see ``beta_stop_probability``;
    - ``"dirichlet"``: P(the leader's probability is the largest) under
      Dirichlet(v + 1) over the answers seen, see ``dirichlet_stop_probability``;
    - ``"majority"``: v1 / samples drawn, the leader's share (a baseline).

    No answer at all gives p = 0. The answer is the plurality of all samples drawn
    (ties as in ``ponder.strategies.voting``). ``meta["history"]`` has, per batch, the
    samples drawn so far, the counts and p.
    """

    name: ClassVar[str]  # set by register

    max_n: int = 16
    batch: int = 2
    min_n: int = 2
    rule: str = "beta"
    threshold: float = 0.95
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.max_n < 1 or self.batch < 1:
            raise ConfigError(
                f"adaptive_consistency: max_n and batch must be >= 1, got {self.max_n}, "
                f"{self.batch}"
            )
        if not 1 <= self.min_n <= self.max_n:
            raise ConfigError(
                f"adaptive_consistency: need 1 <= min_n <= max_n, got min_n={self.min_n}, "
                f"max_n={self.max_n}"
            )
        if self.rule not in RULES:
            raise ConfigError(
                f"adaptive_consistency: rule must be one of {', '.join(RULES)}, got {self.rule!r}"
            )
        if not 0 < self.threshold < 1:
            raise ConfigError(
                f"adaptive_consistency: threshold must be in (0, 1), got {self.threshold}"
            )
        check_sampling(self.temperature, self.top_p)

    def statistic(self, votes: Mapping[str, float], samples: int) -> float:
        """The rule's ``p`` for these answer counts after ``samples`` samples."""
        return rule_statistic(self.rule, votes, samples)

    def _check(
        self, cands: Sequence[Candidate], drawn: Sequence[Candidate], asked: int
    ) -> tuple[dict[str, Any], str | None]:
        """After a batch: the counts and p so far, and a stop once the rule is met."""
        _, votes = majority_vote([c.answer for c in cands])
        p = self.statistic(votes, len(cands))
        entry = {"samples": len(cands), "counts": dict(votes), "p": p}
        if len(cands) >= self.min_n and p >= self.threshold:
            return entry, f"{self.rule}: {RULE_TEXT[self.rule]} {p:.4f} >= {self.threshold}"
        return entry, None

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        settings = {"rule": self.rule, "threshold": self.threshold}
        return await vote_until(self, problem, ctx, self._check, self.batch, settings)
