"""Which selection pays: selection rules replayed on a bank against majority voting.

A bank holds N samples per problem, each graded, and (``ponder bank features`` or
``ponder eval --features``) each sample's token-confidence features. Every rule here
picks an answer from n <= N of a problem's samples using those features alone, so all
rules at the same n spend the same tokens as majority at n (the features come with the
samples' own logprobs; ``FeatureCost`` says what a bank paid to add them afterwards).

Signals (per sample; higher means "more likely right"):

- each feature of ``ponder.verifiers.features``, oriented a priori: ``tokens`` enters as
  minus its length (shorter traces are more often right), the others as they are;
- ``combined``: the combined verifier's probability (``CombinedVerifier``), fitted with
  scikit-learn on a *train* bank's samples, or, with no train bank, cross-fitted on the
  bank itself (each problem scored by a model fitted on other problems' folds);
- ``probe`` and ``joint``, when the banks have hidden states (``ponder bank features
  --hidden``): a probe on the final-layer hidden states, alone or with the features
  (``ponder.analysis.hidden_probe``), fitted or cross-fitted the same way.

Rules, at each n (the first n samples of an ordering of the problem's samples):

- ``majority``: plurality vote (``curves.correct_by_n``);
- ``weighted[s]``: votes weighted by signal ``s`` made positive (``vote_weight``);
  ``weighted[s,k]`` by that weight to the power ``k`` (tempered: ``k`` < 1 leans towards
  majority, which is ``k`` = 0, and ``k`` > 1 towards best-of-n);
- ``best_of_n[s]``: the sample with the highest ``s``;
- ``filter[s,q]``: DeepConf's offline filter (Fu et al. 2025): keep the ``ceil(q n)``
  samples with the highest ``s``, then the ``s``-weighted vote among them (q = 0.1 is
  the paper's DeepConf-low, q = 0.9 DeepConf-high).

Accuracy at n is each problem's correctness averaged over ``orderings`` random orders of
its samples (the same orders for every rule, so the comparison is paired), then over
problems. Against majority at the same n, the difference's 95% interval is the 2.5 and
97.5 percentiles of ``bootstrap`` resamples of the problems (paired: one resample moves
both rules). Tokens at n: prefilled prompt plus generated tokens, as in
``ponder.analysis.curves``; identical for every rule at one n.

Beside the signals, the AUC table lists ``agreement``: the share of the problem's other
samples (all N) that give a sample's answer, what majority voting reads. Each signal's
AUC is reported two ways: pooled over all samples, and the mean over
problems of the within-problem AUC (problems whose samples are all right or all wrong
have none), which is what picking among one problem's samples needs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from ponder.analysis import hidden_probe
from ponder.analysis.curves import SampleArrays, correct_by_n, sample_arrays
from ponder.runs.store import Record, RunStore
from ponder.verifiers.combined import CombinedVerifier, transform
from ponder.verifiers.features import FEATURE_NAMES, WINDOW
from ponder.verifiers.hidden import Projection, SampleHidden
from ponder.verifiers.hidden_probe import HiddenProbe

__all__ = [
    "DEFAULT_RULES",
    "Bank",
    "Comparison",
    "Replay",
    "Rule",
    "Selection",
    "SignalAUC",
    "agreement_share",
    "bank_signals",
    "compare_rules",
    "cross_fit_combined",
    "fit_combined",
    "fit_on_banks",
    "load_bank",
    "markdown",
    "parse_rule",
    "replay",
    "select",
    "signal_aucs",
    "vote_weight",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

Kind = Literal["majority", "weighted", "best_of_n", "filter"]

COMBINED = "combined"
AGREEMENT = "agreement"
PROBE = "probe"
JOINT = "joint"
HIDDEN_SIGNALS = (PROBE, JOINT)
SIGNALS = (*FEATURE_NAMES, COMBINED, *HIDDEN_SIGNALS)

DEFAULT_RULES = (
    "majority",
    "weighted[combined]",
    "best_of_n[combined]",
    "filter[combined,0.5]",
    "weighted[probe]",
    "best_of_n[probe]",
    "weighted[joint]",
    "best_of_n[joint]",
    "weighted[lowest_group]",
    "weighted[self_certainty]",
    "weighted[mean_logprob]",
    "filter[lowest_group,0.1]",
    "filter[lowest_group,0.9]",
    "filter[bottom10_group,0.1]",
    "filter[bottom10_group,0.9]",
    "filter[tail,0.9]",
    "filter[self_certainty,0.9]",
    "best_of_n[lowest_group]",
    "best_of_n[self_certainty]",
    "best_of_n[mean_logprob]",
    "best_of_n[tokens]",
)
"""The rules ``ponder bank select`` compares unless told others (those by ``probe`` and
``joint`` only when the banks have hidden states)."""


@dataclass(frozen=True)
class Rule:
    """A selection rule; see the module docstring."""

    kind: Kind
    signal: str | None = None
    keep: float | None = None
    power: float = 1.0  # weighted: the weight to this power

    @property
    def name(self) -> str:
        if self.kind == "majority":
            return "majority"
        if self.kind == "filter":
            return f"filter[{self.signal},{self.keep:g}]"
        if self.kind == "weighted" and self.power != 1.0:
            return f"weighted[{self.signal},{self.power:g}]"
        return f"{self.kind}[{self.signal}]"


def parse_rule(spec: str) -> Rule:
    """``majority``, ``weighted[S]``, ``weighted[S,K]``, ``best_of_n[S]`` or
    ``filter[S,Q]``, with S a signal (``SIGNALS``), K > 0 and Q in (0, 1];
    ``ValueError`` otherwise."""
    spec = spec.strip()
    if spec == "majority":
        return Rule("majority")
    head, sep, rest = spec.partition("[")
    if not sep or not rest.endswith("]") or head not in ("weighted", "best_of_n", "filter"):
        raise ValueError(
            f"bad rule {spec!r}: use majority, weighted[S], weighted[S,K], best_of_n[S] or "
            "filter[S,Q]"
        )
    args = [a.strip() for a in rest[:-1].split(",")]
    signal = args[0]
    if signal not in SIGNALS:
        raise ValueError(f"rule {spec!r}: unknown signal {signal!r}; known: {', '.join(SIGNALS)}")
    if head == "filter":
        if len(args) != 2:
            raise ValueError(f"rule {spec!r}: filter takes a signal and a share, filter[S,Q]")
        try:
            keep = float(args[1])
        except ValueError:
            raise ValueError(f"rule {spec!r}: the share {args[1]!r} is not a number") from None
        if not 0 < keep <= 1:
            raise ValueError(f"rule {spec!r}: the share must be in (0, 1], got {keep}")
        return Rule("filter", signal, keep)
    if head == "weighted" and signal == "tokens":
        raise ValueError("weighted[tokens] is not a rule: a trace's length is no vote weight")
    if head == "weighted" and len(args) == 2:
        try:
            power = float(args[1])
        except ValueError:
            raise ValueError(f"rule {spec!r}: the power {args[1]!r} is not a number") from None
        if not 0 < power < math.inf:
            raise ValueError(f"rule {spec!r}: the power must be positive, got {power}")
        return Rule("weighted", signal, power=power)
    if len(args) != 1:
        raise ValueError(
            f"rule {spec!r}: {head} takes one signal"
            + (" (and optionally a power, weighted[S,K])" if head == "weighted" else "")
        )
    return Rule("weighted" if head == "weighted" else "best_of_n", signal)


def vote_weight(signal: str, values: FloatArray) -> FloatArray:
    """A signal as a positive vote weight: ``exp`` of the mean logprob (the geometric-mean
    token probability), the others (confidences, self-certainty, probabilities; all
    >= 0) as they are. NaN (a sample with no tokens) weighs 0."""
    if signal == "tokens":
        raise ValueError("tokens is no vote weight")
    w = np.exp(values) if signal == "mean_logprob" else values.astype(np.float64, copy=True)
    out: FloatArray = np.where(np.isnan(w), 0.0, np.maximum(w, 0.0))
    return out


def _oriented(signal: str, values: FloatArray) -> FloatArray:
    """Higher means more likely right; NaN ranks last."""
    v = -values if signal == "tokens" else values
    out: FloatArray = np.where(np.isnan(v), -math.inf, v)
    return out


@dataclass(frozen=True)
class Bank:
    """A bank's samples as arrays: ``arrays`` (answers, grades, tokens; see
    ``curves.sample_arrays``), the graded label of each sample (``right``: its answer is
    graded correct), the problems' ids, and each feature's (problems, N) values."""

    path: str
    problem_ids: tuple[str, ...]
    arrays: SampleArrays
    right: BoolArray
    features: Mapping[str, FloatArray]
    config: Mapping[str, Any]
    hidden: FloatArray | None = None  # (problems, N, 2 dim): last then mean; None: absent
    projection: Projection | None = None  # the hidden states' projection

    @property
    def shape(self) -> tuple[int, int]:
        p, n = self.arrays.answer.shape
        return int(p), int(n)

    def matrix(self, names: Sequence[str] = FEATURE_NAMES) -> FloatArray:
        """(problems * N, features) rows in problem-major order, as the model reads them
        (``combined.transform``)."""
        cols = []
        for name in names:
            values = self.features[name].reshape(-1)
            cols.append(np.array([transform(name, float(v)) for v in values]))
        return np.stack(cols, axis=1)

    def rows(self, problem_ids: Sequence[str]) -> IntArray:
        """The rows of ``problem_ids``, in that order. ``KeyError`` names the first id
        the bank lacks."""
        where = {pid: i for i, pid in enumerate(self.problem_ids)}
        missing = [pid for pid in problem_ids if pid not in where]
        if missing:
            raise KeyError(f"{self.path} has no problem {missing[0]!r} ({len(missing)} missing)")
        return np.array([where[pid] for pid in problem_ids], dtype=np.int64)

    def subset(self, problem_ids: Sequence[str]) -> Bank:
        """The bank restricted to ``problem_ids``, in that order (``KeyError`` as
        ``rows``)."""
        rows = self.rows(problem_ids)
        arrays = SampleArrays(**{
            f.name: getattr(self.arrays, f.name)[rows]
            for f in dataclasses.fields(SampleArrays)
        })  # fmt: skip
        return dataclasses.replace(
            self,
            problem_ids=tuple(problem_ids),
            arrays=arrays,
            right=self.right[rows],
            features={k: v[rows] for k, v in self.features.items()},
            hidden=None if self.hidden is None else self.hidden[rows],
        )

    def groups(self) -> IntArray:
        p, n = self.shape
        return np.repeat(np.arange(p, dtype=np.int64), n)

    def hidden_matrix(self) -> FloatArray:
        """(problems * N, 2 dim) hidden-state rows in problem-major order."""
        if self.hidden is None:
            raise ValueError(
                f"{self.path} has no hidden states; run `ponder bank features --hidden` on it"
            )
        return self.hidden.reshape(-1, self.hidden.shape[-1]).astype(np.float64)

    def signal_matrix(self, signal: str) -> FloatArray:
        """The rows a hidden-state signal's probe reads: the hidden states (``probe``), or
        them and the features (``joint``)."""
        if signal == PROBE:
            return self.hidden_matrix()
        return np.concatenate([self.matrix(), self.hidden_matrix()], axis=1)


def load_bank(path: str | Path) -> Bank:
    """Read a bank's finished records and its samples' features. ``ValueError`` when a
    sample of the first N (the smallest sample count) has no features."""
    with RunStore(path, create=False) as store:
        records = store.records(include_errors=False)
        stored = store.features()
        config = store.config() or {}
        hidden_rows = store.hidden()
        projection = store.hidden_projection()
    ok: list[Record] = [r for r in records if r.ok]
    arrays = sample_arrays(ok, "majority")
    p, n = arrays.answer.shape
    features = {name: np.full((p, n), np.nan) for name in FEATURE_NAMES}
    missing = 0
    for i, r in enumerate(ok):
        have = stored.get(r.problem_id, {})
        for j in range(n):
            values = have.get(j)
            if values is None:
                missing += 1
                continue
            for name in FEATURE_NAMES:
                features[name][i, j] = float(values.get(name, math.nan))
    if missing:
        raise ValueError(
            f"{path}: {missing} of {p * n} samples have no features; run "
            "`ponder bank features` on it first"
        )
    right = np.take_along_axis(arrays.answer_correct, np.maximum(arrays.answer, 0), axis=1)
    right &= arrays.answer >= 0
    ids = tuple(r.problem_id for r in ok)
    hidden = _hidden(hidden_rows, ids, n)
    return Bank(
        str(path),
        ids,
        arrays,
        right,
        features,
        config,
        hidden,
        projection if hidden is not None else None,
    )


def _hidden(
    rows: Mapping[str, Mapping[int, SampleHidden]], ids: Sequence[str], n: int
) -> FloatArray | None:
    """(problems, N, 2 dim) when every sample of the first N has hidden states."""
    if not all(j in rows.get(pid, {}) for pid in ids for j in range(n)):
        return None
    out = np.stack(
        [
            np.stack([np.concatenate([rows[pid][j].last, rows[pid][j].mean]) for j in range(n)])
            for pid in ids
        ]
    )
    return out.astype(np.float64)


def fit_combined(
    x: FloatArray, y: BoolArray, names: Sequence[str] = FEATURE_NAMES, *, c: float = 1.0
) -> CombinedVerifier:
    """The combined verifier fitted on rows ``x`` (already transformed, one column per
    name) and labels ``y``: standardised features, L2 logistic regression (scikit-learn).
    NaN cells are set to their column's mean before fitting, as scoring does."""
    if len(np.unique(y)) < 2:
        raise ValueError("the combined verifier needs right and wrong samples to fit on")
    mean = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.where(np.isnan(x), 0.0, (x - mean) / scale)
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=1000).fit(z, y)
    return CombinedVerifier(
        features=tuple(names),
        mean=tuple(float(m) for m in mean),
        scale=tuple(float(s) for s in scale),
        coef=tuple(float(w) for w in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        window=WINDOW,
    )


def _predict(model: CombinedVerifier, x: FloatArray) -> FloatArray:
    mean = np.array(model.mean)
    scale = np.array(model.scale)
    z = np.where(np.isnan(x), 0.0, (x - mean) / scale)
    logit = model.intercept + z @ np.array(model.coef)
    out: FloatArray = 1.0 / (1.0 + np.exp(-logit))
    return out


def combined_scores(model: CombinedVerifier, bank: Bank) -> FloatArray:
    """The model's probability for each of ``bank``'s samples, (problems, N)."""
    return _predict(model, bank.matrix(model.features)).reshape(bank.shape)


def cross_fit_combined(bank: Bank, *, folds: int = 5, seed: int = 0) -> FloatArray:
    """Out-of-fold probabilities, (problems, N): each problem is scored by a model fitted
    on the other folds' problems (``GroupKFold``, shuffled by ``seed``)."""
    x = bank.matrix()
    y = bank.right.reshape(-1)
    groups = bank.groups()
    out = np.full(y.shape, np.nan)
    if bank.shape[0] < 2:
        raise ValueError("cross-fitting needs at least 2 problems")
    splitter = GroupKFold(n_splits=min(folds, bank.shape[0]), shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y, groups):
        out[test] = _predict(fit_combined(x[train], y[train]), x[test])
    return out.reshape(bank.shape)


@dataclass(frozen=True)
class SignalAUC:
    """One signal's AUC against the samples' grades; see the module docstring."""

    signal: str
    pooled: float
    within: float
    problems: int  # problems with both right and wrong samples (the within mean's base)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "pooled_auc": self.pooled,
            "within_problem_auc": self.within,
            "problems": self.problems,
        }


def agreement_share(bank: Bank) -> FloatArray:
    """(problems, N): the share of a problem's other samples that give each sample's
    answer (0 for a sample without one): the signal majority voting reads."""
    answer = bank.arrays.answer
    n = answer.shape[1]
    same = (answer[:, :, None] == answer[:, None, :]) & (answer[:, :, None] >= 0)
    others = same.sum(axis=2) - (answer >= 0)
    out: FloatArray = others / max(1, n - 1)
    return out


def signal_aucs(bank: Bank, signals: Mapping[str, FloatArray]) -> list[SignalAUC]:
    """Each signal's pooled and mean within-problem AUC on ``bank``."""
    y = bank.right
    mixed = [i for i in range(y.shape[0]) if 0 < y[i].sum() < y.shape[1]]
    out = []
    for name, values in signals.items():
        v = _oriented(name, values)
        flat = np.where(np.isinf(v), np.nan, v).reshape(-1)
        keep = ~np.isnan(flat)
        pooled = float(roc_auc_score(y.reshape(-1)[keep], flat[keep]))
        within = [float(roc_auc_score(y[i], np.nan_to_num(v[i], neginf=-1e300))) for i in mixed]
        out.append(
            SignalAUC(name, pooled, float(np.mean(within)) if within else math.nan, len(mixed))
        )
    return out


def _filtered_correct(
    answer: IntArray,
    rank_by: FloatArray,
    weight: FloatArray,
    answer_correct: BoolArray,
    keep: float,
) -> BoolArray:
    """(R, P, N): with the first j + 1 samples, keep the ``ceil(keep (j + 1))`` ranked
    highest by ``rank_by`` (ties: the earlier sample) and vote among them by ``weight``."""
    r, p, n = answer.shape
    out = np.zeros((r, p, n), dtype=np.bool_)
    for j in range(n):
        m = max(1, math.ceil(keep * (j + 1) - 1e-9))
        # a stable sort of minus the signal ranks ties by position
        order = np.argsort(-rank_by[..., : j + 1], axis=-1, kind="stable")
        ranks = np.argsort(order, axis=-1, kind="stable")
        kept = ranks < m
        w = np.where(kept, np.maximum(weight[..., : j + 1], 1e-12), 0.0)
        a = np.where(kept, answer[..., : j + 1], -1)
        out[..., j] = correct_by_n(a, w, answer_correct, "weighted")[..., -1]
    return out


def _rule_correct(
    rule: Rule,
    answer: IntArray,
    signals: Mapping[str, FloatArray],
    answer_correct: BoolArray,
) -> BoolArray:
    """(R, P, N) correctness of ``rule`` for samples (and signals) already ordered."""
    if rule.kind == "majority":
        return correct_by_n(answer, np.ones(answer.shape), answer_correct, "majority")
    assert rule.signal is not None
    values = signals[rule.signal]
    if rule.kind == "best_of_n":
        return correct_by_n(answer, _oriented(rule.signal, values), answer_correct, "best_of_n")
    weight = vote_weight(rule.signal, values)
    if rule.kind == "weighted":
        # a weight of 0 would let an unweighted answer tie; the floor keeps every vote
        tempered = np.maximum(weight, 1e-12) ** rule.power
        return correct_by_n(answer, np.maximum(tempered, 1e-300), answer_correct, "weighted")
    assert rule.keep is not None
    return _filtered_correct(
        answer, _oriented(rule.signal, values), weight, answer_correct, rule.keep
    )


@dataclass(frozen=True)
class Comparison:
    """A rule against majority at one n on one bank."""

    rule: str
    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]  # the bootstrap over problems, orders averaged
    majority: float
    diff: float
    diff_ci: tuple[float, float]
    wins: float  # problems (expected over orderings) the rule gets and majority does not
    losses: float
    tokens: float
    problems: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_ci": list(self.accuracy_ci),
            "majority": self.majority,
            "diff": self.diff,
            "diff_ci": list(self.diff_ci),
            "wins": self.wins,
            "losses": self.losses,
            "tokens": self.tokens,
            "problems": self.problems,
        }


def _ordered(
    bank: Bank, signals: Mapping[str, FloatArray], orderings: int, rng: np.random.Generator
) -> tuple[IntArray, dict[str, FloatArray], BoolArray, FloatArray]:
    """``orderings`` random orders of each problem's samples: the answers and signals
    as (R, P, N), the answers' grades broadcast to (R, P, K), and each problem's tokens
    at every n averaged over the orders, (P, N)."""
    p, n_all = bank.shape
    order = np.argsort(rng.random((orderings, p, n_all)), axis=-1)
    answer = np.take_along_axis(np.broadcast_to(bank.arrays.answer, order.shape), order, -1)
    ordered = {
        k: np.take_along_axis(np.broadcast_to(v, order.shape), order, -1)
        for k, v in signals.items()
    }
    ac = np.broadcast_to(bank.arrays.answer_correct, (orderings, *bank.arrays.answer_correct.shape))
    completion = np.cumsum(
        np.take_along_axis(np.broadcast_to(bank.arrays.completion, order.shape), order, -1), -1
    ).mean(axis=0)
    return answer, ordered, ac, bank.arrays.prompt_cum + completion


@dataclass(frozen=True)
class Replay:
    """Rules replayed per problem (in the bank's order): ``correct[rule]`` is each
    problem's correctness at every n, (P, N), averaged over the orders; ``tokens`` the
    problem's tokens at every n, (P, N), the same for every rule."""

    correct: Mapping[str, FloatArray]
    tokens: FloatArray


def replay(
    bank: Bank,
    signals: Mapping[str, FloatArray],
    rules: Sequence[Rule],
    *,
    orderings: int = 200,
    seed: int = 0,
) -> Replay:
    """Each rule at every n from 1 to the bank's N, per problem, on the same orders for
    every rule (``compare_rules`` summarises the same replay over problems)."""
    rng = np.random.default_rng(seed)
    answer, ordered, ac, tokens = _ordered(bank, signals, orderings, rng)
    correct = {rule.name: _rule_correct(rule, answer, ordered, ac).mean(axis=0) for rule in rules}
    return Replay(correct, tokens)


def compare_rules(
    bank: Bank,
    signals: Mapping[str, FloatArray],
    rules: Sequence[Rule],
    ns: Sequence[int],
    *,
    orderings: int = 200,
    bootstrap: int = 2000,
    seed: int = 0,
) -> list[Comparison]:
    """Every rule against majority at every n; see the module docstring."""
    p, n_all = bank.shape
    bad = [n for n in ns if not 1 <= n <= n_all]
    if bad:
        raise ValueError(f"n must be in 1..{n_all} (the bank's samples), got {bad}")
    rng = np.random.default_rng(seed)
    answer, ordered, ac, tokens = _ordered(bank, signals, orderings, rng)
    tokens_by_n = tokens.mean(axis=0)
    idx = [n - 1 for n in ns]
    base = _rule_correct(Rule("majority"), answer, ordered, ac)[..., idx].mean(axis=0)  # (P, n)
    picks = rng.integers(0, p, size=(bootstrap, p))
    out = []
    for rule in rules:
        got = _rule_correct(rule, answer, ordered, ac)[..., idx].mean(axis=0)
        diff = got - base
        boot = diff[picks].mean(axis=1)  # (bootstrap, len(ns))
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        acc_low, acc_high = np.percentile(got[picks].mean(axis=1), [2.5, 97.5], axis=0)
        for k, n in enumerate(ns):
            out.append(
                Comparison(
                    rule=rule.name,
                    n=n,
                    accuracy=float(got[:, k].mean()),
                    accuracy_ci=(float(acc_low[k]), float(acc_high[k])),
                    majority=float(base[:, k].mean()),
                    diff=float(diff[:, k].mean()),
                    diff_ci=(float(low[k]), float(high[k])),
                    wins=float(np.clip(diff[:, k], 0, None).sum()),
                    losses=float(np.clip(-diff[:, k], 0, None).sum()),
                    tokens=float(tokens_by_n[n - 1]),
                    problems=p,
                )
            )
    return out


@dataclass(frozen=True)
class Selection:
    """What ``select`` found on one bank: where its combined verifier came from, each
    signal's AUC and every rule against majority."""

    bank: str
    problems: int
    samples: int
    combined_from: str
    aucs: list[SignalAUC]
    comparisons: list[Comparison]
    verifier: CombinedVerifier | None
    chosen: str | None = None  # the rule the train banks chose (None without them)
    train_comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    curves: dict[str, list[Comparison]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "problems": self.problems,
            "samples_per_problem": self.samples,
            "combined_from": self.combined_from,
            "aucs": [a.to_dict() for a in self.aucs],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "verifier": None if self.verifier is None else self.verifier.to_dict(),
            "chosen_on_train": self.chosen,
            "train_comparisons": [c.to_dict() for c in self.train_comparisons],
            "curves": {k: [c.to_dict() for c in v] for k, v in self.curves.items()},
        }


def fit_on_banks(train: Sequence[Bank]) -> CombinedVerifier:
    """The combined verifier fitted on every sample of the ``train`` banks, recording
    what it was fitted on."""
    x = np.concatenate([b.matrix() for b in train])
    y = np.concatenate([b.right.reshape(-1) for b in train])
    return dataclasses.replace(
        fit_combined(x, y),
        trained_on={
            "banks": [b.path for b in train],
            "model": train[0].config.get("model"),
            "problems": sum(b.shape[0] for b in train),
            "samples": int(y.size),
        },
    )


def bank_signals(
    bank: Bank, train: Sequence[Bank] = (), *, seed: int = 0
) -> tuple[dict[str, FloatArray], CombinedVerifier | None, str]:
    """Every signal of ``bank``'s samples: its features, and ``combined`` from a verifier
    fitted on ``train`` (returned), or cross-fitted on ``bank`` without one; and a line
    saying which."""
    signals: dict[str, FloatArray] = {name: bank.features[name] for name in FEATURE_NAMES}
    hidden = bank.hidden is not None and all(b.hidden is not None for b in train)
    if train:
        verifier = fit_on_banks(train)
        signals[COMBINED] = combined_scores(verifier, bank)
        if hidden:
            signals.update(_probes_from(train, bank, seed))
        return signals, verifier, "fitted on " + ", ".join(b.path for b in train)
    signals[COMBINED] = cross_fit_combined(bank, seed=seed)
    if hidden:
        y, groups = bank.right.reshape(-1), bank.groups()
        for name in HIDDEN_SIGNALS:
            oof = hidden_probe.cross_fit(bank.signal_matrix(name), y, groups, seed=seed)
            signals[name] = oof.reshape(bank.shape)
    return signals, None, "cross-fitted on this bank (5 folds by problem)"


def _train_rows(train: Sequence[Bank], signal: str) -> tuple[FloatArray, BoolArray, IntArray]:
    """The rows a hidden-state signal's probe is fitted on, their labels, and their
    problems as groups numbered across the ``train`` banks."""
    y = np.concatenate([b.right.reshape(-1) for b in train])
    offsets = np.cumsum([0] + [b.shape[0] for b in train])
    groups = np.concatenate([b.groups() + off for b, off in zip(train, offsets, strict=False)])
    return np.concatenate([b.signal_matrix(signal) for b in train]), y, groups


def fit_probe_on_banks(train: Sequence[Bank], signal: str = JOINT, *, seed: int = 0) -> HiddenProbe:
    """The hidden-state probe ``signal`` (``probe`` or ``joint``) fitted on every sample
    of the ``train`` banks (``C`` by grouped cross-validation), as a verifier file holds
    it; ``ValueError`` when a bank has no hidden states or the projections differ."""
    if signal not in HIDDEN_SIGNALS:
        raise ValueError(
            f"a hidden-state probe is one of {', '.join(HIDDEN_SIGNALS)}, not {signal!r}"
        )
    projections = {b.projection for b in train}
    if None in projections or any(b.hidden is None for b in train):
        raise ValueError(
            "the probe needs banks with hidden states (`ponder bank features --hidden`)"
        )
    if len(projections) != 1:
        raise ValueError("the train banks' hidden states were projected differently")
    (projection,) = projections
    assert projection is not None
    x, y, groups = _train_rows(train, signal)
    probe = hidden_probe.fit_probe(x, y, groups, seed=seed)
    trained_on = {
        "banks": [b.path for b in train],
        "model": train[0].config.get("model"),
        "problems": sum(b.shape[0] for b in train),
        "samples": int(y.size),
        "signal": signal,
    }
    features = FEATURE_NAMES if signal == JOINT else ()
    return hidden_probe.as_verifier(probe, projection, features, trained_on)


def _probes_from(train: Sequence[Bank], bank: Bank, seed: int) -> dict[str, FloatArray]:
    """The hidden-state probes fitted on the ``train`` banks, scoring ``bank``."""
    out = {}
    for name in HIDDEN_SIGNALS:
        x, y, groups = _train_rows(train, name)
        probe = hidden_probe.fit_probe(x, y, groups, seed=seed)
        out[name] = hidden_probe.predict(probe, bank.signal_matrix(name)).reshape(bank.shape)
    return out


def select(
    bank: Bank,
    rules: Sequence[Rule],
    ns: Sequence[int],
    *,
    train: Sequence[Bank] = (),
    orderings: int = 200,
    bootstrap: int = 2000,
    seed: int = 0,
    curve_rules: Sequence[Rule] = (),
    drop_unavailable: bool = False,
) -> Selection:
    """Signals, AUCs and rule comparisons on ``bank``; the combined verifier is fitted on
    the ``train`` banks when given, else cross-fitted on ``bank`` itself.

    With ``train``, the rules are first compared on each train bank (its combined
    verifier cross-fitted there), and the rule other than majority with the highest
    mean difference from majority over those banks and ``ns`` is ``chosen``: the one
    rule whose figure on ``bank`` is a held-out result. ``curve_rules`` (and the chosen
    rule) are also replayed at every n from 1 to the bank's N, for a figure. A rule by
    ``probe`` or ``joint`` needs hidden states in every bank: without them it raises
    ``ValueError``, or is left out with ``drop_unavailable``."""
    hidden = bank.hidden is not None and all(b.hidden is not None for b in train)
    if not hidden:
        missing = [r.name for r in rules if r.signal in HIDDEN_SIGNALS]
        if missing and not drop_unavailable:
            raise ValueError(
                f"rules {missing} need hidden states in every bank; run `ponder bank "
                "features --hidden` on them"
            )
        rules = [r for r in rules if r.signal not in HIDDEN_SIGNALS]
        curve_rules = [r for r in curve_rules if r.signal not in HIDDEN_SIGNALS]
    chosen: str | None = None
    train_rows: list[Comparison] = []
    if train:
        chosen, train_rows = _choose_on(train, rules, ns, orderings, bootstrap, seed)
    signals, verifier, source = bank_signals(bank, train, seed=seed)
    comparisons = compare_rules(
        bank, signals, rules, ns, orderings=orderings, bootstrap=bootstrap, seed=seed
    )
    p, n = bank.shape
    wanted = list(curve_rules)
    if chosen is not None and chosen not in {r.name for r in wanted}:
        wanted.append(parse_rule(chosen))
    curves: dict[str, list[Comparison]] = {}
    if wanted:
        every = compare_rules(
            bank, signals, wanted, range(1, n + 1), orderings=orderings,
            bootstrap=bootstrap, seed=seed,
        )  # fmt: skip
        for c in every:
            curves.setdefault(c.rule, []).append(c)
    # agreement is read over all N samples, so it ranks but is no rule's signal at n < N
    aucs = signal_aucs(bank, {**signals, AGREEMENT: agreement_share(bank)})
    return Selection(
        bank.path, p, n, source, aucs, comparisons, verifier, chosen, train_rows, curves
    )


def _choose_on(
    train: Sequence[Bank],
    rules: Sequence[Rule],
    ns: Sequence[int],
    orderings: int,
    bootstrap: int,
    seed: int,
) -> tuple[str | None, list[Comparison]]:
    rows: list[Comparison] = []
    for b in train:
        signals, _, _ = bank_signals(b, seed=seed)
        rows += compare_rules(
            b, signals, rules, ns, orderings=orderings, bootstrap=bootstrap, seed=seed
        )
    means: dict[str, list[float]] = {}
    for c in rows:
        if c.rule != "majority":
            means.setdefault(c.rule, []).append(c.diff)
    if not means:
        return None, rows
    # ties go to the rule listed first
    return max(means, key=lambda r: float(np.mean(means[r]))), rows


def markdown(result: Selection) -> str:
    """The AUC table and, per n, every rule against majority, as Markdown."""
    lines = [
        f"bank {result.bank}: {result.problems} problems x {result.samples} samples; "
        f"combined verifier {result.combined_from}",
        "",
        "| signal | AUC (pooled) | AUC (within problem) |",
        "|---|---|---|",
    ]
    for a in result.aucs:
        lines.append(f"| {a.signal} | {a.pooled:.3f} | {a.within:.3f} |")
    if result.chosen is not None:
        lines = [
            *lines[:1],
            f"rule chosen on the train banks (highest mean difference from majority "
            f"there): {result.chosen}",
            *lines[1:],
        ]
    mixed = result.aucs[0].problems if result.aucs else 0
    lines += [
        "",
        f"(within-problem AUC: the mean over the {mixed} problems with both right "
        "and wrong samples)",
        "",
    ]
    for n in sorted({c.n for c in result.comparisons}):
        rows = [c for c in result.comparisons if c.n == n]
        lines += [
            f"n = {n} ({rows[0].tokens:,.0f} tokens a problem for every rule)",
            "",
            "| rule | accuracy | vs majority | 95% paired interval | wins | losses |",
            "|---|---|---|---|---|---|",
        ]
        for c in rows:
            mark = " (chosen on train)" if c.rule == result.chosen else ""
            lines.append(
                f"| {c.rule}{mark} | {c.accuracy:.3f} | {c.diff:+.3f} | "
                f"[{c.diff_ci[0]:+.3f}, {c.diff_ci[1]:+.3f}] | {c.wins:.1f} | {c.losses:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)
