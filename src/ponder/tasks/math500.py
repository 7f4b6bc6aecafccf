"""MATH-500: the 500-problem test split of MATH used by the test-time-compute papers."""

from __future__ import annotations

from pathlib import Path

from ponder.core.types import Problem
from ponder.tasks.jsonl import MathTask, answer_string, load_records, require_field

__all__ = ["Math500Task"]


class Math500Task(MathTask):
    """MATH-500 from a JSONL file or the hub (HuggingFaceH4/MATH-500).

    Fields: ``problem``, ``answer`` (LaTeX) and ``unique_id`` (the problem id);
    ``subject`` and ``level`` go to ``Problem.meta`` when present.
    """

    def __init__(self, data: str | Path | None = None, split: str | None = None) -> None:
        super().__init__("math500", split)
        self.data = data

    def _load_all(self) -> list[Problem]:
        records = self._read(
            load_records(
                self.data,
                self.split,
                task=self.name,
                hub_path="HuggingFaceH4/MATH-500",
                fields=("problem", "answer", "unique_id"),
            )
        )
        problems: list[Problem] = []
        for where, record in records:
            meta = {k: record[k] for k in ("subject", "level") if k in record}
            question = str(require_field(record, "problem", where))
            answer = answer_string(require_field(record, "answer", where))
            pid = str(require_field(record, "unique_id", where))
            problems.append(Problem(id=pid, question=question, answer=answer, meta=meta))
        return problems
