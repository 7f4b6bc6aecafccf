"""``mcts``: Monte Carlo tree search over solution steps with UCT, a node's value being
its verifier score (no random rollouts), ``width`` children per expansion. How steps
are sampled and judged, what the result holds and how a token budget ends the search:
``ponder.strategies.search``.
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


@register("mcts")
@dataclass(frozen=True)
class MonteCarloTreeSearch(StepSearch):
    """UCT over steps: ``iterations`` expansions of ``width`` children, each valued by
    the verifier; ``exploration`` is UCT's constant."""

    iterations: int = 12
    width: int = 3
    exploration: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations < 1 or self.width < 1:
            raise ConfigError("iterations and width must be >= 1")

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        verifier = self._verifier()
        tree = self._tree(verifier)
        finished: list[Node] = []
        expansions = 0
        meta: dict[str, Any] = {}
        for _ in range(self.iterations):
            node = tree.root
            while node.children and not node.finished:
                node = self._uct_child(tree, node)
            if node.finished:  # a known end: count the visit with its value
                self._backup(tree, node, node.score or 0.0)
                continue
            try:
                (children,) = await self._expand(problem, ctx, tree, [(node, self.width)])
            except BudgetExceeded as e:
                if not tree.root.children:
                    raise
                meta = stopped_by_budget(e)
                break
            expansions += 1
            try:
                values = await self._score(problem, ctx, verifier, tree, children)
            except BudgetExceeded as e:
                meta = stopped_by_budget(e)
                finished += [c for c in children if c.finished]
                break
            for child, value in zip(children, values, strict=True):
                self._backup(tree, child, value)
                if child.finished:
                    finished.append(child)
        if not finished:
            # no solution ended: finish the most visited path greedily, while the budget lasts
            node = tree.root
            while node.children:
                node = max((tree.nodes[i] for i in node.children), key=lambda n: n.visits)
            try:
                while not node.finished:
                    (grown,) = await self._expand(problem, ctx, tree, [(node, 1)], temperature=0.0)
                    node = grown[0]
                finished.append(node)
            except BudgetExceeded as e:
                meta = meta or stopped_by_budget(e)
                self._cut_short(ctx, tree, finished, [node])
        meta["expansions"] = expansions
        return await self._finish(problem, ctx, verifier, tree, finished, t0, meta)

    def _uct_child(self, tree: Tree, node: Node) -> Node:
        children = [tree.nodes[i] for i in node.children]
        log_n = math.log(max(1, node.visits))

        def uct(c: Node) -> float:
            if c.visits == 0:
                return math.inf
            return c.value_sum / c.visits + self.exploration * math.sqrt(log_n / c.visits)

        return max(children, key=uct)

    @staticmethod
    def _backup(tree: Tree, node: Node, value: float) -> None:
        current: Node | None = node
        while current is not None:
            current.visits += 1
            current.value_sum += value
            current = tree.nodes[current.parent] if current.parent is not None else None
