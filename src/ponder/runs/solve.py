"""One problem of a run: the strategy on a context of its own, then the grading, as one
record. The grading rules are in the ``ponder.runs.runner`` module docstring.

``solve_problem`` is what every executor runs per problem, in this process or on a
worker, so a record is the same wherever its problem ran.

With ``SolveJob.features`` the context captures every plain sample with
``DEFAULT_TOP_K`` logprob alternatives per token (``Context.capture_top_logprobs``), and
the record carries the features of each candidate that is one of them
(``captured_features``), for the store to write with it. With ``SolveJob.hidden_dim``
those samples carry their hidden states too (``Context.capture_hidden``), and the record
their projections (``captured_hidden``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ponder.core.budget import Ledger
from ponder.core.context import Context
from ponder.core.engine import Engine, PerProblemEngine
from ponder.core.errors import BudgetExceeded
from ponder.core.sandbox import Sandbox
from ponder.core.task import ModelGradedTask, StatusGradedTask, Task
from ponder.core.types import Candidate, Completion, Grade, Problem, Result
from ponder.runs.job import SolveJob, strategy_name
from ponder.runs.store import Record
from ponder.strategies.base import Strategy, make_result, stopped_by_budget
from ponder.verifiers.features import DEFAULT_TOP_K, WINDOW, sample_features
from ponder.verifiers.hidden import DEFAULT_SEED, Projection, SampleHidden

__all__ = ["captured_features", "captured_hidden", "solve_problem"]


def _matched(
    candidates: Sequence[Candidate], captured: Sequence[Completion]
) -> dict[int, Completion]:
    """The captured completion of each candidate drawn as one, by the candidate's index:
    a candidate is matched to the first captured completion of the same text not matched
    yet (a strategy's candidates keep its samples' order, but may leave some out or add
    others: those have none)."""
    pending: dict[str, list[Completion]] = {}
    for completion in captured:
        pending.setdefault(completion.text, []).append(completion)
    out: dict[int, Completion] = {}
    for i, candidate in enumerate(candidates):
        same_text = pending.get(candidate.text)
        if same_text:
            out[i] = same_text.pop(0)
    return out


def captured_features(
    candidates: Sequence[Candidate], captured: Sequence[Completion]
) -> dict[int, dict[str, float]]:
    """The features of each candidate drawn as one of the ``captured`` completions, by
    the candidate's index (matched as ``_matched`` says; the others have none)."""
    out: dict[int, dict[str, float]] = {}
    for i, completion in _matched(candidates, captured).items():
        if completion.logprobs is None:
            raise RuntimeError("a sample drawn to capture its features came back without logprobs")
        out[i] = sample_features(completion.logprobs, window=WINDOW)
    return out


def captured_hidden(
    candidates: Sequence[Candidate], captured: Sequence[Completion], dim: int
) -> tuple[dict[int, SampleHidden], Projection | None]:
    """The hidden states of each candidate drawn as one of the ``captured`` completions
    and long enough to have them (two tokens), projected to ``dim`` numbers by the
    default projection; and that projection (None when no candidate has any)."""
    states = {
        i: c.hidden for i, c in _matched(candidates, captured).items() if c.hidden is not None
    }
    if not states:
        return {}, None
    projection = Projection(len(next(iter(states.values())).last), dim, DEFAULT_SEED)
    return {i: projection.project(h) for i, h in states.items()}, projection


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


async def _graded_meta(
    task: Task, problem: Problem, result: Result, engine: Engine
) -> tuple[bool, dict[str, bool], dict[str, Any]]:
    """Whether the final answer is correct, each answer's grade, and the result's meta
    with what grading adds to it."""
    meta = dict(result.meta)
    if isinstance(task, ModelGradedTask):
        correct, graded, meta["grading"] = await _grade_with_model(task, problem, result, engine)
        meta["grading_status"] = Grade("correct" if correct else "wrong").to_dict()
        return correct, graded, meta
    correct, graded, meta["grading_status"] = await asyncio.to_thread(_grade, task, problem, result)
    sandbox = getattr(task, "sandbox", None)
    if isinstance(sandbox, Sandbox) and graded:
        # the answers were graded by running them: say in which isolation mode
        meta["grading_isolation"] = sandbox.mode
    return correct, graded, meta


def _failed_record(
    idx: int, problem: Problem, ctx: Context, seconds: float, error: Exception
) -> Record:
    return Record(
        problem_id=problem.id,
        idx=idx,
        question=problem.question,
        reference=problem.answer,
        answer=None,
        correct=False,
        usage=ctx.ledger.total(),
        seconds=seconds,
        error=f"{type(error).__name__}: {error}",
    )


async def solve_problem(
    job: SolveJob, engine: Engine, idx: int, problem: Problem
) -> tuple[Record, BaseException | None]:
    """Solve and grade ``problem`` (the ``idx``-th of the run) on ``engine``.

    Returns its record and None, or, when the strategy or the grading raised an
    ``Exception``, an error record and that exception (the caller decides whether the
    run goes on). Cancellation and other ``BaseException`` propagate.
    """
    if isinstance(engine, PerProblemEngine):
        engine = engine.for_problem(problem)
    ctx = Context(
        engine=engine,
        task=job.task,
        ledger=Ledger(),
        max_tokens=job.max_tokens,
        seed=job.seed_for(problem.id),
        capture_top_logprobs=DEFAULT_TOP_K if job.features else 0,
        capture_hidden=job.features and job.hidden_dim is not None,
    )
    t0 = time.perf_counter()
    try:
        result = await _within_budget(job.strategy, problem, ctx, job.budget)
        seconds = time.perf_counter() - t0
        correct, graded, meta = await _graded_meta(job.task, problem, result, engine)
        features = captured_features(result.candidates, ctx.captured)
        hidden: dict[int, SampleHidden] = {}
        projection = None
        if ctx.capture_hidden and job.hidden_dim is not None:
            hidden, projection = captured_hidden(result.candidates, ctx.captured, job.hidden_dim)
    except Exception as e:
        # the problem failed, the run goes on; BaseException (cancellation) propagates
        return _failed_record(idx, problem, ctx, time.perf_counter() - t0, e), e
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
        features=features,
        hidden=hidden,
        projection=projection,
    )
    return record, None
