"""AIME 2024: the 30 problems of AIME I and II, integer answers from 0 to 999."""

from __future__ import annotations

from pathlib import Path

from ponder.core.types import Problem
from ponder.tasks.jsonl import MathTask, answer_string, load_records, require_field

__all__ = ["AIME24Task"]


class AIME24Task(MathTask):
    """AIME 2024 from a JSONL file or the hub (HuggingFaceH4/aime_2024).

    Fields: ``id``, ``problem``, ``answer``; ``url`` and ``year`` go to ``Problem.meta``.
    The hub keeps these 30 problems in its ``train`` split, which ``split="test"`` reads.
    """

    def __init__(self, data: str | Path | None = None, split: str | None = None) -> None:
        super().__init__("aime24", split)
        self.data = data

    def _load_all(self) -> list[Problem]:
        records = self._read(
            load_records(
                self.data,
                self.split,
                task=self.name,
                hub_path="HuggingFaceH4/aime_2024",
                hub_splits={"test": "train"},
                fields=("id", "problem", "answer"),
            )
        )
        problems: list[Problem] = []
        for where, record in records:
            meta = {k: record[k] for k in ("url", "year") if k in record}
            question = str(require_field(record, "problem", where))
            answer = answer_string(require_field(record, "answer", where))
            pid = str(require_field(record, "id", where))
            problems.append(Problem(id=pid, question=question, answer=answer, meta=meta))
        return problems
