"""A dozen short arithmetic word problems shipped with ponder, so it runs with no data file."""

from __future__ import annotations

import json
from importlib import resources

from ponder.core.errors import ConfigError
from ponder.core.types import Problem
from ponder.tasks.jsonl import MathTask, answer_string, require_field

__all__ = ["DemoTask"]

_RESOURCE = "demo.jsonl"


class DemoTask(MathTask):
    """Twelve grade-school problems (rates, percentages, ages, money), integer answers."""

    def __init__(self) -> None:
        super().__init__("demo")

    def _load_all(self) -> list[Problem]:
        text = resources.files("ponder.tasks").joinpath("data", _RESOURCE).read_text("utf-8")
        problems: list[Problem] = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"ponder/tasks/data/{_RESOURCE}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:  # only if the package itself is broken
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from exc
            problems.append(
                Problem(
                    id=str(require_field(record, "id", where)),
                    question=str(require_field(record, "question", where)),
                    answer=answer_string(require_field(record, "answer", where)),
                )
            )
        return problems
