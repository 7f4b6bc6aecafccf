"""``esc`` (Li et al. 2024, "Escape Sky-high Cost: Early-stopping Self-Consistency for
Multi-step Reasoning"): samples in windows and stops at the first window whose answers
all agree.

It draws plain samples of the task's prompt (no stop strings, no logprobs), so a
replay engine can serve them from a recorded bank. ``Result.meta`` has ``samples``
(traces drawn), ``stop_reason`` and ``history`` (one entry per window); the cost is
the ledger's, as always. A window that would not fit a token budget ends sampling:
the vote so far is the answer, and ``meta`` has ``stopped="budget"`` and the budget's
``stop_reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ponder.core.context import Context
from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Problem, Result
from ponder.strategies.base import register
from ponder.strategies.sampling import check_sampling, vote_until


@register("esc")
@dataclass(frozen=True)
class EarlyStoppingSelfConsistency:
    """Sample in windows of ``window``; stop at the first window whose answers agree.

    Early-stopping self-consistency: a window whose answers are all the same answer
    (none missing), i.e. whose answer distribution has zero entropy, ends sampling;
    otherwise it goes on to ``max_n`` samples (the last window smaller when
    ``max_n`` is not a multiple of ``window``). The answer is the plurality of all
    samples drawn. ``meta["history"]`` has, per window, its answers and whether they
    agreed.
    """

    name: ClassVar[str]  # set by register

    max_n: int = 16
    window: int = 4
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if not 1 <= self.window <= self.max_n:
            raise ConfigError(
                f"esc: need 1 <= window <= max_n, got window={self.window}, max_n={self.max_n}"
            )
        check_sampling(self.temperature, self.top_p)

    def _check(
        self, cands: Sequence[Candidate], drawn: Sequence[Candidate], asked: int
    ) -> tuple[dict[str, Any], str | None]:
        """After a window: its answers, and a stop when a full window agrees."""
        answers = [c.answer for c in drawn]
        agreed = asked == self.window and answers[0] is not None and len(set(answers)) == 1
        entry = {"samples": len(cands), "answers": answers, "agreed": agreed}
        return entry, f"window agreed on {answers[0]!r}" if agreed else None

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        settings = {"window": self.window}
        return await vote_until(self, problem, ctx, self._check, self.window, settings)
