"""The scorer seam: judge a problem's candidate solutions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ponder.types import Completion, Problem, Score

if TYPE_CHECKING:
    from ponder.strategies.base import Context


@runtime_checkable
class Scorer(Protocol):
    """Scores candidate solutions of one problem; higher is better.

    ``needs_logprobs`` asks the strategy to request logprobs when sampling. A scorer
    that spends compute does so through ``ctx.generate(..., kind="score")`` so its
    tokens are budgeted and on the ledger.
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_logprobs(self) -> bool: ...

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]: ...
