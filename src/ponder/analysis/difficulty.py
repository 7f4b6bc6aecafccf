"""Question difficulty: oracle bins from pass rates, predicted bins from a cheap pilot.

Snell et al. 2024 ("Scaling LLM Test-Time Compute Optimally can be More Effective than
Scaling Model Parameters", arXiv:2408.03314, section 3.2) measure a question's
difficulty as the model's pass@1 rate on it, bin the rates into five quantiles, and
choose the compute-optimal strategy per bin. The oracle pass rate needs the reference
answers; a *predicted* difficulty replaces it by a signal the model's own samples give
without them. This module defines both, exactly:

- Pass rate (oracle) of a problem: the number of its candidates whose answer is graded
  correct in the record's ``answer_correct`` (a candidate without an answer is not)
  divided by its number of candidates. Only finished records count.
- Signals (predicted), from the first ``k`` samples of a problem in stored order (the
  pilot):

  - ``agreement``: the largest number of the ``k`` samples that give one same answer,
    divided by ``k``; a sample without an answer agrees with nothing, so ``k``
    answerless samples give 0;
  - ``score``: the mean of the ``k`` samples' scores, as the run's scorer gave them
    (a verifier, or a confidence scorer such as ``logprob``, whose mean is then the
    pilot's confidence); every pilot sample must carry a score.

  All values are oriented the same way: higher means easier.
- Bins (``Bins.fit``) on the values v of P calibration problems and a wanted count B:
  sort the values from high to low, v(1) >= ... >= v(P); the candidate thresholds are
  v(ceil(j * P / B)) for j = 1 .. B - 1; duplicates and any candidate equal to the
  smallest value v(P) are dropped, leaving thresholds t_1 > ... > t_m. A value v is in
  bin ``1 + #{j : v < t_j}``. So bin 1 is the easiest, distinct values split into B
  groups of near-equal size (quantiles), tied values always share a bin (which can
  leave fewer than B bins), every bin holds at least one calibration problem, and a
  new value above (below) every calibration value lands in the first (last) bin.
- Agreement of two binnings (``compare_bins``): the share of problems with equal bin
  numbers, the share at most one bin apart, and the confusion counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.analysis.probe_train import split_by_problem
from ponder.core.errors import ConfigError
from ponder.runs.store import Record
from ponder.strategies.optimal.signals import DEFAULT_BINS, Bins, Signal, signal_value

__all__ = [
    "BinAgreement",
    "BinStats",
    "DifficultyReport",
    "PredictedBin",
    "assess_prediction",
    "compare_bins",
    "nan_to_none",
    "pass_rate",
    "pass_rates",
    "pilot_signals",
    "split_by_problem",
    "stats_by_bin",
]


def pass_rate(record: Record) -> float:
    """The share of the record's candidates whose answer is graded correct."""
    if not record.candidates:
        raise ConfigError(f"problem {record.problem_id!r} has no candidates; no pass rate")
    correct = 0
    for c in record.candidates:
        if c.answer is None:
            continue
        if c.answer not in record.answer_correct:
            raise ConfigError(
                f"problem {record.problem_id!r}: answer {c.answer!r} is not graded in "
                "answer_correct"
            )
        correct += record.answer_correct[c.answer]
    return correct / len(record.candidates)


def pass_rates(records: Sequence[Record]) -> dict[str, float]:
    """Each finished record's pass rate, by problem id."""
    return {r.problem_id: pass_rate(r) for r in records if r.ok}


def pilot_signals(records: Sequence[Record], signal: Signal, k: int) -> dict[str, float]:
    """Each finished record's signal over its first ``k`` candidates, by problem id."""
    if k < 1:
        raise ConfigError(f"the pilot needs at least one sample, got {k}")
    out: dict[str, float] = {}
    for r in records:
        if not r.ok:
            continue
        if len(r.candidates) < k:
            raise ConfigError(
                f"problem {r.problem_id!r} has {len(r.candidates)} samples, fewer than the "
                f"pilot's {k}"
            )
        try:
            out[r.problem_id] = signal_value(signal, r.candidates[:k])
        except ConfigError as e:
            raise ConfigError(f"problem {r.problem_id!r}: {e}") from e
    return out


@dataclass(frozen=True)
class BinAgreement:
    """How well one binning (predicted) matches another (oracle) on the same problems.

    ``confusion[a - 1][b - 1]`` counts problems in oracle bin a and predicted bin b.
    """

    problems: int
    exact: float
    within_one: float
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "exact": self.exact,
            "within_one": self.within_one,
            "confusion": [list(row) for row in self.confusion],
        }


def compare_bins(
    oracle: Mapping[str, int],
    predicted: Mapping[str, int],
    oracle_count: int,
    predicted_count: int,
) -> BinAgreement:
    """Agreement over the problems both binnings hold (see the module docstring)."""
    ids = sorted(set(oracle) & set(predicted))
    if not ids:
        raise ConfigError("the two binnings share no problems")
    confusion = [[0] * predicted_count for _ in range(oracle_count)]
    for pid in ids:
        confusion[oracle[pid] - 1][predicted[pid] - 1] += 1
    exact = sum(oracle[p] == predicted[p] for p in ids) / len(ids)
    near = sum(abs(oracle[p] - predicted[p]) <= 1 for p in ids) / len(ids)
    return BinAgreement(len(ids), exact, near, tuple(tuple(row) for row in confusion))


def nan_to_none(x: float) -> float | None:
    """JSON has no NaN: an empty bin's figures are null."""
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class BinStats:
    """A run's own results on the problems of one bin: accuracy of its final answers
    and mean tokens (``usage.total_tokens``); NaN when the bin has no problem of the run."""

    bin: int
    problems: int
    accuracy: float
    tokens: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin": self.bin,
            "problems": self.problems,
            "accuracy": nan_to_none(self.accuracy),
            "tokens": nan_to_none(self.tokens),
        }


def stats_by_bin(
    records: Sequence[Record], bin_of: Mapping[str, int], count: int
) -> tuple[list[BinStats], int]:
    """Per bin 1..``count``, the finished records' accuracy and mean tokens; also the
    number of finished records whose problem has no bin."""
    groups: dict[int, list[Record]] = {b: [] for b in range(1, count + 1)}
    unbinned = 0
    for r in records:
        if not r.ok:
            continue
        b = bin_of.get(r.problem_id)
        if b is None:
            unbinned += 1
            continue
        groups[b].append(r)
    rows = []
    for b, rs in groups.items():
        n = len(rs)
        rows.append(
            BinStats(
                bin=b,
                problems=n,
                accuracy=sum(r.correct for r in rs) / n if n else math.nan,
                tokens=sum(r.usage.total_tokens for r in rs) / n if n else math.nan,
            )
        )
    return rows, unbinned


@dataclass(frozen=True)
class PredictedBin:
    """One predicted bin on the evaluated problems: how many, their mean oracle pass
    rate (a single sample's accuracy) and the oracle run's own accuracy on them."""

    bin: int
    problems: int
    pass_rate: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin": self.bin,
            "problems": self.problems,
            "pass_rate": nan_to_none(self.pass_rate),
            "accuracy": nan_to_none(self.accuracy),
        }


@dataclass(frozen=True)
class DifficultyReport:
    """Predicted against oracle difficulty: both binnings fitted on the training
    problems, compared on ``evaluated`` problems (the held-out ones, or the training
    ones themselves when nothing is held out, ``on_heldout`` False)."""

    signal: Signal
    pilot: int
    oracle_bins: Bins
    predicted_bins: Bins
    on_heldout: bool
    agreement: BinAgreement
    predicted: tuple[PredictedBin, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "pilot": self.pilot,
            "oracle_bins": self.oracle_bins.to_dict(),
            "predicted_bins": self.predicted_bins.to_dict(),
            "evaluated_on": "heldout" if self.on_heldout else "calibration",
            "agreement": self.agreement.to_dict(),
            "predicted": [b.to_dict() for b in self.predicted],
        }


def assess_prediction(
    oracle: Sequence[Record],
    pilot: Sequence[Record],
    *,
    signal: Signal,
    k: int,
    count: int = DEFAULT_BINS,
    train: Sequence[str],
    heldout: Sequence[str] = (),
) -> DifficultyReport:
    """Fit oracle bins (pass rates of ``oracle``) and predicted bins (signal of the
    first ``k`` samples of ``pilot``) on ``train``; compare them on ``heldout`` (on
    ``train`` when it is empty)."""
    rates = pass_rates(oracle)
    signals = pilot_signals(pilot, signal, k)
    missing = [p for p in [*train, *heldout] if p not in rates or p not in signals]
    if missing:
        raise ConfigError(
            f"{len(missing)} problems lack an oracle pass rate or a pilot signal "
            f"(first: {missing[0]!r})"
        )
    oracle_bins = Bins.fit([rates[p] for p in train], count)
    predicted_bins = Bins.fit([signals[p] for p in train], count)
    evaluated = list(heldout) or list(train)
    oracle_of = {p: oracle_bins.assign(rates[p]) for p in evaluated}
    predicted_of = {p: predicted_bins.assign(signals[p]) for p in evaluated}
    by_id = {r.problem_id: r for r in oracle if r.ok}
    rows = []
    for b in range(1, predicted_bins.count + 1):
        ids = [p for p in evaluated if predicted_of[p] == b]
        n = len(ids)
        rows.append(
            PredictedBin(
                bin=b,
                problems=n,
                pass_rate=sum(rates[p] for p in ids) / n if n else math.nan,
                accuracy=sum(by_id[p].correct for p in ids) / n if n else math.nan,
            )
        )
    return DifficultyReport(
        signal=signal,
        pilot=k,
        oracle_bins=oracle_bins,
        predicted_bins=predicted_bins,
        on_heldout=bool(heldout),
        agreement=compare_bins(oracle_of, predicted_of, oracle_bins.count, predicted_bins.count),
        predicted=tuple(rows),
    )
