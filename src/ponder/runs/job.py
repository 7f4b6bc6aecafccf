"""The job: what solving one problem of a run takes, apart from the engine and the problem.

``evaluate`` builds one ``SolveJob`` from its arguments; the local executor and the Ray
actors solve every problem of the run from it (``ponder.runs.solve.solve_problem``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ponder.core.task import Task
from ponder.strategies.base import Strategy


def problem_seed(seed: int, problem_id: str) -> int:
    """The sampling seed of one problem: stable across runs, processes and orderings."""
    return (seed + zlib.crc32(problem_id.encode("utf-8"))) % 2**31


def strategy_name(strategy: Strategy) -> str:
    """The strategy's ``name``, or its class name when it has none."""
    name = getattr(strategy, "name", None)
    return name if isinstance(name, str) else type(strategy).__name__


@dataclass(frozen=True)
class SolveJob:
    """The settings every problem of a run is solved with.

    ``task`` grades and renders the problems; ``strategy`` spends the compute;
    ``max_tokens`` bounds each generation; ``seed`` is the run's seed, from which each
    problem's own is derived (``problem_seed``); ``budget`` limits each problem's total
    tokens (None: no limit). ``features``: draw the plain samples with top-k logprobs
    and store each sample's token-confidence features beside its record
    (``ponder eval --features``; the samples and results are the same without); with
    ``hidden_dim`` as well, their final hidden states, projected to that many numbers
    (``ponder eval --features --hidden``). Frozen,
    and picklable when the task and strategy are: an executor ships it once to each of
    its workers.
    """

    task: Task
    strategy: Strategy
    max_tokens: int
    seed: int
    budget: int | None = None
    features: bool = False
    hidden_dim: int | None = None

    def seed_for(self, problem_id: str) -> int:
        """The sampling seed of the problem ``problem_id`` in this run."""
        return problem_seed(self.seed, problem_id)
