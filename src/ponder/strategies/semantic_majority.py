"""``semantic_majority``: self-consistency over meanings.

n samples; their answers are clustered (``ponder.verifiers.equivalence``: by
normalised text, sentence embeddings or the model judging equivalence) and the largest
cluster wins, answered by its representative (its first member). Ties follow the rule
in ``ponder.strategies.voting``: the cluster whose k-th member came first.

Under a token budget, clustering that would not fit falls back to the clusters of
normalised answers, and ``meta`` has ``stopped="budget"`` and the ``stop_reason``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.clusters import cluster_vote, clusters_meta
from ponder.strategies.sampling import check_sampling, sample
from ponder.verifiers.equivalence import (
    CLUSTER_METHODS,
    AnswerClusterer,
    TextClusterer,
    make_clusterer,
)

__all__ = ["SemanticMajority"]


@register("semantic_majority")
@dataclass(frozen=True)
class SemanticMajority:
    """Self-consistency over meanings: n samples, answers clustered, the largest wins.

    ``cluster``: ``text`` (normalised text), ``embed`` (sentence embeddings with cosine
    at least ``threshold``, model ``embed_model``; ``pip install 'ponder[embed]'``) or
    ``judge`` (the model asked whether two answers are the same). ``votes`` counts each
    cluster's members under its representative answer; ``meta["clusters"]`` lists the
    members of each.
    """

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    cluster: str = "text"
    threshold: float = 0.8
    embed_model: str = "all-MiniLM-L6-v2"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"semantic_majority: n must be >= 1, got {self.n}")
        if self.cluster not in CLUSTER_METHODS:
            raise ConfigError(
                f"semantic_majority: cluster must be one of {', '.join(CLUSTER_METHODS)}, "
                f"got {self.cluster!r}"
            )
        check_sampling(self.temperature, self.top_p)
        self.clusterer()  # a missing model or package is an error now, not per problem

    def clusterer(self) -> AnswerClusterer:
        return make_clusterer(self.cluster, threshold=self.threshold, embed_model=self.embed_model)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        comps = await sample(problem, ctx, self.n, self.temperature, self.top_p)
        cands = make_candidates(ctx, comps)
        answers = [c.answer for c in cands]
        stopped: dict[str, str] = {}
        try:
            clustering = await self.clusterer().cluster(problem, answers, ctx)
        except BudgetExceeded as e:
            stopped = {**stopped_by_budget(e), "fallback": "text clusters"}
            clustering = await TextClusterer().cluster(problem, answers, ctx)
        answer, votes, _ = cluster_vote(cands, clustering)
        meta = {**clustering.meta, "clusters": clusters_meta(cands, clustering), **stopped}
        return make_result("semantic_majority", ctx, t0, answer, cands, votes, meta)
