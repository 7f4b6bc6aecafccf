"""A hybrid vote of chain-of-thought and program samples, replayed from two banks.

Chain-of-thought (CoT) samples reason in words and are graded by their final answer;
program-aided (PAL) samples write a program whose printed result is the answer. They
fail in different ways, so a vote over both may beat either alone at the same tokens;
a PAL sample is also shorter on GSM8K. ``hybrid[k,m]`` takes ``k`` samples of a CoT bank
(a ``majority`` run) and ``m`` of a PAL bank (a ``pal`` run) of the same problems and
takes the plurality of their ``k + m`` answers (ties: CoT samples count first, then
the order used, as ``ponder.strategies.voting``).

Accuracy averages each problem's outcome over ``orderings`` random orders of each bank's
samples, then over problems. Tokens: each bank's prompt as its engine charged it for
the samples used (``curves``' rule) plus their generated tokens. The hybrid is compared,
on the same problems and with a paired bootstrap, with CoT majority at the smallest n
whose mean tokens are at least the hybrid's (so majority never spends less).

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

from ponder.analysis.curves import correct_by_n
from ponder.runs.store import Record, RunStore

__all__ = ["CrossCheck", "HybridRow", "cross_check", "hybrid_table", "load_pair", "markdown"]

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
    grades: list[dict[int, bool]] = []
    for i, pid in enumerate(ids):
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
    )


@dataclass(frozen=True)
class HybridRow:
    """``hybrid[k,m]`` against CoT majority at ``n``, the smallest n that spends at least
    as many tokens."""

    cot: int
    pal: int
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
        return f"hybrid[{self.cot},{self.pal}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.name,
            "cot": self.cot,
            "pal": self.pal,
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
    cells: Sequence[tuple[int, int]],
    *,
    orderings: int = 200,
    bootstrap: int = 2000,
    seed: int = 0,
) -> list[HybridRow]:
    """Each ``(k, m)`` cell against CoT majority at matched tokens; see the module doc."""
    p, n_all = pair.cot.shape
    m_all = pair.pal.shape[1]
    bad = [(k, m) for k, m in cells if not (0 <= k <= n_all and 0 <= m <= m_all and k + m > 0)]
    if bad:
        raise ValueError(f"cells must have 0..{n_all} CoT and 0..{m_all} PAL samples, got {bad}")
    rng = np.random.default_rng(seed)
    cot_order = _orders(rng, orderings, pair.cot.shape)
    pal_order = _orders(rng, orderings, pair.pal.shape)
    cot = np.take_along_axis(np.broadcast_to(pair.cot, cot_order.shape), cot_order, -1)
    pal = np.take_along_axis(np.broadcast_to(pair.pal, pal_order.shape), pal_order, -1)
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
    majority = correct_by_n(cot, np.ones(cot.shape), ac, "majority").mean(axis=0)  # (P, N)
    picks = rng.integers(0, p, size=(bootstrap, p))
    rows = []
    for k, m in cells:
        votes = np.concatenate([cot[..., :k], pal[..., :m]], axis=-1)
        right = correct_by_n(votes, np.ones(votes.shape), ac, "majority")[..., -1].mean(axis=0)
        cost = (cot_tokens[:, k - 1] if k else 0.0) + (pal_tokens[:, m - 1] if m else 0.0)
        tokens = float(np.mean(cost))
        spend = cot_tokens.mean(axis=0)
        at = [j for j in range(n_all) if spend[j] >= tokens - 1e-9]
        if at:
            j = at[0]
            diff = right - majority[:, j]
            low, high = np.percentile(diff[picks].mean(axis=1), [2.5, 97.5])
            maj_acc, maj_tok, maj_n = float(majority[:, j].mean()), float(spend[j]), j + 1
            d, ci = float(diff.mean()), (float(low), float(high))
        else:
            maj_acc, maj_tok, maj_n = float("nan"), float("nan"), None
            d, ci = float("nan"), (float("nan"), float("nan"))
        rows.append(HybridRow(k, m, float(right.mean()), tokens, maj_n, maj_acc, maj_tok, d, ci, p))
    return rows


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
