"""Augmented likelihood on the tiny random model: batched left-padded scoring equals
scoring each sequence alone, and a run that selects by it records why."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.runs.store import RunStore
from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.augment import transforms_for
from ponder.ttt.data import render
from ponder.ttt.likelihood import augmented_likelihood, sequence_logprobs
from ponder.ttt.model import LoadedModel
from ponder.ttt.run import run_config, run_ttt
from ponder.ttt.train import IGNORE, TTTConfig, encode

GRID = FewShotTask(
    "mirror",
    (Pair("10\n02", "01\n20"), Pair("30\n04", "03\n40"), Pair("50\n06", "05\n60")),
    (Pair("70\n08", "07\n80"),),
    kind="grid",
)


def alone(lm: LoadedModel, ids: list[int], labels: list[int]) -> float:
    """The summed log-probability of the labelled tokens, one unpadded sequence."""
    import torch

    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return float(sum(logp[i - 1, ids[i]] for i in range(1, len(ids)) if labels[i] != IGNORE))


def test_batched_scores_equal_each_sequence_scored_alone(lm: LoadedModel) -> None:
    seqs = [
        encode(lm, render(GRID.demos[:k], Pair(GRID.tests[0].input, out), answer=True),
               loss_on="last")
        for k, out in ((0, "07\n80"), (2, "0\n8"), (3, "07\n80"), (1, "77\n88\n00"))
    ]  # fmt: skip
    assert len({len(ids) for ids, _ in seqs}) == 4  # the batch really pads
    batched = sequence_logprobs(lm, seqs, batch_size=4)
    assert batched == pytest.approx([alone(lm, *s) for s in seqs], rel=1e-4, abs=1e-4)
    assert all(x < 0 for x in batched)
    ids, labels = seqs[0]
    with pytest.raises(ValueError, match="last"):
        sequence_logprobs(lm, [(ids, [*labels[:-1], IGNORE])])


def test_augmented_likelihood_sums_over_the_transforms(lm: LoadedModel) -> None:
    transforms = transforms_for(GRID)
    scores, usage = augmented_likelihood(lm, GRID, 0, ["07\n80", "70\n08"], transforms)
    assert set(scores) == {"07\n80", "70\n08"} and usage.calls == 16
    by_hand = 0.0
    for t in transforms:
        moved = t.task(GRID)
        seq = encode(lm, render(moved.demos, Pair(moved.tests[0].input, t.apply("07\n80")),
                                answer=True), loss_on="last")  # fmt: skip
        by_hand += alone(lm, *seq)
    assert scores["07\n80"] == pytest.approx(by_hand, rel=1e-4)


def test_a_run_selecting_by_likelihood_records_scores_votes_and_cost(
    lm: LoadedModel, tmp_path: Path
) -> None:
    cfg = TTTConfig(steps=1, learning_rate=1e-2)
    config = run_config(source="t", model="tiny", cfg=cfg, train=True, colour_variants=1,
                        limit=None, select="likelihood")  # fmt: skip
    assert config["strategy"]["options"]["select"] == "likelihood"
    with RunStore(tmp_path / "lik.db") as store:
        run_ttt([GRID], lm, store, config=config, cfg=cfg, max_new_tokens=6,
                select="likelihood", progress=False)  # fmt: skip
        (rec,) = store.records()
    scores = rec.meta["likelihood"]
    valid = {p["answer"] for p in rec.meta["predictions"] if p["answer"] is not None}
    assert set(scores) == valid
    ranked = sorted(scores, key=lambda a: -scores[a])[:2]
    assert [c.answer for c in rec.candidates] == ranked
    assert rec.correct == (rec.reference in ranked)
    assert "voted" in rec.meta and "score" in rec.meta["phase_seconds"]
    # the scoring passes are in the cost: one call per candidate and transform
    assert rec.usage.calls == 8 + 8 * len(valid)
