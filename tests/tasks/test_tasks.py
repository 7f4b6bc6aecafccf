"""Tasks: loading benchmark files, field mapping, errors, the demo set and the registry."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from ponder.core.errors import ConfigError
from ponder.core.types import Message, Problem
from ponder.grading.answers import canonical_answer
from ponder.tasks import (
    AIME24Task,
    DemoTask,
    GSM8KTask,
    JsonlTask,
    Math500Task,
    Task,
    make_task,
    task_names,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _data(name: str) -> Path:
    folder = DATA / name
    if not (folder / "test.jsonl").is_file():
        pytest.skip(f"benchmark data {folder}/test.jsonl is absent (expected at ../shared/data)")
    return folder


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- the real benchmark files ------------------------------------------------------


def test_gsm8k_test_split() -> None:
    task = GSM8KTask(_data("gsm8k"))
    problems = task.load()
    assert len(problems) == 1319
    first = problems[0]
    assert first.id == "gsm8k-test-0000"
    assert first.answer == "18"
    assert first.question.startswith("Janet")
    assert "####" not in first.question
    assert problems[1318].id == "gsm8k-test-1318"
    assert len({p.id for p in problems}) == 1319


def test_gsm8k_reference_answers_are_canonical_integers() -> None:
    for problem in GSM8KTask(_data("gsm8k")).load(50):
        assert problem.answer is not None
        assert re.fullmatch(r"-?\d+", problem.answer), problem
        assert canonical_answer(problem.answer) == problem.answer


def test_gsm8k_train_split_and_file_path() -> None:
    folder = _data("gsm8k")
    if not (folder / "train.jsonl").is_file():
        pytest.skip("gsm8k train.jsonl is absent")
    train = GSM8KTask(folder, split="train").load(3)
    assert [p.id for p in train] == ["gsm8k-train-0000", "gsm8k-train-0001", "gsm8k-train-0002"]
    by_file = GSM8KTask(folder / "test.jsonl").load(2)
    assert by_file == GSM8KTask(folder).load(2)


def test_math500() -> None:
    problems = Math500Task(_data("math500")).load()
    assert len(problems) == 500
    first = problems[0]
    assert first.id == "test/precalculus/807.json"
    assert first.answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert first.meta == {"subject": "Precalculus", "level": 2}
    assert len({p.id for p in problems}) == 500


def test_math500_reference_answers_grade_as_correct_when_boxed() -> None:
    task = Math500Task(_data("math500"))
    for problem in task.load():
        predicted = task.extract(f"Hence the result is $\\boxed{{{problem.answer}}}$.")
        assert task.is_correct(predicted, problem), problem


def test_aime24() -> None:
    problems = AIME24Task(_data("aime24")).load()
    assert len(problems) == 30
    assert problems[0].id == "60"
    assert problems[0].answer == "204"
    assert problems[0].meta["url"].startswith("https://")
    assert all(p.answer is not None and 0 <= int(p.answer) <= 999 for p in problems)


def test_limit_takes_the_first_problems_in_file_order() -> None:
    task = Math500Task(_data("math500"))
    assert task.load(3) == task.load()[:3]
    assert task.load(0) == []
    with pytest.raises(ConfigError):
        task.load(-1)


# --- prompts and grading ---------------------------------------------------------------


def test_messages_ask_for_a_boxed_answer() -> None:
    task = DemoTask()
    problem = task.load(1)[0]
    messages = task.messages(problem)
    assert [m.role for m in messages] == ["system", "user"]
    assert all(isinstance(m, Message) for m in messages)
    assert problem.question in messages[-1].content
    assert "\\boxed{}" in messages[-1].content
    assert problem.answer is not None
    assert problem.answer not in messages[-1].content.replace(problem.question, "")


def test_is_correct() -> None:
    task = DemoTask()
    problem = Problem("p", "What is 6 * 7?", "42")
    assert task.is_correct(task.extract("6 * 7 = 42, so \\boxed{42}."), problem)
    assert task.is_correct("42.0", problem)
    assert not task.is_correct("41", problem)
    assert not task.is_correct(None, problem)
    assert not task.is_correct("42", Problem("q", "no reference"))


def test_tasks_satisfy_the_protocol(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "t.jsonl", [{"question": "q", "answer": "1"}])
    for task in (DemoTask(), JsonlTask(path), GSM8KTask(tmp_path), Math500Task(), AIME24Task()):
        assert isinstance(task, Task)


# --- malformed files -----------------------------------------------------------------


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": \n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"bad\.jsonl:3: not valid JSON"):
        JsonlTask(path).load()


def test_non_object_line(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "list.jsonl", [{"question": "a", "answer": "1"}, [1, 2]])
    with pytest.raises(ConfigError, match=r"list\.jsonl:2: expected a JSON object"):
        JsonlTask(path).load()


def test_missing_field_names_line_and_fields_present(tmp_path: Path) -> None:
    _write_jsonl(
        tmp_path / "test.jsonl",
        [{"question": "a", "answer": "#### 1"}, {"question": "b", "solution": "2"}],
    )
    with pytest.raises(ConfigError, match=r"test\.jsonl:2: missing field 'answer'") as info:
        GSM8KTask(tmp_path).load()
    assert "fields present: question, solution" in str(info.value)
    with pytest.raises(ConfigError, match=r"test\.jsonl:1: missing field 'problem'"):
        Math500Task(tmp_path).load()


def test_gsm8k_answer_without_hashes(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "test.jsonl", [{"question": "a", "answer": "it is 4"}])
    with pytest.raises(ConfigError, match=r"test\.jsonl:1: .*####"):
        GSM8KTask(tmp_path).load()


def test_missing_file_or_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        JsonlTask(tmp_path / "nope.jsonl")
    _write_jsonl(tmp_path / "train.jsonl", [])
    with pytest.raises(ConfigError, match=r"no test\.jsonl.*train\.jsonl"):
        GSM8KTask(tmp_path).load()


def test_no_data_and_no_hub_says_pass_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    for task, fields in [
        (GSM8KTask(), "question, answer"),
        (Math500Task(), "problem, answer, unique_id"),
        (AIME24Task(), "id, problem, answer"),
    ]:
        with pytest.raises(ConfigError, match="--data PATH") as info:
            task.load()
        assert fields in str(info.value)


def _fake_datasets(monkeypatch: pytest.MonkeyPatch, load: Any) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def load_dataset(path: str, config: str | None = None, *, split: str) -> Any:
        calls.append((path, config, split))
        return load(path)

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_hub_rows_are_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {
        "openai/gsm8k": [{"question": "2 + 2?", "answer": "2 + 2 = 4\n#### 4"}],
        "HuggingFaceH4/MATH-500": [
            {"problem": "x?", "answer": "\\frac12", "unique_id": "test/a/1.json", "level": 1}
        ],
        "HuggingFaceH4/aime_2024": [{"id": 60, "problem": "y?", "answer": "204", "url": "u"}],
    }
    calls = _fake_datasets(monkeypatch, lambda path: rows[path])
    assert GSM8KTask().load() == [Problem("gsm8k-test-0000", "2 + 2?", "4")]
    assert Math500Task().load() == [Problem("test/a/1.json", "x?", "\\frac12", {"level": 1})]
    assert AIME24Task().load() == [Problem("60", "y?", "204", {"url": "u"})]
    assert calls == [
        ("openai/gsm8k", "main", "test"),
        ("HuggingFaceH4/MATH-500", None, "test"),
        ("HuggingFaceH4/aime_2024", None, "train"),
    ]


def test_hub_failure_says_pass_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(path: str) -> Any:
        raise ConnectionError("no network")

    _fake_datasets(monkeypatch, offline)
    with pytest.raises(ConfigError, match=r"ConnectionError: no network.*--data PATH"):
        GSM8KTask().load()


def test_hub_rows_with_other_fields_name_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_datasets(monkeypatch, lambda path: [{"Problem": "x", "Answer": "1", "ID": "a"}])
    with pytest.raises(ConfigError, match=r"aime_2024 train row 0: missing field 'problem'"):
        AIME24Task().load()


# --- the generic JSONL task ------------------------------------------------------------


def test_jsonl_field_mapping(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"key": "k1", "prompt": "2 + 2?", "target": 4, "level": 1, "solution": "2+2=4"},
            {"key": "k2", "prompt": "Half of 3?", "target": "1.5"},
        ],
    )
    task = JsonlTask(path, question_field="prompt", answer_field="target", id_field="key")
    problems = task.load()
    assert [p.id for p in problems] == ["k1", "k2"]
    assert problems[0] == Problem("k1", "2 + 2?", "4", {"level": 1})
    assert task.is_correct("\\frac{3}{2}", problems[1])
    assert task.name == "jsonl"


def test_jsonl_default_ids_and_name(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "x.jsonl", [{"question": "a", "answer": 2.0}] * 3)
    task = JsonlTask(path, name="mine")
    problems = task.load()
    assert [p.id for p in problems] == ["mine-0000", "mine-0001", "mine-0002"]
    assert problems[0].answer == "2"
    assert task.name == "mine"


def test_jsonl_reads_a_gsm8k_style_solution_as_its_final_answer(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "x.jsonl", [{"question": "a", "answer": "2 * 3 = 6\n#### 6"}])
    assert JsonlTask(path).load()[0].answer == "6"


def test_jsonl_missing_mapped_field_lists_fields(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "x.jsonl", [{"q": "a", "a": "1"}])
    with pytest.raises(ConfigError, match=r"x\.jsonl:1: missing field 'question'.*a, q"):
        JsonlTask(path).load()


# --- the demo set ----------------------------------------------------------------------


def test_demo_set() -> None:
    task = DemoTask()
    problems = task.load()
    assert len(problems) == 12
    assert len({p.id for p in problems}) == 12
    for problem in problems:
        assert problem.answer is not None and re.fullmatch(r"\d+", problem.answer)
        assert task.is_correct(problem.answer, problem)
        assert task.is_correct(task.extract(f"... so \\boxed{{{problem.answer}}}"), problem)
        assert not task.is_correct(str(int(problem.answer) + 1), problem)


# --- the registry ----------------------------------------------------------------------


def test_task_names() -> None:
    assert set(task_names()) == {"gsm8k", "math500", "aime24", "humaneval", "jsonl", "demo"}


def test_make_task(tmp_path: Path) -> None:
    assert isinstance(make_task("demo"), DemoTask)
    assert isinstance(make_task("gsm8k", tmp_path, split="train"), GSM8KTask)
    assert isinstance(make_task("math500"), Math500Task)
    assert isinstance(make_task("aime24"), AIME24Task)
    path = _write_jsonl(tmp_path / "x.jsonl", [{"q": "a", "a": "1"}])
    task = make_task("jsonl", path, question_field="q", answer_field="a", id_field=None)
    assert task.load()[0] == Problem("jsonl-0000", "a", "1")


def test_make_task_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'gsm9k'.*gsm8k, math500, aime24"):
        make_task("gsm9k")
    with pytest.raises(ConfigError, match="needs a data file"):
        make_task("jsonl")
    with pytest.raises(ConfigError, match="takes no data"):
        make_task("demo", tmp_path)
    with pytest.raises(ConfigError, match="does not take question_field; it takes: split"):
        make_task("gsm8k", question_field="q")
