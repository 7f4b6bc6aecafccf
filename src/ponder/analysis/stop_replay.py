"""Adaptive stopping by vote share, replayed on a bank, with or without confidence weights.

A stopping rule draws a problem's samples one at a time and stops once the vote has
settled: at the first ``k >= min_samples`` where the leading answer holds at least a
share ``tau`` of the votes cast so far (votes weighted by a per-sample signal, or each
worth one), or at the bank's ``N``. A margin rule (``by="margin"``) settles instead once
the leader's votes exceed the runner-up's by ``tau``: weighted by a probability of being
right (the combined verifier, the probes), one sample the verifier is sure of can end the
draw, and two that agree with middling scores can too; unweighted, it is the vote lead of
adaptive consistency. A rule may also give up: with ``give_up`` > 0, it stops at the first
``k >= give_up_after`` where the leader holds less than ``give_up`` of the votes, a question
on which the samples scatter and more of them rarely help. The
answer is the (weighted) vote of the samples drawn. This is the consensus stop of
DeepConf's online mode (Fu et al. 2025, which weighs votes by trace confidence and
stops at a share of 0.95) without its early cut of single traces (the bank holds
finished traces only), and, unweighted, a plain vote-share rule in the family of
adaptive consistency (Aggarwal et al. 2023).

As in ``ponder.analysis.selection``, each problem's outcome and cost are averaged over
``orderings`` random orders of its samples; cost is the prompt once plus the generated
tokens of the samples drawn (the signals come with the samples' logprobs). Settings are
chosen on a train bank (``choose``): the rule with the fewest tokens whose train accuracy
reaches majority at ``N``'s minus ``tolerance``; its test figure is the held-out one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.analysis.curves import correct_by_n
from ponder.analysis.selection import (
    COMBINED,
    JOINT,
    PROBE,
    SIGNALS,
    Bank,
    bank_signals,
    load_bank,
    vote_weight,
)
from ponder.strategies.stopping import GIVE_UP_AFTER, StopBy, check_vote_stop
from ponder.strategies.voting import Method

__all__ = [
    "Choice",
    "StopResult",
    "StopRule",
    "choose",
    "live_command",
    "majority_at_n",
    "paired_against",
    "replay_stop",
    "stop_report",
]

FloatArray = npt.NDArray[np.float64]

UNWEIGHTED = "majority"


@dataclass(frozen=True)
class StopRule:
    """Stop at the first ``k >= min_samples`` whose leading answer holds ``tau`` of the
    votes (``by="share"``) or leads the runner-up by ``tau`` votes (``by="margin"``),
    votes weighted by ``signal`` (``"majority"``: unweighted); or, from
    ``give_up_after`` samples on, whose leader holds less than ``give_up`` of them."""

    signal: str
    tau: float
    min_samples: int = 2
    give_up: float = 0.0
    by: StopBy = "share"
    give_up_after: int = GIVE_UP_AFTER

    def __post_init__(self) -> None:
        check_vote_stop(self.by, self.tau, self.min_samples, self.give_up, self.give_up_after)

    @property
    def name(self) -> str:
        tail = ""
        if self.give_up:
            after = "" if self.give_up_after == GIVE_UP_AFTER else f" after {self.give_up_after}"
            tail = f",give_up {self.give_up:g}{after}"
        tau = f"margin {self.tau:g}" if self.by == "margin" else f"{self.tau:g}"
        return f"stop[{self.signal},{tau},{self.min_samples}{tail}]"


@dataclass(frozen=True)
class StopResult:
    """A rule on one bank: accuracy, mean samples and tokens per problem, and each
    problem's expected correctness and tokens (for paired comparisons)."""

    rule: str
    accuracy: float
    samples: float
    tokens: float
    correct: FloatArray  # (problems,)
    cost: FloatArray  # (problems,)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "accuracy": self.accuracy,
            "samples": self.samples,
            "tokens": self.tokens,
        }


def _ordered(bank: Bank, values: FloatArray, order: npt.NDArray[np.int64]) -> FloatArray:
    out: FloatArray = np.take_along_axis(np.broadcast_to(values, order.shape), order, -1)
    return out


def _orders(bank: Bank, orderings: int, seed: int) -> npt.NDArray[np.int64]:
    p, n = bank.shape
    rng = np.random.default_rng(seed)
    out: npt.NDArray[np.int64] = np.argsort(rng.random((orderings, p, n)), axis=-1)
    return out


def _tokens_by_k(bank: Bank, order: npt.NDArray[np.int64]) -> FloatArray:
    """(R, P, N): the prompt once per sample in stored order (as curves charges it) plus
    the generated tokens of the first k + 1 samples in each order."""
    completion = np.cumsum(_ordered(bank, bank.arrays.completion, order), -1)
    out: FloatArray = bank.arrays.prompt_cum[None] + completion
    return out


def replay_stop(
    bank: Bank,
    rule: StopRule,
    signals: Mapping[str, FloatArray],
    *,
    orderings: int = 200,
    seed: int = 0,
) -> StopResult:
    """``rule`` replayed on ``bank``; see the module docstring."""
    order = _orders(bank, orderings, seed)
    answer = np.take_along_axis(np.broadcast_to(bank.arrays.answer, order.shape), order, -1)
    if rule.signal == UNWEIGHTED:
        weight = np.ones(order.shape)
    else:
        weight = _ordered(bank, vote_weight(rule.signal, signals[rule.signal]), order)
    k_all = bank.arrays.answer_correct.shape[-1]
    onehot = answer[..., None] == np.arange(k_all)
    totals = np.cumsum(np.where(onehot, weight[..., None], 0.0), axis=2)  # (R, P, N, K)
    cast = totals.sum(axis=-1)
    runner = np.zeros((*totals.shape[:-1], 1))  # a runner-up of 0 where one answer was seen
    top = np.sort(np.concatenate([runner, totals], axis=-1), axis=-1)[..., -2:]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(cast > 0, top[..., -1] / cast, 0.0)
    lead = share if rule.by == "share" else top[..., -1] - top[..., -2]
    k = np.arange(1, order.shape[-1] + 1)
    settled = (lead >= rule.tau - 1e-12) & (k >= rule.min_samples)
    if rule.give_up:
        settled |= (share < rule.give_up) & (k >= rule.give_up_after)
    settled[..., -1] = True
    stop = np.argmax(settled, axis=-1)  # the first settled index, (R, P)
    return _outcome(bank, rule.name, order, answer, weight, stop, rule.signal == UNWEIGHTED)


def _outcome(
    bank: Bank,
    name: str,
    order: npt.NDArray[np.int64],
    answer: npt.NDArray[np.int64],
    weight: FloatArray,
    stop: npt.NDArray[np.int64],
    unweighted: bool,
) -> StopResult:
    """The vote of the samples drawn up to ``stop`` (R, P) in each order, and its cost."""
    orderings = order.shape[0]
    ac = np.broadcast_to(bank.arrays.answer_correct, (orderings, *bank.arrays.answer_correct.shape))
    method: Method = "majority" if unweighted else "weighted"
    right = correct_by_n(answer, np.maximum(weight, 1e-12), ac, method)
    correct = np.take_along_axis(right, stop[..., None], -1)[..., 0].mean(axis=0)
    tokens = np.take_along_axis(_tokens_by_k(bank, order), stop[..., None], -1)[..., 0]
    cost = tokens.mean(axis=0)
    return StopResult(
        name, float(correct.mean()), float((stop + 1).mean()), float(cost.mean()), correct, cost
    )


def majority_at_n(
    bank: Bank, n: int | None = None, *, orderings: int = 200, seed: int = 0
) -> StopResult:
    """Plain majority over ``n`` samples (the bank's ``N`` by default) as a ``StopResult``,
    over the same orders as ``replay_stop`` with the same ``seed``."""
    _, n_all = bank.shape
    n = n_all if n is None else n
    if not 1 <= n <= n_all:
        raise ValueError(f"n must be in 1..{n_all}, got {n}")
    order = _orders(bank, orderings, seed)
    answer = np.take_along_axis(np.broadcast_to(bank.arrays.answer, order.shape), order, -1)
    stop = np.full(order.shape[:2], n - 1, dtype=np.int64)
    return _outcome(bank, f"majority, n = {n}", order, answer, np.ones(order.shape), stop, True)


@dataclass(frozen=True)
class Choice:
    """What ``choose`` found: the baseline and every rule on train, the chosen rule."""

    baseline: StopResult
    rows: list[StopResult]
    chosen: str | None


def choose(
    bank: Bank,
    rules: Sequence[StopRule],
    signals: Mapping[str, FloatArray],
    *,
    tolerance: float = 0.0,
    orderings: int = 200,
    seed: int = 0,
) -> Choice:
    """Every rule on (train) ``bank``, and the one with the fewest tokens whose accuracy
    is at least majority at ``N``'s minus ``tolerance`` (None if none is)."""
    base = majority_at_n(bank, orderings=orderings, seed=seed)
    rows = [replay_stop(bank, r, signals, orderings=orderings, seed=seed) for r in rules]
    good = [r for r in rows if r.accuracy >= base.accuracy - tolerance - 1e-12]
    chosen = min(good, key=lambda r: (r.tokens, r.rule)).rule if good else None
    return Choice(base, rows, chosen)


def paired_against(
    result: StopResult, baseline: StopResult, *, bootstrap: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """The accuracy difference and the token ratio (baseline over rule) with paired
    bootstrap intervals over problems."""
    rng = np.random.default_rng(seed)
    p = result.correct.size
    picks = rng.integers(0, p, size=(bootstrap, p))
    diff = (result.correct[picks] - baseline.correct[picks]).mean(axis=1)
    ratio = baseline.cost[picks].mean(axis=1) / result.cost[picks].mean(axis=1)
    return {
        "diff": float(result.accuracy - baseline.accuracy),
        "diff_ci": [float(x) for x in np.percentile(diff, [2.5, 97.5])],
        "ratio": float(baseline.tokens / result.tokens) if result.tokens > 0 else math.inf,
        "ratio_ci": [float(x) for x in np.percentile(ratio, [2.5, 97.5])],
    }


LIVE_SCORERS = {
    COMBINED: "combined:PATH (ponder bank select --save-verifier PATH)",
    PROBE: "hidden:PATH (ponder bank select --save-probe PATH --probe-signal probe)",
    JOINT: "hidden:PATH (ponder bank select --save-probe PATH)",
    "mean_logprob": "logprob",
}
"""The scorer that gives a signal's vote weight live (``weighted_stop``'s ``scorer``)."""


def live_command(rule: StopRule, max_n: int) -> str | None:
    """The ``ponder eval`` options that run ``rule`` live (``weighted_stop``), or None
    when its signal has no scorer (an unweighted rule, a single feature but the mean
    logprob)."""
    scorer = LIVE_SCORERS.get(rule.signal)
    if scorer is None:
        return None
    opts = [f"-o by={rule.by}", f"-o tau={rule.tau:g}", f"-o min_n={rule.min_samples}"]
    if rule.give_up:
        opts += [f"-o give_up={rule.give_up:g}", f"-o give_up_after={rule.give_up_after}"]
    return f"--strategy weighted_stop --n {max_n} {' '.join(opts)} --scorer {scorer}"


def stop_report(
    bank_path: str,
    train_paths: Sequence[str],
    *,
    signals: Sequence[str],
    taus: Sequence[float],
    min_samples: Sequence[int],
    give_ups: Sequence[float] = (0.0,),
    margins: Sequence[float] = (),
    give_up_after: int = GIVE_UP_AFTER,
    tolerance: float = 0.0,
    orderings: int = 200,
    bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[str, dict[str, Any]]:
    """``ponder bank stop``: every rule of the grid (share rules at ``taus``, margin rules
    at ``margins``) on the first train bank (combined verifier cross-fitted there), the
    rule chosen there, and every rule on ``bank`` (combined verifier fitted on all the
    train banks) against majority at ``N``, as Markdown and as a dict."""
    bad = [s for s in signals if s != UNWEIGHTED and s not in SIGNALS]
    if bad:
        raise ValueError(f"unknown signals {bad}; known: majority, {', '.join(SIGNALS)}")
    if "tokens" in signals:
        raise ValueError("tokens is no vote weight")
    by_share: list[tuple[StopBy, float]] = [("share", t) for t in taus]
    grid = by_share + [("margin", t) for t in margins]
    rules = [
        StopRule(s, t, m, g, by, give_up_after)
        for s in signals
        for by, t in grid
        for m in min_samples
        for g in give_ups
        if g < (t if by == "share" else 1.0)
    ]
    train = [load_bank(t) for t in train_paths]
    bank = load_bank(bank_path)
    train_signals, _, _ = bank_signals(train[0], seed=seed)
    test_signals, _, _ = bank_signals(bank, train, seed=seed)
    absent = [s for s in signals if s != UNWEIGHTED and s not in test_signals]
    absent += [s for s in signals if s != UNWEIGHTED and s not in train_signals]
    if absent:
        raise ValueError(
            f"signals {sorted(set(absent))} need hidden states in every bank; run `ponder "
            "bank features --hidden` on them"
        )
    picked = choose(
        train[0], rules, train_signals, tolerance=tolerance, orderings=orderings, seed=seed
    )
    chosen = next((r for r in rules if r.name == picked.chosen), None)
    live = None if chosen is None else live_command(chosen, bank.shape[1])
    base = majority_at_n(bank, orderings=orderings, seed=seed)
    rows = [replay_stop(bank, r, test_signals, orderings=orderings, seed=seed) for r in rules]
    by_train = {r.rule: r for r in picked.rows}
    lines = [
        f"train {train[0].path}: majority at n = {train[0].shape[1]} scores "
        f"{picked.baseline.accuracy:.3f} at {picked.baseline.tokens:,.0f} tokens; chosen "
        f"(fewest tokens at that accuracy{f' minus {tolerance:g}' if tolerance else ''}): "
        f"{picked.chosen or 'none reaches it'}",
        f"test {bank.path}: majority at n = {bank.shape[1]} scores {base.accuracy:.3f} at "
        f"{base.tokens:,.0f} tokens",
        *([f"run the chosen rule live: ponder eval ... {live}"] if live else []),
        "",
        "| rule | train acc | train tokens | test acc | samples | tokens | vs majority "
        "[95%] | fewer tokens [95%] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out_rows = []
    for r in sorted(rows, key=lambda r: r.tokens):
        t = by_train[r.rule]
        pa = paired_against(r, base, bootstrap=bootstrap, seed=seed)
        mark = " **(chosen on train)**" if r.rule == picked.chosen else ""
        lines.append(
            f"| {r.rule}{mark} | {t.accuracy:.3f} | {t.tokens:,.0f} | {r.accuracy:.3f} | "
            f"{r.samples:.2f} | {r.tokens:,.0f} | {pa['diff']:+.3f} "
            f"[{pa['diff_ci'][0]:+.3f}, {pa['diff_ci'][1]:+.3f}] | {pa['ratio']:.2f}x "
            f"[{pa['ratio_ci'][0]:.2f}, {pa['ratio_ci'][1]:.2f}] |"
        )
        out_rows.append({**r.to_dict(), "train": t.to_dict(), **pa})
    data = {
        "train": train[0].path,
        "train_majority": picked.baseline.to_dict(),
        "chosen": picked.chosen,
        "live": live,
        "bank": bank.path,
        "majority": base.to_dict(),
        "rules": out_rows,
    }
    return "\n".join(lines), data
