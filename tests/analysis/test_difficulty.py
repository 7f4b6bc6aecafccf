"""Oracle and predicted difficulty bins, computed by hand."""

from __future__ import annotations

import math

import pytest
from tests._stores import point, sampled

from ponder.analysis.difficulty import (
    assess_prediction,
    compare_bins,
    pass_rate,
    pass_rates,
    pilot_signals,
    stats_by_bin,
)
from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record
from ponder.strategies.optimal.signals import Bins, agreement, mean_score, signal_value


def test_pass_rate_counts_correct_candidates_over_all_candidates() -> None:
    assert pass_rate(sampled("p", ["A", "B", None, "A"])) == 0.5
    assert pass_rate(sampled("p", [None, None])) == 0.0
    errored = Record("e", 0, "q", "A", None, False, error="EngineError: down")
    assert pass_rates([sampled("p", ["A"]), errored]) == {"p": 1.0}
    with pytest.raises(ConfigError, match="no candidates"):
        pass_rate(Record("x", 0, "q", "A", None, False))
    r = sampled("p", ["A", "B"])
    ungraded = Record(**{**r.__dict__, "answer_correct": {"A": True}})
    with pytest.raises(ConfigError, match="'B' is not graded"):
        pass_rate(ungraded)


def test_agreement_is_the_share_of_the_modal_answer() -> None:
    assert agreement(["A", "A", "B", None]) == 0.5
    assert agreement(["A", "B", "C", "D"]) == 0.25
    assert agreement(["B", "B", "B"]) == 1.0
    assert agreement([None, None]) == 0.0
    assert agreement([]) == 0.0


def test_score_signal_is_the_mean_score_and_needs_every_score() -> None:
    assert mean_score([0.25, 0.75]) == 0.5
    with pytest.raises(ConfigError, match="every pilot sample scored"):
        mean_score([0.5, None])
    cands = [Candidate("x", "A", Usage(), score=s) for s in (1.0, 0.5)]
    assert signal_value("score", cands) == 0.75
    assert signal_value("agreement", cands) == 1.0
    with pytest.raises(ConfigError, match="unknown difficulty signal"):
        signal_value("entropy", cands)  # type: ignore[arg-type]


def test_pilot_signals_read_the_first_k_samples() -> None:
    records = [sampled("p0", ["A", "B", "B", "B"]), sampled("p1", ["C", "C", "A", "B"])]
    assert pilot_signals(records, "agreement", 2) == {"p0": 0.5, "p1": 1.0}
    assert pilot_signals(records, "agreement", 4) == {"p0": 0.75, "p1": 0.5}
    with pytest.raises(ConfigError, match="fewer than the pilot's 5"):
        pilot_signals(records, "agreement", 5)
    with pytest.raises(ConfigError, match=r"problem 'p0'.*every pilot sample scored"):
        pilot_signals(records, "score", 2)
    scored = [sampled("p0", ["A", "B", "C"], scores=[0.5, 0.25, 1.0])]
    assert pilot_signals(scored, "score", 2) == {"p0": 0.375}


def test_distinct_values_split_into_equal_quantile_bins() -> None:
    values = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    bins = Bins.fit(values, 5)
    # ranks ceil(j * 10 / 5) = 2, 4, 6, 8 from the top
    assert bins.thresholds == (0.8, 0.6, 0.4, 0.2)
    assert [bins.assign(v) for v in values] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # new values beyond the calibration range land in the end bins
    assert bins.assign(2.0) == 1 and bins.assign(-1.0) == 5
    # 7 values: ranks ceil(7j/5) = 2, 3, 5, 6 -> bins of 2, 1, 2, 1, 1
    seven = Bins.fit([7, 6, 5, 4, 3, 2, 1], 5)
    assert seven.thresholds == (6, 5, 3, 2)
    assert [seven.assign(v) for v in [7, 6, 5, 4, 3, 2, 1]] == [1, 1, 2, 3, 3, 4, 5]


def test_ties_share_a_bin_and_every_bin_is_populated() -> None:
    values = [1, 1, 1, 1, 1, 1, 0.5, 0.5, 0, 0]
    # candidates v(2), v(4), v(6), v(8) = 1, 1, 1, 0.5; duplicates merge
    bins = Bins.fit(values, 5)
    assert bins.thresholds == (1.0, 0.5) and bins.count == 3
    assert [bins.assign(v) for v in values] == [1] * 6 + [2, 2, 3, 3]
    # fewer problems than bins: one bin each; the smallest value is never a threshold
    assert Bins.fit([0.9, 0.5, 0.1], 5).thresholds == (0.9, 0.5)
    # all equal: one bin
    same = Bins.fit([0.5, 0.5, 0.5], 5)
    assert same.thresholds == () and same.count == 1 and same.assign(0.0) == 1
    assert Bins.fit(values, 1).count == 1


def test_bins_reject_bad_input() -> None:
    with pytest.raises(ConfigError, match="strictly decreasing"):
        Bins((0.5, 0.5))
    with pytest.raises(ConfigError, match="finite"):
        Bins((math.inf,))
    with pytest.raises(ConfigError, match=">= 1"):
        Bins.fit([0.5], 0)
    with pytest.raises(ConfigError, match="no problems"):
        Bins.fit([], 5)
    with pytest.raises(ConfigError, match="count is 4 but 1 thresholds make 2 bins"):
        Bins.from_dict({"count": 4, "thresholds": [0.5]})
    with pytest.raises(ConfigError, match="list of numbers"):
        Bins.from_dict({"thresholds": ["high"]})
    assert Bins.from_dict({"count": 2, "thresholds": [0.5]}) == Bins((0.5,))
    with pytest.raises(ValueError, match="NaN"):
        Bins((0.5,)).assign(math.nan)


def test_compare_bins_counts_agreement() -> None:
    oracle = {"a": 1, "b": 2, "c": 3, "d": 3, "x": 1}
    predicted = {"a": 1, "b": 1, "c": 3, "d": 1, "y": 2}
    got = compare_bins(oracle, predicted, 3, 3)
    # shared: a (1,1), b (2,1), c (3,3), d (3,1)
    assert got.problems == 4
    assert got.exact == 0.5 and got.within_one == 0.75
    assert got.confusion == ((1, 0, 0), (1, 0, 0), (1, 0, 1))
    with pytest.raises(ConfigError, match="share no problems"):
        compare_bins({"a": 1}, {"b": 1}, 1, 1)


def test_stats_by_bin_are_the_runs_own_accuracy_and_tokens() -> None:
    records = [
        point("p0", True, 10),
        point("p1", False, 20),
        point("p2", True, 30),
        point("p3", True, 40),
        Record("p4", 0, "q", "A", None, False, error="EngineError: down"),
    ]
    rows, unbinned = stats_by_bin(records, {"p0": 1, "p1": 1, "p2": 3, "p4": 2}, 3)
    assert unbinned == 1  # p3 has no bin; the error record does not count
    assert [(r.bin, r.problems, r.accuracy, r.tokens) for r in rows[::2]] == [
        (1, 2, 0.5, 15.0),
        (3, 1, 1.0, 30.0),
    ]
    assert rows[1].problems == 0 and math.isnan(rows[1].accuracy)
    assert rows[1].to_dict()["accuracy"] is None


def test_assess_prediction_fits_on_train_and_compares_on_heldout() -> None:
    # oracle: 4 samples each; pilot: the first 2 of the same samples
    oracle = [
        sampled("p0", ["A", "A", "A", "A"], final="A"),  # pass 1.0, agreement 1.0
        sampled("p1", ["A", "B", "A", "A"], final="A"),  # pass 0.75, agreement 0.5
        sampled("p2", ["B", "B", "A", "C"], final="B"),  # pass 0.25, agreement 1.0
        sampled("p3", ["B", "C", "D", "A"], final="B"),  # pass 0.25, agreement 0.5
        sampled("p4", ["A", "A", "B", "A"], final="A"),  # pass 0.75, agreement 1.0
        sampled("p5", ["C", "B", "B", "B"], final="B"),  # pass 0.0, agreement 0.5
    ]
    report = assess_prediction(
        oracle, oracle, signal="agreement", k=2, count=2,
        train=["p0", "p1", "p2", "p3"], heldout=["p4", "p5"],
    )  # fmt: skip
    # train pass rates 1, .75, .25, .25: threshold v(2) = 0.75; signals 1, .5, 1, .5: 1.0
    assert report.oracle_bins.thresholds == (0.75,)
    assert report.predicted_bins.thresholds == (1.0,)
    # p4: oracle 1, predicted 1; p5: oracle 2, predicted 2
    assert report.agreement.exact == 1.0 and report.agreement.confusion == ((1, 0), (0, 1))
    b1, b2 = report.predicted
    assert (b1.problems, b1.pass_rate, b1.accuracy) == (1, 0.75, 1.0)
    assert (b2.problems, b2.pass_rate, b2.accuracy) == (1, 0.0, 0.0)
    assert report.on_heldout and report.to_dict()["evaluated_on"] == "heldout"
    in_sample = assess_prediction(
        oracle, oracle, signal="agreement", k=2, count=2, train=["p0", "p1", "p2", "p3"]
    )
    # on the training problems: p0 (1,1), p1 (1,2), p2 (2,1), p3 (2,2)
    assert in_sample.agreement.exact == 0.5 and not in_sample.on_heldout
    with pytest.raises(ConfigError, match="lack an oracle pass rate"):
        assess_prediction(oracle, oracle, signal="agreement", k=2, train=["p0", "zz"])
