"""Test-time training over a list of few-shot tasks, into a resumable run store.

Per task: the held-out loss before training (the mean per-token loss of each test
output given the demonstrations: a pair the adapter never trains on), a fresh adapter
trained on the task's augmented leave-one-out data (or the saved one loaded), the
held-out loss after, augmented inference and two-level voting, and one record per
test input (``<task id>`` when the task has one test input, ``<task id>/<k>`` when it
has more), correct when either of its two attempts is the reference (pass@2).

Records go to the same store as ``ponder eval`` (``ponder report`` reads it): the
answer and the two attempts as candidates, the inference cost as ``usage``, and in
``meta`` the training report (loss per step, tokens trained, seconds), the held-out
losses, every transform's prediction, the seconds of each phase and the peak memory of
the process while the task ran. A task whose records are all there is skipped, so the
same command resumes; a failure becomes error records for that task and the run goes
on. With ``train=False`` the same pipeline answers with the base model: the baseline
of augmented voting without training.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder._version import __version__
from ponder.core.errors import ConfigError
from ponder.runs.store import Record, RunStore
from ponder.runs.summary import wilson_interval
from ponder.tasks.arc import FewShotTask
from ponder.ttt.augment import transforms_for
from ponder.ttt.infer import predict, vote
from ponder.ttt.model import LoadedModel

if TYPE_CHECKING:
    from ponder.ttt.distributed import RayTTTExecutor
from ponder.core.types import Candidate, Usage
from ponder.ttt.train import (
    TrainReport,
    TTTConfig,
    load_adapter,
    save_adapter,
    target_loss,
    train_adapter,
)

__all__ = ["TTTSummary", "run_ttt", "test_ids"]


def test_ids(task: FewShotTask) -> list[str]:
    """The record ids of a task's test inputs."""
    if len(task.tests) == 1:
        return [task.id]
    return [f"{task.id}/{k}" for k in range(len(task.tests))]


@dataclass(frozen=True)
class TTTSummary:
    """What one call of ``run_ttt`` did, and pass@2 over the given tasks' test inputs."""

    tasks: int
    done_now: int
    skipped: int
    errors: int
    graded: int
    correct: int
    seconds: float
    path: str = ""

    @property
    def accuracy(self) -> float:
        return self.correct / self.graded if self.graded else float("nan")

    def __str__(self) -> str:
        if not self.graded:
            return f"no graded test inputs; {self.errors} task errors, {self.seconds:.1f}s"
        low, high = wilson_interval(self.correct, self.graded)
        return (
            f"pass@2 {self.accuracy:.3f} (95% CI {low:.3f}-{high:.3f}) on {self.graded} test "
            f"inputs of {self.tasks} tasks, {self.done_now} tasks run now, {self.skipped} "
            f"resumed, {self.errors} errors, {self.seconds:.1f}s"
        )


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


def _solve(
    lm: LoadedModel,
    task: FewShotTask,
    idx: int,
    *,
    cfg: TTTConfig,
    train: bool,
    adapters: Path | None,
    colour_variants: int,
    max_new_tokens: int | None,
    on_step: Callable[[int, float], None] | None,
) -> list[Record]:
    start = time.perf_counter()
    phases = _Phases()
    _reset_peak_memory()
    t0 = time.perf_counter()
    before = _losses(lm, task)
    phases.timed("loss_before", t0)
    report = TrainReport()
    model = None
    base = lm.model
    try:
        if train:
            t0 = time.perf_counter()
            model, report = _adapter_for(lm, task, cfg, adapters, on_step)
            lm.model = model
            phases.timed("train", t0)
        t0 = time.perf_counter()
        after = _losses(lm, task) if train else before
        phases.timed("loss_after", t0)
        t0 = time.perf_counter()
        transforms = transforms_for(task, colour_variants=colour_variants, seed=cfg.seed)
        predictions, _ = predict(lm, task, transforms, max_new_tokens=max_new_tokens)
        phases.timed("predict", t0)
    finally:
        lm.model = base
        if model is not None:
            model.unload()
    seconds = time.perf_counter() - start
    meta_task = {
        "task": task.id,
        "demos": len(task.demos),
        "cells": task.cells,
        "train": report.to_dict(),
        "loss_before": before,
        "loss_after": after,
        "phase_seconds": phases.seconds,
        "peak_memory_mb": _peak_memory_mb(),
    }
    records = []
    per_test = len(task.tests)
    for k, (rid, test) in enumerate(zip(test_ids(task), task.tests, strict=True)):
        mine = [p for p in predictions if p.test_index == k]
        picks = vote(mine)
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
                usage=sum((p.usage for p in mine), start=Usage()),
                seconds=seconds / per_test,
                meta={
                    **meta_task,
                    "test_index": k,
                    "predictions": [p.to_dict() for p in mine],
                },
            )
        )
    return records


def run_config(
    *, source: str, model: str, cfg: TTTConfig, train: bool, colour_variants: int, limit: Any
) -> dict[str, Any]:
    """The configuration a TTT store records and checks on resume."""
    options: dict[str, Any] = {"train": train, "colour_variants": colour_variants}
    if train:
        options.update(cfg.to_dict())
    return {
        "task": source,
        "model": model,
        "strategy": {"name": "ttt" if train else "augmented_vote", "options": options},
        "max_tokens": 0,
        "seed": cfg.seed,
        "limit": limit,
        "ponder_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _error_records(task: FewShotTask, idx: int, error: BaseException) -> list[Record]:
    message = f"{type(error).__name__}: {error}"
    return [
        Record(
            problem_id=rid,
            idx=idx * 1000 + k,
            question=t.input,
            reference=t.output,
            answer=None,
            correct=False,
            error=message,
        )
        for k, (rid, t) in enumerate(zip(test_ids(task), task.tests, strict=True))
    ]


def run_ttt(
    tasks: Sequence[FewShotTask],
    lm: LoadedModel | None,
    store: RunStore,
    *,
    config: dict[str, Any],
    cfg: TTTConfig,
    train: bool = True,
    adapters: str | Path | None = None,
    colour_variants: int = 1,
    max_new_tokens: int | None = None,
    progress: bool = True,
    executor: RayTTTExecutor | None = None,
) -> TTTSummary:
    """Train (unless ``train=False``), answer and record every task not yet in ``store``.

    With an ``executor`` the tasks run on its actors (each loads its own model; pass
    ``lm=None``); it is started and closed here, and the records are the same.
    """
    from tqdm import tqdm

    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ConfigError("the task list repeats a task id")
    if lm is None and executor is None:
        raise ConfigError("run_ttt needs a loaded model, or an executor whose actors load one")
    store.init_or_check(config)
    start = time.perf_counter()
    finished = store.done_ids()
    todo = [(i, t) for i, t in enumerate(tasks) if not set(test_ids(t)) <= finished]
    adapter_dir = None if adapters is None else Path(adapters)
    options: dict[str, Any] = {
        "cfg": cfg,
        "train": train,
        "adapters": adapter_dir,
        "colour_variants": colour_variants,
        "max_new_tokens": max_new_tokens,
    }
    counts = {"done": 0, "errors": 0}
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="task", disable=not progress)

    def write(records: list[Record], failed: bool) -> None:
        counts["errors" if failed else "done"] += 1
        for r in records:
            store.put(r)
        bar.update(1)

    try:
        if executor is not None:
            executor.start()
            try:
                for idx, task, out in executor.map(todo, options):
                    bar.set_description(f"task {task.id}")
                    if isinstance(out, Exception):
                        write(_error_records(task, idx, out), True)
                    else:
                        write(out, False)
            finally:
                executor.close()
        else:
            assert lm is not None
            for idx, task in todo:
                _solve_here(lm, task, idx, options, train, cfg, progress, bar, write)
    finally:
        bar.close()
    wanted = {rid for t in tasks for rid in test_ids(t)}
    graded = [r for r in store.records(include_errors=False) if r.problem_id in wanted]
    return TTTSummary(
        tasks=len(tasks),
        done_now=counts["done"],
        skipped=len(tasks) - len(todo),
        errors=counts["errors"],
        graded=len(graded),
        correct=sum(r.correct for r in graded),
        seconds=time.perf_counter() - start,
        path=str(store.path),
    )


def _solve_here(
    lm: LoadedModel,
    task: FewShotTask,
    idx: int,
    options: dict[str, Any],
    train: bool,
    cfg: TTTConfig,
    progress: bool,
    bar: Any,
    write: Callable[[list[Record], bool], None],
) -> None:
    from tqdm import tqdm

    bar.set_description(f"task {task.id}")
    step_bar = tqdm(
        total=cfg.steps if train else 0,
        unit="step",
        leave=False,
        disable=not progress or not train,
    )

    def on_step(step: int, loss: float) -> None:
        step_bar.update(1)
        step_bar.set_postfix(loss=f"{loss:.3f}")

    try:
        records = _solve(lm, task, idx, on_step=on_step, **options)
    except Exception as e:  # one task's failure is recorded; the run goes on
        step_bar.close()
        write(_error_records(task, idx, e), True)
        return
    step_bar.close()
    write(records, False)
