"""pass@k from a run's graded samples, with the unbiased estimator of Chen et al. (2021).

For a problem with ``n`` samples of which ``c`` are correct, the chance that ``k``
samples drawn without replacement include a correct one is
``1 - C(n - c, k) / C(n, k)``, computed as ``1 - prod_{i = n - c + 1}^{n} (1 - k / i)``
so that no binomial coefficient is ever formed (they overflow floats for large ``n``).
pass@k of a run is its mean over problems. It applies to runs whose candidates are
independent samples of one prompt (``PASS_AT_K_STRATEGIES``); a candidate is correct
when its answer is graded correct in the record's ``answer_correct`` (no answer: wrong).
``k`` goes up to the smallest sample count among the run's problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.runs.store import Record

__all__ = ["PASS_AT_K_STRATEGIES", "PassAtK", "default_ks", "pass_at_k", "pass_at_k_table"]

# strategies whose candidates are independent samples of the task's prompt
PASS_AT_K_STRATEGIES = frozenset(
    {"single", "majority", "best_of_n", "weighted_majority", "behaviour_majority"}
)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate for one problem: ``n`` samples, ``c`` correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


@dataclass(frozen=True)
class PassAtK:
    """pass@``k`` averaged over ``problems``."""

    k: int
    value: float
    problems: int

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "pass": self.value, "problems": self.problems}


def _correct(record: Record) -> int:
    missing = {c.answer for c in record.candidates if c.answer is not None} - set(
        record.answer_correct
    )
    if missing:
        raise ValueError(f"problem {record.problem_id!r} has ungraded answers; no pass@k")
    graded = record.answer_correct
    return sum(1 for c in record.candidates if c.answer is not None and graded[c.answer])


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... below ``n``, and ``n``."""
    ks = [1]
    while ks[-1] * 2 < n:
        ks.append(ks[-1] * 2)
    return ks if ks[-1] == n else [*ks, n]


def pass_at_k_table(records: Sequence[Record], ks: Sequence[int] | None = None) -> list[PassAtK]:
    """pass@k of the finished records for each ``k`` (default ``default_ks`` of the
    smallest sample count); ``ValueError`` when there is nothing to estimate from."""
    ok = [r for r in records if r.ok]
    if not ok:
        raise ValueError("no finished records")
    n_min = min(len(r.candidates) for r in ok)
    if n_min == 0:
        raise ValueError("a problem has no candidates")
    wanted = default_ks(n_min) if ks is None else list(ks)
    if any(not 1 <= k <= n_min for k in wanted):
        raise ValueError(f"k must be in 1..{n_min} (the fewest samples of a problem)")
    counts = [(len(r.candidates), _correct(r)) for r in ok]
    return [
        PassAtK(k, sum(pass_at_k(n, c, k) for n, c in counts) / len(counts), len(counts))
        for k in wanted
    ]
