"""The seams of a run: the job every problem is solved with, the executor protocol and
the local executor, and what ``evaluate`` derives from its arguments (the strategy
built with a replay bank's sampling, the policy's hash)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from ponder.core.errors import ConfigError
from ponder.core.types import GenRequest, Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.executor import LocalExecutor
from ponder.runs.job import SolveJob, problem_seed
from ponder.runs.replay import SampleBank
from ponder.runs.runner import evaluate, run_eval
from ponder.runs.settings import build_strategy, config_extra_for, policy_sha256
from ponder.runs.solve import solve_problem
from ponder.runs.store import Record, RunStore
from ponder.strategies import ComputeOptimal, Majority, make_strategy
from ponder.tasks import make_task

DEMO = make_task("demo")
PROBLEMS = DEMO.load(3)
# a bank that records the three problems (no samples: the executor here draws nothing)
BANK = SampleBank.of(
    DEMO, [(p, ()) for p in PROBLEMS], temperature=0.6, top_p=0.9, max_tokens=32, model="m"
)


def _answer(request: GenRequest, _index: int) -> str:
    return f"so \\boxed{{{(request.seed or 0) % 3}}}"


def _job(**kw: Any) -> SolveJob:
    settings: dict[str, Any] = {"strategy": Majority(n=2), "max_tokens": 16, "seed": 5}
    return SolveJob(task=DEMO, **(settings | kw))


def test_a_job_is_frozen_and_derives_each_problems_seed() -> None:
    job = _job()
    assert job.seed_for("demo-01") == problem_seed(5, "demo-01") != job.seed_for("demo-02")
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 6  # type: ignore[misc]


def test_the_local_executor_solves_as_solve_problem_does() -> None:
    job = _job()

    async def go() -> tuple[str, list[Record], list[Record]]:
        executor = LocalExecutor(ScriptedEngine(_answer, name="seeded"), concurrency=2)
        with pytest.raises(RuntimeError, match="before start"):
            await executor.solve(0, 0, PROBLEMS[0])
        name = await executor.start(job)
        local = [(await executor.solve(i % 2, i, p))[0] for i, p in enumerate(PROBLEMS)]
        await executor.close()
        engine = ScriptedEngine(_answer, name="seeded")
        direct = [(await solve_problem(job, engine, i, p))[0] for i, p in enumerate(PROBLEMS)]
        return name, local, direct

    name, local, direct = asyncio.run(go())
    assert name == "seeded"
    assert [(r.answer, r.votes, r.usage) for r in local] == [
        (r.answer, r.votes, r.usage) for r in direct
    ]
    assert {r.answer for r in local} != {None}
    assert LocalExecutor(ScriptedEngine(_answer), concurrency=3).slots == 3
    with pytest.raises(ConfigError, match="concurrency must be >= 1"):
        LocalExecutor(ScriptedEngine(_answer), concurrency=0)


class _Recording:
    """An executor that solves in this process and says what it was asked."""

    def __init__(self) -> None:
        self.engine = ScriptedEngine(_answer, name="recorded")
        self.jobs: list[SolveJob] = []
        self.slots_used: set[int] = set()
        self.closed = False

    @property
    def slots(self) -> int:
        return 2

    async def start(self, job: SolveJob) -> str:
        self.jobs.append(job)
        return "remote-model"

    async def solve(self, slot: int, idx: int, problem: Problem) -> tuple[Record, Any]:
        self.slots_used.add(slot)
        return await solve_problem(self.jobs[-1], self.engine, idx, problem)

    async def close(self) -> None:
        self.closed = True


def test_evaluate_hands_an_executor_one_job_and_names_the_run_by_its_engine(
    tmp_path: Path,
) -> None:
    executor = _Recording()
    summary = run_eval(
        task=DEMO, problems=PROBLEMS, strategy="majority", strategy_options={"n": 2},
        engine=None, store=tmp_path / "run.db", max_tokens=16, seed=5, budget=400,
        progress=False, executor=executor, replay_bank=BANK,
    )  # fmt: skip
    assert summary.graded == len(PROBLEMS) and executor.closed
    (job,) = executor.jobs
    assert (job.task, job.max_tokens, job.seed, job.budget) == (DEMO, 16, 5, 400)
    # built by name, with the replay bank's sampling since none was given
    assert job.strategy == Majority(n=2, temperature=0.6, top_p=0.9)
    assert executor.slots_used == {0, 1}
    with RunStore(tmp_path / "run.db", create=False) as store:
        config = store.config()
    assert config is not None and config["model"] == "remote-model"
    assert "model_sha256" not in config  # the executor does not say


def test_evaluate_checks_a_remote_replay_bank_before_the_run(tmp_path: Path) -> None:
    """The executor's replay engines are remote: ``evaluate`` checks their bank against
    the problems itself (as ``ponder eval --executor ray --replay`` did), before any
    problem runs, and records the bank in the run's configuration."""
    other = SampleBank(samples={}, temperature=0.6, top_p=0.9, max_tokens=32, model="m")
    executor = _Recording()
    with pytest.raises(ConfigError, match="no samples for 3 of the 3 problems"):
        run_eval(
            task=DEMO, problems=PROBLEMS, strategy="majority", engine=None,
            store=tmp_path / "run.db", progress=False, executor=executor, replay_bank=other,
        )  # fmt: skip
    assert executor.jobs == []
    run_eval(
        task=DEMO, problems=PROBLEMS, strategy="majority", engine=None,
        store=tmp_path / "ok.db", progress=False, executor=_Recording(), replay_bank=BANK,
    )  # fmt: skip
    with RunStore(tmp_path / "ok.db", create=False) as store:
        config = store.config()
    assert config is not None
    assert config["max_tokens"] == 32  # the bank's, as none was given
    assert config["extra"]["replay"] == BANK.describe() | {"extend": False}


def test_run_eval_takes_evaluates_keywords() -> None:
    assert inspect.signature(run_eval).parameters == inspect.signature(evaluate).parameters
    assert run_eval.__name__ == "run_eval"


def test_strategy_options_go_with_a_strategys_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="strategy_options go with a strategy's name"):
        run_eval(
            task=DEMO, problems=PROBLEMS, strategy=Majority(n=2), strategy_options={"n": 3},
            engine=ScriptedEngine(_answer), store=tmp_path / "run.db", progress=False,
        )  # fmt: skip
    assert not (tmp_path / "run.db").exists()


def test_a_bank_gives_the_sampling_the_options_leave_unset() -> None:
    assert build_strategy("majority", {"n": 4}, BANK) == Majority(4, 0.6, 0.9)
    given = build_strategy("majority", {"n": 4, "temperature": 0.2, "top_p": None}, BANK)
    assert given == Majority(4, 0.2, 0.9)
    assert build_strategy("majority", {"n": 4}) == Majority(4, 0.7, 0.95)
    # single's defaults are greedy: a bank drawn at 0.6 makes it sample at 0.6
    assert build_strategy("single", {}, BANK) == make_strategy(
        "single", {"temperature": 0.6, "top_p": 0.9}
    )


def test_the_optimal_strategy_adds_its_policy_files_hash(tmp_path: Path) -> None:
    majority = Majority(n=2)
    assert policy_sha256(majority) is None
    assert config_extra_for(majority, None) is None
    assert config_extra_for(majority, {"a": 1}) == {"a": 1}
    policy = _policy(tmp_path)
    optimal = ComputeOptimal(policy=str(policy), budget=1000.0)
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert policy_sha256(optimal) == digest
    assert config_extra_for(optimal, {"a": 1}) == {"a": 1, "policy_sha256": digest}
    # the file is what runs: its hash replaces one given
    assert config_extra_for(optimal, {"policy_sha256": "x"}) == {"policy_sha256": digest}


def _policy(tmp_path: Path) -> Path:
    """A policy from ``ponder optimize`` on a small scripted bank."""
    from ponder.cli import main

    bank = tmp_path / "bank.db"
    run_eval(
        task=DEMO, problems=DEMO.load(None), strategy=Majority(n=4),
        engine=ScriptedEngine(_answer), store=bank, max_tokens=16, progress=False,
    )  # fmt: skip
    policy = tmp_path / "policy.json"
    assert main(["optimize", str(bank), "--out", str(policy), "--pilot", "2"]) == 0
    assert json.loads(policy.read_text())["budgets"]
    return policy
