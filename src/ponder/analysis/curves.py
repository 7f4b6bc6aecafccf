"""Accuracy against compute, computed from stored records without grading again.

A run of an independent-sampling strategy with N samples per problem also tells what
a run with any n <= N would have scored: take n of the samples and apply the rule.
``scaling_curve`` does that for every n, with a bootstrap for the uncertainty.

Definitions (all per problem, then averaged over problems):

- Samples. Only finished records count (error records are left out). If problems hold
  different numbers of candidates, every problem is cut to the smallest count (its
  first samples in stored order), so each point averages over the same problems.
- Order. The point estimate at n is the mean, over ``bootstrap`` random orderings of
  each problem's samples, of the accuracy when the first n samples in that order are
  used; so it averages over which n of the N samples a run at n would have drawn.
  The 95% interval is the 2.5 and 97.5 percentiles of ``bootstrap`` replicates that
  resample problems with replacement *and* reorder each problem's samples.
  ``permute=False`` keeps the stored order (the point is then exactly the stored
  prefix of length n; the interval resamples problems only).
- Majority (``"majority"``): plurality of the non-None answers among the first n. Ties
  go to the answer that reached the tied count first in the order used (the answer
  whose k-th vote came earliest), matching ``ponder.strategies.voting``.
- Weighted (``"weighted"``): the same with each vote weighted by its candidate's score.
- Best-of-n (``"best_of_n"``): the highest-scored candidate with an answer among the
  first n; ties go to the earliest in the order used.
- A problem is correct at n when the chosen answer is graded correct in the record's
  ``answer_correct``; no answer (all n answers None) is incorrect.
- Tokens at n: what a run at n would have cost the engine, prefilled prompt tokens
  plus generated tokens. The prompt part is the prompt tokens (``usage.prompt_tokens``,
  cached tokens excluded) the engine charged for the first n samples *in stored order*,
  since that is the prefill of a run that asks for n: with a native-``n`` engine the
  prompt is prefilled once (the siblings show it as cached), without one it is
  prefilled n times. The generated part is the completion tokens of the n samples
  used (in the order used). The scoring part (verifier or judge tokens, for the scored
  methods) is the record's tokens beyond its samples' own, ``usage.total_tokens``
  minus the candidates' tokens, spread evenly over its N samples, so a run at n pays
  n/N of it. All three are nondecreasing in n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.runs.store import Record
from ponder.runs.summary import wilson_interval
from ponder.strategies.voting import METHODS, Method

# Keeps the (replicates, problems, n, answers) working arrays near 100 MB at most.
_CHUNK_CELLS = 4_000_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CurvePoint:
    """Accuracy and cost at ``n`` samples per problem, averaged over ``problems``."""

    n: int
    accuracy: float
    ci_low: float
    ci_high: float
    tokens: float
    completion_tokens: float
    problems: int

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "n": self.n,
            "accuracy": num(self.accuracy),
            "ci_low": num(self.ci_low),
            "ci_high": num(self.ci_high),
            "tokens": num(self.tokens),
            "completion_tokens": num(self.completion_tokens),
            "problems": self.problems,
        }


def point(records: Sequence[Record]) -> CurvePoint:
    """A strategy's own result: accuracy of its final answers with a Wilson interval.

    ``tokens`` is the mean of each record's ``usage.total_tokens`` (prefilled prompt
    plus generated, including any scoring the strategy did); ``n`` is the mean number
    of candidates per problem, rounded. Error records are left out.
    """
    ok = [r for r in records if r.ok]
    if not ok:
        raise ValueError("no finished records to compute accuracy from")
    correct = sum(r.correct for r in ok)
    low, high = wilson_interval(correct, len(ok))
    return CurvePoint(
        n=round(sum(len(r.candidates) for r in ok) / len(ok)),
        accuracy=correct / len(ok),
        ci_low=low,
        ci_high=high,
        tokens=sum(r.usage.total_tokens for r in ok) / len(ok),
        completion_tokens=sum(r.usage.completion_tokens for r in ok) / len(ok),
        problems=len(ok),
    )


@dataclass(frozen=True)
class SampleArrays:
    """Per-problem sample arrays, shape (problems, N)."""

    answer: IntArray  # answer id within its problem, -1 for None
    weight: FloatArray  # vote weight (1 or score); score for best_of_n
    answer_correct: BoolArray  # (problems, N): is answer id k correct
    prompt_cum: FloatArray  # (problems, N): prompt tokens of the first n+1 in stored order
    completion: FloatArray
    scoring: FloatArray  # (problems,): scoring tokens per sample


def scoring_per_sample(record: Record) -> float:
    """A record's scoring tokens (its tokens beyond its candidates' own) spread evenly
    over its candidates."""
    own = sum(c.usage.total_tokens for c in record.candidates)
    return max(0, record.usage.total_tokens - own) / len(record.candidates)


def sample_arrays(records: Sequence[Record], method: Method) -> SampleArrays:
    ok = [r for r in records if r.ok]
    if not ok:
        raise ValueError("no finished records to compute a curve from")
    n_all = min(len(r.candidates) for r in ok)
    if n_all == 0:
        shortest = min(ok, key=lambda r: len(r.candidates))
        raise ValueError(f"problem {shortest.problem_id!r} has no candidates; no curve")
    p = len(ok)
    answer = np.full((p, n_all), -1, dtype=np.int64)
    weight = np.ones((p, n_all), dtype=np.float64)
    answer_correct = np.zeros((p, n_all), dtype=np.bool_)
    prompt = np.zeros((p, n_all), dtype=np.float64)
    completion = np.zeros((p, n_all), dtype=np.float64)
    scoring = np.zeros(p, dtype=np.float64)
    for i, r in enumerate(ok):
        scoring[i] = scoring_per_sample(r)
        ids: dict[str, int] = {}
        for j, c in enumerate(r.candidates[:n_all]):
            prompt[i, j] = c.usage.prompt_tokens
            completion[i, j] = c.usage.completion_tokens
            if method != "majority":
                if c.answer is not None and c.score is None:
                    raise ValueError(
                        f"a {method} curve needs candidate scores; problem "
                        f"{r.problem_id!r} has an unscored candidate"
                    )
                weight[i, j] = c.score if c.score is not None else -math.inf
            if c.answer is None:
                continue
            k = ids.setdefault(c.answer, len(ids))
            answer[i, j] = k
            if c.answer not in r.answer_correct:
                raise ValueError(
                    f"problem {r.problem_id!r}: answer {c.answer!r} is not graded in answer_correct"
                )
            answer_correct[i, k] = r.answer_correct[c.answer]
    return SampleArrays(
        answer, weight, answer_correct, np.cumsum(prompt, axis=1), completion, scoring
    )


def correct_by_n(
    answer: IntArray, weight: FloatArray, answer_correct: BoolArray, method: Method
) -> BoolArray:
    """Correctness at every prefix length.

    ``answer`` and ``weight`` are (R, P, N) samples in the order used; ``answer_correct``
    is (R, P, K). Returns (R, P, N): element [..., j] is the outcome with j + 1 samples.
    """
    r, p, n = answer.shape
    k = answer_correct.shape[-1]
    pos = np.arange(n, dtype=np.int64)
    if method == "best_of_n":
        score = np.where(answer >= 0, weight, -math.inf)
        best_before = np.maximum.accumulate(score, axis=-1)
        best_before = np.concatenate(
            [np.full((r, p, 1), -math.inf), best_before[..., :-1]], axis=-1
        )
        # the pick changes only on a strictly higher score (ties stay with the earliest)
        improves = (score > best_before) | (pos == 0)
        pick = np.maximum.accumulate(np.where(improves, pos, -1), axis=-1)
        chosen = np.take_along_axis(answer, pick, axis=-1)
        ok = np.take_along_axis(answer_correct, np.maximum(chosen, 0), axis=-1)
        out: BoolArray = ok & (chosen >= 0)
        return out
    # the narrowest integer type that holds count * (n + 1) + n keeps the 4-D arrays small
    small = np.dtype(np.int16 if n <= 180 else np.int32 if n <= 46000 else np.int64)
    onehot = answer[..., None] == np.arange(k, dtype=answer.dtype)  # (R, P, N, K)
    # an answer reaches its current total at its latest vote so far, so "reached the
    # tied total first" means "latest vote earliest"
    last = np.maximum.accumulate(
        np.where(onehot, pos.astype(small)[:, None], -1).astype(small, copy=False), axis=2
    )
    if method == "majority":
        counts = np.cumsum(onehot, axis=2, dtype=small)
        # more votes wins; among equal counts, the earlier latest vote (an answer never
        # seen scores 1, below any seen one)
        winner = np.argmax(counts * (n + 1) - last, axis=-1)
    else:
        totals = np.cumsum(np.where(onehot, weight[..., None], 0.0), axis=2)
        seen_k = last >= 0
        top = np.max(np.where(seen_k, totals, -math.inf), axis=-1, keepdims=True)
        tied = seen_k & (totals == top)
        winner = np.argmin(np.where(tied, last, n), axis=-1)
    seen = (answer >= 0).cumsum(axis=-1) > 0
    ok = np.take_along_axis(answer_correct, winner.reshape(r, p, n), axis=-1)
    out = ok & seen
    return out


def _replicate(
    s: SampleArrays,
    method: Method,
    rows: IntArray,
    order: IntArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean accuracy, tokens and completion tokens by n for each replicate.

    ``rows`` (R, P) picks problems; ``order`` (R, P, N) orders each picked problem's
    samples. Returns three (R, N) arrays.
    """
    answer = np.take_along_axis(s.answer[rows], order, axis=-1)
    weight = np.take_along_axis(s.weight[rows], order, axis=-1)
    correct = correct_by_n(answer, weight, s.answer_correct[rows], method)
    completion = np.cumsum(np.take_along_axis(s.completion[rows], order, axis=-1), axis=-1)
    scored = s.scoring[rows][..., None] * np.arange(1, completion.shape[-1] + 1)
    tokens = s.prompt_cum[rows] + completion + scored
    return correct.mean(axis=1), tokens.mean(axis=1), completion.mean(axis=1)


def _run_replicates(
    s: SampleArrays,
    method: Method,
    replicates: int,
    rng: np.random.Generator,
    *,
    resample: bool,
    permute: bool,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    p, n = s.answer.shape
    k = s.answer_correct.shape[1]
    chunk = max(1, _CHUNK_CELLS // max(1, p * n * k))
    parts: list[tuple[FloatArray, FloatArray, FloatArray]] = []
    for start in range(0, replicates, chunk):
        size = min(chunk, replicates - start)
        if resample:
            rows = rng.integers(0, p, size=(size, p))
        else:
            rows = np.broadcast_to(np.arange(p), (size, p))
        if permute:
            order = np.argsort(rng.random((size, p, n)), axis=-1)
        else:
            order = np.broadcast_to(np.arange(n), (size, p, n))
        parts.append(_replicate(s, method, rows, order))
    acc, tok, comp = (np.concatenate([part[i] for part in parts]) for i in range(3))
    return acc, tok, comp


def scaling_curve(
    records: Sequence[Record],
    method: Method = "majority",
    max_n: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    *,
    permute: bool = True,
) -> list[CurvePoint]:
    """Accuracy and tokens at n = 1 .. N samples per problem; see the module docstring.

    ``bootstrap`` replicates are drawn for the point estimate (orderings) and again for
    the interval (problems and orderings). ``bootstrap=0`` uses the stored order and a
    Wilson interval instead. ``seed`` makes the result repeatable.
    """
    if method not in METHODS:
        raise ValueError(f"unknown curve method {method!r}; choose from {', '.join(METHODS)}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    if max_n is not None and max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    s = sample_arrays(records, method)
    p, n_all = s.answer.shape
    top = n_all if max_n is None else min(max_n, n_all)
    rng = np.random.default_rng(seed)

    if bootstrap == 0 or not permute:
        acc, tok, comp = _run_replicates(s, method, 1, rng, resample=False, permute=False)
    else:
        acc, tok, comp = _run_replicates(s, method, bootstrap, rng, resample=False, permute=True)
    acc_mean, tok_mean, comp_mean = acc.mean(axis=0), tok.mean(axis=0), comp.mean(axis=0)

    if bootstrap > 0:
        boot, _, _ = _run_replicates(s, method, bootstrap, rng, resample=True, permute=permute)
        lows, highs = np.percentile(boot, [2.5, 97.5], axis=0)
        intervals = [(float(lows[j]), float(highs[j])) for j in range(n_all)]
    else:
        intervals = [wilson_interval(float(acc_mean[j]) * p, p) for j in range(n_all)]

    return [
        CurvePoint(
            n=j + 1,
            accuracy=float(acc_mean[j]),
            ci_low=intervals[j][0],
            ci_high=intervals[j][1],
            tokens=float(tok_mean[j]),
            completion_tokens=float(comp_mean[j]),
            problems=p,
        )
        for j in range(top)
    ]


@dataclass(frozen=True)
class PrefixOutcomes:
    """Per-problem outcomes of every stored-order prefix of one sampling run.

    Row i is ``problem_ids[i]``; column j describes a run that used the first j + 1
    samples *in stored order* (no reordering, unlike ``scaling_curve``'s estimate):
    ``correct`` says whether the rule picked a correct answer, ``prompt`` and
    ``completion`` are the prompt tokens charged for and the tokens generated by those
    samples (cumulative), and ``scoring`` is the record's scoring tokens per sample
    (the same split as ``scaling_curve``'s tokens).
    """

    problem_ids: tuple[str, ...]
    correct: BoolArray
    prompt: FloatArray
    completion: FloatArray
    scoring: FloatArray

    @property
    def samples(self) -> int:
        """N: the samples every problem has (the smallest count over problems)."""
        return int(self.correct.shape[1])

    def tokens(self, n: int, *, scored: bool) -> FloatArray:
        """Per-problem tokens of the first ``n`` samples: prompt plus generated, plus
        ``n`` samples' share of the scoring tokens when ``scored``."""
        if not 1 <= n <= self.samples:
            raise ValueError(f"n must be in 1..{self.samples}, got {n}")
        out: FloatArray = self.prompt[:, n - 1] + self.completion[:, n - 1]
        if scored:
            out = out + n * self.scoring
        return out


def prefix_outcomes(records: Sequence[Record], method: Method = "majority") -> PrefixOutcomes:
    """Correctness and tokens of ``method`` over every stored-order prefix of each
    finished record's samples; the rules (ties, None answers, scores, cut to the
    smallest sample count) are those of the module docstring."""
    if method not in METHODS:
        raise ValueError(f"unknown curve method {method!r}; choose from {', '.join(METHODS)}")
    s = sample_arrays(records, method)
    correct = correct_by_n(s.answer[None], s.weight[None], s.answer_correct[None], method)[0]
    return PrefixOutcomes(
        problem_ids=tuple(r.problem_id for r in records if r.ok),
        correct=correct,
        prompt=s.prompt_cum,
        completion=np.cumsum(s.completion, axis=1),
        scoring=s.scoring,
    )
