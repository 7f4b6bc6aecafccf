"""The task behind a served request: the client's own messages are the prompt.

Answers vote by what ``ponder.grading.answers.extract_answer`` finds (a boxed or final
number, as in the math tasks); a reply with no such answer votes by its whole text,
blank space collapsed, so free-form replies still agree when they say the same thing.
Both read a reasoning model's final answer only, never its thinking
(``ponder.core.reasoning``). Open-ended replies, which never repeat word for word, are
selected by meaning instead (``ponder.serve.freeform``).
A reply that calls tools votes by its calls (``ponder.serve.tools.call_key``).
"""

from __future__ import annotations

from ponder.core.reasoning import final_answer
from ponder.core.types import Message, Problem
from ponder.grading.answers import extract_answer
from ponder.serve.tools import call_key

__all__ = ["ChatTask", "chat_problem"]


def chat_problem(request_id: str, messages: tuple[Message, ...]) -> Problem:
    """A problem whose prompt is ``messages`` (its question: the last user turn)."""
    question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return Problem(id=request_id, question=question, meta={"messages": messages})


class ChatTask:
    """A task that sends each problem's own messages and has no reference answers."""

    name = "chat"

    def load(self, limit: int | None = None) -> list[Problem]:
        return []

    def messages(self, problem: Problem) -> tuple[Message, ...]:
        messages = problem.meta.get("messages")
        if isinstance(messages, tuple) and messages:
            return messages
        return (Message("user", problem.question),)

    def extract(self, text: str) -> str | None:
        text = final_answer(text)
        calls = call_key(text)
        if calls is not None:
            return calls
        found = extract_answer(text)
        if found is not None:
            return found
        collapsed = " ".join(text.split())
        return collapsed or None

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        return False  # a served request has no reference answer
