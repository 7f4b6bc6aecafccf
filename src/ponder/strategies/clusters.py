"""Voting over clusters of free-form answers, where no two are spelled alike.

The free-form strategies (``semantic_majority``, ``universal_self_consistency``) group
their candidates' answers with a clusterer (``ponder.verifiers.equivalence``); here a
cluster votes under its representative (its first member). Ties follow the rule in
``ponder.strategies.voting``: the cluster whose k-th member came first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ponder.core.types import Candidate
from ponder.strategies.voting import majority_vote
from ponder.verifiers.equivalence import Clustering


def cluster_vote(
    cands: Sequence[Candidate], clustering: Clustering
) -> tuple[str | None, dict[str, float], int | None]:
    """The winning cluster's representative answer, the votes per cluster (keyed by
    representative answer) and the winner's representative index."""
    reps = clustering.representatives
    labels = [None if k is None else str(cands[reps[k]].answer) for k in clustering.labels]
    answer, votes = majority_vote(labels)
    if answer is None:
        return None, votes, None
    winner = next(r for r in reps if cands[r].answer == answer)
    return answer, votes, winner


def clusters_meta(cands: Sequence[Candidate], clustering: Clustering) -> list[dict[str, Any]]:
    """Each cluster's representative answer and members, for ``Result.meta``."""
    return [
        {"answer": cands[r].answer, "members": clustering.members(k)}
        for k, r in enumerate(clustering.representatives)
    ]
