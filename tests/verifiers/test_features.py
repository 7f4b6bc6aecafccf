"""The token-confidence features against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from ponder.core.types import TokenLogprob
from ponder.verifiers.features import (
    FEATURE_NAMES,
    group_confidences,
    sample_features,
    self_certainty,
)


def _tok(logprob: float, *top: float) -> TokenLogprob:
    return TokenLogprob("t", logprob, tuple((f"a{i}", lp) for i, lp in enumerate(top)))


def test_group_confidences_are_window_means_and_a_short_trace_is_one_group() -> None:
    assert group_confidences([1.0, 2.0, 3.0, 6.0], window=2).tolist() == [1.5, 2.5, 4.5]
    assert group_confidences([1.0, 2.0, 3.0, 6.0], window=10).tolist() == [3.0]
    assert group_confidences([], window=3).size == 0


def test_features_of_a_trace_worked_by_hand() -> None:
    # token confidences (minus the mean of the two alternatives): 1, 3, 2, 6, 1
    tokens = [
        _tok(-0.5, -0.5, -1.5),
        _tok(-1.0, -1.0, -5.0),
        _tok(-2.0, -1.0, -3.0),
        _tok(-0.1, -4.0, -8.0),
        _tok(-0.2, -0.5, -1.5),
    ]
    f = sample_features(tokens, window=2, tail=3)
    assert f["tokens"] == 5
    assert f["mean_logprob"] == pytest.approx((-0.5 - 1.0 - 2.0 - 0.1 - 0.2) / 5)
    # groups of 2: 2, 2.5, 4, 3.5; the lowest is 2 and floor(0.1 * 4) = 0 -> 1 group
    assert f["lowest_group"] == pytest.approx(2.0)
    assert f["bottom10_group"] == pytest.approx(2.0)
    assert f["tail"] == pytest.approx((2 + 6 + 1) / 3)

    # per token: logsumexp(l) - mean(l) - log 2 over the two alternatives
    def sc(a: float, b: float) -> float:
        return math.log(math.exp(a) + math.exp(b)) - (a + b) / 2 - math.log(2)

    expected = (
        sc(-0.5, -1.5) + sc(-1.0, -5.0) + sc(-1.0, -3.0) + sc(-4.0, -8.0) + sc(-0.5, -1.5)
    ) / 5
    assert f["self_certainty"] == pytest.approx(expected)
    assert tuple(f) == FEATURE_NAMES


def test_bottom_ten_percent_averages_the_lowest_tenth_of_the_groups() -> None:
    # 25 tokens, window 1: the groups are the confidences; floor(2.5) = 2 lowest: 0 and 1
    tokens = [_tok(-1.0, float(-c)) for c in [5.0] * 10 + [0.0, 1.0] + [7.0] * 13]
    f = sample_features(tokens, window=1, tail=2048)
    assert f["lowest_group"] == pytest.approx(0.0)
    assert f["bottom10_group"] == pytest.approx(0.5)
    # the tail is capped at the trace: the mean of all 25
    assert f["tail"] == pytest.approx((50 + 1 + 91) / 25)


def test_self_certainty_is_zero_for_a_flat_top_k_and_grows_as_it_peaks() -> None:
    flat = [_tok(-1.0, -1.0, -1.0, -1.0)]
    assert self_certainty(flat) == pytest.approx(0.0)
    assert self_certainty([_tok(-0.1, -0.1, -3.0, -6.0)]) > self_certainty(
        [_tok(-0.5, -0.5, -1.0, -1.5)]
    )
    assert self_certainty([_tok(-0.3)]) == 0.0  # no alternatives: a flat top-1


def test_an_empty_trace_has_no_confidences() -> None:
    f = sample_features([])
    assert f["tokens"] == 0
    assert all(math.isnan(f[name]) for name in FEATURE_NAMES if name != "tokens")
