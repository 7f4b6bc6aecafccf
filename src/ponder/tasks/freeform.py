"""Free-form answers: questions whose answers are words, not numbers.

``FreeformTask`` reads a JSONL file like ``JsonlTask`` but asks for a short answer on
a last line ``Answer: ...`` and grades it by exact match after ``normalize_answer``
(case, accents, punctuation, articles, spacing). ``JudgeGradedTask`` grades by asking a
model whether the answer means the same as the reference (an exact match needs no
question), through the engine the eval runs on or one given to it.

The reference answer field may hold one answer or a list of accepted answers (as
TriviaQA-style data has aliases); any of them matches, and the first is the reference
a record shows. The list stays with the task, so strategies never see it.

Extraction (``answer_from``): ``line`` takes the text after the last "Answer:" (or
"Final answer:", "The answer is") marker, the next non-empty line when the marker ends
its line, and without a marker the last non-empty line; ``text`` takes the whole
completion, for prompts that ask for the answer alone. Spacing is collapsed and
wrapping emphasis (``**``, quotes, ``\\boxed{}``) removed; the text is otherwise kept as
written, so plain majority voting sees every spelling apart and ``semantic_majority``
shows what clustering adds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError
from ponder.core.task import Grading
from ponder.core.types import Message, Problem
from ponder.grading.freeform import ask_yes_no, normalize_answer
from ponder.tasks.jsonl import FileTask

if TYPE_CHECKING:
    from ponder.core.budget import Ledger
    from ponder.core.engine import Engine

__all__ = [
    "ANSWER_FROM",
    "GRADERS",
    "FreeformTask",
    "JudgeGradedTask",
    "extract_free_answer",
    "freeform_task",
]

ANSWER_FROM = ("line", "text")
GRADERS = ("exact", "judge")

SYSTEM_PROMPT = "You answer questions accurately and concisely."
LINE_TEMPLATE = (
    "{question}\n\nThink it through briefly if you need to, then give your final answer "
    "on the last line, in the form:\nAnswer: <your answer>"
)
TEXT_TEMPLATE = "{question}\n\nReply with the answer only."

_MARKER_RE = re.compile(
    r"(?:^|(?<=[^\w]))(?:the\s+)?(?:final\s+)?answer"
    r"(?:\s+is\b(?:[ \t]*[*_]*[ \t]*[:：])?|[ \t]*[*_]*[ \t]*[:：])[ \t*_]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_WRAPPERS = "*_`\"'“”‘’ \t"
_BOXED_RE = re.compile(r"^\\boxed\{(.*)\}$", re.DOTALL)
_SPACE_RE = re.compile(r"\s+")


def _clean(text: str) -> str | None:
    text = _SPACE_RE.sub(" ", text).strip().strip(_WRAPPERS).strip()
    boxed = _BOXED_RE.match(text)
    if boxed:
        text = boxed.group(1).strip()
    return text or None


def extract_free_answer(text: str, answer_from: str = "line") -> str | None:
    """The answer in a completion (see the module doc), or None when it is empty."""
    if answer_from == "text":
        return _clean(text)
    if answer_from != "line":
        raise ConfigError(
            f"answer_from must be one of {', '.join(ANSWER_FROM)}, got {answer_from!r}"
        )
    markers = list(_MARKER_RE.finditer(text))
    if markers:
        last = markers[-1]
        answer = _clean(last.group(1))
        if answer is not None:
            return answer
        following = [line for line in text[last.end() :].splitlines() if line.strip()]
        return _clean(following[0]) if following else None
    lines = [line for line in text.splitlines() if line.strip()]
    return _clean(lines[-1]) if lines else None


def _references(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    refs = []
    for item in items:
        if isinstance(item, dict | list) or item is None:
            raise ConfigError(f"{where}: a reference answer must be text or a number, got {item!r}")
        text = str(item).strip()
        if text:
            refs.append(text)
    if not refs:
        raise ConfigError(f"{where}: the reference answer is empty")
    return tuple(refs)


class FreeformTask(FileTask):
    """A JSONL file of questions with free-form reference answers, graded by exact match
    after normalisation. Without a path it has no problems: its prompt and extraction
    still serve single questions (``ponder run --answer-type free``)."""

    grader = "exact"

    def __init__(
        self,
        path: str | Path | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        id_field: str | None = None,
        name: str = "jsonl",
        answer_from: str = "line",
        split: str | None = None,
    ) -> None:
        if answer_from not in ANSWER_FROM:
            raise ConfigError(
                f"answer_from must be one of {', '.join(ANSWER_FROM)}, got {answer_from!r}"
            )
        super().__init__(path, question_field, answer_field, id_field, name, split)
        self.answer_from = answer_from
        self._accepted: dict[str, tuple[str, ...]] = {}

    def _load_all(self) -> list[Problem]:
        loaded = self._file_problems(_references)
        for problem, refs in loaded:
            self._accepted[problem.id] = refs
        return [problem for problem, _ in loaded]

    def accepted_answers(self, problem: Problem) -> tuple[str, ...]:
        """Every reference answer that counts as correct for ``problem``."""
        if problem.id in self._accepted:
            return self._accepted[problem.id]
        return () if problem.answer is None else (problem.answer,)

    def messages(self, problem: Problem) -> tuple[Message, ...]:
        template = LINE_TEMPLATE if self.answer_from == "line" else TEXT_TEMPLATE
        return (
            Message("system", SYSTEM_PROMPT),
            Message("user", template.format(question=problem.question.strip())),
        )

    def extract(self, text: str) -> str | None:
        return extract_free_answer(text, self.answer_from)

    def matches_exactly(self, predicted: str, problem: Problem) -> bool:
        key = normalize_answer(predicted)
        return any(key == normalize_answer(ref) for ref in self.accepted_answers(problem))

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        if predicted is None:
            return False
        return self.matches_exactly(predicted, problem)

    def __repr__(self) -> str:
        path = None if self.path is None else str(self.path)
        return f"{type(self).__name__}({path!r}, name={self.name!r})"


GRADE_SYSTEM = (
    "You grade answers to questions against a reference answer. Reply with one word: "
    "Yes if the proposed answer means the same as the reference (other wording, spelling "
    "or extra correct detail is fine), No if it is wrong, different, vague or missing."
)


def grade_messages(question: str, references: Sequence[str], answer: str) -> tuple[Message, ...]:
    refs = references[0] if len(references) == 1 else "; ".join(references)
    label = "Reference answer" if len(references) == 1 else "Accepted answers (any of)"
    return (
        Message("system", GRADE_SYSTEM),
        Message(
            "user",
            f"Question:\n{question}\n\n{label}:\n{refs}\n\nProposed answer:\n{answer}\n\n"
            "Is the proposed answer correct? Answer Yes or No.",
        ),
    )


class JudgeGradedTask(FreeformTask):
    """``FreeformTask`` graded by a model: an answer that matches a reference exactly
    (after normalisation) is correct; any other is shown to the judge with the question
    and the accepted answers, at temperature 0, and is correct when it says yes (P(yes)
    above 0.5 when the engine gives logprobs). A reply that is neither yes nor no grades
    the answer wrong and says so in the details (``by: "unclear"``).

    The judge is ``judge_engine`` when given, else the engine ``grade_answers`` is
    passed (the eval's own model, judging answers to its own questions: cheap, but a
    small model is a weak judge; give a stronger one when you have it).
    """

    grader = "judge"

    def __init__(
        self,
        path: str | Path | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        id_field: str | None = None,
        name: str = "jsonl",
        answer_from: str = "line",
        judge_engine: Engine | None = None,
        max_answer_chars: int = 1000,
        split: str | None = None,
    ) -> None:
        super().__init__(path, question_field, answer_field, id_field, name, answer_from, split)
        self.judge_engine = judge_engine
        self.max_answer_chars = max_answer_chars

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        raise ConfigError(
            f"task {self.name!r} grades answers with a judge model, which needs an engine: "
            "use `await task.grade_answers(...)` (ponder eval does), or grade by exact match"
        )

    async def grade_answers(
        self, answers: Sequence[str], problem: Problem, engine: Engine, ledger: Ledger
    ) -> Grading:
        from ponder.core.context import Context

        refs = self.accepted_answers(problem)
        correct: dict[str, bool] = {}
        details: dict[str, Any] = {}
        asked: list[str] = []
        for a in dict.fromkeys(answers):
            if self.matches_exactly(a, problem):
                correct[a] = True
                details[a] = {"by": "exact"}
            elif not refs:
                correct[a] = False
                details[a] = {"by": "no reference"}
            else:
                asked.append(a)
        if asked:
            ctx = Context(engine=self.judge_engine or engine, task=self, ledger=ledger)
            prompts = [
                grade_messages(problem.question, refs, a[: self.max_answer_chars]) for a in asked
            ]
            verdicts = await ask_yes_no(ctx, prompts, label="grade:judge")
            for a, v in zip(asked, verdicts, strict=True):
                correct[a] = bool(v.yes)
                details[a] = {
                    "by": "judge" if v.yes is not None else "unclear",
                    "reply": v.reply,
                    "p_yes": v.p_yes,
                }
        return Grading(correct, details)


def freeform_task(
    path: str | Path | None,
    *,
    grader: str = "exact",
    **fields: Any,
) -> FreeformTask:
    """The free-form task for ``grader`` (``exact`` or ``judge``)."""
    if grader == "exact":
        return FreeformTask(path, **fields)
    if grader == "judge":
        return JudgeGradedTask(path, **fields)
    raise ConfigError(f"grader must be one of {', '.join(GRADERS)}, got {grader!r}")
