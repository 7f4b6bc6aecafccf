"""Map a strategy over a task's problems, one durable record per problem.

``evaluate`` skips problems the store already holds without an error, so running the
same command again resumes a run. Up to ``concurrency`` problems are in flight; each
gets a fresh ``Context`` (its own ledger) and a seed derived from the problem id, so a
problem samples the same way whether it runs first, last, or on resume.

Grading: a task's ``is_correct`` runs in a worker thread (math-verify may block); a
``ModelGradedTask`` (free-form answers graded by a judge model) is awaited instead, on
the problem's engine, with a ledger of its own: what grading cost goes in the record's
``meta["grading"]``, not in its ``usage``, which stays the strategy's. The final
answer's grade goes in ``meta["grading_status"]``: ``{"status": ..., "reason": ...}``,
status ``correct``, ``wrong``, ``error`` or ``timeout`` (a ``StatusGradedTask``'s grader,
math-verify, can fail or run out of time; that is not a right answer, and it is
counted, not hidden), and under ``"answers"`` the grade of every answer, the final one
or a candidate's, whose grading failed. A task that grades by running the answers in a
sandbox (HumanEval) has the sandbox's isolation mode in ``meta["grading_isolation"]``.

Budget: with ``budget``, each problem may spend at most that many tokens, prompt and
completion, every call included (a ledger budget on its context: a call that would
pass it is refused before it runs, so the record's usage never does). A strategy stops
at the refused call with its best answer so far and ``meta["stopped"] = "budget"``
with the ``stop_reason``; one refused before it has anything to answer from gives a
record with no answer and the same keys. Either is a finished record, not a failure:
running it again would stop the same way.

Failures: an exception in one problem becomes that problem's error record and the run
goes on; error records are retried on the next run. If the first ``concurrency + 1``
problems to finish all failed with an ``EngineError`` (typically: the server is not
there), the run stops with that error instead of filling the store with error records.
Cancellation (Ctrl-C) stops the run; records already written stay, problems in flight
are abandoned and run again on resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import enum
import math
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from ponder._version import __version__
from ponder.core.budget import Ledger
from ponder.core.context import Context
from ponder.core.engine import ChecksProblems, Engine, PerProblemEngine, model_sha256
from ponder.core.errors import BudgetExceeded, ConfigError, EngineError
from ponder.core.sandbox import Sandbox
from ponder.core.task import ModelGradedTask, StatusGradedTask, Task
from ponder.core.types import Grade, Problem, Result
from ponder.runs.store import Record, RunStore
from ponder.runs.summary import wilson_interval
from ponder.strategies.base import Strategy, make_result, stopped_by_budget
from ponder.tasks.identity import data_identity, problem_fingerprint


class Executor(Protocol):
    """Where problems run when not in this process: ``RayExecutor`` is one.

    ``start`` readies the workers for this task and strategy and returns the name of
    the engine they use; ``solve`` runs one problem on the worker of ``slot``
    (``0 <= slot < slots``) and returns its record and the exception it failed with, as
    the local path does; ``close`` stops the workers.
    """

    @property
    def slots(self) -> int: ...

    async def start(
        self,
        *,
        task: Task,
        strategy: Strategy,
        max_tokens: int,
        seed: int,
        budget: int | None = None,
    ) -> str: ...

    async def solve(
        self, slot: int, idx: int, problem: Problem
    ) -> tuple[Record, BaseException | None]: ...

    async def close(self) -> None: ...


def problem_seed(seed: int, problem_id: str) -> int:
    """The sampling seed of one problem: stable across runs, processes and orderings."""
    return (seed + zlib.crc32(problem_id.encode("utf-8"))) % 2**31


def strategy_name(strategy: Strategy) -> str:
    name = getattr(strategy, "name", None)
    return name if isinstance(name, str) else type(strategy).__name__


def _jsonable(value: Any) -> Any:
    """A JSON value that identifies ``value`` stably (no memory addresses)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **strategy_options(value)}
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return {"type": type(value).__name__, "name": name}
    return {"type": type(value).__qualname__}


def strategy_options(strategy: object) -> dict[str, Any]:
    """A dataclass strategy's fields as JSON values (empty for other objects)."""
    if not dataclasses.is_dataclass(strategy) or isinstance(strategy, type):
        return {}
    return {
        f.name: _jsonable(getattr(strategy, f.name))
        for f in dataclasses.fields(strategy)
        if not f.name.startswith("_")
    }


def run_config(
    *,
    task: Task,
    strategy: Strategy,
    engine: Engine | str,
    max_tokens: int,
    seed: int,
    extra: Mapping[str, Any] | None = None,
    budget: int | None = None,
    model_sha: str | None = None,
) -> dict[str, Any]:
    """The configuration a store records and checks on resume.

    ``engine`` is the engine or its name (what an executor's remote engine reports).
    ``data`` is the task, split and content hash of the task's data (``data_source``,
    where it was read from, is informational); ``model_sha256`` the weights' hash when
    the engine knows it (the embedded engine; ``model_sha`` passes it for an executor's
    remote engine).
    ``budget`` (tokens per problem) is recorded only when set, so runs without one
    resume as before.

    ``extra`` adds caller-specific settings (for example the CLI's model path) under
    the key ``"extra"``; they take part in the resume check.
    """
    identity = data_identity(task)
    if model_sha is None and not isinstance(engine, str):
        model_sha = model_sha256(engine)
    config: dict[str, Any] = {
        "task": task.name,
        "data": identity.to_config(),
        "data_source": identity.source,
        "model": engine if isinstance(engine, str) else engine.name,
        "strategy": {"name": strategy_name(strategy), "options": strategy_options(strategy)},
        "max_tokens": max_tokens,
        "seed": seed,
        "ponder_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if model_sha is not None:
        config["model_sha256"] = model_sha
    if budget is not None:
        config["budget"] = budget
    if extra:
        config["extra"] = _jsonable(extra)
    return config


@dataclass(frozen=True)
class EvalSummary:
    """What one call of ``evaluate`` did, and the accuracy over the given problems.

    ``done_now``: problems finished without error in this call; ``skipped``: already
    finished in the store; ``errors``: problems that failed in this call (retried on the
    next run); ``pending``: problems neither finished nor failed (the run stopped early).
    Accuracy, its 95% Wilson interval and the token means are over the ``graded``
    problems (finished, now or before, among the given ones); error records do not count.
    ``accuracy_errors_as_wrong`` counts the failed problems as wrong instead: correct
    over graded plus failed. ``grading_errors``: graded problems whose final answer's
    grader failed or ran out of time (graded not correct; ``Record.grade`` says why).
    ``seconds`` is this call's wall time.
    """

    total: int
    done_now: int
    skipped: int
    errors: int
    graded: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_tokens: float
    mean_completion_tokens: float
    seconds: float
    path: str = ""
    grading_errors: int = 0
    accuracy_errors_as_wrong: float = math.nan

    @property
    def pending(self) -> int:
        return self.total - self.graded - self.errors

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pending"] = self.pending
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    def __str__(self) -> str:
        if self.graded:
            acc = (
                f"accuracy {self.accuracy:.3f} (95% CI {self.ci_low:.3f}-{self.ci_high:.3f}) "
                f"on {self.graded}/{self.total} problems"
            )
        else:
            acc = f"no graded problems out of {self.total}"
        if self.errors:
            acc += (
                f" ({self.accuracy_errors_as_wrong:.3f} counting the {self.errors} failed as wrong)"
            )
        parts = [
            acc,
            f"{self.done_now} run now, {self.skipped} resumed",
            f"{self.errors} errors",
            f"{self.grading_errors} grading errors/timeouts",
            f"{self.mean_tokens:.0f} tokens/problem" if self.graded else "",
            f"{self.seconds:.1f}s",
        ]
        return ", ".join(p for p in parts if p)


class _LeadingEngineFailures:
    """Decides whether the first attempts all failing with EngineError should stop the run."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.decided = False
        self.held: list[Record] = []
        self.first: EngineError | None = None

    def success(self) -> list[Record]:
        """An attempt did not fail with EngineError: never abort; release held records."""
        self.decided = True
        held, self.held = self.held, []
        return held

    def engine_failure(self, error: EngineError, record: Record) -> bool:
        """Hold the record; True when the run should stop."""
        if self.decided:
            return False
        self.first = self.first or error
        self.held.append(record)
        return len(self.held) >= self.threshold


def _answers(result: Result) -> list[str]:
    """The distinct answers a record grades: every candidate's and the final one."""
    answers = {c.answer for c in result.candidates if c.answer is not None}
    if result.answer is not None:
        answers.add(result.answer)
    return sorted(answers)


def _grade_one(task: Task, answer: str | None, problem: Problem) -> Grade:
    if isinstance(task, StatusGradedTask):
        return task.grade_status(answer, problem)
    if task.is_correct(answer, problem):
        return Grade("correct")
    return Grade("wrong", "no answer" if answer is None else "")


def _grading_status(final: Grade, grades: Mapping[str, Grade]) -> dict[str, Any]:
    """``meta["grading_status"]``: the final answer's grade, and the grades that failed
    (error or timeout) of every answer graded, which the curves count as wrong."""
    status: dict[str, Any] = final.to_dict()
    failed = {a: g.to_dict() for a, g in grades.items() if g.failed}
    if failed:
        status["answers"] = failed
    return status


def _grade(
    task: Task, problem: Problem, result: Result
) -> tuple[bool, dict[str, bool], dict[str, Any]]:
    grades = {a: _grade_one(task, a, problem) for a in _answers(result)}
    final = grades[result.answer] if result.answer is not None else _grade_one(task, None, problem)
    return final.correct, {a: g.correct for a, g in grades.items()}, _grading_status(final, grades)


async def _grade_with_model(
    task: ModelGradedTask, problem: Problem, result: Result, engine: Engine
) -> tuple[bool, dict[str, bool], dict[str, Any]]:
    """Grades from a model-graded task, and what grading cost, on a ledger of its own
    (the strategy's usage and budget do not include it)."""
    answers = _answers(result)
    ledger = Ledger()
    t0 = time.perf_counter()
    grading = await task.grade_answers(answers, problem, engine, ledger)
    seconds = time.perf_counter() - t0
    missing = [a for a in answers if a not in grading.correct]
    if missing:
        raise RuntimeError(f"task {task.name} did not grade the answers {missing!r}")
    graded = {a: bool(grading.correct[a]) for a in answers}
    correct = result.answer is not None and graded[result.answer]
    account = {
        "grader": task.grader,
        "usage": ledger.total().to_dict(),
        "seconds": round(seconds, 4),
        "answers": dict(grading.details),
    }
    return correct, graded, account


async def _within_budget(
    strategy: Strategy, problem: Problem, ctx: Context, budget: int | None
) -> Result:
    """The strategy's result under a budget of ``budget`` total tokens (None: none); when
    the budget refuses even its first call, a result with no answer that says so."""
    t0 = time.perf_counter()
    with ctx.ledger.budget(total_tokens=budget):
        try:
            return await strategy(problem, ctx)
        except BudgetExceeded as e:
            name = strategy_name(strategy)
            return make_result(name, ctx, t0, None, (), {}, stopped_by_budget(e))


async def _solve(
    idx: int,
    problem: Problem,
    *,
    task: Task,
    strategy: Strategy,
    engine: Engine,
    max_tokens: int,
    seed: int,
    budget: int | None = None,
) -> tuple[Record, BaseException | None]:
    if isinstance(engine, PerProblemEngine):
        engine = engine.for_problem(problem)
    ctx = Context(
        engine=engine,
        task=task,
        ledger=Ledger(),
        max_tokens=max_tokens,
        seed=problem_seed(seed, problem.id),
    )
    t0 = time.perf_counter()
    try:
        result = await _within_budget(strategy, problem, ctx, budget)
        seconds = time.perf_counter() - t0
        meta = dict(result.meta)
        if isinstance(task, ModelGradedTask):
            correct, graded, meta["grading"] = await _grade_with_model(
                task, problem, result, engine
            )
            meta["grading_status"] = Grade("correct" if correct else "wrong").to_dict()
        else:
            correct, graded, meta["grading_status"] = await asyncio.to_thread(
                _grade, task, problem, result
            )
            sandbox = getattr(task, "sandbox", None)
            if isinstance(sandbox, Sandbox) and graded:
                # the answers were graded by running them: say in which isolation mode
                meta["grading_isolation"] = sandbox.mode
    except Exception as e:
        # the problem failed, the run goes on; BaseException (cancellation) propagates
        record = Record(
            problem_id=problem.id,
            idx=idx,
            question=problem.question,
            reference=problem.answer,
            answer=None,
            correct=False,
            usage=ctx.ledger.total(),
            seconds=time.perf_counter() - t0,
            error=f"{type(e).__name__}: {e}",
        )
        return record, e
    record = Record(
        problem_id=problem.id,
        idx=idx,
        question=problem.question,
        reference=problem.answer,
        answer=result.answer,
        correct=correct,
        votes=dict(result.votes),
        candidates=tuple(result.candidates),
        answer_correct=graded,
        usage=result.usage,
        seconds=seconds,
        meta=meta,
    )
    return record, None


async def evaluate(
    *,
    task: Task,
    problems: Sequence[Problem],
    strategy: Strategy,
    engine: Engine | None,
    store: RunStore | str | Path,
    concurrency: int = 4,
    max_tokens: int = 512,
    seed: int = 0,
    progress: bool = True,
    config_extra: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    budget: int | None = None,
) -> EvalSummary:
    """Run ``strategy`` on every problem not already finished in ``store``.

    ``budget`` limits each problem's tokens, prompt and completion (see the module
    docstring); None leaves them unlimited. ``store`` may be a path (opened and closed
    here). With an ``executor`` the problems
    run on its workers (each with its own engine; pass ``engine=None``), ``executor.slots``
    at a time, and it is started and closed here; the records are the same. Raises
    ``ConfigError`` when the store holds a run with another configuration or ``problems``
    repeat an id, and the first ``EngineError`` when the first ``concurrency + 1``
    problems all fail with one.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    seen: set[str] = set()
    for p in problems:
        if p.id in seen:
            raise ConfigError(f"problem id {p.id!r} appears twice; ids must be unique")
        seen.add(p.id)

    if not isinstance(store, RunStore):
        with RunStore(store) as opened:
            return await evaluate(
                task=task,
                problems=problems,
                strategy=strategy,
                engine=engine,
                store=opened,
                concurrency=concurrency,
                max_tokens=max_tokens,
                seed=seed,
                progress=progress,
                config_extra=config_extra,
                executor=executor,
                budget=budget,
            )
    if budget is not None and budget < 1:
        raise ConfigError(f"budget must be a positive number of tokens, got {budget}")

    if executor is not None:
        name = await executor.start(
            task=task, strategy=strategy, max_tokens=max_tokens, seed=seed, budget=budget
        )
        try:
            return await _evaluate(
                task, problems, strategy, name, store, executor.slots, max_tokens, seed,
                progress, config_extra, executor.solve, budget,
                getattr(executor, "model_sha256", None),
            )  # fmt: skip
        finally:
            await executor.close()
    if engine is None:
        raise ConfigError("evaluate needs an engine, or an executor whose workers hold one")
    if isinstance(engine, ChecksProblems):
        # a replay bank serves only the problems it recorded, drawn from the same prompt
        engine.check_problems(problems)
    local = engine

    async def solve(slot: int, idx: int, problem: Problem) -> tuple[Record, BaseException | None]:
        return await _solve(
            idx, problem, task=task, strategy=strategy, engine=local,
            max_tokens=max_tokens, seed=seed, budget=budget,
        )  # fmt: skip

    return await _evaluate(
        task, problems, strategy, engine, store, concurrency, max_tokens, seed,
        progress, config_extra, solve, budget,
    )  # fmt: skip


async def _evaluate(
    task: Task,
    problems: Sequence[Problem],
    strategy: Strategy,
    engine: Engine | str,
    store: RunStore,
    concurrency: int,
    max_tokens: int,
    seed: int,
    progress: bool,
    config_extra: Mapping[str, Any] | None,
    solve: Callable[[int, int, Problem], Awaitable[tuple[Record, BaseException | None]]],
    budget: int | None,
    model_sha: str | None = None,
) -> EvalSummary:
    t_start = time.perf_counter()
    store.init_or_check(
        run_config(
            task=task,
            strategy=strategy,
            engine=engine,
            max_tokens=max_tokens,
            seed=seed,
            extra=config_extra,
            budget=budget,
            model_sha=model_sha,
        )
    )
    store.add_problem_fingerprints({p.id: problem_fingerprint(task, p) for p in problems})
    wanted = {p.id for p in problems}
    finished = {r.problem_id: r for r in store.records(include_errors=False)}
    finished = {k: r for k, r in finished.items() if k in wanted}
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in finished]

    tally = {"correct": sum(r.correct for r in finished.values()), "graded": len(finished)}
    counts = {"done": 0, "errors": 0}
    leading = _LeadingEngineFailures(concurrency + 1)
    queue: Iterator[tuple[int, Problem]] = iter(todo)

    bar = tqdm(
        total=len(problems),
        initial=len(finished),
        disable=not progress,
        desc=f"{strategy_name(strategy)} on {task.name}",
        unit="problem",
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def write(record: Record) -> None:
        store.put(record)
        if record.ok:
            counts["done"] += 1
            tally["graded"] += 1
            tally["correct"] += int(record.correct)
            finished[record.problem_id] = record
        else:
            counts["errors"] += 1
        bar.update(1)
        if tally["graded"]:
            bar.set_postfix(
                acc=f"{tally['correct'] / tally['graded']:.3f}", errors=counts["errors"]
            )

    async def worker(slot: int) -> None:
        for idx, problem in queue:
            record, error = await solve(slot, idx, problem)
            if isinstance(error, EngineError) and not leading.decided:
                if leading.engine_failure(error, record):
                    assert leading.first is not None
                    leading.first.add_note(
                        f"ponder eval: the first {leading.threshold} problems attempted all "
                        "failed with engine errors, so the run stopped without recording "
                        f"them in {store.path}"
                    )
                    raise leading.first
                continue
            for held in leading.success():
                write(held)
            write(record)

    workers = [asyncio.create_task(worker(i)) for i in range(min(concurrency, len(todo)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*workers, return_exceptions=True)
        raise
    finally:
        bar.close()
    # fewer attempts than the threshold, all engine failures: keep them as error records
    for held in leading.success():
        store.put(held)
        counts["errors"] += 1

    graded = list(finished.values())
    n = len(graded)
    correct = sum(r.correct for r in graded)
    low, high = wilson_interval(correct, n)
    attempted = n + counts["errors"]
    return EvalSummary(
        total=len(problems),
        done_now=counts["done"],
        skipped=len(problems) - len(todo),
        errors=counts["errors"],
        graded=n,
        correct=correct,
        accuracy=correct / n if n else math.nan,
        ci_low=low,
        ci_high=high,
        mean_tokens=sum(r.usage.total_tokens for r in graded) / n if n else math.nan,
        mean_completion_tokens=(
            sum(r.usage.completion_tokens for r in graded) / n if n else math.nan
        ),
        seconds=time.perf_counter() - t_start,
        path=str(store.path),
        grading_errors=sum(r.grade.failed for r in graded),
        accuracy_errors_as_wrong=correct / attempted if attempted else math.nan,
    )


def run_eval(
    *,
    task: Task,
    problems: Sequence[Problem],
    strategy: Strategy,
    engine: Engine | None,
    store: RunStore | str | Path,
    concurrency: int = 4,
    max_tokens: int = 512,
    seed: int = 0,
    progress: bool = True,
    config_extra: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    budget: int | None = None,
) -> EvalSummary:
    """Synchronous ``evaluate`` (runs its own event loop; not for use inside one)."""
    return asyncio.run(
        evaluate(
            task=task,
            problems=problems,
            strategy=strategy,
            engine=engine,
            store=store,
            concurrency=concurrency,
            max_tokens=max_tokens,
            seed=seed,
            progress=progress,
            config_extra=config_extra,
            executor=executor,
            budget=budget,
        )
    )
