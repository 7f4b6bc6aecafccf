"""Grades that did not decide (error, timeout) on records, in the summary and the report;
accuracy with failed problems counted both ways."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ponder.analysis.report import summarize_run, write_report
from ponder.core.types import GenRequest, Grade
from ponder.engines.scripted import ScriptedEngine
from ponder.grading import answers as grading
from ponder.runs.runner import EvalSummary, evaluate
from ponder.runs.store import Record, RunStore
from ponder.strategies import make_strategy
from ponder.tasks import JsonlTask

# sympy would evaluate a power with ten billion digits in its exponent
HOSTILE = r"10^{10^{10^{10}}}"


def _task(tmp_path: Path, size: int) -> JsonlTask:
    data = tmp_path / "q.jsonl"
    rows = [{"question": f"What is {i} plus five?", "answer": str(i + 5)} for i in range(size)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return JsonlTask(data)


def _responder(hostile: set[int], failing: set[int]) -> Callable[[GenRequest, int], str]:
    def respond(request: GenRequest, _index: int) -> str:
        assert request.messages is not None
        i = int(request.messages[-1].content.split("What is ")[1].split()[0])
        if i in failing:
            raise RuntimeError("the engine fell over")
        return rf"So \boxed{{{HOSTILE if i in hostile else i + 5}}}"

    return respond


async def _run(tmp_path: Path, hostile: set[int], failing: set[int], size: int = 4) -> EvalSummary:
    task = _task(tmp_path, size)
    return await evaluate(
        task=task,
        problems=task.load(),
        strategy=make_strategy("single", {}),
        engine=ScriptedEngine(_responder(hostile, failing)),
        store=tmp_path / "run.db",
        progress=False,
    )


async def test_a_grading_timeout_is_recorded_counted_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grading, "DEFAULT_TIMEOUT_S", 1.0)
    summary = await _run(tmp_path, hostile={1}, failing=set())
    with RunStore(tmp_path / "run.db") as store:
        records = {r.problem_id: r for r in store.records()}
    stuck = records["jsonl-0001"]
    assert stuck.answer == HOSTILE and not stuck.correct
    timeout = {"status": "timeout", "reason": "math-verify did not finish within 1s"}
    assert stuck.meta["grading_status"] == {**timeout, "answers": {HOSTILE: timeout}}
    assert stuck.grade == Grade("timeout", "math-verify did not finish within 1s")
    assert records["jsonl-0000"].meta["grading_status"] == {"status": "correct"}
    assert (summary.graded, summary.correct, summary.grading_errors) == (4, 3, 1)
    assert "1 grading errors/timeouts" in str(summary)
    run = summarize_run(tmp_path / "run.db")
    assert run.grading_errors == 1 and run.to_dict()["grading_errors"] == 1
    page = write_report([tmp_path / "run.db"], tmp_path / "report", bootstrap=10).html
    assert "1 grading error/timeout" in page.read_text()


async def test_failed_problems_give_a_second_accuracy_counting_them_wrong(
    tmp_path: Path,
) -> None:
    summary = await _run(tmp_path, hostile=set(), failing={2}, size=5)
    assert (summary.graded, summary.correct, summary.errors) == (4, 4, 1)
    assert summary.accuracy == 1.0 and summary.accuracy_errors_as_wrong == pytest.approx(0.8)
    assert summary.to_dict()["accuracy_errors_as_wrong"] == pytest.approx(0.8)
    assert "accuracy 1.000" in str(summary) and "0.800 counting the 1 failed as wrong" in str(
        summary
    )
    run = summarize_run(tmp_path / "run.db")
    assert run.accuracy_errors_as_wrong == pytest.approx(0.8)
    page = write_report([tmp_path / "run.db"], tmp_path / "report", bootstrap=10).html
    assert "0.800 with the 1 failed problem counted wrong" in page.read_text()


async def test_without_failures_the_summary_shows_one_accuracy(tmp_path: Path) -> None:
    summary = await _run(tmp_path, hostile=set(), failing=set())
    assert summary.accuracy_errors_as_wrong == summary.accuracy == 1.0
    assert "counting" not in str(summary) and "0 grading errors/timeouts" in str(summary)


def test_records_written_before_grades_read_as_correct_or_wrong() -> None:
    old = Record("p", 0, "q", "1", "1", correct=True)
    assert old.grade == Grade("correct")
    assert Record("p", 0, "q", "1", "2", correct=False).grade == Grade("wrong")
