"""``beam_search``: verifier-guided beam search over solution steps (Snell et al. 2024,
section 5). N beams of width M: sample N first steps; then repeatedly score the
unfinished beams, keep the best N/M, and extend each with M sampled next steps. With
``lookahead`` > 0 a candidate step is scored at the end of a greedy rollout that many
steps further (the ``lookahead`` strategy). How steps are sampled and judged, what the
result holds and how a token budget ends the search: ``ponder.strategies.search``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Problem, Result
from ponder.strategies.base import register, stopped_by_budget
from ponder.strategies.search import Node, StepSearch, Tree
from ponder.verifiers.process import ProcessVerifier


@register("beam_search")
@dataclass(frozen=True)
class BeamSearch(StepSearch):
    """N beams (``n``); keep the best n/width each step and extend each width ways."""

    n: int = 8
    width: int = 2
    lookahead: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.width < 1 or self.width > self.n:
            raise ConfigError(f"need 1 <= width <= n, got n={self.n}, width={self.width}")
        if self.lookahead < 0:
            raise ConfigError(f"lookahead must be >= 0, got {self.lookahead}")

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        verifier = self._verifier()
        tree = self._tree(verifier)
        finished: list[Node] = []
        frontier: list[tuple[Node, int]] = [(tree.root, self.n)]
        rounds = 0
        meta: dict[str, Any] = {}
        while frontier:
            rounds += 1
            try:
                grown = await self._expand(problem, ctx, tree, frontier)
            except BudgetExceeded as e:
                if rounds == 1:
                    raise
                meta = stopped_by_budget(e)
                self._cut_short(ctx, tree, finished, [p for p, _ in frontier])
                break
            children = [c for group in grown for c in group]
            finished += [c for c in children if c.finished]
            active = [c for c in children if not c.finished]
            if len(finished) >= self.n or not active:
                break
            try:
                scores = await self._rank(problem, ctx, verifier, tree, active)
            except BudgetExceeded as e:
                meta = stopped_by_budget(e)
                self._cut_short(ctx, tree, finished, active)
                break
            keep = max(1, min(len(active), math.ceil((self.n - len(finished)) / self.width)))
            order = sorted(range(len(active)), key=lambda i: -scores[i])[:keep]
            frontier = [(active[i], self.width) for i in order]
        meta["rounds"] = rounds
        return await self._finish(problem, ctx, verifier, tree, finished, t0, meta)

    async def _rank(
        self,
        problem: Problem,
        ctx: Context,
        verifier: ProcessVerifier,
        tree: Tree,
        active: list[Node],
    ) -> list[float]:
        if self.lookahead == 0:
            return await self._score(problem, ctx, verifier, tree, active)
        # greedy rollouts; their steps stay in the tree, marked, but are never extended
        ends = list(active)
        for _ in range(self.lookahead):
            open_ = [i for i, e in enumerate(ends) if not e.finished]
            if not open_:
                break
            grown = await self._expand(
                problem, ctx, tree, [(ends[i], 1) for i in open_], temperature=0.0
            )
            for i, group in zip(open_, grown, strict=True):
                group[0].rollout = True
                ends[i] = group[0]
        scores = await self._score(problem, ctx, verifier, tree, ends)
        for node, s in zip(active, scores, strict=True):
            node.score = s
        return scores
