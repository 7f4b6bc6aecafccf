"""``dvts``: diverse verifier tree search (Beeching et al. 2024): N/M independent
subtrees, each extended greedily by the verifier, M candidates per step, so one strong
early step cannot take over every beam. How steps are sampled and judged, what the
result holds and how a token budget ends the search: ``ponder.strategies.search``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Problem, Result
from ponder.strategies.base import register, stopped_by_budget
from ponder.strategies.search import Node, StepSearch


@register("dvts")
@dataclass(frozen=True)
class DiverseVerifierTreeSearch(StepSearch):
    """n/width independent subtrees, each extended greedily by the verifier."""

    n: int = 8
    width: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.width < 1 or self.width > self.n:
            raise ConfigError(f"need 1 <= width <= n, got n={self.n}, width={self.width}")

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        verifier = self._verifier()
        tree = self._tree(verifier)
        subtrees = max(1, self.n // self.width)
        (first,) = await self._expand(problem, ctx, tree, [(tree.root, subtrees * self.width)])
        groups = [first[i * self.width : (i + 1) * self.width] for i in range(subtrees)]
        finished: list[Node] = []
        rounds = 1
        meta: dict[str, Any] = {}
        while groups:
            flat = [c for g in groups for c in g]
            try:
                values = await self._score(problem, ctx, verifier, tree, flat)
            except BudgetExceeded as e:
                # unranked: the round's own ends count, or else its open steps
                meta = stopped_by_budget(e)
                finished += [c for c in flat if c.finished]
                self._cut_short(ctx, tree, finished, flat)
                break
            scores = dict(zip((c.id for c in flat), values, strict=True))
            leaders = [max(g, key=lambda c: scores[c.id]) for g in groups if g]
            finished += [c for c in leaders if c.finished]
            growing = [c for c in leaders if not c.finished]
            if not growing:
                break
            rounds += 1
            try:
                groups = await self._expand(problem, ctx, tree, [(c, self.width) for c in growing])
            except BudgetExceeded as e:
                meta = stopped_by_budget(e)
                self._cut_short(ctx, tree, finished, growing)
                break
        meta.update(rounds=rounds, subtrees=subtrees)
        return await self._finish(problem, ctx, verifier, tree, finished, t0, meta)
