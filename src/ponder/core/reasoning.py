"""A reasoning model's thinking apart from its final answer.

Reasoning models (DeepSeek-R1 and its distillations, Qwen3, QwQ, ...) think between
``<think>`` and ``</think>`` and answer after it. A sample's text keeps both, in that
form, wherever it comes from: the embedded engine writes it so, and the OpenAI-compatible
engine joins a server's separate ``reasoning_content`` to its ``content`` with
``join_reasoning``. Whatever reads an answer (extraction, votes, free-form clusters)
reads ``final_answer`` of the text; the server returns the two parts apart.

The split (``split_reasoning``), on text whose leading blank space is ignored:

- it begins with ``<think>``: the thinking runs to the first ``</think>`` after it and
  the answer is what follows; with no ``</think>`` (thinking cut off by the token limit)
  all of it is thinking and the answer is empty;
- it has a ``</think>`` but no opening one (chat templates that open the thinking in the
  prompt, as R1's distillations do): everything before the first ``</think>`` is thinking;
- otherwise there is no thinking and the answer is the whole text.

An opening tag further into the text is not taken as thinking: an answer may well talk
about the tag.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "THINK_END",
    "THINK_START",
    "Reasoned",
    "final_answer",
    "join_reasoning",
    "split_reasoning",
]

THINK_START = "<think>"
THINK_END = "</think>"


@dataclass(frozen=True)
class Reasoned:
    """A text split into its thinking (None when it has none) and its final answer."""

    reasoning: str | None
    answer: str


def split_reasoning(text: str, start: str = THINK_START, end: str = THINK_END) -> Reasoned:
    """The thinking and the final answer of ``text``; see the module docstring. When
    there is thinking, both parts are stripped of blank space at their ends; without,
    the answer is ``text`` as it is."""
    body = text.lstrip()
    if body.startswith(start):
        thought, closed, rest = body[len(start) :].partition(end)
        if not closed:
            return Reasoned(thought.strip(), "")
        return Reasoned(thought.strip(), rest.strip())
    thought, closed, rest = body.partition(end)
    if closed and start not in thought:
        return Reasoned(thought.strip(), rest.strip())
    return Reasoned(None, text)


def final_answer(text: str) -> str:
    """``text`` without its thinking: what answers, votes and clusters read."""
    return split_reasoning(text).answer


def join_reasoning(reasoning: str | None, answer: str) -> str:
    """One text holding both parts, as a reasoning model writes it (the inverse of
    ``split_reasoning`` up to blank space); ``answer`` alone when there is no thinking."""
    if not reasoning:
        return answer
    return f"{THINK_START}{reasoning}{THINK_END}\n\n{answer}"
