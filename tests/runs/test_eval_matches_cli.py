"""``evaluate`` from Python stores what ``ponder eval`` stores for the same run: the
replayed strategy samples at the bank's temperature and top-p when none is given, and
the compute-optimal strategy's policy hash is in the run's configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ponder.cli import main
from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.runs.runner import evaluate, run_eval
from ponder.runs.store import Record, RunStore
from ponder.strategies import make_strategy
from ponder.tasks import make_task

# never called: every sample is replayed; the model is the bank's, which a replay names
OFFLINE = ["--base-url", "http://127.0.0.1:9/v1", "--model", "scripted"]
DEMO = make_task("demo")
PROBLEMS = DEMO.load(None)
# a bank drawn away from the strategies' defaults (0.7, 0.95): a replay that did not
# take the bank's sampling would ask for samples the bank does not hold
BANK_SAMPLING = {"temperature": 0.6, "top_p": 0.9}


def _responder() -> Any:
    seen: Counter[int] = Counter()

    def respond(request: GenRequest, _index: int) -> str:
        assert request.messages is not None
        text = "\n".join(m.content for m in request.messages)
        i = next(k for k, p in enumerate(PROBLEMS) if p.question in text)
        j = seen[i]
        seen[i] += 1
        answer = PROBLEMS[i].answer if (3 * j + i) % 8 < 12 - i else str(900 + j % 2)
        return "step " * (1 + i % 3) + f"so \\boxed{{{answer}}}"

    return respond


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bank") / "maj8.db"
    run_eval(
        task=DEMO, problems=PROBLEMS, strategy=make_strategy("majority", {"n": 8, **BANK_SAMPLING}),
        engine=ScriptedEngine(_responder()), store=path, concurrency=1, max_tokens=32,
        progress=False,
    )  # fmt: skip
    return path


def _stored(path: Path) -> tuple[dict[str, Any], list[Record]]:
    with RunStore(path, create=False) as store:
        config = store.config()
        records = store.records()
    assert config is not None
    return config, records


def _assert_same_run(cli: Path, python: Path) -> None:
    """The configurations field by field (but the time each was created), and the
    records field by field (but their wall time and when they finished)."""
    cli_config, cli_records = _stored(cli)
    py_config, py_records = _stored(python)
    assert set(cli_config) == set(py_config)
    for key in cli_config.keys() - {"created"}:
        assert py_config[key] == cli_config[key], key
    assert len(cli_records) == len(py_records) == len(PROBLEMS)
    for a, b in zip(cli_records, py_records, strict=True):
        assert a.ok and b.ok, (a.error, b.error)
        for f in dataclasses.fields(Record):
            if f.name not in ("seconds", "finished_at"):
                assert getattr(b, f.name) == getattr(a, f.name), (a.problem_id, f.name)


def _python_eval(bank: Path, out: Path, strategy: Any, **options: Any) -> None:
    samples = SampleBank.from_store(bank)
    asyncio.run(
        evaluate(
            task=DEMO, problems=PROBLEMS, strategy=strategy, engine=ReplayEngine(samples, DEMO),
            store=out, progress=False, **options,
        )
    )  # fmt: skip


def test_a_replayed_strategy_samples_as_the_bank_did(bank: Path, tmp_path: Path) -> None:
    cli, python = tmp_path / "cli.db", tmp_path / "python.db"
    argv = ["eval", "--task", "demo", "--replay", str(bank), "--strategy", "majority"]
    assert main([*argv, "--n", "4", "--out", str(cli), "--no-progress", *OFFLINE]) == 0
    _python_eval(bank, python, "majority", strategy_options={"n": 4})
    _assert_same_run(cli, python)
    options = _stored(python)[0]["strategy"]["options"]
    assert (options["temperature"], options["top_p"]) == (0.6, 0.9)


def test_the_optimal_strategy_records_its_policy_hash(bank: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    assert main(["optimize", str(bank), "--out", str(policy), "--pilot", "2"]) == 0
    budget = json.loads(policy.read_text())["budgets"][-1]
    cli, python = tmp_path / "cli.db", tmp_path / "python.db"
    argv = ["eval", "--task", "demo", "--replay", str(bank), "--strategy", f"optimal:{policy}"]
    assert main([*argv, "--budget", str(budget), "--out", str(cli), "--no-progress", *OFFLINE]) == 0
    optimal = make_strategy("optimal", {"policy": str(policy), "budget": float(budget)})
    _python_eval(bank, python, optimal)
    _assert_same_run(cli, python)
    assert len(_stored(python)[0]["extra"]["policy_sha256"]) == 64
