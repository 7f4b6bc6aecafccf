"""The probe's statistics against textbook results: AUC by hand, the L2 logistic fit
against a direct minimisation of the objective ``fit_logistic`` documents (which checks
the ``C = 1 / l2`` mapping onto scikit-learn), and folds that keep a problem whole."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize

from ponder.analysis.probe_train import _group_folds, fit_logistic, roc_auc, select_l2


def test_auc_of_a_small_case_counted_by_hand():
    # negatives 0.1, 0.4, 0.7; positive 0.35 beats one of them, 0.8 all three: 4 of 6
    assert roc_auc([0.1, 0.4, 0.35, 0.8, 0.7], [0, 0, 1, 1, 0]) == pytest.approx(4 / 6)
    # a tie between a positive and a negative counts one half: (1 + 0.5) / 2
    assert roc_auc([0.2, 0.5, 0.5], [0, 1, 0]) == pytest.approx(0.75)


def test_auc_with_one_class_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn would warn; the contract is NaN
        assert math.isnan(roc_auc([0.1, 0.2, 0.3], [0, 0, 0]))
    with pytest.raises(ValueError, match="finite"):
        roc_auc([0.1, math.inf], [0, 1])


def ponder_objective(x, y, w, l2):
    """The documented objective: weighted mean log loss plus l2 / 2 |weights|^2."""
    s = w / w.sum()

    def value(theta):
        z = x @ theta[:-1] + theta[-1]
        return float(
            np.sum(s * (np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * theta[:-1] @ theta[:-1]
        )

    return value


@pytest.mark.parametrize(("n", "d"), [(150, 4), (15, 30)])
def test_logistic_fit_minimises_the_documented_objective(n, d):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, d))
    y = (x[:, 0] - x[:, 1] + rng.normal(size=n) > 0).astype(float)
    w = rng.random(n) + 0.2
    l2 = 0.05
    coef, bias = fit_logistic(x, y, l2=l2, sample_weight=w)
    direct = minimize(
        ponder_objective(x, y, w, l2), np.zeros(d + 1), method="BFGS", options={"gtol": 1e-10}
    )
    assert np.allclose(coef, direct.x[:-1], atol=1e-5)
    assert bias == pytest.approx(direct.x[-1], abs=1e-5)
    # the weights are the objective's own: scaling them all changes nothing
    again, _ = fit_logistic(x, y, l2=l2, sample_weight=7 * w)
    assert np.allclose(again, coef, atol=1e-9)


def test_logistic_fit_recovers_the_sign_and_order_of_the_true_weights():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2000, 4))
    truth = np.array([3.0, -2.0, 1.0, 0.0])
    y = (rng.random(2000) < 1 / (1 + np.exp(-(x @ truth)))).astype(float)
    coef, _ = fit_logistic(x, y, l2=1e-3)
    assert list(np.sign(coef[:3])) == [1.0, -1.0, 1.0]
    assert list(np.argsort(-np.abs(coef))) == [0, 1, 2, 3]
    assert np.allclose(coef, truth, atol=0.3)


def test_soft_labels_are_fitted_exactly():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    y = rng.random(60)  # every label soft
    y[:10] = 1.0
    y[10:20] = 0.0
    coef, bias = fit_logistic(x, y, l2=0.1)
    p = 1 / (1 + np.exp(-(x @ coef + bias)))
    s = np.full(60, 1 / 60)
    assert np.abs(x.T @ (s * (p - y)) + 0.1 * coef).max() < 1e-6
    assert abs(float(s @ (p - y))) < 1e-6


def test_one_class_gives_zero_weights_and_the_clipped_log_odds():
    x = np.random.default_rng(8).normal(size=(10, 3))
    coef, bias = fit_logistic(x, np.ones(10), l2=0.1)
    assert np.array_equal(coef, np.zeros(3))
    assert bias == pytest.approx(math.log((1 - 1e-9) / 1e-9))
    # a weight of zero removes the only negative: one class again
    y = np.r_[np.ones(9), 0.0]
    coef, bias = fit_logistic(x, y, l2=0.1, sample_weight=np.r_[np.ones(9), 0.0])
    assert bias > 20 and not coef.any()


def test_a_start_saves_iterations_not_accuracy():
    rng = np.random.default_rng(9)
    for n, d in ((100, 5), (12, 40)):
        x = rng.normal(size=(n, d))
        y = (x[:, 2] > 0).astype(float)
        cold = fit_logistic(x, y, l2=0.01)
        warm = fit_logistic(x, y, l2=0.01, start=fit_logistic(x, y, l2=0.1))
        assert np.allclose(cold[0], warm[0], atol=1e-6)
        assert cold[1] == pytest.approx(warm[1], abs=1e-6)
        with pytest.raises(ValueError, match="start"):
            fit_logistic(x, y, l2=0.01, start=(np.zeros(d + 1), 0.0))


def test_folds_keep_every_group_whole_are_balanced_and_seeded():
    groups = [f"q{i % 11}" for i in range(70)]  # 11 problems, rollouts interleaved
    fold = _group_folds(groups, 3, seed=4)
    for g in set(groups):
        assert len({int(f) for f, h in zip(fold, groups, strict=True) if h == g}) == 1
    per_fold = [len({h for f, h in zip(fold, groups, strict=True) if f == k}) for k in range(3)]
    assert sorted(per_fold) == [3, 4, 4]
    assert np.array_equal(fold, _group_folds(groups, 3, seed=4))
    assert not np.array_equal(fold, _group_folds(groups, 3, seed=5))


def test_l2_selection_validates_on_unseen_groups(monkeypatch):
    """Every validation fold select_l2 scores holds only problems its fit never saw."""
    rng = np.random.default_rng(10)
    x = rng.normal(size=(48, 3))
    y = (x[:, 0] > 0).astype(float)
    groups = [f"g{i // 4}" for i in range(48)]
    seen: list[tuple[set[str], set[str]]] = []
    real = _group_folds

    def spy(gs, folds, seed):
        fold = real(gs, folds, seed)
        for k in range(folds):
            train = {g for g, f in zip(gs, fold, strict=True) if f != k}
            valid = {g for g, f in zip(gs, fold, strict=True) if f == k}
            seen.append((train, valid))
        return fold

    monkeypatch.setattr("ponder.analysis.probe_train._group_folds", spy)
    chosen, losses = select_l2(x, y, groups, seed=3)
    assert len(seen) == 3 and all(t and v and t.isdisjoint(v) for t, v in seen)
    assert set().union(*(v for _, v in seen)) == set(groups)
    assert losses[chosen] == min(losses.values())
