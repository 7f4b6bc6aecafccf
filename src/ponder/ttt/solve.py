"""One few-shot task of a TTT run: the held-out loss before, an adapter trained (or
loaded), the loss after, augmented inference and two-level voting, as one record per
test input. ``solve_task`` is what runs per task, in this process (``run_ttt``) or on
a Ray actor (``RayTTTExecutor``), so the records are the same wherever it ran.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record
from ponder.tasks.arc import FewShotTask
from ponder.ttt.augment import transforms_for
from ponder.ttt.infer import Prediction, predict, vote
from ponder.ttt.likelihood import augmented_likelihood
from ponder.ttt.model import LoadedModel
from ponder.ttt.train import (
    TrainReport,
    TTTConfig,
    load_adapter,
    save_adapter,
    target_loss,
    train_adapter,
)

__all__ = ["TTTJob", "solve_task", "test_ids"]


@dataclass(frozen=True)
class TTTJob:
    """The settings every task of a TTT run is solved with.

    ``cfg`` trains the adapter (and seeds the colour permutations); ``train=False``
    answers with the base model; ``adapters`` is the folder where each task's adapter
    is saved, and loaded from when it is already there (None: not saved);
    ``colour_variants``, ``symmetries`` and ``max_new_tokens`` shape the augmented
    inference, ``vote`` how its predictions are voted on (``"flat"``: one level), and
    ``select="likelihood"`` picks the attempts by augmented likelihood instead
    (``ponder.ttt.likelihood``; the vote is still recorded beside it).
    """

    cfg: TTTConfig
    train: bool = True
    adapters: Path | None = None
    colour_variants: int = 1
    max_new_tokens: int | None = None
    symmetries: Literal["all", "identity"] = "all"
    vote: Literal["two-level", "flat"] = "two-level"
    select: Literal["vote", "likelihood"] = "vote"


def test_ids(task: FewShotTask) -> list[str]:
    """The record ids of a task's test inputs."""
    if len(task.tests) == 1:
        return [task.id]
    return [f"{task.id}/{k}" for k in range(len(task.tests))]


@dataclass
class _Phases:
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, start: float) -> None:
        self.seconds[name] = round(time.perf_counter() - start, 3)


def _reset_peak_memory() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM); where
    # that is not possible the peak stays the process's since it started
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _torch_threads() -> int:
    """The intra-op threads torch computes with (what a task's seconds depend on)."""
    import torch

    return int(torch.get_num_threads())


def _losses(lm: LoadedModel, task: FewShotTask) -> float | None:
    known = [t for t in task.tests if t.output is not None]
    if not known:
        return None
    return sum(target_loss(lm, task.demos, t) for t in known) / len(known)


def _adapter_for(
    lm: LoadedModel,
    task: FewShotTask,
    cfg: TTTConfig,
    adapters: Path | None,
    on_step: Callable[[int, float], None] | None,
) -> tuple[Any, TrainReport]:
    path = None if adapters is None else adapters / task.id
    if path is not None and path.is_dir():
        return load_adapter(lm, path), TrainReport(loaded=True)
    model, report = train_adapter(lm, task, cfg, on_step=on_step)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_adapter(model, path)
    return model, report


def _train_and_predict(
    lm: LoadedModel,
    task: FewShotTask,
    job: TTTJob,
    on_step: Callable[[int, float], None] | None,
    phases: _Phases,
) -> tuple[list[Prediction], dict[str, Any], list[tuple[dict[str, float], Usage]] | None]:
    """The predictions of every test input under every transform, what the task's
    records say about its training (losses before and after, the training report), and
    with ``job.select == "likelihood"`` each test input's candidates' augmented
    likelihood. The adapter is on the model only meanwhile: ``lm`` is the base model
    again after."""
    t0 = time.perf_counter()
    before = _losses(lm, task)
    phases.timed("loss_before", t0)
    report = TrainReport()
    model = None
    base = lm.model
    try:
        if job.train:
            t0 = time.perf_counter()
            model, report = _adapter_for(lm, task, job.cfg, job.adapters, on_step)
            lm.model = model
            phases.timed("train", t0)
        t0 = time.perf_counter()
        after = _losses(lm, task) if job.train else before
        phases.timed("loss_after", t0)
        t0 = time.perf_counter()
        transforms = transforms_for(
            task, colour_variants=job.colour_variants, seed=job.cfg.seed, symmetries=job.symmetries
        )
        predictions, _ = predict(lm, task, transforms, max_new_tokens=job.max_new_tokens)
        phases.timed("predict", t0)
        likelihoods = None
        if job.select == "likelihood":
            t0 = time.perf_counter()
            likelihoods = [
                augmented_likelihood(lm, task, k, _candidates(predictions, k), transforms)
                for k in range(len(task.tests))
            ]
            phases.timed("score", t0)
    finally:
        lm.model = base
        if model is not None:
            model.unload()
    training = {"train": report.to_dict(), "loss_before": before, "loss_after": after}
    return predictions, training, likelihoods


def _candidates(predictions: Sequence[Prediction], test_index: int) -> list[str]:
    """The distinct valid answers to one test input, in the order first predicted."""
    seen = (p.answer for p in predictions if p.test_index == test_index)
    return list(dict.fromkeys(a for a in seen if a is not None))


def _records(
    task: FewShotTask,
    idx: int,
    predictions: Sequence[Prediction],
    meta_task: dict[str, Any],
    seconds: float,
    *,
    flat: bool = False,
    likelihoods: Sequence[tuple[dict[str, float], Usage]] | None = None,
) -> list[Record]:
    """One record per test input: the two attempts (voted, or by augmented likelihood),
    correct when either is the reference (pass@2)."""
    records = []
    per_test = len(task.tests)
    for k, (rid, test) in enumerate(zip(test_ids(task), task.tests, strict=True)):
        mine = [p for p in predictions if p.test_index == k]
        voted = vote(mine, flat=flat)
        picks: list[tuple[str, float]] = [(a, float(v)) for a, v in voted]
        extra: dict[str, Any] = {}
        usage = sum((p.usage for p in mine), start=Usage())
        if likelihoods is not None:
            scores, scoring = likelihoods[k]
            usage = usage + scoring
            ranked = sorted(scores, key=lambda a: -scores[a])[:2]
            picks = [(a, scores[a]) for a in ranked]
            extra = {"likelihood": scores, "voted": [a for a, _ in voted]}
        attempts = [a for a, _ in picks]
        reference = None if test.output is None else task.canonical(test.output)
        correct = reference is not None and reference in attempts
        records.append(
            Record(
                problem_id=rid,
                idx=idx * 1000 + k,
                question=test.input,
                reference=reference,
                answer=attempts[0] if attempts else None,
                correct=correct,
                votes={a: float(v) for a, v in picks},
                candidates=tuple(
                    Candidate(text=a, answer=a, usage=Usage(), score=float(v)) for a, v in picks
                ),
                answer_correct={a: a == reference for a in attempts},
                usage=usage,
                seconds=seconds / per_test,
                meta={
                    **meta_task,
                    "test_index": k,
                    "predictions": [p.to_dict() for p in mine],
                    **extra,
                },
            )
        )
    return records


def solve_task(
    lm: LoadedModel,
    task: FewShotTask,
    idx: int,
    job: TTTJob,
    on_step: Callable[[int, float], None] | None = None,
) -> list[Record]:
    """Train (unless ``job.train`` is false), answer and score ``task``, the ``idx``-th
    of the run, on ``lm``; its records, one per test input. ``on_step`` is called with
    each training step and its loss. Raises what training or inference raised."""
    start = time.perf_counter()
    phases = _Phases()
    _reset_peak_memory()
    predictions, training, likelihoods = _train_and_predict(lm, task, job, on_step, phases)
    seconds = time.perf_counter() - start
    meta_task = {
        "task": task.id,
        "demos": len(task.demos),
        "cells": task.cells,
        **training,
        "phase_seconds": phases.seconds,
        "peak_memory_mb": _peak_memory_mb(),
        "threads": _torch_threads(),
    }
    return _records(
        task,
        idx,
        predictions,
        meta_task,
        seconds,
        flat=job.vote == "flat",
        likelihoods=likelihoods,
    )
