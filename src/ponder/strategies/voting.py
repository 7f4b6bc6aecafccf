"""Voting rules as pure functions over candidates' answers.

Tie rule, shared by every rule here and by the eval curves: among answers tied on the
winning weight, the one that *reached* that weight first in sample order wins (for
unweighted votes: the answer whose k-th vote came earliest). It is deterministic, does
not depend on string order, and rewards the answer the sampler settled on first.
``None`` (no answer extracted) never receives votes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Method = Literal["majority", "best_of_n", "weighted"]
METHODS: tuple[Method, ...] = ("majority", "best_of_n", "weighted")
# strategies that vote or pick over independent samples, and the rule that replays them
SAMPLING_RULES: dict[str, Method] = {
    "majority": "majority",
    "best_of_n": "best_of_n",
    "weighted_majority": "weighted",
}


def weighted_vote(
    answers: Sequence[str | None], weights: Sequence[float]
) -> tuple[str | None, dict[str, float]]:
    """Sum ``weights`` per answer; return the winner (None if no answer) and the tallies."""
    if len(answers) != len(weights):
        raise ValueError("answers and weights differ in length")
    totals: dict[str, float] = {}
    for a, w in zip(answers, weights, strict=True):
        if a is not None:
            totals[a] = totals.get(a, 0.0) + float(w)
    if not totals:
        return None, totals
    best = max(totals.values())
    # replay the votes: the first answer whose running total reaches `best` wins
    running: dict[str, float] = {}
    for a, w in zip(answers, weights, strict=True):
        if a is None:
            continue
        running[a] = running.get(a, 0.0) + float(w)
        if totals[a] == best and running[a] >= best:
            return a, totals
    raise AssertionError("unreachable: some answer reaches the best total")


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, dict[str, float]]:
    """Self-consistency: the most frequent answer."""
    return weighted_vote(answers, [1.0] * len(answers))


def best_of(answers: Sequence[str | None], scores: Sequence[float]) -> int:
    """Index of the highest-scored candidate; ties go to the earliest. Candidates with an
    answer are preferred over those without one."""
    if not scores:
        raise ValueError("best_of needs at least one candidate")
    return max(range(len(scores)), key=lambda i: (answers[i] is not None, scores[i], -i))


def best_scores(answers: Sequence[str | None], scores: Sequence[float]) -> dict[str, float]:
    """Each answer's best score: the tally best-of-n reports beside its pick."""
    tally: dict[str, float] = {}
    for a, s in zip(answers, scores, strict=True):
        if a is not None:
            tally[a] = max(tally.get(a, float("-inf")), s)
    return tally
