"""A run against a baseline on the problems both finished: accuracy difference and
tokens saved, with paired bootstrap intervals.

Pairing by problem removes the spread between problems from the comparison: on the same
50 problems two runs can differ by a few points with an interval far narrower than
either run's own accuracy interval. Each replicate resamples the shared problems with
replacement and recomputes the mean difference in correctness (run minus baseline),
the mean tokens saved per problem (baseline minus run; prefilled plus generated, and
generated alone, which is what decoding time follows) and the share of the baseline's
tokens saved; the intervals are the 2.5% and 97.5% percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ponder.runs.store import Record

__all__ = ["Paired", "paired"]


@dataclass(frozen=True)
class Paired:
    """``label`` against ``baseline`` on ``problems`` shared problems. ``wins``: run
    right and baseline wrong; ``losses``: the other way round."""

    label: str
    baseline: str
    problems: int
    accuracy: float
    baseline_accuracy: float
    accuracy_diff: float
    accuracy_diff_ci: tuple[float, float]
    tokens: float
    baseline_tokens: float
    tokens_saved: float
    tokens_saved_ci: tuple[float, float]
    saved_share: float
    saved_share_ci: tuple[float, float]
    generated_saved: float
    generated_saved_ci: tuple[float, float]
    wins: int
    losses: int

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "label": self.label,
            "baseline": self.baseline,
            "problems": self.problems,
            "accuracy": num(self.accuracy),
            "baseline_accuracy": num(self.baseline_accuracy),
            "accuracy_diff": num(self.accuracy_diff),
            "accuracy_diff_ci": [num(x) for x in self.accuracy_diff_ci],
            "tokens": num(self.tokens),
            "baseline_tokens": num(self.baseline_tokens),
            "tokens_saved": num(self.tokens_saved),
            "tokens_saved_ci": [num(x) for x in self.tokens_saved_ci],
            "saved_share": num(self.saved_share),
            "saved_share_ci": [num(x) for x in self.saved_share_ci],
            "generated_saved": num(self.generated_saved),
            "generated_saved_ci": [num(x) for x in self.generated_saved_ci],
            "wins": self.wins,
            "losses": self.losses,
        }


def paired(
    label: str,
    records: Sequence[Record],
    baseline_label: str,
    baseline: Sequence[Record],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Paired:
    """Compare the finished ``records`` with the finished ``baseline`` records of the
    same problems (by problem id); tokens are each record's total (prefilled plus
    generated). With no shared problem every number is NaN."""
    base = {r.problem_id: r for r in baseline if r.ok}
    pairs = [(r, base[r.problem_id]) for r in records if r.ok and r.problem_id in base]
    nan = float("nan")
    if not pairs:
        return Paired(label, baseline_label, 0, nan, nan, nan, (nan, nan), nan, nan, nan,
                      (nan, nan), nan, (nan, nan), nan, (nan, nan), 0, 0)  # fmt: skip
    right = np.array([float(r.correct) for r, _ in pairs])
    base_right = np.array([float(b.correct) for _, b in pairs])
    tokens = np.array([float(r.usage.total_tokens) for r, _ in pairs])
    base_tokens = np.array([float(b.usage.total_tokens) for _, b in pairs])
    generated = np.array([float(r.usage.completion_tokens) for r, _ in pairs])
    base_generated = np.array([float(b.usage.completion_tokens) for _, b in pairs])

    def share(saved: float, spent: float) -> float:
        return saved / spent if spent > 0 else nan

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pairs), size=(bootstrap, len(pairs)))
    diffs = (right[picks] - base_right[picks]).mean(axis=1)
    saved = (base_tokens[picks] - tokens[picks]).mean(axis=1)
    generated_saved = (base_generated[picks] - generated[picks]).mean(axis=1)
    spent = base_tokens[picks].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(spent > 0, saved / spent, nan)

    def ci(values: np.ndarray) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        if not len(finite):
            return nan, nan
        low, high = np.percentile(finite, [2.5, 97.5])
        return float(low), float(high)

    mean_saved = float((base_tokens - tokens).mean())
    return Paired(
        label=label,
        baseline=baseline_label,
        problems=len(pairs),
        accuracy=float(right.mean()),
        baseline_accuracy=float(base_right.mean()),
        accuracy_diff=float((right - base_right).mean()),
        accuracy_diff_ci=ci(diffs),
        tokens=float(tokens.mean()),
        baseline_tokens=float(base_tokens.mean()),
        tokens_saved=mean_saved,
        tokens_saved_ci=ci(saved),
        saved_share=share(mean_saved, float(base_tokens.mean())),
        saved_share_ci=ci(shares),
        generated_saved=float((base_generated - generated).mean()),
        generated_saved_ci=ci(generated_saved),
        wins=int(((right == 1) & (base_right == 0)).sum()),
        losses=int(((right == 0) & (base_right == 1)).sum()),
    )
