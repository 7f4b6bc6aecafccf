"""A probe on a bank's hidden states: logistic regression on the model's own last layer.

``ponder bank features --hidden`` keeps, per sample, the final-layer hidden state at its
last scored token and its mean over the sample, each projected to a few numbers
(``ponder.verifiers.hidden``). A probe reads whether the sample is right from them (the
same idea as ``ponder.verifiers.probe``, which reads step prefixes live). Here it scores
whole samples of a bank, to be weighed against the token-confidence features:

- ``probe``: standardised hidden vectors (last and mean, side by side), L2 logistic
  regression (scikit-learn), its strength ``C`` chosen among ``C_GRID`` by grouped
  cross-validation on the rows it is fitted on (``GroupKFold`` by problem, pooled AUC of
  the out-of-fold predictions; ties to the smaller ``C``);
- ``joint``: the same over the hidden vectors and the features together.

Every function takes plain arrays, rows grouped by problem; ``cross_fit`` scores every
row by a probe fitted on the other groups' folds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ponder.verifiers.features import WINDOW
from ponder.verifiers.hidden import Projection
from ponder.verifiers.hidden_probe import HiddenProbe

__all__ = ["C_GRID", "as_verifier", "choose_c", "cross_fit", "fit_probe"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
"""The L2 strengths the probe chooses among (smaller is stronger)."""


def _model(c: float) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def _clean(x: FloatArray) -> FloatArray:
    """NaN cells (a feature of an empty sample) at their column's mean."""
    if not np.isnan(x).any():
        return x
    means = np.nanmean(x, axis=0)
    out: FloatArray = np.where(np.isnan(x), np.nan_to_num(means)[None, :], x)
    return out


def _splits(groups: IntArray, folds: int, seed: int) -> list[tuple[IntArray, IntArray]]:
    k = min(folds, len(np.unique(groups)))
    if k < 2:
        raise ValueError("the probe needs at least 2 problems to cross-validate")
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(groups)), groups=groups))


def choose_c(
    x: FloatArray, y: BoolArray, groups: IntArray, *, folds: int = 5, seed: int = 0
) -> float:
    """The ``C`` of ``C_GRID`` whose out-of-fold predictions have the highest pooled AUC."""
    x = _clean(x)
    splits = _splits(groups, folds, seed)
    best, best_auc = C_GRID[0], -1.0
    for c in C_GRID:
        oof = np.full(len(y), np.nan)
        for train, test in splits:
            if len(np.unique(y[train])) < 2:
                raise ValueError("a fold's training problems are all right or all wrong")
            oof[test] = _model(c).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
        auc = float(roc_auc_score(y, oof))
        if auc > best_auc + 1e-12:
            best, best_auc = c, auc
    return best


def fit_probe(
    x: FloatArray, y: BoolArray, groups: IntArray, *, folds: int = 5, seed: int = 0
) -> Pipeline:
    """The probe fitted on every row, with ``C`` chosen by ``choose_c`` on them."""
    if len(np.unique(y)) < 2:
        raise ValueError("the probe needs right and wrong samples to fit on")
    c = choose_c(x, y, groups, folds=folds, seed=seed)
    return _model(c).fit(_clean(x), y)


def as_verifier(
    probe: Pipeline,
    projection: Projection,
    features: Sequence[str] = (),
    trained_on: Mapping[str, Any] | None = None,
) -> HiddenProbe:
    """A fitted probe as plain numbers (``ponder.verifiers.hidden_probe.HiddenProbe``),
    for rows of ``features`` (transformed) then hidden states under ``projection``.
    Its NaN cells enter at the scaler's means, as ``_clean`` puts a fitting batch's."""
    scaler, model = probe.named_steps["standardscaler"], probe.named_steps["logisticregression"]
    return HiddenProbe(
        projection=projection,
        features=tuple(features),
        mean=tuple(float(m) for m in scaler.mean_),
        scale=tuple(float(s) for s in scaler.scale_),
        coef=tuple(float(w) for w in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        window=WINDOW,
        trained_on={**(trained_on or {}), "C": float(model.C)},
    )


def predict(probe: Pipeline, x: FloatArray) -> FloatArray:
    out: FloatArray = probe.predict_proba(_clean(x))[:, 1]
    return out


def cross_fit(
    x: FloatArray, y: BoolArray, groups: IntArray, *, folds: int = 5, seed: int = 0
) -> FloatArray:
    """Each row scored by a probe (its ``C`` chosen inside) fitted on the other folds."""
    out = np.full(len(y), np.nan)
    for train, test in _splits(groups, folds, seed):
        probe = fit_probe(x[train], y[train], groups[train], folds=folds, seed=seed)
        out[test] = predict(probe, x[test])
    return out
