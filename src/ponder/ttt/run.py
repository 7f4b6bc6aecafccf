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

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ponder._version import __version__
from ponder.core.errors import ConfigError
from ponder.runs.store import Record, RunStore
from ponder.runs.summary import wilson_interval
from ponder.tasks.arc import FewShotTask, load_fewshot
from ponder.ttt.model import LoadedModel
from ponder.ttt.solve import TTTJob, solve_task, test_ids
from ponder.ttt.train import TTTConfig

if TYPE_CHECKING:
    from tqdm import tqdm

    from ponder.ttt.distributed import RayTTTExecutor

__all__ = ["TTTSummary", "adapters_folder", "load_tasks", "run_ttt", "test_ids"]


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


def load_tasks(
    source: str, *, limit: int | None = None, order: Literal["file", "cells"] = "file"
) -> list[FewShotTask]:
    """The tasks ``ponder ttt --tasks SOURCE`` runs: ``load_fewshot``'s, after checking
    that a ``limit`` keeps at least one."""
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    return load_fewshot(source, limit=limit, order=order)


def adapters_folder(out: str | Path, *, train: bool = True) -> Path | None:
    """Where ``ponder ttt`` keeps a run's adapters when not told: beside the store
    ``out``, its suffix replaced by ``.adapters`` (``adapters`` in its folder when it has
    none), so a resumed run reuses them. None when nothing trains."""
    if not train:
        return None
    out = Path(out)
    return out.with_suffix(".adapters") if out.suffix else out.parent / "adapters"


def run_config(
    *,
    source: str,
    model: str,
    cfg: TTTConfig,
    train: bool,
    colour_variants: int,
    limit: Any,
    symmetries: str = "all",
    vote: str = "two-level",
    select: str = "vote",
    dtype: str = "float32",
) -> dict[str, Any]:
    """The configuration a TTT store records and checks on resume (the inference
    ablations only where they are not the default, so older stores resume)."""
    options: dict[str, Any] = {"train": train, "colour_variants": colour_variants}
    if symmetries != "all":
        options["symmetries"] = symmetries
    if vote != "two-level":
        options["vote"] = vote
    if select != "vote":
        options["select"] = select
    if dtype != "float32":
        options["dtype"] = dtype
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
    symmetries: Literal["all", "identity"] = "all",
    vote: Literal["two-level", "flat"] = "two-level",
    select: Literal["vote", "likelihood"] = "vote",
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
    job = TTTJob(
        cfg=cfg,
        train=train,
        adapters=None if adapters is None else Path(adapters),
        colour_variants=colour_variants,
        max_new_tokens=max_new_tokens,
        symmetries=symmetries,
        vote=vote,
        select=select,
    )
    counts = {"done": 0, "errors": 0}
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="task", disable=not progress)

    def write(records: list[Record], failed: bool) -> None:
        counts["errors" if failed else "done"] += 1
        for r in records:
            store.put(r)
        bar.update(1)

    try:
        if executor is not None:
            _solve_on(executor, todo, job, bar, write)
        else:
            assert lm is not None
            for idx, task in todo:
                _solve_here(lm, task, idx, job, progress, bar, write)
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


def _solve_on(
    executor: RayTTTExecutor,
    todo: Sequence[tuple[int, FewShotTask]],
    job: TTTJob,
    bar: tqdm[Any],
    write: Callable[[list[Record], bool], None],
) -> None:
    """The tasks on the executor's actors, started and closed here; a task that raised
    becomes error records."""
    executor.start()
    try:
        for idx, task, out in executor.map(todo, job):
            bar.set_description(f"task {task.id}")
            if isinstance(out, Exception):
                write(_error_records(task, idx, out), True)
            else:
                write(out, False)
    finally:
        executor.close()


def _solve_here(
    lm: LoadedModel,
    task: FewShotTask,
    idx: int,
    job: TTTJob,
    progress: bool,
    bar: tqdm[Any],
    write: Callable[[list[Record], bool], None],
) -> None:
    from tqdm import tqdm

    bar.set_description(f"task {task.id}")
    step_bar = tqdm(
        total=job.cfg.steps if job.train else 0,
        unit="step",
        leave=False,
        disable=not progress or not job.train,
    )

    def on_step(step: int, loss: float) -> None:
        step_bar.update(1)
        step_bar.set_postfix(loss=f"{loss:.3f}")

    try:
        records = solve_task(lm, task, idx, job, on_step=on_step)
    except Exception as e:  # one task's failure is recorded; the run goes on
        step_bar.close()
        write(_error_records(task, idx, e), True)
        return
    step_bar.close()
    write(records, False)
