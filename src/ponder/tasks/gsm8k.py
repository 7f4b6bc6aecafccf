"""GSM8K: grade-school math word problems with integer answers (Cobbe et al., 2021)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.types import Problem
from ponder.grading.answers import canonical_answer
from ponder.tasks.hub import HubTask
from ponder.tasks.jsonl import LoadedData, require_field

__all__ = ["GSM8KTask", "gsm8k_reference"]


def gsm8k_reference(solution: str, where: str = "GSM8K record") -> str:
    """The reference answer in a GSM8K solution: the text after its last ``####``."""
    _, sep, tail = solution.rpartition("####")
    answer = canonical_answer(tail) if sep else ""
    if not answer:
        raise ConfigError(f"{where}: the 'answer' field has no '#### <answer>' line")
    return answer


class GSM8KTask(HubTask):
    """GSM8K from a JSONL file (fields ``question``, ``answer``) or the hub (openai/gsm8k).

    Problem ids are ``gsm8k-<split>-0000`` by position, the split taken from the data
    (``split``, else the file's name, else its records' ``split`` field; the hub's
    ``test`` without data), so train and test ids never collide; a file that names no
    split is refused. The reference answer is the canonical form of the number after
    ``####`` in the solution.
    """

    task_name = "gsm8k"
    hub_path = "openai/gsm8k"
    hub_config = "main"
    fields = ("question", "answer")

    def _check(self, loaded: LoadedData) -> None:
        if loaded.split is None:
            raise ConfigError(
                f"{loaded.source}: cannot tell whether this is GSM8K's train or test data "
                "(neither its name nor a 'split' field says); pass --split train or --split test"
            )

    def _problem(self, index: int, where: str, record: Mapping[str, Any]) -> Problem:
        question = str(require_field(record, "question", where))
        solution = str(require_field(record, "answer", where))
        return Problem(
            id=f"gsm8k-{self.split}-{index:04d}",
            question=question,
            answer=gsm8k_reference(solution, where),
        )
