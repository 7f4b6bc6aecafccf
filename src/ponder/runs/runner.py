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

Features: with ``features``, the plain samples are drawn with top-k logprobs and each
record's samples get their token-confidence features in the store's ``features`` table,
written in the record's own transaction (``ponder.runs.solve``), so a record and its
features are stored together or not at all; a resumed run computes none for the
problems it skips. It changes neither the samples nor the records, so it is not part of
the run's configuration: a run may resume with or without it. It needs an engine that
returns logprobs, and refuses a replayed bank, whose samples have none. With
``hidden_dim`` as well, the samples' final hidden states come from the same decode
calls and go, projected to that many numbers, to the store's ``hidden`` table in the
same transaction; that needs an engine with ``capabilities.hidden_states``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import enum
import functools
import math
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from tqdm import tqdm

from ponder._version import __version__
from ponder.core.engine import ChecksProblems, Engine, model_sha256
from ponder.core.errors import ConfigError, EngineError
from ponder.core.task import Task
from ponder.core.types import Problem
from ponder.runs.executor import Executor, LocalExecutor
from ponder.runs.job import SolveJob, problem_seed, strategy_name
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.runs.settings import (
    DEFAULT_MAX_TOKENS,
    build_strategy,
    config_extra_for,
    engine_bank,
    prepare_task,
)
from ponder.runs.store import Record, RunStore
from ponder.runs.summary import wilson_interval
from ponder.strategies.base import Strategy
from ponder.tasks.identity import data_identity, problem_fingerprint
from ponder.verifiers.hidden import DEFAULT_SEED

__all__ = [
    "EvalSummary",
    "Executor",
    "evaluate",
    "problem_seed",
    "run_config",
    "run_eval",
    "strategy_name",
    "strategy_options",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


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


def _check_problems(problems: Sequence[Problem], concurrency: int) -> None:
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    seen: set[str] = set()
    for p in problems:
        if p.id in seen:
            raise ConfigError(f"problem id {p.id!r} appears twice; ids must be unique")
        seen.add(p.id)


def _check_capture(
    engine: Engine | None, bank: SampleBank | None, store: RunStore, hidden_dim: int | None
) -> None:
    """``ConfigError`` when a run cannot capture its samples' features: it replays a
    bank (no logprobs were kept) or its engine returns none; or, with ``hidden_dim``,
    their hidden states: its engine returns none, or ``store`` holds hidden states under
    another projection."""
    if bank is not None:
        raise ConfigError(
            "--features computes features from the logprobs of the samples as they are "
            f"drawn; the bank {bank.source} replays samples without logprobs. Run "
            "`ponder bank features` on the bank instead"
        )
    if engine is not None and not engine.capabilities.logprobs:
        raise ConfigError(
            f"--features needs the logprobs of every sample, and engine {engine.name} "
            "returns none; use the embedded engine (a bundled model or a .gguf file)"
        )
    if hidden_dim is None:
        return
    if hidden_dim < 1:
        raise ConfigError(f"the hidden-state projection needs at least 1 dim, got {hidden_dim}")
    if engine is not None and not engine.capabilities.hidden_states:
        raise ConfigError(
            f"--hidden needs the hidden states of every sample, and engine {engine.name} "
            "returns none; use the embedded engine, or `ponder bank features --hidden` "
            "on the finished bank"
        )
    held = store.hidden_projection()
    if held is not None and (held.dim, held.seed) != (hidden_dim, DEFAULT_SEED):
        raise ConfigError(
            f"{store.path} holds hidden states projected to {held.dim} dims (seed "
            f"{held.seed}), not {hidden_dim} (seed {DEFAULT_SEED}): pass --hidden-dim {held.dim}"
        )


def _local_executor(
    engine: Engine | None, problems: Sequence[Problem], concurrency: int
) -> LocalExecutor:
    if engine is None:
        raise ConfigError("evaluate needs an engine, or an executor whose workers hold one")
    if isinstance(engine, ChecksProblems):
        # a replay bank serves only the problems it recorded, drawn from the same prompt
        engine.check_problems(problems)
    return LocalExecutor(engine, concurrency)


async def evaluate(
    *,
    task: Task,
    problems: Sequence[Problem],
    strategy: Strategy | str,
    engine: Engine | None,
    store: RunStore | str | Path,
    concurrency: int = 4,
    max_tokens: int | None = None,
    seed: int = 0,
    progress: bool = True,
    config_extra: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    budget: int | None = None,
    strategy_options: Mapping[str, Any] | None = None,
    replay_bank: SampleBank | None = None,
    replay_extend: bool = False,
    features: bool = False,
    hidden_dim: int | None = None,
) -> EvalSummary:
    """Run ``strategy`` on every problem not already finished in ``store``.

    ``strategy`` is a strategy, or the name of a registered one built here with
    ``strategy_options`` as ``ponder eval`` builds it: with a replay bank (the engine's,
    when it is a ``ReplayEngine``, or ``replay_bank``, for an executor's remote replay
    engines, with ``replay_extend`` as they were built) its temperature and top-p
    default to the bank's. ``max_tokens`` per sample defaults to the bank's, else 512.
    The run's configuration records, beside ``config_extra``, the bank, a free-form
    task's answer settings and the compute-optimal strategy's policy file hash (see
    ``ponder.runs.settings``); a remote replay is checked against ``problems`` here.
    ``budget`` limits each problem's tokens, prompt and completion (see the module
    docstring); None leaves them unlimited. ``store`` may be a path (opened and closed
    here). With an ``executor`` the problems run on its workers (each with its own
    engine; pass ``engine=None``), ``executor.slots`` at a time, and it is started and
    closed here; the records are the same. Without one they run on ``engine`` in this
    process (``LocalExecutor``), ``concurrency`` at a time. Raises
    ``ConfigError`` when the store holds a run with another configuration or ``problems``
    repeat an id, and the first ``EngineError`` when the first ``concurrency + 1``
    problems all fail with one. ``features`` stores each sample's token-confidence
    features as it is drawn (see the module docstring); it raises ``ConfigError``
    with a replayed bank or an engine without logprobs. ``hidden_dim`` (with
    ``features`` only) stores their projected hidden states too.
    """
    _check_problems(problems, concurrency)
    bank = replay_bank if replay_bank is not None else engine_bank(engine)
    if hidden_dim is not None and not features:
        raise ConfigError("hidden states are captured with the features: pass --features too")
    if isinstance(strategy, str):
        strategy = build_strategy(strategy, strategy_options, bank)
    elif strategy_options is not None:
        raise ConfigError("strategy_options go with a strategy's name, not a built strategy")
    if max_tokens is None:
        max_tokens = bank.max_tokens if bank is not None else DEFAULT_MAX_TOKENS
    prepare_task(task)
    if isinstance(engine, ReplayEngine):
        replay_extend = engine.extend
    elif replay_bank is not None:
        # the executor's engines are remote: their bank is checked here, before the run
        ReplayEngine(replay_bank, task).check_problems(problems)
    with contextlib.ExitStack() as stack:
        if not isinstance(store, RunStore):
            store = stack.enter_context(RunStore(store))
        if budget is not None and budget < 1:
            raise ConfigError(f"budget must be a positive number of tokens, got {budget}")
        if features:
            _check_capture(engine, bank, store, hidden_dim)
        job = SolveJob(task, strategy, max_tokens, seed, budget, features, hidden_dim)
        if executor is None:
            executor = _local_executor(engine, problems, concurrency)
        extra = config_extra_for(strategy, config_extra, task=task, bank=bank, extend=replay_extend)
        name = await executor.start(job)
        try:
            return await _evaluate(job, problems, store, executor, name, progress, extra)
        finally:
            await executor.close()


class _Tally:
    """What this call has written to the store, shown on the progress bar."""

    def __init__(self, store: RunStore, finished: dict[str, Record], bar: tqdm[Any]) -> None:
        self.store = store
        self.finished = finished
        self.bar = bar
        self.correct = sum(r.correct for r in finished.values())
        self.done = 0
        self.errors = 0

    def write(self, record: Record) -> None:
        self.store.put(record)
        if record.ok:
            self.done += 1
            self.correct += int(record.correct)
            self.finished[record.problem_id] = record
        else:
            self.errors += 1
        self.bar.update(1)
        if self.finished:
            self.bar.set_postfix(acc=f"{self.correct / len(self.finished):.3f}", errors=self.errors)


def _start_run(
    job: SolveJob,
    problems: Sequence[Problem],
    store: RunStore,
    executor: Executor,
    engine_name: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Record]:
    """Record (or check) the run's configuration and problems; returns the given
    problems the store has already finished."""
    config = run_config(
        task=job.task,
        strategy=job.strategy,
        engine=engine_name,
        max_tokens=job.max_tokens,
        seed=job.seed,
        extra=extra,
        budget=job.budget,
        model_sha=getattr(executor, "model_sha256", None),
    )
    store.init_or_check(config)
    store.add_problem_fingerprints({p.id: problem_fingerprint(job.task, p) for p in problems})
    wanted = {p.id for p in problems}
    return {r.problem_id: r for r in store.records(include_errors=False) if r.problem_id in wanted}


async def _solve_all(
    todo: Sequence[tuple[int, Problem]], executor: Executor, tally: _Tally
) -> None:
    """Solve ``todo`` on ``executor.slots`` workers, writing each record as it comes;
    raises the first EngineError when the first ``slots + 1`` attempts all fail with one."""
    leading = _LeadingEngineFailures(executor.slots + 1)
    queue: Iterator[tuple[int, Problem]] = iter(todo)

    async def worker(slot: int) -> None:
        for idx, problem in queue:
            record, error = await executor.solve(slot, idx, problem)
            if isinstance(error, EngineError) and not leading.decided:
                if leading.engine_failure(error, record):
                    assert leading.first is not None
                    leading.first.add_note(
                        f"ponder eval: the first {leading.threshold} problems attempted all "
                        "failed with engine errors, so the run stopped without recording "
                        f"them in {tally.store.path}"
                    )
                    raise leading.first
                continue
            for held in leading.success():
                tally.write(held)
            tally.write(record)

    workers = [asyncio.create_task(worker(i)) for i in range(min(executor.slots, len(todo)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*workers, return_exceptions=True)
        raise
    # fewer attempts than the threshold, all engine failures: keep them as error records
    for held in leading.success():
        tally.store.put(held)
        tally.errors += 1


def _summary(
    problems: Sequence[Problem], skipped: int, tally: _Tally, seconds: float
) -> EvalSummary:
    graded = list(tally.finished.values())
    n = len(graded)
    correct = sum(r.correct for r in graded)
    low, high = wilson_interval(correct, n)
    attempted = n + tally.errors
    return EvalSummary(
        total=len(problems),
        done_now=tally.done,
        skipped=skipped,
        errors=tally.errors,
        graded=n,
        correct=correct,
        accuracy=correct / n if n else math.nan,
        ci_low=low,
        ci_high=high,
        mean_tokens=sum(r.usage.total_tokens for r in graded) / n if n else math.nan,
        mean_completion_tokens=(
            sum(r.usage.completion_tokens for r in graded) / n if n else math.nan
        ),
        seconds=seconds,
        path=str(tally.store.path),
        grading_errors=sum(r.grade.failed for r in graded),
        accuracy_errors_as_wrong=correct / attempted if attempted else math.nan,
    )


async def _evaluate(
    job: SolveJob,
    problems: Sequence[Problem],
    store: RunStore,
    executor: Executor,
    engine_name: str,
    progress: bool,
    extra: Mapping[str, Any] | None,
) -> EvalSummary:
    """The run on a started executor: the store's checks, the problems it has not
    finished, and the summary."""
    t_start = time.perf_counter()
    finished = _start_run(job, problems, store, executor, engine_name, extra)
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in finished]
    bar = tqdm(
        total=len(problems),
        initial=len(finished),
        disable=not progress,
        desc=f"{strategy_name(job.strategy)} on {job.task.name}",
        unit="problem",
        file=sys.stderr,
        dynamic_ncols=True,
    )
    tally = _Tally(store, finished, bar)
    try:
        await _solve_all(todo, executor, tally)
    finally:
        bar.close()
    return _summary(problems, len(problems) - len(todo), tally, time.perf_counter() - t_start)


def _blocking(
    coroutine_function: Callable[_P, Coroutine[Any, Any, _T]],
) -> Callable[_P, _T]:
    """A function that runs ``coroutine_function`` on an event loop of its own."""

    @functools.wraps(coroutine_function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return asyncio.run(coroutine_function(*args, **kwargs))

    return run


run_eval = _blocking(evaluate)
run_eval.__name__ = run_eval.__qualname__ = "run_eval"
run_eval.__doc__ = """Synchronous ``evaluate``, with its keyword arguments (runs its own
event loop; not for use inside one)."""
