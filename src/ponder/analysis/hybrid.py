"""A hybrid vote of chain-of-thought and program samples, replayed from two banks.

Chain-of-thought (CoT) samples reason in words and are graded by their final answer;
program-aided (PAL) samples write a program whose printed result is the answer. They
fail in different ways, so a vote over both may beat either alone at the same tokens;
a PAL sample is also shorter on GSM8K. ``hybrid[k,m]`` takes ``k`` samples of a CoT bank
(a ``majority`` run) and ``m`` of a PAL bank (a ``pal`` run) of the same problems and
takes the plurality of their ``k + m`` answers (ties: CoT samples count first, then
the order used, as ``ponder.strategies.voting``). ``hybrid[k,m,w]`` weighs the votes:
each CoT sample by its score in the CoT bank (a bank scored by ``ponder bank score``, or
drawn with a scorer) and each program by the constant ``w``, as ``weighted_majority``
weighs them; its tokens include the CoT bank's scoring tokens for the ``k`` samples.

Accuracy averages each problem's outcome over ``orderings`` random orders of each bank's
samples, then over problems. Tokens: each bank's prompt as its engine charged it for
the samples used (``curves``' rule) plus their generated tokens. The hybrid is compared,
on the same problems and with a paired bootstrap, with CoT majority at the smallest n
whose mean tokens are at least the hybrid's (so majority never spends less).

``choose`` picks, on a train pair of banks, the cell for each CoT majority n: the most
accurate (then the cheapest) cell of a grid whose tokens are within majority-n's on
train. The picks are then measured on a test pair by ``hybrid_table``, so no setting is
chosen on the problems it is reported on.

``cross_check`` measures the execution cross-check as a signal alone: a CoT sample
scores 1 when its answer is the one a greedy program for the problem printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.analysis.curves import correct_by_n, scoring_per_sample
from ponder.runs.store import Record, RunStore

__all__ = [
    "Cell",
    "CrossCheck",
    "HybridRow",
    "cheapest_reaching",
    "choose",
    "chosen_markdown",
    "cross_check",
    "grid",
    "hybrid_table",
    "load_pair",
    "markdown",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Pair:
    """Both banks' samples on their shared problems, with one answer numbering per
    problem: answers (P, N) and (P, M), -1 for none; grades (P, K); tokens."""

    problem_ids: tuple[str, ...]
    cot: IntArray
    pal: IntArray
    answer_correct: BoolArray
    cot_prompt_cum: FloatArray
    cot_completion: FloatArray
    pal_prompt_cum: FloatArray
    pal_completion: FloatArray
    cot_score: FloatArray | None = None  # (P, N): None when a sample carries no score
    cot_scoring: FloatArray | None = None  # (P,): scoring tokens per CoT sample


@dataclass(frozen=True)
class Cell:
    """``cot`` CoT and ``pal`` program samples per vote; ``pal_weight`` None: one vote
    each; else each CoT sample weighs its score and each program ``pal_weight``."""

    cot: int
    pal: int
    pal_weight: float | None = None

    @property
    def name(self) -> str:
        if self.pal_weight is None:
            return f"hybrid[{self.cot},{self.pal}]"
        return f"hybrid[{self.cot},{self.pal},{self.pal_weight:g}]"


def _cell(c: Cell | tuple[int, int] | tuple[int, int, float]) -> Cell:
    if isinstance(c, Cell):
        return c
    if len(c) == 2:
        return Cell(int(c[0]), int(c[1]))
    return Cell(int(c[0]), int(c[1]), float(c[2]))


def _records(path: str | Path) -> dict[str, Record]:
    with RunStore(path, create=False) as store:
        return {r.problem_id: r for r in store.records(include_errors=False)}


def load_pair(cot_path: str | Path, pal_path: str | Path) -> _Pair:
    """Both banks on the problems they share (``ValueError`` when none)."""
    cot, pal = _records(cot_path), _records(pal_path)
    ids = tuple(pid for pid in cot if pid in pal)
    if not ids:
        raise ValueError(f"{cot_path} and {pal_path} share no finished problem")
    n = min(len(cot[i].candidates) for i in ids)
    m = min(len(pal[i].candidates) for i in ids)
    if n == 0 or m == 0:
        raise ValueError("every shared problem needs samples in both banks")
    p = len(ids)
    answers = [np.full((p, n), -1, dtype=np.int64), np.full((p, m), -1, dtype=np.int64)]
    prompts = [np.zeros((p, n)), np.zeros((p, m))]
    completions = [np.zeros((p, n)), np.zeros((p, m))]
    scores: FloatArray | None = np.zeros((p, n))
    scoring = np.zeros(p)
    grades: list[dict[int, bool]] = []
    for i, pid in enumerate(ids):
        scoring[i] = scoring_per_sample(cot[pid])
        for j, c in enumerate(cot[pid].candidates[:n]):
            if scores is not None and c.score is not None:
                scores[i, j] = c.score
            else:
                scores = None
        numbering: dict[str, int] = {}
        grade: dict[int, bool] = {}
        for b, record in enumerate((cot[pid], pal[pid])):
            for j, c in enumerate(record.candidates[: answers[b].shape[1]]):
                prompts[b][i, j] = c.usage.prompt_tokens
                completions[b][i, j] = c.usage.completion_tokens
                if c.answer is None:
                    continue
                if c.answer not in record.answer_correct:
                    raise ValueError(f"problem {pid!r}: answer {c.answer!r} is not graded")
                k = numbering.setdefault(c.answer, len(numbering))
                answers[b][i, j] = k
                grade[k] = bool(record.answer_correct[c.answer])
        grades.append(grade)
    k_all = max(1, max((len(g) for g in grades), default=1))
    ac = np.zeros((p, k_all), dtype=np.bool_)
    for i, grade in enumerate(grades):
        for k, ok in grade.items():
            ac[i, k] = ok
    return _Pair(
        ids,
        answers[0],
        answers[1],
        ac,
        np.cumsum(prompts[0], axis=1),
        completions[0],
        np.cumsum(prompts[1], axis=1),
        completions[1],
        scores,
        scoring,
    )


@dataclass(frozen=True)
class HybridRow:
    """``hybrid[k,m]`` against CoT majority at ``n``, the smallest n that spends at least
    as many tokens."""

    cot: int
    pal: int
    pal_weight: float | None
    accuracy: float
    tokens: float
    majority_n: int | None  # None: no n of the CoT bank spends as much
    majority_accuracy: float
    majority_tokens: float
    diff: float
    diff_ci: tuple[float, float]
    problems: int

    @property
    def name(self) -> str:
        return Cell(self.cot, self.pal, self.pal_weight).name

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.name,
            "cot": self.cot,
            "pal": self.pal,
            "pal_weight": self.pal_weight,
            "accuracy": self.accuracy,
            "tokens": self.tokens,
            "majority_n": self.majority_n,
            "majority_accuracy": self.majority_accuracy,
            "majority_tokens": self.majority_tokens,
            "diff": self.diff,
            "diff_ci": list(self.diff_ci),
            "problems": self.problems,
        }


def _orders(rng: np.random.Generator, r: int, shape: tuple[int, ...]) -> IntArray:
    out: IntArray = np.argsort(rng.random((r, *shape)), axis=-1)
    return out


def hybrid_table(
    pair: _Pair,
    cells: Sequence[Cell | tuple[int, int] | tuple[int, int, float]],
    *,
    orderings: int = 200,
    bootstrap: int = 2000,
    seed: int = 0,
    against: int | None = None,
) -> list[HybridRow]:
    """Each cell against CoT majority at matched tokens (see the module doc), or, with
    ``against``, against CoT majority at that n whatever it spends."""
    wanted = [_cell(c) for c in cells]
    p, n_all = pair.cot.shape
    if against is not None and not 1 <= against <= n_all:
        raise ValueError(f"the CoT bank has 1..{n_all} samples a problem, not {against}")
    m_all = pair.pal.shape[1]
    bad = [
        c.name
        for c in wanted
        if not (0 <= c.cot <= n_all and 0 <= c.pal <= m_all and c.cot + c.pal > 0)
    ]
    if bad:
        raise ValueError(f"cells must have 0..{n_all} CoT and 0..{m_all} PAL samples, got {bad}")
    weighted = [c.name for c in wanted if c.pal_weight is not None]
    if weighted and pair.cot_score is None:
        raise ValueError(
            f"{', '.join(weighted)} weigh CoT samples by their scores, and the CoT bank's "
            "samples carry none (score it first: ponder bank score)"
        )
    if any(c.pal_weight is not None and not c.pal_weight > 0 for c in wanted):
        raise ValueError("a program's weight must be positive")
    rng = np.random.default_rng(seed)
    cot_order = _orders(rng, orderings, pair.cot.shape)
    pal_order = _orders(rng, orderings, pair.pal.shape)
    cot = np.take_along_axis(np.broadcast_to(pair.cot, cot_order.shape), cot_order, -1)
    pal = np.take_along_axis(np.broadcast_to(pair.pal, pal_order.shape), pal_order, -1)
    cot_score = (
        None
        if pair.cot_score is None
        else np.take_along_axis(np.broadcast_to(pair.cot_score, cot_order.shape), cot_order, -1)
    )
    ac = np.broadcast_to(pair.answer_correct, (orderings, *pair.answer_correct.shape))
    cot_done = np.cumsum(
        np.take_along_axis(np.broadcast_to(pair.cot_completion, cot_order.shape), cot_order, -1),
        -1,
    ).mean(axis=0)
    pal_done = np.cumsum(
        np.take_along_axis(np.broadcast_to(pair.pal_completion, pal_order.shape), pal_order, -1),
        -1,
    ).mean(axis=0)
    cot_tokens = pair.cot_prompt_cum + cot_done  # (P, N): CoT cost of the first n
    pal_tokens = pair.pal_prompt_cum + pal_done
    scoring = np.zeros(p) if pair.cot_scoring is None else pair.cot_scoring
    majority = correct_by_n(cot, np.ones(cot.shape), ac, "majority").mean(axis=0)  # (P, N)
    spend = cot_tokens.mean(axis=0)
    picks = rng.integers(0, p, size=(bootstrap, p))
    rows = []
    for c in wanted:
        k, m = c.cot, c.pal
        votes = np.concatenate([cot[..., :k], pal[..., :m]], axis=-1)
        if c.pal_weight is None:
            right = correct_by_n(votes, np.ones(votes.shape), ac, "majority")
        else:
            assert cot_score is not None
            weights = np.concatenate(
                [cot_score[..., :k], np.full(pal[..., :m].shape, c.pal_weight)], axis=-1
            )
            right = correct_by_n(votes, weights, ac, "weighted")
        outcome = right[..., -1].mean(axis=0)
        cost = (cot_tokens[:, k - 1] if k else 0.0) + (pal_tokens[:, m - 1] if m else 0.0)
        if c.pal_weight is not None:
            cost = cost + k * scoring
        tokens = float(np.mean(cost))
        at = [j for j in range(n_all) if spend[j] >= tokens - 1e-9]
        if against is not None:
            at = [against - 1]
        if at:
            j = at[0]
            diff = outcome - majority[:, j]
            low, high = np.percentile(diff[picks].mean(axis=1), [2.5, 97.5])
            maj_acc, maj_tok, maj_n = float(majority[:, j].mean()), float(spend[j]), j + 1
            d, ci = float(diff.mean()), (float(low), float(high))
        else:
            maj_acc, maj_tok, maj_n = float("nan"), float("nan"), None
            d, ci = float("nan"), (float("nan"), float("nan"))
        acc = float(outcome.mean())
        rows.append(HybridRow(k, m, c.pal_weight, acc, tokens, maj_n, maj_acc, maj_tok, d, ci, p))
    return rows


def grid(pair: _Pair, pal_weights: Sequence[float] = ()) -> list[Cell]:
    """Every cell the pair allows: 0..N CoT and 0..M program samples, each unweighted
    and with every program weight in ``pal_weights``."""
    n_all, m_all = pair.cot.shape[1], pair.pal.shape[1]
    weights: list[float | None] = [None, *pal_weights]
    return [
        Cell(k, m, w)
        for k in range(n_all + 1)
        for m in range(m_all + 1)
        for w in weights
        if k + m > 0 and not (w is not None and (k == 0 or m == 0))
    ]


def choose(
    train: _Pair,
    cells: Sequence[Cell],
    at: Sequence[int],
    *,
    orderings: int = 200,
    seed: int = 0,
) -> dict[int, HybridRow]:
    """For each CoT majority ``n`` in ``at``, the train row of the most accurate cell
    (then the cheapest) among ``cells`` whose train tokens are within majority-n's."""
    n_all = train.cot.shape[1]
    bad = [n for n in at if not 1 <= n <= n_all]
    if bad:
        raise ValueError(f"the train CoT bank has 1..{n_all} samples a problem, not {bad}")
    majority = [Cell(n, 0) for n in at]
    rows = hybrid_table(train, [*majority, *cells], orderings=orderings, bootstrap=1, seed=seed)
    budgets = {n: rows[i].tokens for i, n in enumerate(at)}
    picked: dict[int, HybridRow] = {}
    for n in at:
        fits = [r for r in rows[len(at) :] if r.tokens <= budgets[n] + 1e-9]
        fits.append(rows[list(at).index(n)])
        picked[n] = max(fits, key=lambda r: (r.accuracy, -r.tokens))
    return picked


def markdown(rows: Sequence[HybridRow], cot_path: str, pal_path: str) -> str:
    p = rows[0].problems if rows else 0
    lines = [
        f"CoT bank {cot_path}, PAL bank {pal_path}: {p} shared problems",
        "",
        "| rule | accuracy | tokens | CoT majority at >= tokens | its accuracy | "
        "difference [95% paired] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.majority_n is None:
            lines.append(
                f"| {r.name} | {r.accuracy:.3f} | {r.tokens:,.0f} | none spends as much | | |"
            )
            continue
        lines.append(
            f"| {r.name} | {r.accuracy:.3f} | {r.tokens:,.0f} | n = {r.majority_n} "
            f"({r.majority_tokens:,.0f}) | {r.majority_accuracy:.3f} | {r.diff:+.3f} "
            f"[{r.diff_ci[0]:+.3f}, {r.diff_ci[1]:+.3f}] |"
        )
    return "\n".join(lines)


def cheapest_reaching(
    train: _Pair,
    cells: Sequence[Cell],
    n: int,
    *,
    orderings: int = 200,
    seed: int = 0,
) -> tuple[HybridRow, HybridRow | None]:
    """CoT majority-n's train row, and the train row of the cheapest cell among
    ``cells`` (then the most accurate) whose train accuracy is at least majority-n's;
    None when no cell reaches it."""
    rows = hybrid_table(train, [Cell(n, 0), *cells], orderings=orderings, bootstrap=1, seed=seed)
    majority, rest = rows[0], rows[1:]
    reach = [r for r in rest if r.accuracy >= majority.accuracy - 1e-12]
    if not reach:
        return majority, None
    return majority, min(reach, key=lambda r: (r.tokens, -r.accuracy))


def chosen_markdown(
    chosen: dict[int, HybridRow], rows: Sequence[HybridRow], train_problems: int
) -> str:
    """The cells chosen on train for each n (``choose``) beside their test rows
    (``hybrid_table`` over the chosen cells, in the same order)."""
    p = rows[0].problems if rows else 0
    lines = [
        f"chosen on train ({train_problems} problems) for each CoT majority n, the most "
        f"accurate cell within its tokens there; measured on test ({p} problems)",
        "",
        "| n | chosen on train | train accuracy | test accuracy | test tokens | "
        "CoT majority at >= tokens | its accuracy | difference [95% paired] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (n, pick), r in zip(chosen.items(), rows, strict=True):
        head = f"| {n} | {pick.name} | {pick.accuracy:.3f} | {r.accuracy:.3f} | {r.tokens:,.0f} |"
        if r.majority_n is None:
            lines.append(f"{head} none spends as much | | |")
            continue
        lines.append(
            f"{head} n = {r.majority_n} ({r.majority_tokens:,.0f}) | {r.majority_accuracy:.3f} "
            f"| {r.diff:+.3f} [{r.diff_ci[0]:+.3f}, {r.diff_ci[1]:+.3f}] |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class CrossCheck:
    """The execution cross-check as a signal of chain-of-thought samples: 1 when a
    sample's answer is the one the problem's program printed, else 0; its AUC pooled
    and within problems (mean over those with right and wrong samples), and how often
    the program itself is right and answers at all."""

    problems: int
    samples: int
    pooled_auc: float
    within_auc: float
    within_problems: int
    program_accuracy: float
    program_answered: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "samples": self.samples,
            "pooled_auc": self.pooled_auc,
            "within_problem_auc": self.within_auc,
            "within_problems": self.within_problems,
            "program_accuracy": self.program_accuracy,
            "program_answered": self.program_answered,
        }


def cross_check(cot_path: str | Path, program_path: str | Path) -> CrossCheck:
    """The cross-check of a CoT bank's samples against the final answer of a program run
    (a greedy ``pal`` run, one program per problem) on the problems both finished."""
    from sklearn.metrics import roc_auc_score

    cot, program = _records(cot_path), _records(program_path)
    ids = [pid for pid in cot if pid in program]
    if not ids:
        raise ValueError(f"{cot_path} and {program_path} share no finished problem")
    labels, signal, within = [], [], []
    for pid in ids:
        said = program[pid].answer
        ys = [bool(c.answer is not None and cot[pid].answer_correct.get(c.answer, False))
              for c in cot[pid].candidates]  # fmt: skip
        xs = [float(said is not None and c.answer == said) for c in cot[pid].candidates]
        labels += ys
        signal += xs
        if 0 < sum(ys) < len(ys):
            within.append(float(roc_auc_score(ys, xs)))
    return CrossCheck(
        problems=len(ids),
        samples=len(labels),
        pooled_auc=float(roc_auc_score(labels, signal)),
        within_auc=float(np.mean(within)) if within else float("nan"),
        within_problems=len(within),
        program_accuracy=float(np.mean([program[p].correct for p in ids])),
        program_answered=float(np.mean([program[p].answer is not None for p in ids])),
    )
