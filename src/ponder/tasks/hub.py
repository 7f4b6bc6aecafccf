"""The math benchmarks read from ``--data`` or the Hugging Face hub: the base of GSM8K,
MATH-500 and AIME.

``HubTask`` reads its records through ``load_records`` (a JSONL file, a folder holding
``<split>.jsonl``, or without data the hub dataset the subclass names), keeps what it
read (``MathTask``) and turns each record into a problem by field names; a benchmark
whose records need more (GSM8K's ids by position, its answer after ``####``) overrides
``_problem``, and one that must refuse some data overrides ``_check``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from ponder.core.types import Problem
from ponder.tasks.jsonl import LoadedData, MathTask, answer_string, load_records, require_field

__all__ = ["HubTask"]


class HubTask(MathTask):
    """A math benchmark from ``data`` (a JSONL file or a folder) or the hub.

    A subclass names the task (``task_name``), its hub dataset (``hub_path``,
    ``hub_config``, and ``hub_splits`` mapping a split to the hub's name for it), the
    fields a record needs (``fields``, in the order the "pass --data" advice lists
    them), and which fields hold the question, the reference answer, the problem id
    and the meta kept with each problem.
    """

    task_name: ClassVar[str]
    hub_path: ClassVar[str]
    hub_config: ClassVar[str | None] = None
    hub_splits: ClassVar[Mapping[str, str]] = MappingProxyType({})
    fields: ClassVar[tuple[str, ...]]
    question_field: ClassVar[str] = "problem"
    answer_field: ClassVar[str] = "answer"
    id_field: ClassVar[str] = "id"
    meta_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data: str | Path | None = None, split: str | None = None) -> None:
        super().__init__(self.task_name, split)
        self.data = data

    def _load_all(self) -> list[Problem]:
        loaded = load_records(
            self.data,
            self.split,
            task=self.name,
            hub_path=self.hub_path,
            hub_config=self.hub_config,
            hub_splits=self.hub_splits,
            fields=self.fields,
        )
        self._check(loaded)
        records = self._read(loaded)
        return [self._problem(i, where, record) for i, (where, record) in enumerate(records)]

    def _check(self, loaded: LoadedData) -> None:
        """Raise ``ConfigError`` for data this benchmark cannot use (none by default)."""

    def _problem(self, index: int, where: str, record: Mapping[str, Any]) -> Problem:
        """The problem in the ``index``-th record, read at ``where``."""
        meta = {k: record[k] for k in self.meta_fields if k in record}
        question = str(require_field(record, self.question_field, where))
        answer = answer_string(require_field(record, self.answer_field, where))
        pid = str(require_field(record, self.id_field, where))
        return Problem(id=pid, question=question, answer=answer, meta=meta)
