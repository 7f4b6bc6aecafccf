"""A task that only supplies prompts, for verifier tests that never grade."""

from ponder.core.types import Message


class StubTask:
    name = "stub"

    def load(self, limit=None):
        return []

    def messages(self, problem):
        return (Message("user", problem.question),)

    def extract(self, text):
        return None

    def is_correct(self, predicted, problem):
        return False
