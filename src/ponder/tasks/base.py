"""The task seam: problems, their prompt, answer extraction and grading."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ponder.types import Message, Problem


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
