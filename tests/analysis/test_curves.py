from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from ponder.analysis.curves import point, prefix_outcomes, scaling_curve
from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record
from ponder.runs.summary import wilson_interval


def rec(
    answers: Sequence[str | None],
    correct: Sequence[str] = ("A",),
    *,
    scores: Sequence[float | None] | None = None,
    completion: Sequence[int] | None = None,
    prompt: int = 10,
    native_n: bool = True,
    pid: str = "p",
    final: str | None = None,
    error: str | None = None,
) -> Record:
    completion = completion or [5] * len(answers)
    cands = tuple(
        Candidate(
            text=f"answer: {a}",
            answer=a,
            usage=Usage(
                prompt_tokens=prompt if (j == 0 or not native_n) else 0,
                cached_tokens=prompt if (j > 0 and native_n) else 0,
                completion_tokens=completion[j],
            ),
            score=None if scores is None else scores[j],
        )
        for j, a in enumerate(answers)
    )
    graded = {a: a in correct for a in answers if a is not None}
    return Record(
        problem_id=pid,
        idx=0,
        question="q",
        reference="A",
        answer=final,
        correct=final in correct,
        candidates=cands,
        answer_correct=graded,
        usage=sum((c.usage for c in cands), Usage()),
        error=error,
    )


def accuracies(records: Sequence[Record], method: str = "majority", **kw: object) -> list[float]:
    kw.setdefault("permute", False)
    return [p.accuracy for p in scaling_curve(records, method, **kw)]  # type: ignore[arg-type]


def test_n1_without_permutation_is_the_first_sample_accuracy() -> None:
    records = [
        rec(["A", "B", "B"], pid="p0"),
        rec(["B", "A", "A"], pid="p1"),
        rec([None, "A", "A"], pid="p2"),
        rec(["A", None, "C"], pid="p3"),
    ]
    curve = scaling_curve(records, permute=False, bootstrap=200)
    assert curve[0].accuracy == pytest.approx(2 / 4)
    assert [p.n for p in curve] == [1, 2, 3]
    # n=2: p0 A (1-1 tie, A first), p1 B (tie, B first), p2 A, p3 A
    # n=3: p0 B, p1 A, p2 A, p3 A (1-1 tie with C, A first)
    assert [p.accuracy for p in curve] == pytest.approx([0.5, 0.75, 0.75])
    assert all(p.problems == 4 for p in curve)


def test_ties_go_to_the_answer_that_reached_the_count_first() -> None:
    # after 4 samples A and B both have 2 votes; B got its 2nd vote first (sample 3)
    r = rec(["A", "B", "B", "A"], correct=("A",))
    assert accuracies([r]) == [1.0, 1.0, 0.0, 0.0]
    r = rec(["A", "B", "B", "A"], correct=("B",))
    assert accuracies([r]) == [0.0, 0.0, 1.0, 1.0]


def test_none_answers_never_win() -> None:
    r = rec([None, None, "A", None, "B"], correct=("A",))
    assert accuracies([r]) == [0.0, 0.0, 1.0, 1.0, 1.0]
    nothing = rec([None, None, None], correct=("A",))
    assert accuracies([nothing]) == [0.0, 0.0, 0.0]
    assert accuracies([nothing], "best_of_n") == [0.0, 0.0, 0.0]


def test_best_of_n_takes_the_highest_score_earliest_on_ties() -> None:
    r = rec(["A", "B", "C"], correct=("B",), scores=[0.2, 0.9, 0.9])
    assert accuracies([r], "best_of_n") == [0.0, 1.0, 1.0]
    r = rec(["A", "C", "B"], correct=("B",), scores=[0.2, 0.9, 0.9])
    assert accuracies([r], "best_of_n") == [0.0, 0.0, 0.0]
    # an answerless candidate loses to any candidate with an answer, whatever its score
    r = rec([None, "A"], correct=("A",), scores=[0.99, 0.1])
    assert accuracies([r], "best_of_n") == [0.0, 1.0]


def test_weighted_sums_scores_per_answer() -> None:
    r = rec(["A", "B", "B"], correct=("B",), scores=[0.5, 0.25, 0.5])
    assert accuracies([r], "weighted") == [0.0, 0.0, 1.0]
    # B reaches A's 0.75 only at sample 4: A reached it first and keeps the lead
    r = rec(["A", "B", "B", "B"], correct=("B",), scores=[0.75, 0.25, 0.25, 0.25])
    assert accuracies([r], "weighted") == [0.0, 0.0, 0.0, 0.0]
    # unscored answerless candidates are fine; unscored answers are not
    r = rec(["A", None], scores=[0.5, None])
    assert accuracies([r], "weighted") == [1.0, 1.0]
    with pytest.raises(ValueError, match="scores"):
        scaling_curve([rec(["A", "B"])], "weighted")
    with pytest.raises(ValueError, match="scores"):
        scaling_curve([rec(["A", "B"], scores=[0.5, None])], "best_of_n")


def test_tokens_count_prefill_once_for_native_n_and_per_sample_otherwise() -> None:
    native = rec(["A", "B", "A", "B"], completion=[1, 2, 3, 4], prompt=10, native_n=True)
    curve = scaling_curve([native], permute=False)
    assert [p.tokens for p in curve] == [11, 13, 16, 20]
    assert [p.completion_tokens for p in curve] == [1, 3, 6, 10]
    separate = rec(["A", "B", "A", "B"], completion=[1, 2, 3, 4], prompt=10, native_n=False)
    assert [p.tokens for p in scaling_curve([separate], permute=False)] == [11, 23, 36, 50]


def test_permuted_tokens_are_monotone_and_exact_at_full_n() -> None:
    records = [
        rec(["A", "B", "A", "C"], completion=[1, 20, 3, 40], pid="p0"),
        rec(["B", "B", "A", "A"], completion=[7, 7, 9, 2], prompt=4, native_n=False, pid="p1"),
    ]
    curve = scaling_curve(records, bootstrap=300, seed=3)
    tokens = [p.tokens for p in curve]
    assert all(a <= b for a, b in itertools.pairwise(tokens))
    assert tokens[-1] == pytest.approx(((10 + 64) + (16 + 25)) / 2)
    # the expected generated tokens of n random samples is n times the mean
    assert curve[0].completion_tokens == pytest.approx((64 / 4 + 25 / 4) / 2, rel=0.1)


def test_the_point_estimate_averages_over_sample_orders() -> None:
    r = rec(["A", "B", "B", "B"], correct=("A",))
    curve = scaling_curve([r], bootstrap=4000, seed=1)
    assert curve[0].accuracy == pytest.approx(0.25, abs=0.03)
    assert curve[-1].accuracy == 0.0
    # with two samples, A wins exactly when it comes first: 1/4 of orders
    assert curve[1].accuracy == pytest.approx(0.25, abs=0.03)


def test_intervals_contain_the_estimate_and_runs_repeat() -> None:
    rng = random.Random(0)
    records = [
        rec([rng.choice(["A", "B", "C", None]) for _ in range(6)], pid=f"p{i}") for i in range(40)
    ]
    a = scaling_curve(records, bootstrap=500, seed=11)
    b = scaling_curve(records, bootstrap=500, seed=11)
    assert a == b
    for p in a:
        assert 0.0 <= p.ci_low <= p.accuracy <= p.ci_high <= 1.0
        assert p.ci_high - p.ci_low > 0.05
    assert scaling_curve(records, bootstrap=500, seed=12) != a


def test_no_bootstrap_uses_stored_order_and_wilson() -> None:
    records = [rec(["A", "B"], pid="p0"), rec(["B", "A"], pid="p1")]
    curve = scaling_curve(records, bootstrap=0)
    assert curve[0].accuracy == 0.5
    assert (curve[0].ci_low, curve[0].ci_high) == pytest.approx(wilson_interval(1, 2))


def test_max_n_errors_and_uneven_sample_counts() -> None:
    records = [
        rec(["A", "A", "B", "B"], pid="p0"),
        rec(["B", "A", "A"], pid="p1"),
        rec([], pid="broken", error="EngineError: down"),
    ]
    curve = scaling_curve(records, permute=False)
    assert len(curve) == 3 and curve[0].problems == 2  # cut to 3 samples, error left out
    assert len(scaling_curve(records, max_n=2, permute=False)) == 2
    with pytest.raises(ValueError, match="no finished records"):
        scaling_curve([records[2]])
    with pytest.raises(ValueError, match="method"):
        scaling_curve(records, "median")  # type: ignore[arg-type]


def test_an_ungraded_answer_is_an_error_not_a_silent_wrong() -> None:
    r = rec(["A", "B"])
    r = Record(**{**r.__dict__, "answer_correct": {"A": True}})
    with pytest.raises(ValueError, match="not graded"):
        scaling_curve([r])


def test_point_is_the_strategys_own_accuracy() -> None:
    records = [
        rec(["A", "B"], final="A", pid="p0", completion=[3, 4]),
        rec(["B", "B"], final="B", pid="p1", completion=[5, 6]),
        rec(["A", "A"], final="A", pid="p2", completion=[1, 1]),
        rec([], pid="p3", error="RuntimeError: boom"),
    ]
    p = point(records)
    assert (p.accuracy, p.problems, p.n) == (pytest.approx(2 / 3), 3, 2)
    assert (p.ci_low, p.ci_high) == pytest.approx(wilson_interval(2, 3))
    assert p.tokens == pytest.approx((17 + 21 + 12) / 3)
    assert p.completion_tokens == pytest.approx((7 + 11 + 2) / 3)


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


@pytest.mark.parametrize("method", ["majority", "best_of_n", "weighted"])
def test_a_thousand_bootstraps_give_ordered_intervals(method: str) -> None:
    # how fast this runs is measured by bench/curve_speed.py, not asserted here
    rng = random.Random(0)
    records = [
        rec(
            [rng.choice(["A", "B", "C", "D", None]) for _ in range(8)],
            scores=[rng.random() for _ in range(8)],
            pid=f"p{i}",
        )
        for i in range(50)
    ]
    curve = scaling_curve(records, method, bootstrap=1000)  # type: ignore[arg-type]
    assert len(curve) == 8
    assert all(p.ci_low <= p.accuracy <= p.ci_high for p in curve)
    assert all(0.0 <= p.ci_low < p.ci_high <= 1.0 for p in curve)


def test_scoring_tokens_are_spread_over_the_samples() -> None:
    # 4 samples, native n: prompt 10 once, 1+2+3+4 generated; a verifier spent 40 more
    base = rec(["A", "B", "A", "B"], scores=[0.9, 0.1, 0.8, 0.2], completion=[1, 2, 3, 4])
    scored = Record(**{**base.__dict__, "usage": base.usage + Usage(prompt_tokens=40)})
    curve = scaling_curve([scored], "best_of_n", permute=False, bootstrap=0)
    assert [p.tokens for p in curve] == [11 + 10, 13 + 20, 16 + 30, 20 + 40]
    # the full-n point costs exactly what the record cost
    assert curve[-1].tokens == scored.usage.total_tokens
    # majority records have no scoring part
    assert [p.tokens for p in scaling_curve([base], permute=False)] == [11, 13, 16, 20]


def test_prefix_outcomes_are_the_stored_order_curve_per_problem() -> None:
    records = [
        rec(["A", "B", "B"], pid="p0", completion=[1, 2, 3]),
        rec(["B", "A", "A"], pid="p1", native_n=False),
        rec([], pid="broken", error="EngineError: down"),
    ]
    out = prefix_outcomes(records)
    assert out.problem_ids == ("p0", "p1") and out.samples == 3
    # p0: A, then a 1-1 tie A first, then B; p1: B, tie B first, then A
    assert out.correct.astype(int).tolist() == [[1, 1, 0], [0, 0, 1]]
    assert out.tokens(2, scored=False).tolist() == [13, 30]
    curve = scaling_curve(records, permute=False, bootstrap=0)
    for n, p in enumerate(curve, start=1):
        assert out.correct[:, n - 1].mean() == p.accuracy
        assert out.tokens(n, scored=False).mean() == p.tokens
    with pytest.raises(ValueError, match=r"n must be in 1\.\.3"):
        out.tokens(4, scored=False)
    scored = Record(**{**records[0].__dict__, "usage": records[0].usage + Usage(prompt_tokens=30)})
    assert prefix_outcomes([scored]).tokens(3, scored=True).tolist() == [16 + 30]
