"""A fresh LoRA adapter per task, trained on the task's augmented leave-one-out data.

``train_adapter`` wraps the model in a new peft LoRA adapter and runs ``steps``
optimiser steps of AdamW (linear decay to zero, gradients clipped at 1), each on
``batch_size`` sequences from ``ponder.ttt.data.training_examples``. The loss covers
every output in a sequence (``loss_on="outputs"``) or only the query's
(``loss_on="last"``). Sequences longer than ``max_length`` tokens lose demonstrations
from the front (at least one stays); an example still too long is skipped.

The adapter is saved per task (``save_adapter``) and loaded again instead of training
when it is there (``load_adapter``); ``unload`` gives the base model back, unchanged,
for the next task. ``finetune_base`` is the paper's optional first stage: one adapter
over many tasks' data, merged into the weights and saved as a model folder.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ponder.core.errors import ConfigError
from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.checkpoint import (
    Checkpoint,
    CountedStream,
    FinalAdapter,
    adapter_file,
    checkpoint_folder,
)
from ponder.ttt.data import (
    TRAIN_DATA,
    Example,
    Segment,
    TrainData,
    render,
    training_examples,
    training_items,
)
from ponder.ttt.model import LoadedModel, require_hf

__all__ = [
    "TTTConfig",
    "TrainReport",
    "encode",
    "finetune_base",
    "load_adapter",
    "mixed_examples",
    "save_adapter",
    "target_loss",
    "train_adapter",
]

IGNORE = -100


@dataclass(frozen=True)
class TTTConfig:
    """Test-time training settings; the defaults suit a 0.5B model on a laptop CPU
    (Akyurek et al. used rank 128 and about 2 epochs over their augmented data on 8B
    models and GPUs)."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str = "all-linear"
    steps: int = 32
    batch_size: int = 1
    learning_rate: float = 5e-4
    max_length: int = 2048
    loss_on: Literal["outputs", "last"] = "outputs"
    seed: int = 0
    data: TrainData = "loo"  # leave-one-out tasks, or each demonstration alone
    augment: bool = True  # random symmetry, colour map and order per example

    def __post_init__(self) -> None:
        if self.rank < 1 or self.steps < 0 or self.batch_size < 1 or self.max_length < 16:
            raise ConfigError("ttt: rank and batch_size >= 1, steps >= 0, max_length >= 16")
        if self.loss_on not in ("outputs", "last"):
            raise ConfigError(f"ttt: loss_on is 'outputs' or 'last', not {self.loss_on!r}")
        if not self.learning_rate > 0:
            raise ConfigError("ttt: learning_rate must be positive")
        if self.data not in TRAIN_DATA:
            raise ConfigError(f"ttt: data is one of {TRAIN_DATA}, not {self.data!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings; ``data`` and ``augment`` only where they are not the default,
        so a run recorded before they existed resumes with the same configuration."""
        out = asdict(self)
        for key in ("data", "augment"):
            if out[key] == getattr(TTTConfig, key):
                del out[key]
        return out

    def examples(self, task: FewShotTask) -> Iterator[Example]:
        """The stream of training examples of ``task`` under these settings."""
        return training_examples(task, seed=self.seed, data=self.data, augment=self.augment)

    def trains(self, task: FewShotTask) -> bool:
        """Whether ``task`` has the demonstrations these settings train on."""
        return bool(training_items(task, self.data))


@dataclass
class TrainReport:
    """What training one adapter did: the loss of each step, tokens forwarded (and
    back-propagated), examples used and skipped, wall time."""

    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    examples: int = 0
    skipped: int = 0
    seconds: float = 0.0
    loaded: bool = False  # a saved adapter was loaded instead

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode(
    lm: LoadedModel, segments: Sequence[Segment], *, loss_on: Literal["outputs", "last"]
) -> tuple[list[int], list[int]]:
    """Token ids and labels (``IGNORE`` where no loss is taken) of a segmented text."""
    last_target = max((i for i, (_, t) in enumerate(segments) if t), default=-1)
    ids = list(lm.bos)
    labels = [IGNORE] * len(ids)
    for i, (text, target) in enumerate(segments):
        piece = lm.encode(text)
        ids += piece
        counted = target and (loss_on == "outputs" or i == last_target)
        labels += piece if counted else [IGNORE] * len(piece)
    return ids, labels


def _fit(lm: LoadedModel, example: Example, cfg: TTTConfig) -> tuple[list[int], list[int]] | None:
    """The example's ids and labels, dropping leading demonstrations to fit."""
    segments = list(example.segments)
    while True:
        ids, labels = encode(lm, segments, loss_on=cfg.loss_on)
        if len(ids) <= cfg.max_length:
            return ids, labels
        if len(segments) <= 4:  # one demonstration and the query
            return None
        segments = segments[2:]


def target_loss(lm: LoadedModel, demos: Sequence[Pair], query: Pair) -> float:
    """Mean negative log-likelihood per token of ``query``'s output given ``demos``
    and its input: how well the model predicts a pair it has not trained on."""
    import torch

    ids, labels = encode(lm, render(demos, query, answer=True), loss_on="last")
    with torch.no_grad(), lm.compute():
        return float(labelled_loss(lm.model, ids, labels))


def labelled_loss(model: Any, ids: Sequence[int], labels: Sequence[int]) -> Any:
    """Mean next-token cross-entropy over the tokens ``labels`` keeps (the others are
    ``IGNORE``): the loss a causal LM computes from ``labels=``, with the vocabulary
    projection done only at the positions that predict a labelled token. On ARC about
    half the tokens are labelled, and the projection onto Qwen's 152k-token vocabulary
    is a large share of a training step on the CPU."""
    import torch

    target = torch.tensor(list(labels[1:]))
    keep = (target != IGNORE).nonzero().squeeze(1)
    if keep.numel() == 0:
        raise ConfigError("no labelled token to compute a loss on")
    logits = model(input_ids=torch.tensor([list(ids)]), logits_to_keep=keep).logits
    return torch.nn.functional.cross_entropy(logits[0].float(), target[keep])


def _adapter_config(cfg: TTTConfig) -> Any:
    from peft import LoraConfig

    modules: str | list[str] = cfg.target_modules
    if cfg.target_modules != "all-linear":
        modules = [m.strip() for m in cfg.target_modules.split(",") if m.strip()]
    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=modules,
        task_type="CAUSAL_LM",
    )


def train_adapter(
    lm: LoadedModel,
    task: FewShotTask,
    cfg: TTTConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[Any, TrainReport]:
    """A peft model: ``lm.model`` with a new adapter trained on ``task``; and the report.

    Call ``.unload()`` on the returned model when done with the task to get the base
    model back without the adapter. A task with no training data (fewer than 2
    demonstrations, for leave-one-out) is left untrained (zero steps).
    """
    steps = cfg.steps if cfg.trains(task) else 0
    return _train(lm, cfg.examples(task), steps, cfg, on_step, task.id)


def mixed_examples(
    tasks: Sequence[FewShotTask], *, seed: int = 0, cfg: TTTConfig | None = None
) -> Iterator[Example]:
    """Training examples of many tasks, one task after another in a shuffled cycle
    (``cfg`` says which data and whether augmented; by default leave-one-out, with
    ``seed``'s augmentations)."""
    cfg = cfg or TTTConfig(seed=seed)
    streams = [cfg.examples(t) for t in tasks if cfg.trains(t)]
    if not streams:
        raise ConfigError(f"none of the tasks has the demonstrations {cfg.data!r} training needs")
    rng = random.Random(f"{seed}:mixed")
    while True:
        order = list(range(len(streams)))
        rng.shuffle(order)
        for i in order:
            yield next(streams[i])


def finetune_base(
    lm: LoadedModel,
    tasks: Sequence[FewShotTask],
    cfg: TTTConfig,
    out: str | Path,
    *,
    on_step: Callable[[int, float], None] | None = None,
    checkpoint_every: int = 50,
    identity: Mapping[str, Any] | None = None,
) -> TrainReport:
    """Fine-tune the base model on many tasks' leave-one-out data (the paper's optional
    first stage), merge the adapter into the weights and save model and tokenizer to
    ``out``, a folder ``load_model`` (and so ``ponder ttt --model``) reads.

    Resumable: every ``checkpoint_every`` steps the adapter, the optimiser, the
    schedule and the report so far are saved to ``checkpoint_folder(out)``; a call with
    the same tasks, settings and ``identity`` (say, the model's name) goes on from
    there, with the same data the uninterrupted run would have seen, and the
    checkpoint is removed once the model is saved. A checkpoint of other settings is
    an error, never silently mixed in.

    The finished adapter alone is kept in ``adapter_file(out)`` (float16, the weights
    merged are the rounded ones): a call that finds it, with the same fingerprint, trains
    nothing and merges it again, so a model can be rebuilt on another machine from a
    file of tens of MB (its report then says ``loaded``)."""
    checkpoint = checkpoint_folder(out)
    fingerprint = {
        "tasks": [t.id for t in tasks],
        "config": cfg.to_dict(),
        **dict(identity or {}),
    }
    final = FinalAdapter(adapter_file(out), fingerprint)
    loaded = _load_final(lm, cfg, final)
    if loaded is not None:
        model, report = loaded
    else:
        model, report = _train(
            lm,
            mixed_examples(tasks, seed=cfg.seed, cfg=cfg),
            cfg.steps,
            cfg,
            on_step,
            "base",
            checkpoint=Checkpoint(checkpoint, checkpoint_every, fingerprint),
        )
        final.save(model, report.to_dict())
    merged = model.merge_and_unload()
    target = Path(out)
    partial = target.with_name(target.name + ".partial")
    if partial.exists():  # a save that was cut short
        shutil.rmtree(partial)
    merged.save_pretrained(partial)
    lm.tokenizer.save_pretrained(partial)
    partial.rename(target)
    lm.model = merged
    shutil.rmtree(checkpoint, ignore_errors=True)
    return report


def _load_final(
    lm: LoadedModel, cfg: TTTConfig, final: FinalAdapter
) -> tuple[Any, TrainReport] | None:
    """The peft model with a finished run's saved adapter, and that run's report (marked
    loaded); None when the run left no adapter file."""
    if not final.path.is_file():
        return None
    require_hf("torch", "peft")
    from peft import get_peft_model

    model = get_peft_model(lm.model, _adapter_config(cfg))
    try:
        saved = final.load(model)
    except BaseException:
        model.unload()
        raise
    model.eval()
    return model, TrainReport(**{**saved, "loaded": True})


def _train(
    lm: LoadedModel,
    stream: Iterator[Example],
    steps: int,
    cfg: TTTConfig,
    on_step: Callable[[int, float], None] | None,
    label: str,
    *,
    checkpoint: Checkpoint | None = None,
) -> tuple[Any, TrainReport]:
    require_hf("torch", "peft")
    import torch
    from peft import get_peft_model

    start = time.perf_counter()
    report = TrainReport()
    torch.manual_seed(cfg.seed)
    model = get_peft_model(lm.model, _adapter_config(cfg))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: max(0.0, 1.0 - i / max(steps, 1))
    )
    examples = CountedStream(stream)
    first, earlier = 0, 0.0
    if checkpoint is not None:
        try:
            first, drawn, saved = checkpoint.load(model, optimizer, scheduler)
            report = TrainReport(**saved) if saved else report
        except BaseException:
            model.unload()
            raise
        examples.skip(drawn)
        earlier = report.seconds
    model.train()
    try:
        for step in range(first, steps):
            optimizer.zero_grad()
            total, used = 0.0, 0
            for _ in range(cfg.batch_size):
                fitted = None
                for _try in range(8):
                    fitted = _fit(lm, next(examples), cfg)
                    if fitted is not None:
                        break
                    report.skipped += 1
                if fitted is None:
                    continue
                ids, labels = fitted
                with lm.compute():
                    loss = labelled_loss(model, ids, labels)
                (loss / cfg.batch_size).backward()
                total += float(loss.detach())
                used += 1
                report.tokens += len(ids)
                report.examples += 1
            if used == 0:
                raise ConfigError(
                    f"{label}: no training example fits in {cfg.max_length} tokens; "
                    "raise max_length or leave the task out"
                )
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            report.losses.append(total / used)
            if on_step is not None:
                on_step(step, total / used)
            done = step + 1
            if checkpoint is not None and done % checkpoint.every == 0 and done < steps:
                report.seconds = earlier + time.perf_counter() - start
                checkpoint.save(
                    model,
                    optimizer,
                    scheduler,
                    step=done,
                    drawn=examples.drawn,
                    report=report.to_dict(),
                )
    except BaseException:
        model.unload()
        raise
    finally:
        model.eval()
    report.seconds = earlier + time.perf_counter() - start
    return model, report


def save_adapter(model: Any, path: str | Path) -> None:
    """Write a trained adapter (peft's format) to ``path``, atomically."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    partial.rename(target)


def load_adapter(lm: LoadedModel, path: str | Path) -> Any:
    """``lm.model`` with the adapter saved at ``path``."""
    require_hf("peft")
    from peft import PeftModel

    model = PeftModel.from_pretrained(lm.model, str(path))
    model.eval()
    return model
