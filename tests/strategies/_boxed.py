"""A task whose answers are written as \\boxed{...}, shared by the strategy tests."""

import re

from ponder.core.types import Message, Problem


class BoxedTask:
    name = "boxed"

    def load(self, limit=None):
        return []

    def messages(self, problem):
        return (Message("user", problem.question),)

    def extract(self, text):
        m = re.findall(r"\\boxed\{([^}]*)\}", text)
        return m[-1] if m else None

    def is_correct(self, predicted, problem):
        return predicted == problem.answer


PROBLEM = Problem("p1", "what is six times seven", answer="42")
