"""The task seam: problems, their prompt, answer extraction and grading."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ponder.core.types import Grade, Message, Problem

if TYPE_CHECKING:
    from ponder.core.budget import Ledger
    from ponder.core.engine import Engine


@runtime_checkable
class Task(Protocol):
    """A benchmark or a user's data set.

    ``extract`` turns a model's solution text into a canonical answer string (or None
    when it holds no answer); two candidates vote together exactly when their
    extracted strings are equal. ``is_correct`` grades an extracted answer against
    the problem's reference.
    """

    @property
    def name(self) -> str: ...

    def load(self, limit: int | None = None) -> list[Problem]: ...

    def messages(self, problem: Problem) -> tuple[Message, ...]: ...

    def extract(self, text: str) -> str | None: ...

    def is_correct(self, predicted: str | None, problem: Problem) -> bool: ...


@runtime_checkable
class StatusGradedTask(Task, Protocol):
    """A task whose grader can fail or run out of time, and says so.

    ``grade_status`` gives the ``Grade`` of an answer: ``correct`` or ``wrong``, or
    ``error`` / ``timeout`` with the reason when the grader did not decide;
    ``is_correct`` is true exactly when it is ``correct``. The eval runner records the
    grade on every record (``meta["grading_status"]``).
    """

    def grade_status(self, predicted: str | None, problem: Problem) -> Grade: ...


@dataclass(frozen=True)
class Grading:
    """A model's grades of one problem's answers: ``correct`` per answer, and
    ``details`` per answer (how it was graded, the grader's reply)."""

    correct: Mapping[str, bool]
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class ModelGradedTask(Task, Protocol):
    """A task whose answers a model grades (free-form answers against a reference).

    Grading generates, so it is asynchronous: ``grade_answers`` grades a problem's
    distinct answers at once, on ``engine`` (or one the task holds), recording what it
    spends on ``ledger``. The eval runner awaits it with a ledger of its own, so the
    grader's tokens are reported beside the strategy's (``meta["grading"]`` of each
    record), never in them. ``is_correct`` cannot grade without a model and raises.
    """

    @property
    def grader(self) -> str: ...

    async def grade_answers(
        self, answers: Sequence[str], problem: Problem, engine: Engine, ledger: Ledger
    ) -> Grading: ...
