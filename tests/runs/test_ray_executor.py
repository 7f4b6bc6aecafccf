"""The Ray executor against a real local Ray: same records as the local executor, a
worker killed mid-run loses nothing, a stopped run resumes with only what is missing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.runner import evaluate
from ponder.runs.store import Record, RunStore
from ponder.strategies import make_strategy
from ponder.tasks import make_task

ray = pytest.importorskip("ray")


def _answer(request: GenRequest, _index: int) -> str:
    """Depends only on the request (its seed and question), never on which engine or
    how many samples it drew before: the same under any executor."""
    seed = request.seed or 0
    assert request.messages is not None
    words = len(request.messages[-1].content.split())
    return f"Let me count. The answer is \\boxed{{{(seed + words) % 3}}}."


def scripted(delay: float = 0.0) -> ScriptedEngine:
    return ScriptedEngine(_answer, name="scripted-seeded", delay=delay)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Any:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _strip(records: list[Record]) -> list[tuple[Any, ...]]:
    return [
        (r.problem_id, r.answer, r.correct, dict(r.votes), r.candidates, r.usage, r.error)
        for r in records
    ]


def _run(out: Path, **kw: Any) -> Any:
    task = make_task("demo")
    return asyncio.run(
        evaluate(
            task=task,
            problems=task.load(None),
            strategy=make_strategy("majority", {"n": 4}),
            store=out,
            seed=3,
            progress=False,
            **kw,
        )
    )


def test_ray_gives_the_same_records_as_the_local_executor(tmp_path: Path) -> None:
    from ponder.runs.ray_executor import RayExecutor

    local = _run(tmp_path / "local.db", engine=scripted(), concurrency=3)
    remote = _run(
        tmp_path / "ray.db",
        engine=None,
        executor=RayExecutor(scripted, actors=2, per_actor=2, num_cpus=0.5),
    )
    assert remote.graded == local.graded == local.total > 5
    with RunStore(tmp_path / "local.db") as a, RunStore(tmp_path / "ray.db") as b:
        assert _strip(a.records()) == _strip(b.records())
        config_a, config_b = a.config(), b.config()
    assert config_a is not None and config_b is not None
    for key in ("created",):
        config_a.pop(key), config_b.pop(key)
    assert config_a == config_b
    # so a local run resumes a Ray run's store, and the other way round
    again = _run(tmp_path / "ray.db", engine=scripted())
    assert (again.done_now, again.skipped) == (0, local.total)


def test_a_worker_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    from ponder.runs.ray_executor import RayExecutor

    executor = RayExecutor(
        lambda: scripted(delay=0.4), actors=2, per_actor=1, num_cpus=0.5, max_restarts=1
    )
    done_at_kill: list[int] = []

    async def kill_one_when_running() -> None:
        while not executor._handles:
            await asyncio.sleep(0.05)
        pids = await executor.actor_pids()
        while True:  # kill once two problems are recorded and others are in flight
            with RunStore(tmp_path / "killed.db") as store:
                if len(store) >= 2:
                    done_at_kill.append(len(store))
                    break
            await asyncio.sleep(0.05)
        os.kill(pids[0], signal.SIGKILL)

    async def go() -> Any:
        task = make_task("demo")
        killer = asyncio.create_task(kill_one_when_running())
        summary = await evaluate(
            task=task,
            problems=task.load(None),
            strategy=make_strategy("majority", {"n": 4}),
            engine=None,
            store=tmp_path / "killed.db",
            seed=3,
            progress=False,
            executor=executor,
        )
        await killer
        return summary

    summary = asyncio.run(go())
    assert done_at_kill and done_at_kill[0] < summary.total - 2
    assert summary.graded == summary.total and summary.errors == 0
    local = _run(tmp_path / "local.db", engine=scripted())
    with RunStore(tmp_path / "local.db") as a, RunStore(tmp_path / "killed.db") as b:
        assert _strip(a.records()) == _strip(b.records())
        assert len(b) == local.total  # one record per problem, no duplicates


def test_a_stopped_ray_run_resumes_with_only_what_is_missing(tmp_path: Path) -> None:
    from ponder.runs.ray_executor import RayExecutor

    task = make_task("demo")
    problems = task.load(None)

    async def partial() -> Any:
        return await evaluate(
            task=task,
            problems=problems[:4],
            strategy=make_strategy("majority", {"n": 4}),
            engine=None,
            store=tmp_path / "run.db",
            seed=3,
            progress=False,
            executor=RayExecutor(scripted, actors=1, num_cpus=0.5),
        )

    assert asyncio.run(partial()).done_now == 4
    rest = _run(
        tmp_path / "run.db", engine=None, executor=RayExecutor(scripted, actors=2, num_cpus=0.5)
    )
    assert (rest.skipped, rest.done_now) == (4, len(problems) - 4)
