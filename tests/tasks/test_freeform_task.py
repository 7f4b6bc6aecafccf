"""The jsonl task with free-form answers: loading, extraction, exact and judge grading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.core.types import GenRequest, Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.runner import evaluate
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy
from ponder.tasks import FreeformTask, JudgeGradedTask, ModelGradedTask, make_task
from ponder.tasks.freeform import extract_free_answer


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"question": "Capital of France?", "answer": "Paris", "topic": "geo"},
            {"question": "Who wrote Hamlet?", "answer": ["William Shakespeare", "Shakespeare"]},
            {"question": "How many legs has a spider?", "answer": 8},
        ],
    )


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Paris is big.\nAnswer: Paris", "Paris"),
        ("Answer: London\nWait, no.\nFinal answer: **Paris**", "Paris"),
        ("So the answer is Paris.", "Paris."),
        ("The answer is:\n\n  Paris  ", "Paris"),
        ("answer:   The  Eiffel\tTower", "The Eiffel Tower"),
        ("Answer: \\boxed{Paris}", "Paris"),
        ('Answer: "Paris"', "Paris"),
        ("I think it is Paris\n\nParis, France\n", "Paris, France"),  # no marker: last line
        ("", None),
        ("Answer:", None),
        ("   \n  ", None),
    ],
)
def test_extract_from_the_answer_line(text: str, answer: str | None) -> None:
    assert extract_free_answer(text, "line") == answer


def test_extract_whole_text() -> None:
    assert extract_free_answer("  The Eiffel\nTower. ", "text") == "The Eiffel Tower."
    assert extract_free_answer("  ", "text") is None
    with pytest.raises(ConfigError, match="answer_from"):
        extract_free_answer("x", "middle")


def test_loads_problems_with_accepted_answers(qa_file: Path) -> None:
    task = make_task("jsonl", data=qa_file, answer_type="free")
    assert isinstance(task, FreeformTask) and not isinstance(task, ModelGradedTask)
    p0, p1, p2 = task.load()
    assert (p0.id, p0.answer, dict(p0.meta)) == ("jsonl-0000", "Paris", {"topic": "geo"})
    # aliases stay with the task: a strategy sees neither the answer nor the list
    assert p1.answer == "William Shakespeare" and "answer" not in p1.meta
    assert task.accepted_answers(p1) == ("William Shakespeare", "Shakespeare")
    assert p2.answer == "8"
    assert task.is_correct("shakespeare.", p1) and task.is_correct("William  Shakespeare", p1)
    assert not task.is_correct("Marlowe", p1) and not task.is_correct(None, p1)
    assert task.is_correct("the paris", p0) and task.is_correct("8", p2)


def test_prompts_ask_for_an_answer_line_or_the_answer_alone(qa_file: Path) -> None:
    line = make_task("jsonl", data=qa_file, answer_type="free")
    text = make_task("jsonl", data=qa_file, answer_type="free", answer_from="text")
    problem = line.load(1)[0]
    assert "Answer: <your answer>" in line.messages(problem)[-1].content
    assert text.messages(problem)[-1].content.endswith("Reply with the answer only.")
    assert text.extract("Paris\nAnswer: London") == "Paris Answer: London"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "answer": ""}, "qa.jsonl:1: the reference answer is empty"),
        ({"question": "q", "answer": []}, "qa.jsonl:1: the reference answer is empty"),
        ({"question": "q", "answer": [{"a": 1}]}, "must be text or a number"),
        ({"question": "q"}, "missing field 'answer'"),
    ],
)
def test_bad_references_are_clear_errors(
    tmp_path: Path, row: dict[str, object], message: str
) -> None:
    task = make_task("jsonl", data=write_jsonl(tmp_path / "qa.jsonl", [row]), answer_type="free")
    with pytest.raises(ConfigError, match=re.escape(message)):
        task.load()


def test_task_options_are_checked(qa_file: Path) -> None:
    with pytest.raises(ConfigError, match="add --answer-type free"):
        make_task("jsonl", data=qa_file, grader="judge")
    with pytest.raises(ConfigError, match="answer_type must be one of math, free"):
        make_task("jsonl", data=qa_file, answer_type="prose")
    with pytest.raises(ConfigError, match="grader must be one of exact, judge"):
        make_task("jsonl", data=qa_file, answer_type="free", grader="vibes")
    with pytest.raises(ConfigError, match="answer_from must be one of line, text"):
        make_task("jsonl", data=qa_file, answer_type="free", answer_from="middle")
    with pytest.raises(ConfigError, match="without a data file"):
        FreeformTask().load()


_GRADE_RE = re.compile(r"\n\n(?:Reference answer|Accepted answers \(any of\)):\n(.*?)\n\n"
                       r"Proposed answer:\n(.*?)\n\n", re.DOTALL)  # fmt: skip


def judge_reply(
    req: GenRequest, right: dict[str, set[str]], garbage: frozenset[str] = frozenset()
) -> str | None:
    """The judge's reply to a grading prompt (None for any other prompt): Yes when the
    proposed answer is in ``right[references]``."""
    assert req.messages is not None
    m = _GRADE_RE.search(req.messages[-1].content)
    if m is None:
        return None
    refs, answer = m.groups()
    if answer in garbage:
        return "Perhaps"
    return "Yes" if answer in right.get(refs, set()) else "No"


def grading_judge(
    right: dict[str, set[str]], garbage: frozenset[str] = frozenset()
) -> ScriptedEngine:
    def respond(req: GenRequest, _i: int) -> str:
        reply = judge_reply(req, right, garbage)
        assert reply is not None, req.messages
        return reply

    return ScriptedEngine(respond)


async def test_judge_grading_asks_only_about_answers_that_do_not_match(qa_file: Path) -> None:
    task = make_task("jsonl", data=qa_file, answer_type="free", grader="judge")
    assert isinstance(task, JudgeGradedTask) and isinstance(task, ModelGradedTask)
    _, hamlet, _ = task.load()
    engine = grading_judge(
        {"William Shakespeare; Shakespeare": {"The Bard of Avon"}}, frozenset({"W. S."})
    )
    ledger = Ledger()
    answers = ["shakespeare", "The Bard of Avon", "Marlowe", "W. S."]
    grading = await task.grade_answers(answers, hamlet, engine, ledger)
    assert grading.correct == {
        "shakespeare": True,
        "The Bard of Avon": True,
        "Marlowe": False,
        "W. S.": False,
    }
    assert grading.details["shakespeare"] == {"by": "exact"}
    assert grading.details["The Bard of Avon"]["by"] == "judge"
    assert grading.details["W. S."] == {"by": "unclear", "reply": "Perhaps", "p_yes": None}
    assert len(engine.requests) == 3  # one batch, the exact match not asked
    (event,) = ledger.events
    assert event.kind == "score" and event.label == "grade:judge" and event.usage.calls == 3
    prompt = engine.requests[0].messages[-1].content  # type: ignore[index]
    assert "Question:\nWho wrote Hamlet?" in prompt
    assert "Accepted answers (any of):\nWilliam Shakespeare; Shakespeare" in prompt


async def test_judge_graded_task_refuses_synchronous_grading(qa_file: Path) -> None:
    task = make_task("jsonl", data=qa_file, answer_type="free", grader="judge")
    with pytest.raises(ConfigError, match="grades answers with a judge model"):
        task.is_correct("Paris", task.load(1)[0])


async def test_a_judge_engine_given_to_the_task_grades_instead(qa_file: Path) -> None:
    judge = grading_judge({"Paris": {"City of Light"}})
    task = JudgeGradedTask(qa_file, judge_engine=judge)
    unused = ScriptedEngine(["should not be asked"])
    grading = await task.grade_answers(["City of Light"], task.load(1)[0], unused, Ledger())
    assert grading.correct == {"City of Light": True}
    assert len(judge.requests) == 1 and unused.requests == []


async def test_eval_records_the_judges_cost_apart_from_the_strategys(
    qa_file: Path, tmp_path: Path
) -> None:
    task = make_task("jsonl", data=qa_file, answer_type="free", grader="judge")
    problems = task.load(1)  # Capital of France?
    drawn = iter(["Answer: London", "Answer: paris", "Answer: The city of Paris", "Answer: Paris"])

    def respond(req: GenRequest, _i: int) -> str:
        reply = judge_reply(req, {"Paris": {"The city of Paris"}})
        return next(drawn) if reply is None else reply

    engine = ScriptedEngine(respond)
    strategy = make_strategy("semantic_majority", {"n": 4})
    with RunStore(tmp_path / "run.db") as store:
        summary = await evaluate(
            task=task, problems=problems, strategy=strategy, engine=engine, store=store,
            progress=False,
        )  # fmt: skip
        (record,) = store.records()
    assert summary.correct == 1
    # text clusters: London | paris, Paris | The city of Paris
    assert record.answer == "paris" and record.correct
    assert record.answer_correct == {
        "London": False,
        "Paris": True,
        "The city of Paris": True,
        "paris": True,
    }
    grading = record.meta["grading"]
    assert grading["grader"] == "judge"
    # only London and "The city of Paris" needed the judge
    assert grading["usage"]["calls"] == 2 and grading["usage"]["completion_tokens"] == 2
    assert grading["answers"]["paris"] == {"by": "exact"}
    assert grading["answers"]["London"]["reply"] == "No"
    # the record's usage is the strategy's: the sampling call only
    assert record.usage.calls == 1 and record.usage.completion_tokens == 2 + 2 + 5 + 2
    assert record.meta["clusters"][1] == {"answer": "paris", "members": [1, 3]}


def test_problems_made_outside_the_file_grade_against_their_own_answer() -> None:
    task = FreeformTask()
    assert task.accepted_answers(Problem("x", "q", answer="Rome")) == ("Rome",)
    assert task.is_correct("rome", Problem("x", "q", answer="Rome"))
    assert not task.is_correct("rome", Problem("x", "q"))
