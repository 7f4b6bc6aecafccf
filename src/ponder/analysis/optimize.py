"""Compute-optimal allocation: per difficulty bin and token budget, the best configuration.

Snell et al. 2024 ("Scaling LLM Test-Time Compute Optimally can be More Effective than
Scaling Model Parameters", arXiv:2408.03314, section 3.2) choose, for each question,
the test-time configuration that maximises accuracy at a given compute budget, and
approximate it per difficulty bin estimated on held-out questions. This module does
that from a calibration (``ponder.analysis.calibration``: every configuration's outcome,
own tokens T and policy tokens E per problem), with a difficulty predicted from a cheap
pilot (``ponder.analysis.difficulty``) so that the policy can run on new questions
(``ponder.strategies.optimal``).

Policy (``fit_policy``), on the training problems:

- bins: predicted-difficulty bins fitted on the training problems' signals
  (``difficulty.Bins.fit``);
- cell (bin b, budget B), with allocation ``bin`` (Snell et al.'s; the default): among
  the configurations whose mean E over b's problems is <= B, the one with the highest
  mean accuracy there; ties go to the lower mean E, then to the earlier configuration.
  When none fits in b, the one with the lowest mean E (ties: higher accuracy, then
  earlier), marked ``fits: false``. A budget at which no configuration fits in any bin
  raises ``ConfigError``.
- cells at budget B with allocation ``mean``: one configuration per bin, chosen
  together so that the training problems' total E (each bin's mean E times its
  problems, summed) is <= B times their number and their total of right answers is
  the highest; ties go to the lower total E, then to the choice whose configurations,
  read bin by bin, come earlier. This is exact (a multiple-choice knapsack, solved by
  merging bins' Pareto fronts of tokens against right answers). It lets an easy bin
  that is settled by its pilot leave budget to a hard one, which a per-bin budget
  cannot. A budget below the cheapest choice raises ``ConfigError``.
- budgets: given, or six spaced evenly in log scale from the lowest to the highest
  mean E over the training problems among the configurations, each rounded up to a
  whole token, duplicates dropped.

Evaluation (``evaluate_policy``) on held-out problems (a seeded split by problem id,
``difficulty.split_by_problem``): each problem gets its predicted bin against the
training thresholds and the cell's configuration at budget B, and counts that
configuration's outcome and E. The baseline is the best uniform configuration at B:
the highest training accuracy among those with mean T <= B over the training problems
(ties: lower T, then earlier), counted with its outcome and T. Means over the held-out
problems. With nothing held out, both are measured on the training problems (in-sample).
The evaluation also compares the predicted bins with oracle pass-rate bins, both
fitted on the training problems (``difficulty.assess_prediction``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.analysis.calibration import (
    DEFAULT_PILOT,
    Calibration,
    HybridSpec,
    StopSpec,
    load_calibration,
)
from ponder.analysis.difficulty import (
    DifficultyReport,
    assess_prediction,
    nan_to_none,
    split_by_problem,
)
from ponder.core.errors import ConfigError
from ponder.strategies.optimal.policy import (
    ALLOCATIONS,
    Allocation,
    Cell,
    Configuration,
    Policy,
    cells_by_budget,
)
from ponder.strategies.optimal.signals import DEFAULT_BINS, Bins, Signal

FloatArray = npt.NDArray[np.float64]

DEFAULT_BUDGETS = 6
DEFAULT_HELDOUT = 0.3


# -- fitting -----------------------------------------------------------------------------


def default_budgets(
    cal: Calibration, train: Sequence[str], count: int = DEFAULT_BUDGETS
) -> list[float]:
    """Budgets spaced evenly in log scale over the configurations' mean E (docstring)."""
    means = cal.policy_tokens[:, cal.rows(train)].mean(axis=1)
    lo, hi = float(means.min()), float(means.max())
    if lo <= 0 or count == 1 or hi <= lo:
        return [float(math.ceil(hi))]
    raw = [lo * (hi / lo) ** (j / (count - 1)) for j in range(count)]
    return [float(b) for b in dict.fromkeys(math.ceil(x - 1e-9) for x in raw)]


def _choose(acc: FloatArray, tok: FloatArray, budget: float) -> tuple[int, bool]:
    """Best accuracy among those with tok <= budget (ties: fewer tokens, then earlier);
    when none fits, the cheapest (ties: better accuracy, then earlier)."""
    order = range(len(acc))
    fitting = [i for i in order if tok[i] <= budget]
    if fitting:
        return min(fitting, key=lambda i: (-acc[i], tok[i], i)), True
    return min(order, key=lambda i: (tok[i], -acc[i], i)), False


# One partial choice of the mean allocation: total tokens, total right answers, and the
# configuration index chosen for each bin so far.
_Choice = tuple[float, float, tuple[int, ...]]


def _pareto(choices: list[_Choice]) -> list[_Choice]:
    """The choices that no other beats: for rising tokens, strictly more right answers
    (among equals, the earliest configurations)."""
    front: list[_Choice] = []
    for c in sorted(choices, key=lambda c: (c[0], -c[1], c[2])):
        if not front or c[1] > front[-1][1] + 1e-9:
            front.append(c)
    return front


def _allocate(
    acc: Sequence[FloatArray], tok: Sequence[FloatArray], sizes: Sequence[int], budget: float
) -> tuple[tuple[int, ...], bool]:
    """Per bin, the configuration index of the mean allocation (module docstring), and
    whether the choice fits ``budget``."""
    front: list[_Choice] = [(0.0, 0.0, ())]
    for a, t, m in zip(acc, tok, sizes, strict=True):
        front = _pareto(
            [
                (e + m * float(t[i]), r + m * float(a[i]), (*ch, i))
                for e, r, ch in front
                for i in range(len(a))
            ]
        )
    limit = budget * sum(sizes) * (1 + 1e-12)
    fitting = [c for c in front if c[0] <= limit]
    if fitting:
        return min(fitting, key=lambda c: (-c[1], c[0], c[2]))[2], True
    return front[0][2], False


def fit_policy(
    cal: Calibration,
    train: Sequence[str],
    budgets: Sequence[float],
    *,
    bins: int = DEFAULT_BINS,
    allocation: Allocation = "bin",
    calibration_info: Mapping[str, Any] | None = None,
) -> Policy:
    """The policy fitted on the ``train`` problems (module docstring)."""
    if not train:
        raise ConfigError("no training problems to fit a policy on")
    if allocation not in ALLOCATIONS:
        raise ConfigError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    budgets = sorted(float(b) for b in budgets)
    if not budgets or budgets[0] <= 0 or len(set(budgets)) != len(budgets):
        raise ConfigError(f"budgets must be distinct positive numbers, got {list(budgets)}")
    rows = cal.rows(train)
    edges = Bins.fit([float(v) for v in cal.signal[rows]], bins)
    bin_of = np.asarray([edges.assign(float(v)) for v in cal.signal[rows]])
    members = [rows[bin_of == b] for b in range(1, edges.count + 1)]
    acc = [cal.correct[:, m].mean(axis=1) for m in members]
    tok = [cal.policy_tokens[:, m].mean(axis=1) for m in members]
    cells: list[Cell] = []
    for budget in budgets:
        if allocation == "bin":
            picks = [_choose(a, t, budget) for a, t in zip(acc, tok, strict=True)]
        else:
            chosen, fits = _allocate(acc, tok, [len(m) for m in members], budget)
            picks = [(i, fits) for i in chosen]
        column = [
            Cell(
                b,
                budget,
                cal.configs[i],
                float(acc[b - 1][i]),
                float(tok[b - 1][i]),
                len(members[b - 1]),
                fits,
            )
            for b, (i, fits) in enumerate(picks, start=1)
        ]
        if not any(c.fits for c in column):
            sizes = [c.problems for c in column]
            cheapest = (
                min(c.tokens for c in column)
                if allocation == "bin"
                else sum(c.tokens * m for c, m in zip(column, sizes, strict=True)) / sum(sizes)
            )
            where = "in its bin" if allocation == "bin" else "on average over the bins"
            raise ConfigError(
                f"budget {budget:g} is below every configuration: the cheapest costs "
                f"{cheapest:.1f} tokens per problem {where}, pilot of "
                f"{cal.pilot.samples} samples included"
            )
        cells.extend(column)
    return Policy(
        task=cal.task,
        model=cal.model,
        pilot=cal.pilot,
        bins=edges,
        budgets=tuple(budgets),
        cells=tuple(cells),
        calibration=dict(calibration_info or {}),
        allocation=allocation,
    )


# -- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetResult:
    """The policy against the best uniform configuration at one budget."""

    budget: float
    policy_accuracy: float
    policy_tokens: float
    uniform: Configuration | None
    uniform_accuracy: float
    uniform_tokens: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "policy": {"accuracy": self.policy_accuracy, "tokens": self.policy_tokens},
            "uniform": {
                "config": None if self.uniform is None else self.uniform.to_dict(),
                "source": None if self.uniform is None else self.uniform.source,
                "accuracy": nan_to_none(self.uniform_accuracy),
                "tokens": nan_to_none(self.uniform_tokens),
            },
        }


@dataclass(frozen=True)
class Evaluation:
    """How the policy did on ``problems`` problems (held out unless ``on_heldout`` is
    False), per budget, and how its predicted bins matched the oracle's."""

    problems: int
    on_heldout: bool
    budgets: tuple[BudgetResult, ...]
    difficulty: DifficultyReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluated_on": "heldout" if self.on_heldout else "calibration (in-sample)",
            "problems": self.problems,
            "budgets": [b.to_dict() for b in self.budgets],
            "difficulty": self.difficulty.to_dict(),
        }


def evaluate_policy(
    policy: Policy, cal: Calibration, train: Sequence[str], heldout: Sequence[str]
) -> Evaluation:
    """The policy and the best uniform configuration on ``heldout`` (on ``train`` when
    empty); see the module docstring."""
    index = {c.key: i for i, c in enumerate(cal.configs)}
    evaluated = list(heldout) or list(train)
    rows = cal.rows(evaluated)
    train_rows = cal.rows(train)
    bin_of = [policy.bins.assign(float(cal.signal[r])) for r in rows]
    train_acc = cal.correct[:, train_rows].mean(axis=1)
    train_tok = cal.own_tokens[:, train_rows].mean(axis=1)
    results = []
    for budget in policy.budgets:
        picks = [index[policy.cell(b, budget).config.key] for b in bin_of]
        acc = float(np.mean(cal.correct[picks, rows]))
        tok = float(np.mean(cal.policy_tokens[picks, rows]))
        i, fits = _choose(train_acc, train_tok, budget)
        if fits:
            u: Configuration | None = cal.configs[i]
            u_acc = float(cal.correct[i, rows].mean())
            u_tok = float(cal.own_tokens[i, rows].mean())
        else:
            u, u_acc, u_tok = None, math.nan, math.nan
        results.append(BudgetResult(budget, acc, tok, u, u_acc, u_tok))
    difficulty = assess_prediction(
        cal.records[cal.oracle],
        cal.records[cal.pilot.store],
        signal=cal.pilot.signal,
        k=cal.pilot.samples,
        count=_wanted_bins(policy),
        train=train,
        heldout=heldout,
    )
    return Evaluation(len(evaluated), bool(heldout), tuple(results), difficulty)


def _wanted_bins(policy: Policy) -> int:
    wanted = policy.calibration.get("bins")
    return int(wanted) if isinstance(wanted, int) else policy.bins.count


# -- on test problems --------------------------------------------------------------------


@dataclass(frozen=True)
class OnTestSplit:
    """The policy on the problems of other stores (a test split): per budget against the
    best uniform configuration chosen on the training problems, and against
    ``reference``, the majority vote over the most samples the test stores hold.
    ``reach`` is the cheapest budget whose accuracy is at least the reference's (None
    when none is) and ``ratio`` the reference's tokens over the policy's there."""

    problems: int
    budgets: tuple[BudgetResult, ...]
    reference: Configuration
    reference_accuracy: float
    reference_tokens: float
    reach: BudgetResult | None

    @property
    def ratio(self) -> float:
        if self.reach is None or self.reach.policy_tokens <= 0:
            return math.nan
        return self.reference_tokens / self.reach.policy_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "budgets": [b.to_dict() for b in self.budgets],
            "reference": {
                "config": self.reference.to_dict(),
                "accuracy": self.reference_accuracy,
                "tokens": self.reference_tokens,
            },
            "reach_budget": None if self.reach is None else self.reach.budget,
            "tokens_ratio": nan_to_none(self.ratio),
        }


def evaluate_on_test(
    policy: Policy, cal: Calibration, train: Sequence[str], test: Calibration
) -> OnTestSplit:
    """``policy`` (fitted on ``train`` problems of ``cal``) replayed on every problem of
    ``test``, a calibration of the same configurations read from other stores with the
    same pilot; ``ConfigError`` when a configuration the policy uses is missing there."""
    index = {c.key: i for i, c in enumerate(test.configs)}
    used = {c.config.key: c.config for c in policy.cells}
    missing = [c.label for k, c in used.items() if k not in index]
    if missing:
        raise ConfigError(f"the test stores lack configurations the policy uses: {missing}")
    if (test.pilot.samples, test.pilot.signal) != (policy.pilot.samples, policy.pilot.signal):
        raise ConfigError("the test calibration must read the policy's pilot (samples, signal)")
    rows = np.arange(len(test.problem_ids))
    bins = [policy.bins.assign(float(test.signal[r])) for r in rows]
    train_rows = cal.rows(train)
    train_acc = cal.correct[:, train_rows].mean(axis=1)
    train_tok = cal.own_tokens[:, train_rows].mean(axis=1)
    results = []
    for budget in policy.budgets:
        picks = [index[policy.cell(b, budget).config.key] for b in bins]
        acc = float(np.mean(test.correct[picks, rows]))
        tok = float(np.mean(test.policy_tokens[picks, rows]))
        i, fits = _choose(train_acc, train_tok, budget)
        u, u_acc, u_tok = None, math.nan, math.nan
        if fits and cal.configs[i].key in index:
            u = cal.configs[i]
            j = index[u.key]
            u_acc = float(test.correct[j].mean())
            u_tok = float(test.own_tokens[j].mean())
        results.append(BudgetResult(budget, acc, tok, u, u_acc, u_tok))
    majorities = [(c.n or 0, i) for i, c in enumerate(test.configs) if c.rule == "majority" and c.n]
    if not majorities:
        raise ConfigError("the test stores hold no majority configuration to compare with")
    _, ref = max(majorities)
    ref_acc = float(test.correct[ref].mean())
    ref_tok = float(test.own_tokens[ref].mean())
    reached = [b for b in results if b.policy_accuracy >= ref_acc - 1e-12]
    reach = min(reached, key=lambda b: b.policy_tokens) if reached else None
    return OnTestSplit(len(rows), tuple(results), test.configs[ref], ref_acc, ref_tok, reach)


def _budget_line(b: BudgetResult) -> str:
    """One budget's policy against its best uniform configuration, for the terminal."""
    uniform = (
        "nothing fits"
        if b.uniform is None
        else f"{b.uniform.label}: {b.uniform_accuracy:.3f} at {b.uniform_tokens:.1f}"
    )
    return (
        f"  budget {b.budget:g}: policy {b.policy_accuracy:.3f} at {b.policy_tokens:.1f} "
        f"tokens; uniform {uniform}"
    )


def on_test_text(ev: OnTestSplit) -> str:
    """The test evaluation as lines for the terminal."""
    lines = [
        f"test problems ({ev.problems}): policy vs the best uniform configuration on "
        f"train; reference {ev.reference.label}: {ev.reference_accuracy:.3f} at "
        f"{ev.reference_tokens:.1f} tokens"
    ]
    lines += [_budget_line(b) for b in ev.budgets]
    if ev.reach is None:
        lines.append("no budget reaches the reference's accuracy on test")
    else:
        lines.append(
            f"the reference's accuracy is reached at budget {ev.reach.budget:g}: "
            f"{ev.reach.policy_tokens:.1f} tokens, {ev.ratio:.2f}x fewer"
        )
    return "\n".join(lines)


# -- all together ------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimization:
    """What ``optimize`` computed: the policy (with its evaluation inside), the
    calibration it came from, and the evaluation."""

    policy: Policy
    calibration: Calibration
    evaluation: Evaluation
    test: OnTestSplit | None = None


def optimize(
    paths: Sequence[str | Path],
    *,
    budgets: Sequence[float] | None = None,
    bins: int = DEFAULT_BINS,
    pilot: int = DEFAULT_PILOT,
    signal: Signal = "agreement",
    pilot_from: str | Path | None = None,
    oracle: str | Path | None = None,
    heldout: float = DEFAULT_HELDOUT,
    seed: int = 0,
    allocation: Allocation = "bin",
    test: Sequence[str | Path] = (),
    stops: Sequence[StopSpec] = (),
    hybrid: HybridSpec | None = None,
) -> Optimization:
    """Read the calibration stores, split the problems, fit the policy on the training
    part and evaluate it on the held-out part (module docstring); with ``test`` stores
    (the same configurations on other problems, first the pilot's), also on all of
    theirs (``evaluate_on_test``). ``stops``: stopping rules replayed on the pilot run
    as configurations that reuse the pilot (``calibration.StopSpec``); ``hybrid``: votes
    of the pilot run's chains and each pal run's programs (``calibration.HybridSpec``)."""
    cal = load_calibration(
        paths,
        pilot=pilot,
        signal=signal,
        pilot_from=pilot_from,
        oracle=oracle,
        stops=stops,
        hybrid=hybrid,
    )
    train, held = split_by_problem(cal.problem_ids, heldout, seed)
    chosen = list(budgets) if budgets else default_budgets(cal, train)
    info = {
        "stores": [s.to_dict() for s in cal.stores],
        "problems": len(cal.problem_ids),
        "train_problems": len(train),
        "heldout_problems": len(held),
        "heldout_fraction": heldout,
        "split_seed": seed,
        "bins": bins,
        "configurations": len(cal.configs),
        "budgets": "given" if budgets else "default",
    }
    policy = fit_policy(cal, train, chosen, bins=bins, allocation=allocation, calibration_info=info)
    evaluation = evaluate_policy(policy, cal, train, held)
    policy = dataclasses.replace(policy, evaluation=evaluation.to_dict())
    on_test = None
    if test:
        test_cal = load_calibration(test, pilot=pilot, signal=signal, stops=stops, hybrid=hybrid)
        on_test = evaluate_on_test(policy, cal, train, test_cal)
    return Optimization(policy, cal, evaluation, on_test)


def summary_text(result: Optimization) -> str:
    """A plain-text summary of an optimization for the terminal."""
    policy, cal, ev = result.policy, result.calibration, result.evaluation
    info = policy.calibration
    pilot = policy.pilot
    lines = [
        f"calibration: {len(cal.stores)} store(s), {len(cal.problem_ids)} problems "
        f"({info.get('train_problems')} to fit, {info.get('heldout_problems')} held out, "
        f"seed {info.get('split_seed')}), {len(cal.configs)} configurations",
        f"pilot: first {pilot.samples} samples of {pilot.store} (temperature "
        f"{pilot.temperature:g}, top_p {pilot.top_p:g}); signal {pilot.signal}"
        + (f" ({pilot.scorer})" if pilot.signal == "score" else ""),
        f"predicted bins: {policy.bins.count}, thresholds "
        + (", ".join(f"{t:.3f}" for t in policy.bins.thresholds) or "none")
        + " (bin 1 easiest)",
        "budgets: "
        + (
            "each bin's own mean tokens (allocation bin)"
            if policy.allocation == "bin"
            else "mean tokens over all problems, spent unevenly across bins (allocation mean)"
        ),
        "policy (per bin: configuration, accuracy, tokens/problem, problems):",
    ]
    for budget, cells in cells_by_budget(policy.cells).items():
        lines.append(f"  budget {budget:g}:")
        for c in cells:
            over = "" if c.fits else "  (nothing fits: cheapest)"
            lines.append(
                f"    bin {c.bin}: {c.config.label}, {c.accuracy:.3f}, {c.tokens:.1f}, "
                f"{c.problems}{over}"
            )
    where = "held-out" if ev.on_heldout else "calibration (in-sample)"
    lines.append(f"{where} problems ({ev.problems}): policy vs best uniform configuration")
    lines += [_budget_line(b) for b in ev.budgets]
    d = ev.difficulty
    lines.append(
        f"predicted vs oracle bins ({d.agreement.problems} problems): same bin "
        f"{d.agreement.exact:.2f}, within one {d.agreement.within_one:.2f}"
    )
    for row in d.predicted:
        if row.problems:
            lines.append(
                f"  predicted bin {row.bin}: {row.problems} problems, pass rate "
                f"{row.pass_rate:.3f}, oracle run accuracy {row.accuracy:.3f}"
            )
    return "\n".join(lines)
