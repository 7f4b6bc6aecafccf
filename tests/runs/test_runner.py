from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ponder.core.engine import Capabilities
from ponder.core.errors import ConfigError, EngineError
from ponder.core.types import Completion, GenRequest, Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.runner import EvalSummary, evaluate, problem_seed, run_eval
from ponder.runs.store import RunStore
from ponder.runs.summary import wilson_interval

TOYS_PATH = Path(__file__).with_name("_toys.py")


def _load_toys() -> ModuleType:
    # loaded by path so the helper works whatever the tests' package layout
    spec = importlib.util.spec_from_file_location("ponder_eval_test_toys", TOYS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


toys = _load_toys()
ToyTask = toys.ToyTask
Vote = toys.Vote
toy_responder = toys.toy_responder
problem_number = toys.problem_number


def engine(**kw: Any) -> ScriptedEngine:
    return ScriptedEngine(toy_responder, **kw)


async def run(store: RunStore | Path, problems: Sequence[Problem], **kw: Any) -> EvalSummary:
    """``evaluate`` with the toy task, a majority-of-3 strategy and a scripted engine."""
    args: dict[str, Any] = {
        "task": ToyTask(size=100),
        "problems": problems,
        "strategy": Vote(n=3),
        "engine": engine(),
        "store": store,
        "progress": False,
    }
    args.update(kw)
    return await evaluate(**args)


async def test_every_problem_gets_one_graded_record(tmp_path: Path) -> None:
    task = ToyTask(size=8)
    eng = engine()
    with RunStore(tmp_path / "run.db") as store:
        summary = await run(store, task.load(), engine=eng)
        records = store.records()
    assert (summary.total, summary.done_now, summary.skipped, summary.errors) == (8, 8, 0, 0)
    assert summary.graded == 8 and summary.correct == 6  # problems 3 and 7 are wrong
    assert summary.accuracy == pytest.approx(0.75)
    assert (summary.ci_low, summary.ci_high) == pytest.approx(wilson_interval(6, 8))
    assert [r.problem_id for r in records] == [f"p{i}" for i in range(8)]
    r3 = records[3]
    assert r3.answer == "0" and not r3.correct and r3.answer_correct == {"0": False}
    r0 = records[0]
    assert r0.correct and r0.answer_correct == {"1": True} and r0.reference == "1"
    assert len(r0.candidates) == 3 and r0.votes == {"1": 3.0}
    # prompt "user: What is 0 plus one?" is 6 words, prefilled once; 8 words generated each
    assert r0.usage.prompt_tokens == 6 and r0.usage.cached_tokens == 12
    assert r0.usage.completion_tokens == 24
    assert summary.mean_tokens == pytest.approx(30)
    assert r0.error is None and r0.seconds >= 0
    assert len(eng.requests) == 8


async def test_resume_skips_finished_problems(tmp_path: Path) -> None:
    problems = ToyTask(size=8).load()
    db = tmp_path / "run.db"
    first = await run(db, problems[:5])
    assert first.done_now == 5
    eng = engine()
    second = await run(db, problems, engine=eng)
    assert (second.done_now, second.skipped, second.errors, second.graded) == (3, 5, 0, 8)
    assert sorted(problem_number(r) for r in eng.requests) == [5, 6, 7]
    with RunStore(db) as store:
        assert len(store) == 8
    third = await run(db, problems, engine=(eng3 := engine()))
    assert (third.done_now, third.skipped) == (0, 8) and eng3.requests == []
    assert third.accuracy == second.accuracy


async def test_a_different_config_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    problems = ToyTask(size=3).load()
    await run(db, problems, strategy=Vote(n=3))
    with pytest.raises(ConfigError) as err:
        await run(db, problems, strategy=Vote(n=5))
    assert "strategy.options.n: stored 3, now 5" in str(err.value)
    assert "--out" in str(err.value)
    with pytest.raises(ConfigError, match="max_tokens"):
        await run(db, problems, max_tokens=64)
    with pytest.raises(ConfigError, match="seed"):
        await run(db, problems, seed=1)
    # same configuration: resumes
    assert (await run(db, problems)).skipped == 3


async def test_failed_problems_are_recorded_then_retried(tmp_path: Path) -> None:
    failing = {2, 5}

    def responder(request: GenRequest, index: int) -> str:
        if problem_number(request) in failing:
            raise RuntimeError("parser exploded")
        return toy_responder(request, index)

    problems = ToyTask(size=8).load()
    db = tmp_path / "run.db"
    first = await run(db, problems, engine=ScriptedEngine(responder))
    assert (first.done_now, first.errors, first.graded, first.pending) == (6, 2, 6, 0)
    with RunStore(db) as store:
        bad = store.get("p2")
        assert bad is not None and bad.error == "RuntimeError: parser exploded"
        assert store.done_ids() == {f"p{i}" for i in range(8)} - {"p2", "p5"}
    failing.clear()
    second = await run(db, problems, engine=ScriptedEngine(responder))
    assert (second.done_now, second.skipped, second.errors) == (2, 6, 0)
    with RunStore(db) as store:
        records = store.records()
        assert len(records) == 8 and all(r.ok for r in records)
        rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM records").fetchone()
        assert rows == (8,)


async def test_an_unreachable_engine_stops_the_run(tmp_path: Path) -> None:
    calls = 0

    def down(_request: GenRequest, _index: int) -> str:
        nonlocal calls
        calls += 1
        raise EngineError("connection refused by 127.0.0.1:8080")

    db = tmp_path / "run.db"
    with pytest.raises(EngineError, match="connection refused") as err:
        await run(db, ToyTask(size=50).load(), engine=ScriptedEngine(down), concurrency=2)
    assert any("first 3 problems" in note for note in err.value.__notes__)
    assert calls <= 4
    with RunStore(db) as store:
        assert len(store) == 0


async def test_engine_errors_after_a_success_are_recorded(tmp_path: Path) -> None:
    def flaky(request: GenRequest, index: int) -> str:
        if problem_number(request) != 0:
            raise EngineError("model crashed")
        return toy_responder(request, index)

    summary = await run(
        tmp_path / "run.db", ToyTask(size=6).load(), engine=ScriptedEngine(flaky), concurrency=1
    )
    assert (summary.done_now, summary.errors) == (1, 5)


async def test_few_problems_all_failing_are_recorded(tmp_path: Path) -> None:
    def down(_request: GenRequest, _index: int) -> str:
        raise EngineError("down")

    # two attempts never reach the abort threshold of concurrency + 1
    summary = await run(tmp_path / "run.db", ToyTask(size=2).load(), engine=ScriptedEngine(down))
    assert (summary.done_now, summary.errors) == (0, 2)
    with RunStore(tmp_path / "run.db") as store:
        assert store.error_count() == 2


class CountingEngine:
    """Wraps an engine and records the most generate calls ever in flight at once."""

    def __init__(self, inner: ScriptedEngine, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.active = 0
        self.peak = 0

    @property
    def name(self) -> str:
        return "counting"

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
            return await self.inner.generate(requests)
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        return None


async def test_concurrency_bounds_problems_in_flight(tmp_path: Path) -> None:
    eng = CountingEngine(engine(), delay=0.01)
    summary = await run(tmp_path / "run.db", ToyTask(size=12).load(), engine=eng, concurrency=3)
    assert summary.done_now == 12 and eng.peak == 3


async def test_each_problem_gets_a_stable_seed_and_fresh_context(tmp_path: Path) -> None:
    eng = engine()
    await run(tmp_path / "run.db", ToyTask(size=6).load(), engine=eng, seed=7)
    seeds = {problem_number(r): r.seed for r in eng.requests}
    assert seeds == {i: problem_seed(7, f"p{i}") for i in range(6)}
    assert problem_seed(7, "p1") == (7 + zlib.crc32(b"p1")) % 2**31


async def test_grading_runs_off_the_event_loop(tmp_path: Path) -> None:
    graded_on: set[int] = set()

    class SlowGrader(ToyTask):  # type: ignore[misc, valid-type]
        def is_correct(self, predicted: str | None, problem: Problem) -> bool:
            graded_on.add(threading.get_ident())
            return bool(super().is_correct(predicted, problem))

    await run(tmp_path / "run.db", ToyTask(size=3).load(), task=SlowGrader(size=3))
    assert graded_on and threading.get_ident() not in graded_on


async def test_cancelling_keeps_finished_records_and_resumes(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    problems = ToyTask(size=20).load()
    store = RunStore(db)
    job = asyncio.create_task(run(store, problems, engine=engine(delay=0.02), concurrency=2))
    while len(store) < 4:
        await asyncio.sleep(0.005)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    written = {r.problem_id: r.finished_at for r in store.records()}
    assert 4 <= len(written) < 20
    assert store.error_count() == 0
    store.close()
    summary = await run(db, problems)
    assert summary.skipped == len(written) and summary.done_now == 20 - len(written)
    with RunStore(db) as again:
        after = {r.problem_id: r.finished_at for r in again.records()}
    assert len(after) == 20
    assert all(after[k] == v for k, v in written.items())


async def test_duplicate_problem_ids_are_refused(tmp_path: Path) -> None:
    p = Problem(id="same", question="What is 1 plus one?", answer="2")
    with pytest.raises(ConfigError, match="twice"):
        await run(tmp_path / "run.db", [p, p])


def test_run_eval_is_a_sync_wrapper_with_a_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = ToyTask(size=4)
    summary = run_eval(
        task=task,
        problems=task.load(),
        strategy=Vote(n=2),
        engine=engine(),
        store=str(tmp_path / "run.db"),
        progress=True,
    )
    assert summary.done_now == 4 and summary.path.endswith("run.db")
    err = capsys.readouterr().err
    assert "4/4" in err and "acc=" in err
    assert "accuracy 0.750" in str(summary)
    assert json.loads(json.dumps(summary.to_dict()))["pending"] == 0


# -- crash safety: real processes, real signals ------------------------------------------


# Problems in a run that a test interrupts: at 0.15 s each it lasts 45 s uninterrupted, far
# longer than a loaded machine needs to deliver the signal.
LONG_RUN = 300


def _default_sigint() -> None:
    # An ignored SIGINT survives exec, and Python started that way never raises
    # KeyboardInterrupt; some library in the test session leaves it ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(db: Path, size: int, delay: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(TOYS_PATH), str(db), str(size), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint if os.name == "posix" else None,
    )


def _wait_for_rows(db: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                (rows,) = conn.execute("SELECT COUNT(*) FROM records").fetchone()
            if rows >= at_least:
                return
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.01)
    raise AssertionError("no records appeared")


def _finish_times(db: Path) -> dict[str, float]:
    with RunStore(db, create=False) as store:
        return {r.problem_id: r.finished_at for r in store.records()}


@pytest.mark.timeout(120)
def test_kill_9_loses_only_problems_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    proc = _start(db, size=LONG_RUN, delay=0.15)
    _wait_for_rows(db, proc, at_least=5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = _finish_times(db)
    assert 5 <= len(before) < LONG_RUN

    rerun = subprocess.run(
        [sys.executable, str(TOYS_PATH), str(db), str(LONG_RUN), "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(rerun.stdout)
    assert summary["skipped"] == len(before)
    assert summary["done_now"] == LONG_RUN - len(before)
    assert summary["errors"] == 0 and summary["graded"] == LONG_RUN

    after = _finish_times(db)
    assert sorted(after) == sorted(f"p{i}" for i in range(LONG_RUN))
    assert all(after[k] == v for k, v in before.items()), "a finished problem was redone"
    with sqlite3.connect(db) as conn:
        count, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT problem_id) FROM records"
        ).fetchone()
    assert count == distinct == LONG_RUN


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    proc = _start(db, size=LONG_RUN, delay=0.15)
    _wait_for_rows(db, proc, at_least=3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    with RunStore(db, create=False) as store:
        assert 3 <= len(store) < LONG_RUN and store.error_count() == 0


def test_a_strategy_account_of_itself_is_stored_with_its_record(tmp_path: Path) -> None:
    from ponder.strategies import make_strategy

    task = ToyTask(size=3)
    run_eval(
        task=task, problems=task.load(), engine=ScriptedEngine(toy_responder),
        strategy=make_strategy("adaptive_consistency", {"max_n": 6}),
        store=tmp_path / "ac.db", progress=False,
    )  # fmt: skip
    with RunStore(tmp_path / "ac.db", create=False) as store:
        records = store.records()
    for r in records:
        # every sample agrees, so the Beta rule stops as soon as it may (4 unanimous)
        assert r.meta["samples"] == len(r.candidates) == 4
        assert r.meta["stop_reason"].startswith("beta")
