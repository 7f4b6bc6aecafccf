"""Training and measuring verifiers on labelled rollouts from ``ponder eval`` stores.

The pipeline behind ``ponder verifier train``:

1. Rollouts. Every candidate a strategy stored is one rollout of the generator. Its
   label is the task's grade of the answer the task extracts from its text against the
   problem's reference; a candidate with no extractable answer is wrong (label 0).
2. Step labels, one per prefix (steps ``1..k``) of a rollout. A rollout contributes at
   most ``max_prefixes`` prefixes, spread evenly and always including the whole
   solution, so cost is bounded whatever the length. Two ways to label:

   - ``outcome``: every prefix gets the rollout's label. Free, and noisy for early
     steps (a good start of a solution that goes wrong later is labelled 0).
   - ``mc:K``: Math-Shepherd's *hard estimate* (Wang et al., 2024): a prefix is 1 when
     one of K continuations sampled from it reaches the right answer, else 0. The whole
     solution keeps its own label. Hard rather than soft (the fraction of K) because
     the label then stays binary, so held-out AUC is defined on the same labels, and
     because with the small K a CPU affords the fraction is mostly noise. Two shortcuts
     follow from the definition and cost nothing in fidelity: every prefix of a correct
     rollout is 1 (the rollout itself is a continuation that reaches the answer), and a
     prefix text shared by several rollouts of a problem is sampled once. Sampling cost
     is therefore at most ``wrong rollouts x (max_prefixes - 1) x K`` continuations;
     held-out rollouts are labelled the same way, for the held-out step AUC.

3. Features: the generator's hidden state at the last token of each prefix
   (:func:`ponder.verifiers.probe.prefix_request`), embedded in batches.
4. Split by problem: a problem's rollouts are all in training or all held out, so the
   held-out AUC measures the probe on questions it never saw. The split is a seeded
   permutation of the sorted problem ids, so it is the same on every machine.
5. Fit: features standardised with the training mean and spread, then L2-regularised
   logistic regression, scikit-learn's with its Newton solver (deterministic; each
   rollout weighs the same however many prefixes it has). ``l2="auto"`` picks the
   strength by 3-fold cross-validation over training problems (scikit-learn's
   ``GroupKFold``, shuffled by the seed; out-of-fold log loss).
6. Held-out AUC, at the step level (every held-out prefix against its label) and at
   the outcome level (the probe's aggregated score of each held-out rollout against
   its correctness: the number to compare with other verifiers).

:func:`evaluate_verifier` measures any verifier spec the same way at the outcome level,
with its cost, so ``probe:PATH`` and ``judge`` can be compared on rollouts the probe
never saw.
"""

from __future__ import annotations

import datetime
import math
import sys
import time
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from ponder._version import __version__
from ponder.core.budget import Ledger
from ponder.core.context import Scorer
from ponder.core.engine import Engine
from ponder.core.errors import ConfigError
from ponder.core.task import Task
from ponder.core.types import Completion, GenRequest, Problem, Usage
from ponder.verifiers.probe import (
    FoldModel,
    ProbeVerifier,
    embed_requests,
    prefix_request,
    require_embedder,
)
from ponder.verifiers.steps import (
    Aggregation,
    Segmentation,
    aggregate,
    check_aggregation,
    check_segmentation,
    join_steps,
    split_steps,
)

__all__ = [
    "L2_GRID",
    "LabelSpec",
    "Rollout",
    "StepExample",
    "TrainReport",
    "VerifierEval",
    "collect_rollouts",
    "evaluate_verifier",
    "fit_logistic",
    "mc_step_labels",
    "parse_labels",
    "prefix_lengths",
    "roc_auc",
    "select_l2",
    "split_by_problem",
    "train_probe",
]

FloatArray = npt.NDArray[np.float64]

# strengths tried by l2="auto", on the mean log loss of standardised features
L2_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


# -- rollouts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """One stored candidate with its grade: ``correct`` is the task's verdict on
    ``answer`` (extracted from ``text``; None is wrong). ``model`` is the engine that
    wrote it, as the store's configuration names it; ``source`` the store's path."""

    problem: Problem
    text: str
    answer: str | None
    correct: bool
    model: str = ""
    source: str = ""


def collect_rollouts(
    stores: Sequence[str | Path],
    task: Task,
    *,
    problems: Mapping[str, Problem] | None = None,
    limit: int | None = None,
) -> list[Rollout]:
    """The graded candidates of every finished record in ``stores``.

    Problems come from ``problems`` by id when given (loaded from the task's data),
    else from the record itself (question and reference). ``limit`` keeps each store's
    first ``limit`` problems. Records without a reference answer cannot be labelled and
    are left out. A store of another task is a ``ConfigError``: its grades would be
    wrong.
    """
    from ponder.runs.store import RunStore  # imports the eval runner: only when reading

    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    grades: dict[tuple[str, str | None], bool] = {}
    rollouts: list[Rollout] = []
    for source in stores:
        with RunStore(source, create=False) as store:
            config = store.config() or {}
            stored_task = config.get("task")
            if stored_task is not None and stored_task != task.name:
                raise ConfigError(
                    f"{source} holds a run of task {stored_task!r}, not {task.name!r}; "
                    "pass --task to match the store"
                )
            model = str(config.get("model", ""))
            records = store.records(include_errors=False)
        if limit is not None:
            records = records[:limit]
        for record in records:
            if problems is not None:
                if record.problem_id not in problems:
                    raise ConfigError(
                        f"{source} holds problem {record.problem_id!r}, which the task's "
                        "data does not; pass the data the run used"
                    )
                problem = problems[record.problem_id]
            else:
                problem = Problem(record.problem_id, record.question, record.reference)
            if problem.answer is None:
                continue
            for cand in record.candidates:
                answer = task.extract(cand.text)
                key = (problem.id, answer)
                if key not in grades:
                    grades[key] = bool(task.is_correct(answer, problem))
                rollouts.append(
                    Rollout(problem, cand.text, answer, grades[key], model, str(source))
                )
    return rollouts


def split_by_problem(
    problem_ids: Iterable[str], heldout: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``(train, heldout)`` problem ids: a ``heldout`` fraction (rounded, at least one
    when the fraction is positive and at least one stays for training), drawn by a
    seeded permutation of the sorted distinct ids."""
    if not 0.0 <= heldout < 1.0:
        raise ConfigError(f"the held-out fraction must be in [0, 1), got {heldout}")
    ids = sorted(set(problem_ids))
    n_held = round(heldout * len(ids))
    if heldout > 0 and len(ids) >= 2:
        n_held = min(max(n_held, 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    held = sorted(ids[i] for i in order[:n_held])
    train = sorted(ids[i] for i in order[n_held:])
    return train, held


# -- labels ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpec:
    """How prefixes are labelled: ``outcome``, or ``mc`` with ``k`` continuations."""

    kind: Literal["outcome", "mc"] = "outcome"
    k: int = 0

    def __str__(self) -> str:
        return "outcome" if self.kind == "outcome" else f"mc:{self.k}"


def parse_labels(text: str) -> LabelSpec:
    """``"outcome"`` or ``"mc:K"`` (K >= 1) as a :class:`LabelSpec`."""
    head, _, arg = text.strip().partition(":")
    if head == "outcome" and not arg:
        return LabelSpec("outcome")
    if head == "mc":
        try:
            k = int(arg)
        except ValueError:
            k = 0
        if k >= 1:
            return LabelSpec("mc", k)
    raise ConfigError(f"bad step labels {text!r}; use outcome or mc:K with K >= 1 (e.g. mc:4)")


def prefix_lengths(n_steps: int, max_prefixes: int) -> list[int]:
    """Which prefixes (in steps) of an ``n_steps`` solution to use: all of them when
    they fit in ``max_prefixes``, else that many spread evenly, always with the last."""
    if max_prefixes < 1:
        raise ConfigError(f"max_prefixes must be >= 1, got {max_prefixes}")
    if n_steps <= max_prefixes:
        return list(range(1, n_steps + 1))
    if max_prefixes == 1:
        return [n_steps]
    picks = np.linspace(1, n_steps, max_prefixes)
    return sorted({round(float(x)) for x in picks} | {n_steps})


def _prefix_seed(seed: int, problem_id: str, prefix: str) -> int:
    return (seed + zlib.crc32(f"{problem_id}\0{prefix}".encode())) % 2**31


async def mc_step_labels(
    engine: Engine,
    task: Task,
    rollouts: Sequence[Rollout],
    lengths: Sequence[Sequence[int]],
    *,
    k: int,
    segmentation: Segmentation = "blank",
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_tokens: int = 512,
    seed: int = 0,
    ledger: Ledger | None = None,
) -> list[list[float]]:
    """Math-Shepherd hard-estimate labels of the prefixes ``lengths[i]`` of rollout ``i``.

    All rollouts must be of one problem. See the module doc for the rule and the
    shortcuts; every continuation request is one ``GenRequest`` with ``n=k`` that
    continues the prefix text (the assistant's ``continuation``), and its completions
    are graded as the prefix text followed by the completion.
    """
    if k < 1:
        raise ConfigError(f"mc labels need k >= 1, got {k}")
    if len(lengths) != len(rollouts):
        raise ValueError("one list of prefix lengths per rollout")
    if not rollouts:
        return []
    problem = rollouts[0].problem
    if any(r.problem.id != problem.id for r in rollouts):
        raise ValueError("mc_step_labels labels the rollouts of one problem at a time")
    ledger = ledger if ledger is not None else Ledger()
    steps = [split_steps(r.text, segmentation) for r in rollouts]
    known: dict[str, float] = {}
    for r, s in zip(rollouts, steps, strict=True):
        if r.correct:
            for j in range(1, len(s) + 1):
                known[join_steps(s[:j], segmentation)] = 1.0
    todo: list[str] = []
    for s, ls in zip(steps, lengths, strict=True):
        for j in ls:
            text = join_steps(s[:j], segmentation)
            if j < len(s) and text not in known and text not in todo:
                todo.append(text)
    if todo:
        messages = task.messages(problem)
        requests = [
            GenRequest(
                messages=messages,
                continuation=text,
                n=k,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=_prefix_seed(seed, problem.id, text),
            )
            for text in todo
        ]
        from ponder.core.context import Context  # budget-checked and on the ledger

        outs = await Context(engine, task, ledger).generate(requests, label="mc-labels")
        for text, comps in zip(todo, outs, strict=True):
            reached = any(task.is_correct(task.extract(text + c.text), problem) for c in comps)
            known[text] = 1.0 if reached else 0.0
    labels: list[list[float]] = []
    for r, s, ls in zip(rollouts, steps, lengths, strict=True):
        row = []
        for j in ls:
            if j >= len(s):  # the whole solution keeps its own grade
                row.append(1.0 if r.correct else 0.0)
            else:
                row.append(known[join_steps(s[:j], segmentation)])
        labels.append(row)
    return labels


# -- statistics --------------------------------------------------------------------------


def roc_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`): the probability
    that a random positive scores above a random negative, ties counting one half (the
    Mann-Whitney U statistic). NaN when either class is empty, where scikit-learn would
    warn instead. ``labels`` are truthy for positives."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return math.nan
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return float(roc_auc_score(y, s))


def _weights(n: int, sample_weight: npt.ArrayLike | None) -> FloatArray:
    if sample_weight is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(sample_weight, dtype=np.float64).ravel()
    if w.size != n or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("sample weights must be n non-negative numbers, not all zero")
    out: FloatArray = w / w.sum()
    return out


def _log_loss(z: FloatArray, y: FloatArray, w: FloatArray) -> float:
    # log(1 + e^z) - y z from the logits, finite for large |z| and exact for soft labels
    return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)))


# the log-odds of the bias when one class is missing: the base rate clipped to [eps, 1-eps]
_ONE_CLASS_EPS = 1e-9


def _hard_labels(
    x: FloatArray, y: FloatArray, w: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rows, 0/1 labels and weights with the same weighted log loss as soft labels
    ``y``: a row with 0 < y < 1 becomes a positive of weight ``w y`` and a negative of
    weight ``w (1 - y)``. Rows of zero weight are dropped; they change nothing."""
    soft = (y > 0) & (y < 1)
    if soft.any():
        x = np.vstack([x, x[soft]])
        w = np.concatenate([np.where(soft, w * y, w), w[soft] * (1.0 - y[soft])])
        y = np.concatenate([np.where(soft, 1.0, y), np.zeros(int(soft.sum()))])
    kept = w > 0
    return x[kept], y[kept], w[kept]


def _span(x: FloatArray) -> tuple[FloatArray, FloatArray | None]:
    """``(z, basis)`` with ``x = z @ basis.T`` when there are more features than rows
    (``basis`` orthonormal columns spanning the rows), else ``(x, None)``."""
    n, d = x.shape
    if d <= n:
        return x, None
    u, sv, vt = np.linalg.svd(x, full_matrices=False)
    keep = sv > sv[0] * 1e-10 if sv.size and sv[0] > 0 else np.zeros(sv.size, bool)
    return u[:, keep] * sv[keep], vt[keep].T


def _logistic(l2: float, max_iter: int, tol: float) -> LogisticRegression:
    # C = 1 / l2 with weights summing to one: scikit-learn minimises
    # C * sum(w_i * loss_i) + |coef|^2 / 2, which divided by C is ponder's objective
    return LogisticRegression(
        C=1.0 / l2, solver="newton-cholesky", max_iter=max_iter, tol=tol, warm_start=True
    )


def fit_logistic(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    l2: float,
    sample_weight: npt.ArrayLike | None = None,
    start: tuple[FloatArray, float] | None = None,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> tuple[FloatArray, float]:
    """``(weights, bias)`` minimising the weighted mean log loss plus
    ``l2 / 2 * |weights|^2`` (the bias is not penalised): scikit-learn's
    :class:`~sklearn.linear_model.LogisticRegression` (solver ``newton-cholesky``,
    Newton's method: deterministic) with ``C = 1 / l2`` on the weights normalised to sum
    to one, since scikit-learn minimises ``C * sum(w_i * loss_i) + |weights|^2 / 2``;
    ``tol`` bounds the largest entry of that objective's gradient divided by ``C``, so of
    ponder's. ``y`` holds labels in [0, 1]; soft ones are fitted exactly, as a positive
    and a negative row weighted ``y`` and ``1 - y``. When one class is missing no
    weights can be learnt: the weights are zero and the bias is the log-odds of the base
    rate clipped to ``[1e-9, 1 - 1e-9]``. ``start`` (a nearby solution, such as the fit
    at the previous strength of a path) saves iterations, not accuracy.

    With more features than examples the weights lie in the span of the examples (the
    loss gradient is a combination of rows and so is the optimum), so the fit runs in
    that span, through a thin SVD, and costs no more than the number of examples.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.ndim != 2 or xa.shape[0] != ya.size or ya.size == 0:
        raise ValueError(f"features {xa.shape} and labels {ya.shape} do not match")
    if l2 <= 0:
        raise ConfigError(f"l2 must be > 0, got {l2}")
    d = xa.shape[1]
    w = _weights(ya.size, sample_weight)
    xh, yh, wh = _hard_labels(xa, ya, w)
    if np.unique(yh).size < 2:
        rate = min(max(float(wh @ yh), _ONE_CLASS_EPS), 1.0 - _ONE_CLASS_EPS)
        return np.zeros(d), math.log(rate / (1.0 - rate))
    z, basis = _span(xh)
    model = _logistic(l2, max_iter, tol)
    if start is not None:
        coef0 = np.asarray(start[0], dtype=np.float64).ravel()
        if coef0.size != d:
            raise ValueError(f"start weights have {coef0.size} entries for {d} features")
        # warm_start reads these; the optimum lies in the span used, so does the projection
        model.coef_ = (basis.T @ coef0 if basis is not None else coef0)[None, :]
        model.intercept_ = np.array([float(start[1])])
    model.fit(z, yh, sample_weight=wh)
    beta = model.coef_[0]
    weights: FloatArray = basis @ beta if basis is not None else beta
    return weights, float(model.intercept_[0])


def _standardise(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean: FloatArray = x.mean(axis=0)
    std: FloatArray = x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    return mean, std


@dataclass(frozen=True)
class _Fit:
    coef: FloatArray
    bias: float
    mean: FloatArray
    std: FloatArray
    l2: float
    losses: dict[float, float]


def _fit(
    x: FloatArray,
    y: FloatArray,
    w: FloatArray,
    groups: Sequence[str],
    l2: float | Literal["auto"],
    seed: int,
) -> _Fit:
    """Standardise, choose the L2 strength (``"auto"``: by problem-grouped CV) and fit."""
    if l2 == "auto":
        chosen, losses = select_l2(x, y, groups, sample_weight=w, seed=seed)
    else:
        chosen, losses = float(l2), {}
    mean, std = _standardise(x)
    coef, bias = fit_logistic((x - mean) / std, y, l2=chosen, sample_weight=w)
    return _Fit(coef, bias, mean, std, chosen, losses)


def _group_folds(groups: Sequence[str], folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Each example's fold (0 to ``folds - 1``) by :class:`~sklearn.model_selection.
    GroupKFold`, shuffled with ``seed``: the distinct groups, permuted, are cut into
    ``folds`` runs of near-equal count, so a group is never in two folds."""
    fold_of = np.empty(len(groups), dtype=np.int64)
    split = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(split.split(np.zeros((len(groups), 1)), groups=groups)):
        fold_of[test] = f
    return fold_of


def select_l2(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    groups: Sequence[str],
    *,
    sample_weight: npt.ArrayLike | None = None,
    grid: Sequence[float] = L2_GRID,
    folds: int = 3,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The L2 strength from ``grid`` with the lowest out-of-fold weighted log loss, with
    ``folds`` folds by group (problem) so validation questions are unseen; ties go to
    the stronger penalty. Returns the choice and every strength's loss (NaN when fewer
    than two groups make cross-validation impossible; the grid's middle is chosen).

    The folds are :func:`_group_folds` (``GroupKFold`` shuffled by ``seed``). Each fold
    fits the grid from the strongest penalty down, each fit starting from the previous
    one, which is close: a path costs a few Newton steps per strength."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64).ravel()
    w = _weights(ya.size, sample_weight)
    n_groups = len(set(groups))
    if n_groups < 2 or not grid:
        middle = sorted(grid)[len(grid) // 2] if grid else 1e-2
        return middle, {float(c): math.nan for c in grid}
    folds = min(folds, n_groups)
    fold = _group_folds(groups, folds, seed)
    path = sorted((float(c) for c in grid), reverse=True)
    losses = dict.fromkeys(path, 0.0)
    for f in range(folds):
        tr, va = fold != f, fold == f
        mean, std = _standardise(xa[tr])
        x_tr, x_va = (xa[tr] - mean) / std, (xa[va] - mean) / std
        start: tuple[FloatArray, float] | None = None
        for c in path:
            coef, bias = fit_logistic(x_tr, ya[tr], l2=c, sample_weight=w[tr], start=start)
            start = (coef, bias)
            losses[c] += _log_loss(x_va @ coef + bias, ya[va], w[va])
    best = min(losses, key=lambda c: (losses[c], -c))
    return best, losses


# -- training ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepExample:
    """One prefix of rollout ``rollout`` (an index): its first ``steps`` steps, whether it
    is the whole solution, and its label."""

    rollout: int
    steps: int
    final: bool
    label: float


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class TrainReport:
    """What :func:`train_probe` did: the probe, the counts on each side of the split,
    the AUCs (NaN where a side lacks a class), and the cost of labels and features."""

    probe: ProbeVerifier
    train_problems: int
    heldout_problems: int
    train_rollouts: int
    heldout_rollouts: int
    train_examples: int
    heldout_examples: int
    train_positive: int
    heldout_positive: int
    heldout_rollouts_correct: int
    l2: float
    train_auc: float
    heldout_step_auc: float
    heldout_outcome_auc: float
    label_usage: Usage
    label_seconds: float
    feature_usage: Usage
    feature_seconds: float
    fit_seconds: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": {
                "problems": self.train_problems,
                "rollouts": self.train_rollouts,
                "examples": self.train_examples,
                "positive": self.train_positive,
                "auc": _nan_to_none(self.train_auc),
            },
            "heldout": {
                "problems": self.heldout_problems,
                "rollouts": self.heldout_rollouts,
                "rollouts_correct": self.heldout_rollouts_correct,
                "examples": self.heldout_examples,
                "positive": self.heldout_positive,
                "step_auc": _nan_to_none(self.heldout_step_auc),
                "outcome_auc": _nan_to_none(self.heldout_outcome_auc),
            },
            "l2": self.l2,
            "cost": {
                "labels": {**self.label_usage.to_dict(), "seconds": self.label_seconds},
                "features": {**self.feature_usage.to_dict(), "seconds": self.feature_seconds},
                "fit_seconds": self.fit_seconds,
            },
            "notes": list(self.notes),
        }


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="problem",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def _check_training(
    rollouts: Sequence[Rollout], engine: Engine, *, batch_size: int, heldout: float, folds: int
) -> None:
    """Raise ``ConfigError`` for settings or rollouts ``train_probe`` cannot train on."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not rollouts:
        raise ConfigError("no rollouts to train on: the stores hold no graded candidates")
    require_embedder(engine, "training a probe")
    if folds == 1 or folds < 0:
        raise ConfigError(f"folds must be 0 (no cross-fitting) or at least 2, got {folds}")
    if folds and heldout > 0:
        raise ConfigError(
            "cross-fitting (folds) scores every problem out of fold; set heldout to 0"
        )
    n_problems = len({r.problem.id for r in rollouts})
    if folds > n_problems:
        raise ConfigError(
            f"{folds} folds need at least {folds} problems; the rollouts have {n_problems}"
        )


def _writer_notes(rollouts: Sequence[Rollout], model: str) -> list[str]:
    """A note when other models than ``model``, which gives the features, wrote rollouts."""
    writers = sorted({r.model for r in rollouts if r.model and r.model != model})
    if not writers:
        return []
    return [
        f"rollouts were written by {', '.join(writers)} but features come from "
        f"{model}: the probe reads {model}'s view of another model's text"
    ]


def _require_both_outcomes(rollouts: Sequence[Rollout], held_out: Collection[str]) -> None:
    """Raise ``ConfigError`` unless the training rollouts hold right and wrong ones."""
    train_correct = {r.correct for r in rollouts if r.problem.id not in held_out}
    if len(train_correct) < 2:
        which = "correct" if True in train_correct else "wrong"
        raise ConfigError(
            f"every training rollout is {which}; a probe needs both right and wrong "
            "solutions (add stores, problems, or samples per problem)"
        )


@dataclass(frozen=True)
class _Featurizer:
    """How ``train_probe`` turns rollouts into labelled step examples and features:
    each rollout's prefixes (at most ``max_prefixes`` of its steps), labelled by its
    outcome or by ``mc:K`` continuations, embedded ``batch_size`` at a time; the
    labels' and the features' costs go to their ledgers."""

    task: Task
    engine: Engine
    spec: LabelSpec
    segmentation: Segmentation
    max_prefixes: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    batch_size: int
    label_ledger: Ledger
    feature_ledger: Ledger

    async def examples(
        self, rollouts: Sequence[Rollout], progress: bool
    ) -> tuple[list[StepExample], FloatArray]:
        """Every rollout's step examples, problem by problem, and their features."""
        by_problem: dict[str, list[int]] = {}
        for i, r in enumerate(rollouts):
            by_problem.setdefault(r.problem.id, []).append(i)
        examples: list[StepExample] = []
        blocks: list[npt.NDArray[np.float32]] = []
        bar = _progress(len(by_problem), f"probe features ({self.spec})", progress)
        try:
            for indices in by_problem.values():
                requests = await self._problem_examples(rollouts, indices, examples)
                for at in range(0, len(requests), self.batch_size):
                    chunk = requests[at : at + self.batch_size]
                    blocks.append(
                        await embed_requests(
                            self.engine,
                            chunk,
                            self.feature_ledger,
                            kind="train",
                            label="probe-features",
                        )
                    )
                bar.update(1)
        finally:
            bar.close()
        dims = {b.shape[1] for b in blocks}
        if len(dims) != 1:
            raise ConfigError(
                f"engine {self.engine.name} returned embeddings of sizes {sorted(dims)}"
            )
        return examples, np.concatenate(blocks).astype(np.float64)

    async def _problem_examples(
        self, rollouts: Sequence[Rollout], indices: Sequence[int], examples: list[StepExample]
    ) -> list[GenRequest]:
        """Label one problem's rollouts (``indices``), add their examples to
        ``examples``; the prefix requests to embed, one per example."""
        seg = self.segmentation
        group = [rollouts[i] for i in indices]
        steps = [split_steps(r.text, seg) or [""] for r in group]
        lengths = [prefix_lengths(len(s), self.max_prefixes) for s in steps]
        if self.spec.kind == "mc":
            step_labels = await mc_step_labels(
                self.engine,
                self.task,
                group,
                lengths,
                k=self.spec.k,
                segmentation=seg,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens,
                seed=self.seed,
                ledger=self.label_ledger,
            )
        else:
            step_labels = [
                [1.0 if r.correct else 0.0] * len(ls) for r, ls in zip(group, lengths, strict=True)
            ]
        requests: list[GenRequest] = []
        for i, r, s, ls, ys in zip(indices, group, steps, lengths, step_labels, strict=True):
            for j, label in zip(ls, ys, strict=True):
                examples.append(StepExample(i, j, j == len(s), label))
                requests.append(prefix_request(self.task, r.problem, s[:j], seg))
        return requests


@dataclass(frozen=True)
class _Fitted:
    """The probe's fit on the training examples (``train``), the examples' labels
    (``y``), the fold models when cross-fitting and the out-of-fold scores they give
    (unset without folds), and which examples are held out."""

    fit: _Fit
    y: FloatArray
    fold_models: list[FoldModel]
    scores: FloatArray
    train: npt.NDArray[np.bool_]
    held: npt.NDArray[np.bool_]


def _fit_examples(
    features: FloatArray,
    examples: Sequence[StepExample],
    rollouts: Sequence[Rollout],
    *,
    held_out: Collection[str],
    folds: int,
    l2: float | Literal["auto"],
    seed: int,
) -> _Fitted:
    """Fit on the training examples, and with ``folds`` one model per fold on the
    others, each scoring its fold. Each rollout weighs one in all, however many of its
    prefixes are examples; folds and L2 search group the examples by problem."""
    y = np.array([e.label for e in examples])
    groups = [rollouts[e.rollout].problem.id for e in examples]
    per_rollout: dict[int, int] = {}
    for e in examples:
        per_rollout[e.rollout] = per_rollout.get(e.rollout, 0) + 1
    weight = np.array([1.0 / per_rollout[e.rollout] for e in examples])
    if folds:
        # cross-fitting: every problem is "held out" from the fold model that scores it
        is_held = np.ones(len(groups), dtype=bool)
        tr = is_held
    else:
        is_held = np.array([g in held_out for g in groups])
        tr = ~is_held
    groups_tr = [g for g, t in zip(groups, tr, strict=True) if t]
    fit = _fit(features[tr], y[tr], weight[tr], groups_tr, l2, seed)
    fold_models: list[FoldModel] = []
    scores = np.empty(len(groups))
    if folds:
        fold_of = _group_folds(groups, folds, seed)
        for f in range(folds):
            out = fold_of != f
            kept = [g for g, o in zip(groups, out, strict=True) if o]
            part = _fit(features[out], y[out], weight[out], kept, l2, seed)
            left_out = frozenset(g for g, o in zip(groups, out, strict=True) if not o)
            model = FoldModel(part.coef, part.bias, part.mean, part.std, left_out)
            fold_models.append(model)
            scores[~out] = model.probability(features[~out])
    return _Fitted(fit, y, fold_models, scores, tr, is_held)


def _heldout_outcomes(
    examples: Sequence[StepExample],
    scores: FloatArray,
    is_held: npt.NDArray[np.bool_],
    rollouts: Sequence[Rollout],
    aggregation: Aggregation,
) -> tuple[list[int], float, list[bool]]:
    """The held-out rollouts, the AUC of their aggregated step scores against their
    outcomes, and those outcomes."""
    held_rollouts = sorted({e.rollout for e, h in zip(examples, is_held, strict=True) if h})
    per_step: dict[int, list[float]] = {i: [] for i in held_rollouts}
    for e, s_ in zip(examples, scores, strict=True):
        if e.rollout in per_step:
            per_step[e.rollout].append(float(s_))
    outcome_scores = [aggregate(per_step[i], aggregation) for i in held_rollouts]
    outcome_labels = [rollouts[i].correct for i in held_rollouts]
    return held_rollouts, roc_auc(outcome_scores, outcome_labels), outcome_labels


async def train_probe(
    rollouts: Sequence[Rollout],
    *,
    task: Task,
    engine: Engine,
    labels: LabelSpec | str = "outcome",
    segmentation: Segmentation = "blank",
    aggregation: Aggregation = "last",
    heldout: float = 0.3,
    seed: int = 0,
    max_prefixes: int = 8,
    l2: float | Literal["auto"] = "auto",
    mc_temperature: float = 0.7,
    mc_top_p: float = 0.95,
    max_tokens: int = 512,
    batch_size: int = 16,
    progress: bool = False,
    meta: Mapping[str, Any] | None = None,
    folds: int = 0,
) -> TrainReport:
    """Label, embed, split by problem, fit and measure a probe (see the module doc).

    ``folds`` >= 2 cross-fits instead of holding problems out (``heldout`` must be 0):
    the problems are dealt into ``folds`` folds, each fold's rollouts are scored by a
    model fitted on the other folds (the held-out AUCs are over all rollouts, each
    scored by a model that never saw its problem), and the probe keeps those fold
    models beside the one fitted on everything.

    ``engine`` embeds the prefixes (and samples continuations for ``mc:K`` labels); it
    should be the model that wrote the rollouts, since the probe reads its hidden
    states. ``meta`` is added to what the probe file records.
    """
    spec = parse_labels(labels) if isinstance(labels, str) else labels
    seg = check_segmentation(segmentation)
    agg = check_aggregation(aggregation)
    _check_training(rollouts, engine, batch_size=batch_size, heldout=heldout, folds=folds)
    notes = _writer_notes(rollouts, engine.name)
    train_ids, held_ids = split_by_problem((r.problem.id for r in rollouts), heldout, seed)
    held_set = set(held_ids)
    _require_both_outcomes(rollouts, held_set)

    featurizer = _Featurizer(
        task=task,
        engine=engine,
        spec=spec,
        segmentation=seg,
        max_prefixes=max_prefixes,
        temperature=mc_temperature,
        top_p=mc_top_p,
        max_tokens=max_tokens,
        seed=seed,
        batch_size=batch_size,
        label_ledger=Ledger(),
        feature_ledger=Ledger(),
    )
    examples, features = await featurizer.examples(rollouts, progress)

    t_fit = time.perf_counter()
    fitted = _fit_examples(
        features, examples, rollouts, held_out=held_set, folds=folds, l2=l2, seed=seed
    )
    fit, y, tr, is_held = fitted.fit, fitted.y, fitted.train, fitted.held
    fit_seconds = time.perf_counter() - t_fit

    probe = ProbeVerifier(
        fit.coef, fit.bias, fit.mean, fit.std, model=engine.name, segmentation=seg,
        aggregation=agg, folds=fitted.fold_models,
    )  # fmt: skip
    in_sample = probe.probability(features)
    scores = fitted.scores if folds else in_sample
    held_rollouts, held_outcome_auc, outcome_labels = _heldout_outcomes(
        examples, scores, is_held, rollouts, agg
    )

    if folds:
        held_ids = sorted({r.problem.id for r in rollouts})
    y_tr = y[tr]
    report = TrainReport(
        probe=probe,
        train_problems=len(train_ids),
        heldout_problems=len(held_ids),
        train_rollouts=sum(1 for r in rollouts if r.problem.id not in held_set),
        heldout_rollouts=len(held_rollouts),
        train_examples=int(tr.sum()),
        heldout_examples=int(is_held.sum()),
        train_positive=int((y_tr >= 0.5).sum()),
        heldout_positive=int((y[is_held] >= 0.5).sum()),
        heldout_rollouts_correct=sum(outcome_labels),
        l2=fit.l2,
        train_auc=roc_auc(in_sample[tr], y_tr >= 0.5),
        heldout_step_auc=roc_auc(scores[is_held], y[is_held] >= 0.5),
        heldout_outcome_auc=held_outcome_auc,
        label_usage=featurizer.label_ledger.total(),
        label_seconds=featurizer.label_ledger.seconds(),
        feature_usage=featurizer.feature_ledger.total(),
        feature_seconds=featurizer.feature_ledger.seconds(),
        fit_seconds=fit_seconds,
        notes=tuple(notes),
    )
    settings = {
        "task": task.name,
        "labels": str(spec),
        "max_prefixes": max_prefixes,
        "seed": seed,
        "heldout_fraction": heldout,
        "cross_fit_folds": folds,
    }
    _record_training(probe, report, held_ids, fit.losses, meta, settings, rollouts)
    return report


def _record_training(
    probe: ProbeVerifier,
    report: TrainReport,
    held_ids: Sequence[str],
    losses: Mapping[float, float],
    meta: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
    rollouts: Sequence[Rollout],
) -> None:
    """Write into the probe's meta how it was trained: the caller's ``meta``, when and
    by which ponder, the training ``settings``, the L2 search, the models that wrote
    the rollouts, and the report's numbers with the held-out problem ids."""
    summary = report.to_dict()
    summary["heldout"]["problem_ids"] = held_ids
    probe.meta.update(
        {
            **dict(meta or {}),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "ponder_version": __version__,
            **settings,
            "l2_selection": {f"{c:g}": _nan_to_none(v) for c, v in losses.items()},
            "rollout_models": sorted({r.model for r in rollouts if r.model}),
            **summary,
        }
    )


# -- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierEval:
    """A verifier judged on labelled rollouts, at the outcome level.

    ``auc``: its scores against the rollouts' correctness, pooled over problems.
    ``best_of_n``: the fraction of problems whose top-scored rollout is correct (the
    first on ties); ``oracle``: the fraction with any correct rollout; ``base_rate``:
    the fraction of correct rollouts. ``usage``/``seconds``: what scoring cost.
    """

    spec: str
    problems: int
    rollouts: int
    positive: int
    auc: float
    best_of_n: float
    oracle: float
    usage: Usage
    seconds: float
    scores: tuple[float, ...] = field(default=(), repr=False)

    @property
    def base_rate(self) -> float:
        return self.positive / self.rollouts if self.rollouts else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "verifier": self.spec,
            "problems": self.problems,
            "rollouts": self.rollouts,
            "positive": self.positive,
            "base_rate": _nan_to_none(self.base_rate),
            "auc": _nan_to_none(self.auc),
            "best_of_n": _nan_to_none(self.best_of_n),
            "oracle": _nan_to_none(self.oracle),
            "usage": self.usage.to_dict(),
            "seconds": self.seconds,
        }


async def evaluate_verifier(
    verifier: str | Scorer,
    rollouts: Sequence[Rollout],
    *,
    task: Task,
    engine: Engine,
    segmentation: str = "blank",
    aggregation: str = "last",
    problem_ids: Iterable[str] | None = None,
    max_tokens: int = 512,
    progress: bool = False,
) -> VerifierEval:
    """Score every rollout (of ``problem_ids`` only, when given) with ``verifier`` (a
    spec such as ``judge``, ``judge:step`` or ``probe:PATH``, or a scorer) through a
    :class:`~ponder.strategies.base.Context` on ``engine``, and measure it.

    Stored rollouts keep no token logprobs, so scorers that read the sample's own
    logprobs (``logprob...``) cannot be evaluated here: ``ConfigError``.
    """
    from ponder.core.context import Context
    from ponder.verifiers.registry import make_scorer

    if isinstance(verifier, str):
        spec = verifier
        scorer = make_scorer(verifier, segmentation=segmentation, aggregation=aggregation)
    else:
        scorer, spec = verifier, verifier.name
    if scorer.needs_logprobs:
        raise ConfigError(
            f"{spec} scores a sample from its own token logprobs, which stored rollouts do "
            "not keep; measure it while sampling (ponder eval --strategy best_of_n "
            f"--scorer {spec}) instead"
        )
    wanted = set(problem_ids) if problem_ids is not None else None
    by_problem: dict[str, list[Rollout]] = {}
    for r in rollouts:
        if wanted is None or r.problem.id in wanted:
            by_problem.setdefault(r.problem.id, []).append(r)
    if not by_problem:
        raise ConfigError(
            "no rollouts to evaluate: the stores hold none"
            + ("" if wanted is None else " of the requested problems")
        )
    ledger = Ledger()
    scores: list[float] = []
    labels: list[bool] = []
    best = 0
    oracle = 0
    t0 = time.perf_counter()
    bar = _progress(len(by_problem), f"scoring with {spec}", progress)
    try:
        for group in by_problem.values():
            ctx = Context(engine=engine, task=task, ledger=ledger, max_tokens=max_tokens)
            completions = [Completion(r.text, "stop", Usage()) for r in group]
            values = [s.value for s in await ctx.score(group[0].problem, completions, scorer)]
            scores.extend(values)
            labels.extend(r.correct for r in group)
            top = max(range(len(values)), key=lambda i: (values[i], -i))
            best += int(group[top].correct)
            oracle += int(any(r.correct for r in group))
            bar.update(1)
    finally:
        bar.close()
    n_problems = len(by_problem)
    return VerifierEval(
        spec=spec,
        problems=n_problems,
        rollouts=len(labels),
        positive=sum(labels),
        auc=roc_auc(scores, labels),
        best_of_n=best / n_problems,
        oracle=oracle / n_problems,
        usage=ledger.total(),
        seconds=time.perf_counter() - t0,
        scores=tuple(scores),
    )
