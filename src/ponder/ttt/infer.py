"""Augmented inference and two-level voting (Akyurek et al. 2024, section 5).

For each transform ``t`` (``ponder.ttt.augment.transforms_for``) the model answers the
transformed task: ``t`` applied to the demonstrations and the test input. The answer
is mapped back with ``t.invert``; one that is no valid answer (not a grid, for an ARC
task) is kept as an invalid prediction and never voted for.

``vote`` then picks the attempts in two levels:

1. within each transform family (a geometry; its colour variants share it), the
   ``per_family`` most frequent answers (ties: the one seen first);
2. across families, the answers picked most often in level 1, ties broken by their
   total count over all predictions and then by first appearance; the top
   ``attempts`` (2, as ARC is scored) are the task's answers.

``vote(..., flat=True)`` skips level 1 (the paper's flat-vote ablation).

Decoding is greedy, batched with left padding, and stops at the first blank line
(``ponder.ttt.data.END``) or after ``max_new_tokens``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ponder.core.types import Usage
from ponder.tasks.arc import FewShotTask
from ponder.ttt.augment import Transform
from ponder.ttt.data import END, render
from ponder.ttt.model import LoadedModel
from ponder.ttt.train import encode

__all__ = ["Prediction", "output_budget", "predict", "vote"]


@dataclass(frozen=True)
class Prediction:
    """One transform's answer to one test input: the generated text (in the
    transformed frame) and the answer mapped back (None when invalid)."""

    test_index: int
    transform: str
    family: str
    text: str
    answer: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def usage(self) -> Usage:
        """What producing this prediction cost: its prompt prefilled, its tokens."""
        return Usage(
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, calls=1
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def vote(
    predictions: Sequence[Prediction],
    *,
    per_family: int = 3,
    attempts: int = 2,
    flat: bool = False,
) -> list[tuple[str, int]]:
    """The top ``attempts`` answers by two-level voting, each with the number of
    families that picked it (see the module docstring). ``flat=True`` is the ablation
    without the first level: the answers most often predicted over all transforms,
    each with its count (ties: the one seen first)."""
    order: dict[str, int] = {}
    totals: Counter[str] = Counter()
    by_family: dict[str, Counter[str]] = {}
    for p in predictions:
        if p.answer is None:
            continue
        order.setdefault(p.answer, len(order))
        totals[p.answer] += 1
        by_family.setdefault(p.family, Counter())[p.answer] += 1
    if flat:
        flat_ranked = sorted(totals, key=lambda a: (-totals[a], order[a]))
        return [(a, totals[a]) for a in flat_ranked[:attempts]]
    picked: Counter[str] = Counter()
    for counts in by_family.values():
        ranked = sorted(counts, key=lambda a: (-counts[a], order[a]))
        picked.update(ranked[:per_family])
    ranked = sorted(picked, key=lambda a: (-picked[a], -totals[a], order[a]))
    return [(a, picked[a]) for a in ranked[:attempts]]


def output_budget(lm: LoadedModel, task: FewShotTask, *, cap: int = 1024) -> int:
    """Tokens to allow an answer: twice the longest demonstration output, plus a little,
    at most ``cap`` (outputs are rarely much larger than the demonstrations')."""
    longest = max((len(lm.encode((p.output or "") + END)) for p in task.demos), default=cap)
    return min(cap, 2 * longest + 8)


def _generate(
    lm: LoadedModel, prompts: Sequence[list[int]], max_new_tokens: int
) -> list[tuple[str, int]]:
    """Greedy continuations of token prompts, each cut before the first ``END``, with
    the number of tokens generated."""
    import torch

    tok = lm.tokenizer
    pad = tok.pad_token_id
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad(), lm.compute():
        out = lm.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stop_strings=[END],
            tokenizer=tok,
            pad_token_id=pad,
        )
    results = []
    for row in out[:, width:].tolist():
        text = tok.decode(row, skip_special_tokens=True)
        cut = text.find(END)
        kept = text if cut < 0 else text[:cut]
        # tokens up to the stop, not the padding after a sequence ends early
        used = len(row)
        while used and row[used - 1] == pad:
            used -= 1
        results.append((kept, used))
    return results


def predict(
    lm: LoadedModel,
    task: FewShotTask,
    transforms: Sequence[Transform],
    *,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
) -> tuple[list[Prediction], Usage]:
    """Every transform's answer to every test input of ``task``, and what it cost."""
    budget = max_new_tokens or output_budget(lm, task)
    # (test input, transform position): the order predictions are returned in
    jobs: list[tuple[tuple[int, int], Transform, list[int]]] = []
    for position, t in enumerate(transforms):
        moved = t.task(task)
        for i, test in enumerate(moved.tests):
            ids, _ = encode(lm, render(moved.demos, test, answer=False), loss_on="outputs")
            jobs.append(((i, position), t, ids))
    done: list[tuple[tuple[int, int], Prediction]] = []
    # similar lengths together, so little padding is computed
    jobs.sort(key=lambda j: len(j[2]))
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        for (order, t, ids), (text, used) in zip(
            chunk, _generate(lm, [j[2] for j in chunk], budget), strict=True
        ):
            try:
                answer = task.canonical(t.invert(text))
            except ValueError:  # not a grid: nothing to map back
                answer = None
            prediction = Prediction(order[0], t.name, t.family, text, answer, len(ids), used)
            done.append((order, prediction))
    predictions = [p for _, p in sorted(done, key=lambda d: d[0])]
    usage = sum((p.usage for p in predictions), start=Usage())
    return predictions, usage
