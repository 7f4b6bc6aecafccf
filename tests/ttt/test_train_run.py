"""Training, inference and the resumable run, for real, on a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.ttt.conftest import tiny_lm

from ponder.core.errors import ConfigError
from ponder.runs.store import RunStore
from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.augment import Transform, transforms_for
from ponder.ttt.data import render, training_examples
from ponder.ttt.infer import predict
from ponder.ttt.model import LoadedModel
from ponder.ttt.run import run_config, run_ttt
from ponder.ttt.train import (
    IGNORE,
    TTTConfig,
    encode,
    labelled_loss,
    target_loss,
    train_adapter,
)

GRID = FewShotTask(
    "mirror",
    (Pair("10\n02", "01\n20"), Pair("30\n04", "03\n40"), Pair("50\n06", "05\n60")),
    (Pair("70\n08", "07\n80"),),
    kind="grid",
)
TEXT = FewShotTask(
    "rev", (Pair("ab", "ba"), Pair("cd", "dc"), Pair("ef", "fe")), (Pair("gh", "hg"),), "text"
)


def test_encode_masks_the_outputs(lm: LoadedModel) -> None:
    segments = render(GRID.demos[:2], GRID.tests[0], answer=True)
    ids, labels = encode(lm, segments, loss_on="outputs")
    assert len(ids) == len(labels)
    counted = [t for t, label in zip(ids, labels, strict=True) if label != IGNORE]
    outputs = [lm.encode(text) for text, target in segments if target]
    assert counted == [t for piece in outputs for t in piece]
    _, last = encode(lm, segments, loss_on="last")
    assert [t for t in last if t != IGNORE] == outputs[-1]


@pytest.mark.parametrize("loss_on", ["outputs", "last"])
def test_labelled_loss_is_the_models_own_loss_and_gradient(lm: LoadedModel, loss_on: str) -> None:
    import torch

    ids, labels = encode(lm, render(GRID.demos[:2], GRID.tests[0], answer=True), loss_on=loss_on)
    lm.model.zero_grad()
    ours = labelled_loss(lm.model, ids, labels)
    ours.backward()
    ours_grads = [p.grad.clone() for p in lm.model.parameters() if p.grad is not None]
    lm.model.zero_grad()
    theirs = lm.model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
    theirs.backward()
    theirs_grads = [p.grad for p in lm.model.parameters() if p.grad is not None]
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    assert len(ours_grads) == len(theirs_grads) > 0
    for a, b in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="no labelled token"):
        labelled_loss(lm.model, ids, [IGNORE] * len(ids))


def test_one_training_step_lowers_the_loss(lm: LoadedModel) -> None:
    import torch

    cfg = TTTConfig(steps=1, learning_rate=5e-2, rank=8, seed=1)
    before = target_loss(lm, GRID.demos, GRID.tests[0])
    weights = {k: v.clone() for k, v in lm.model.state_dict().items()}
    model, report = train_adapter(lm, GRID, cfg)
    assert len(report.losses) == 1 and report.tokens > 0 and report.examples == 1
    # the step lowered the loss of the very sequence it trained on (the stream's first)
    base = lm.model
    trained = report.losses[0]
    example = next(training_examples(GRID, seed=cfg.seed))
    ids, labels = encode(lm, example.segments, loss_on="outputs")
    with torch.no_grad():
        after = float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss)
    assert after < trained
    lm.model = base
    model.unload()
    # the base model is back, weight for weight
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert target_loss(lm, GRID.demos, GRID.tests[0]) == pytest.approx(before)


def test_predictions_are_mapped_back_and_costed(lm: LoadedModel) -> None:
    transforms = transforms_for(GRID, colour_variants=2)
    preds, usage = predict(lm, GRID, transforms, max_new_tokens=6)
    assert len(preds) == 16 and usage.calls == 16
    assert [p.transform for p in preds] == [t.name for t in transforms]
    assert usage.completion_tokens == sum(p.completion_tokens for p in preds)
    assert all(p.completion_tokens <= 6 for p in preds)
    by_name = {t.name: t for t in transforms}
    for p in preds:
        # a random model writes noise: an answer only where the text is a grid
        if p.answer is not None:
            assert by_name[p.transform].apply(p.answer) == p.text.strip()


def test_run_records_resumes_reuses_adapters_and_records_failures(
    lm: LoadedModel, tmp_path: Path
) -> None:
    cfg = TTTConfig(steps=2, learning_rate=1e-2)
    tasks = [GRID, TEXT]
    config = run_config(source="tests", model="tiny", cfg=cfg, train=True, colour_variants=1,
                        limit=None)  # fmt: skip
    adapters = tmp_path / "adapters"
    with RunStore(tmp_path / "run.db") as store:
        summary = run_ttt(tasks, lm, store, config=config, cfg=cfg, adapters=adapters,
                          max_new_tokens=8, progress=False)  # fmt: skip
        records = {r.problem_id: r for r in store.records()}
    assert summary.done_now == 2 and summary.errors == 0 and summary.graded == 2
    assert set(records) == {"mirror", "rev"} and (adapters / "mirror").is_dir()
    grid = records["mirror"]
    assert grid.reference == "07\n80" and len(grid.meta["predictions"]) == 8
    assert len(grid.meta["train"]["losses"]) == 2 and grid.meta["train"]["tokens"] > 0
    assert grid.meta["loss_before"] > 0 and grid.meta["loss_after"] > 0
    assert set(grid.meta["phase_seconds"]) == {"loss_before", "train", "loss_after", "predict"}
    import torch

    assert grid.meta["threads"] == torch.get_num_threads() >= 1
    assert grid.usage.calls == 8 and len(records["rev"].meta["predictions"]) == 1
    assert grid.correct == (grid.reference in grid.votes)
    json.dumps(grid.meta)  # the store keeps it as JSON
    from ponder.analysis.report import summarize_run

    rows = {row["task"]: row for row in summarize_run(tmp_path / "run.db").tasks}
    assert set(rows) == {"mirror", "rev"} and rows["mirror"]["cells"] == GRID.cells
    assert rows["mirror"]["steps"] == 2 and rows["mirror"]["tests"] == 1
    assert rows["mirror"]["loss_before"] == grid.meta["loss_before"]
    # the same command again: nothing to do
    with RunStore(tmp_path / "run.db") as store:
        again = run_ttt(tasks, lm, store, config=config, cfg=cfg, adapters=adapters,
                        max_new_tokens=8, progress=False)  # fmt: skip
    assert again.done_now == 0 and again.skipped == 2 and again.graded == 2
    # a new store with the saved adapters loads them instead of training
    with RunStore(tmp_path / "reuse.db") as store:
        run_ttt([GRID], lm, store, config=config, cfg=cfg, adapters=adapters,
                max_new_tokens=8, progress=False)  # fmt: skip
        (rec,) = store.records()
    assert rec.meta["train"]["loaded"] is True and rec.meta["train"]["losses"] == []
    # a task that cannot train is an error record, and the others still run
    tight = TTTConfig(steps=1, max_length=16)
    config2 = run_config(source="tests", model="tiny", cfg=tight, train=True, colour_variants=1,
                         limit=None)  # fmt: skip
    with RunStore(tmp_path / "tight.db") as store:
        out = run_ttt(tasks, lm, store, config=config2, cfg=tight, max_new_tokens=4,
                      progress=False)  # fmt: skip
        errors = [r for r in store.records() if r.error]
    assert out.errors == 2 and {r.problem_id for r in errors} == {"mirror", "rev"}
    assert "fits in 16 tokens" in (errors[0].error or "")
    # a store of another configuration is refused
    with RunStore(tmp_path / "run.db") as store, pytest.raises(ConfigError, match="different"):
        run_ttt(tasks, lm, store, config=config2, cfg=tight, progress=False)


def test_without_training_the_base_model_answers(lm: LoadedModel, tmp_path: Path) -> None:
    cfg = TTTConfig()
    config = run_config(source="tests", model="tiny", cfg=cfg, train=False, colour_variants=1,
                        limit=None)  # fmt: skip
    with RunStore(tmp_path / "vote.db") as store:
        run_ttt([GRID], lm, store, config=config, cfg=cfg, train=False, max_new_tokens=4,
                progress=False)  # fmt: skip
        (rec,) = store.records()
    assert rec.meta["train"]["losses"] == [] and rec.meta["loss_after"] == rec.meta["loss_before"]
    assert config["strategy"]["name"] == "augmented_vote"
    assert Transform(0).is_identity


def test_finetune_merges_and_saves_a_model_that_loads_again(
    lm: LoadedModel, tmp_path: Path
) -> None:
    import torch

    from ponder.ttt.model import load_model
    from ponder.ttt.train import finetune_base

    out = tmp_path / "base-ft"
    before = target_loss(lm, GRID.demos, GRID.tests[0])
    report = finetune_base(lm, [GRID, TEXT], TTTConfig(steps=3, learning_rate=1e-2), out)
    assert len(report.losses) == 3 and report.examples == 3
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    loaded = load_model(str(out))
    # the saved weights are the merged model's: same loss, different from before
    merged = target_loss(lm, GRID.demos, GRID.tests[0])
    assert target_loss(loaded, GRID.demos, GRID.tests[0]) == pytest.approx(merged, rel=1e-5)
    assert merged != pytest.approx(before)
    assert not any("lora" in name for name, _ in loaded.model.named_parameters())
    assert isinstance(next(loaded.model.parameters()), torch.Tensor)


def test_inference_ablations_reuse_the_adapters_and_say_so_in_the_config(
    lm: LoadedModel, tmp_path: Path
) -> None:
    cfg = TTTConfig(steps=1, learning_rate=1e-2)
    plain = run_config(source="t", model="tiny", cfg=cfg, train=True, colour_variants=1,
                       limit=None)  # fmt: skip
    # the defaults add nothing, so a store made before the ablations existed resumes
    assert set(plain["strategy"]["options"]) == {"train", "colour_variants", *cfg.to_dict()}
    assert "data" not in cfg.to_dict() and "augment" not in cfg.to_dict()
    assert TTTConfig(data="pairs", augment=False).to_dict()["data"] == "pairs"
    with pytest.raises(ConfigError, match="data"):
        TTTConfig(data="all")  # type: ignore[arg-type]
    adapters = tmp_path / "adapters"
    with RunStore(tmp_path / "full.db") as store:
        run_ttt([GRID], lm, store, config=plain, cfg=cfg, adapters=adapters, max_new_tokens=6,
                progress=False)  # fmt: skip
        (full,) = store.records()
    config = run_config(source="t", model="tiny", cfg=cfg, train=True, colour_variants=1,
                        limit=None, symmetries="identity", vote="flat")  # fmt: skip
    assert config["strategy"]["options"]["symmetries"] == "identity"
    with RunStore(tmp_path / "identity.db") as store:
        run_ttt([GRID], lm, store, config=config, cfg=cfg, adapters=adapters, max_new_tokens=6,
                symmetries="identity", vote="flat", progress=False)  # fmt: skip
        (only,) = store.records()
    assert only.meta["train"]["loaded"] is True  # no new training
    (identity,) = [p for p in full.meta["predictions"] if p["transform"] == "identity"]
    assert [p["transform"] for p in only.meta["predictions"]] == ["identity"]
    assert only.meta["predictions"][0]["text"] == identity["text"]


def test_finetune_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path: Path) -> None:
    from ponder.ttt.checkpoint import checkpoint_folder, checkpoint_step
    from ponder.ttt.train import finetune_base

    pytest.importorskip("peft")
    cfg = TTTConfig(steps=6, learning_rate=1e-2)
    whole = finetune_base(tiny_lm(), [GRID, TEXT], cfg, tmp_path / "whole", checkpoint_every=2)
    assert not checkpoint_folder(tmp_path / "whole").exists()  # removed once saved

    out = tmp_path / "cut"

    def stop_at_four(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune_base(tiny_lm(), [GRID, TEXT], cfg, out, checkpoint_every=2,
                      on_step=stop_at_four)  # fmt: skip
    assert checkpoint_step(checkpoint_folder(out)) == 2 and not out.exists()
    # other settings do not mix with the checkpoint
    with pytest.raises(ConfigError, match="checkpoint"):
        finetune_base(tiny_lm(), [GRID, TEXT], TTTConfig(steps=6, learning_rate=2e-2), out,
                      checkpoint_every=2)  # fmt: skip
    seen: list[int] = []
    resumed = finetune_base(tiny_lm(), [GRID, TEXT], cfg, out, checkpoint_every=2,
                            on_step=lambda step, loss: seen.append(step))  # fmt: skip
    assert seen == [2, 3, 4, 5]
    assert resumed.examples == whole.examples == 6
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-5)
    assert (out / "config.json").is_file() and not checkpoint_folder(out).exists()


def test_finetune_rebuilds_its_model_from_the_adapter_it_left(tmp_path: Path) -> None:
    import shutil

    from ponder.ttt.checkpoint import adapter_file
    from ponder.ttt.model import load_model
    from ponder.ttt.train import finetune_base

    pytest.importorskip("peft")
    cfg = TTTConfig(steps=4, learning_rate=1e-2)
    out = tmp_path / "ft"
    first = finetune_base(tiny_lm(), [GRID, TEXT], cfg, out, identity={"model": "tiny"})
    assert adapter_file(out).is_file() and not first.loaded
    trained = target_loss(load_model(str(out)), GRID.demos, GRID.tests[0])
    shutil.rmtree(out)  # a new machine: the adapter file travelled, the model did not

    seen: list[int] = []
    again = finetune_base(tiny_lm(), [GRID, TEXT], cfg, out, identity={"model": "tiny"},
                          on_step=lambda step, loss: seen.append(step))  # fmt: skip
    assert seen == [] and again.loaded
    assert again.losses == first.losses and again.examples == first.examples
    rebuilt = target_loss(load_model(str(out)), GRID.demos, GRID.tests[0])
    assert rebuilt == pytest.approx(trained, rel=1e-6)

    shutil.rmtree(out)  # another run's adapter is never merged in
    with pytest.raises(ConfigError, match="adapter of other tasks or settings"):
        finetune_base(tiny_lm(), [GRID, TEXT], TTTConfig(steps=5, learning_rate=1e-2), out,
                      identity={"model": "tiny"})  # fmt: skip
    assert not out.exists()


def test_mixed_precision_trains_and_scores_close_to_float32(tmp_path: Path) -> None:
    import torch

    plain, mixed = tiny_lm(), tiny_lm()
    mixed.mixed = True
    with mixed.compute():
        assert torch.is_autocast_enabled("cpu")
    with plain.compute():
        assert not torch.is_autocast_enabled("cpu")
    before = target_loss(plain, GRID.demos, GRID.tests[0])
    assert target_loss(mixed, GRID.demos, GRID.tests[0]) == pytest.approx(before, rel=0.02)
    cfg = TTTConfig(steps=3, learning_rate=1e-2)
    _, report = train_adapter(plain, GRID, cfg)
    _, report_mixed = train_adapter(mixed, GRID, cfg)
    # the weights stay float32; the losses follow float32's closely
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    assert report_mixed.losses == pytest.approx(report.losses, rel=0.05)
    config = run_config(source="t", model="tiny", cfg=cfg, train=True, colour_variants=1,
                        limit=None, dtype="mixed")  # fmt: skip
    assert config["strategy"]["options"]["dtype"] == "mixed"
