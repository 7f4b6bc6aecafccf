"""Choosing the two attempts by augmented likelihood instead of by votes.

The vote (``ponder.ttt.infer.vote``) counts how often each answer was generated. A
candidate can also be weighed by how likely the model finds it: under each transform
``t`` of the inference set, the log-probability of ``t(candidate)`` as the output of the
transformed task's test input, given its transformed demonstrations; summed over the
transforms, this is the log of the product of the transforms' probabilities (the
"product of experts" the ARChitects' ARC Prize 2024 solution ranked candidates by; it
rewards an answer every view of the task agrees on, where a vote only counts the views
that happened to generate it). The candidates are the distinct valid answers the
predictions gave; the two with the highest sum are the attempts.

Scoring is teacher-forced: one forward pass per candidate and transform, batched with
left padding so every sequence ends at the same position and only the logits over the
candidates' tokens are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.core.types import Usage
from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.augment import Transform
from ponder.ttt.data import render
from ponder.ttt.model import LoadedModel
from ponder.ttt.train import IGNORE, encode

__all__ = ["augmented_likelihood", "sequence_logprobs"]


def sequence_logprobs(
    lm: LoadedModel, sequences: Sequence[tuple[list[int], list[int]]], *, batch_size: int = 4
) -> list[float]:
    """For each ``(ids, labels)``, the summed log-probability of the tokens whose label
    is not ``IGNORE``, which must be the sequence's last tokens (the answer)."""
    import torch

    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    out: list[float] = [0.0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        targets = []
        for i in chunk:
            ids, labels = sequences[i]
            n = sum(1 for x in labels if x != IGNORE)
            if n == 0 or any(x == IGNORE for x in labels[len(labels) - n :]):
                raise ValueError("the scored tokens must be the sequence's last ones")
            targets.append(ids[len(ids) - n :])
        width = max(len(sequences[i][0]) for i in chunk)
        keep = max(len(t) for t in targets) + 1
        input_ids = torch.tensor([[pad] * (width - len(sequences[i][0])) + sequences[i][0]
                                  for i in chunk])  # fmt: skip
        mask = torch.tensor([[0] * (width - len(sequences[i][0])) + [1] * len(sequences[i][0])
                             for i in chunk])  # fmt: skip
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad(), lm.compute():
            logits = lm.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                logits_to_keep=keep,
            ).logits
        logp = torch.log_softmax(logits.float(), dim=-1)  # (batch, keep, vocab)
        for row, (i, target) in enumerate(zip(chunk, targets, strict=True)):
            n = len(target)
            # the logit at kept position j predicts the token after it; the target's
            # tokens are the last n, predicted by kept positions keep-n-1 .. keep-2
            picked = logp[row, keep - n - 1 : keep - 1].gather(-1, torch.tensor(target)[:, None])
            out[i] = float(picked.sum())
    return out


def augmented_likelihood(
    lm: LoadedModel,
    task: FewShotTask,
    test_index: int,
    candidates: Sequence[str],
    transforms: Sequence[Transform],
    *,
    batch_size: int = 4,
) -> tuple[dict[str, float], Usage]:
    """Each candidate answer to ``task``'s test input ``test_index`` (in the task's own
    frame): its log-probability summed over ``transforms``; and what scoring cost (every
    sequence prefilled once, a call each)."""
    jobs: list[tuple[str, tuple[list[int], list[int]]]] = []
    for t in transforms:
        moved = t.task(task)
        query = moved.tests[test_index].input
        for c in candidates:
            segments = render(moved.demos, Pair(query, t.apply(c)), answer=True)
            jobs.append((c, encode(lm, segments, loss_on="last")))
    scores = dict.fromkeys(candidates, 0.0)
    for (c, _), lp in zip(
        jobs, sequence_logprobs(lm, [j for _, j in jobs], batch_size=batch_size), strict=True
    ):
        scores[c] += lp
    usage = Usage(prompt_tokens=sum(len(ids) for _, (ids, _) in jobs), calls=len(jobs))
    return scores, usage
