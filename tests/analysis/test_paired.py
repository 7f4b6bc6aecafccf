"""Paired comparison of a run with a baseline on shared problems."""

from __future__ import annotations

import math

import pytest

from ponder.analysis.paired import paired
from ponder.core.types import Usage
from ponder.runs.store import Record


def rec(pid: str, correct: bool, tokens: int, error: str | None = None) -> Record:
    return Record(
        problem_id=pid,
        idx=0,
        question="q",
        reference="1",
        answer="1" if correct else "2",
        correct=correct,
        usage=Usage(prompt_tokens=tokens // 2, completion_tokens=tokens - tokens // 2),
        error=error,
    )


def test_differences_counts_and_intervals() -> None:
    base = [rec("a", True, 100), rec("b", True, 100), rec("c", False, 100), rec("d", False, 100)]
    run = [rec("a", True, 40), rec("b", False, 60), rec("c", True, 50), rec("d", True, 50)]
    p = paired("run", run, "base", base, bootstrap=500, seed=1)
    assert (p.problems, p.wins, p.losses) == (4, 2, 1)
    assert (p.accuracy, p.baseline_accuracy, p.accuracy_diff) == (0.75, 0.5, 0.25)
    assert (p.tokens, p.baseline_tokens, p.tokens_saved) == (50.0, 100.0, 50.0)
    assert p.saved_share == 0.5
    assert p.generated_saved == 25.0  # half of each record's tokens are generated
    lo, hi = p.accuracy_diff_ci
    assert -1 <= lo <= p.accuracy_diff <= hi <= 1 and lo < hi
    slo, shi = p.tokens_saved_ci
    assert 40 <= slo <= 50 <= shi <= 60
    assert p.saved_share_ci[0] <= 0.5 <= p.saved_share_ci[1]
    # the same seed gives the same intervals
    assert paired("run", run, "base", base, bootstrap=500, seed=1) == p


def test_only_problems_both_finished_are_paired() -> None:
    base = [rec("a", True, 100), rec("b", True, 100, error="EngineError: x")]
    run = [rec("a", False, 80), rec("b", True, 10), rec("z", True, 10)]
    p = paired("run", run, "base", base, bootstrap=50)
    assert p.problems == 1 and p.accuracy_diff == -1.0 and p.tokens_saved == 20.0
    assert p.accuracy_diff_ci == (-1.0, -1.0)


def test_nothing_shared_is_nan_not_an_error() -> None:
    p = paired("run", [rec("a", True, 1)], "base", [rec("b", True, 1)])
    assert p.problems == 0 and math.isnan(p.accuracy_diff) and math.isnan(p.tokens_saved)
    assert p.to_dict()["accuracy_diff"] is None


def test_a_baseline_that_spent_nothing_has_no_share() -> None:
    p = paired("run", [rec("a", True, 10)], "base", [rec("a", True, 0)], bootstrap=20)
    assert p.tokens_saved == -10.0 and math.isnan(p.saved_share)
    assert p.to_dict()["saved_share"] is None
    assert p.accuracy_diff == pytest.approx(0.0)
