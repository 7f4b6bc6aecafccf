"""Tasks by name, for the command line and recipes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.task import Task
from ponder.tasks.aime import AIME24Task
from ponder.tasks.demo import DemoTask
from ponder.tasks.freeform import freeform_task
from ponder.tasks.gsm8k import GSM8KTask
from ponder.tasks.humaneval import HumanEvalTask
from ponder.tasks.jsonl import JsonlTask
from ponder.tasks.math500 import Math500Task

__all__ = ["make_task", "task_names"]


ANSWER_TYPES = ("math", "free")


def _jsonl(
    data: str | Path | None,
    question_field: str = "question",
    answer_field: str = "answer",
    id_field: str | None = None,
    name: str = "jsonl",
    answer_type: str = "math",
    grader: str | None = None,
    answer_from: str | None = None,
    split: str | None = None,
) -> Task:
    if data is None:
        raise ConfigError("the jsonl task needs a data file: pass --data PATH")
    fields: dict[str, Any] = {
        "question_field": question_field,
        "answer_field": answer_field,
        "id_field": id_field,
        "name": name,
        "split": split,
    }
    if answer_type == "math":
        if grader is not None or answer_from is not None:
            raise ConfigError(
                "grader and answer_from are for free-form answers: add --answer-type free"
            )
        return JsonlTask(data, **fields)
    if answer_type == "free":
        return freeform_task(
            data, grader=grader or "exact", answer_from=answer_from or "line", **fields
        )
    raise ConfigError(f"answer_type must be one of {', '.join(ANSWER_TYPES)}, got {answer_type!r}")


def _humaneval(data: str | Path | None = None) -> Task:
    # the sandbox is a library setting, not a command-line field
    return HumanEvalTask(data)


def _demo(data: str | Path | None, **fields: Any) -> Task:
    if data is not None:
        raise ConfigError("the demo task has its own problems; it takes no data file")
    return DemoTask(**fields)


_FACTORIES: dict[str, tuple[Callable[..., Task], Callable[..., object]]] = {
    # name: (factory taking data and fields, the class whose signature lists the fields)
    "gsm8k": (GSM8KTask, GSM8KTask),
    "math500": (Math500Task, Math500Task),
    "aime24": (AIME24Task, AIME24Task),
    "humaneval": (_humaneval, _humaneval),
    "jsonl": (_jsonl, _jsonl),
    "demo": (_demo, DemoTask),
}


def task_names() -> list[str]:
    """The names ``make_task`` accepts."""
    return list(_FACTORIES)


def _accepted_fields(cls: Callable[..., object]) -> list[str]:
    params = inspect.signature(cls).parameters
    return [name for name in params if name not in ("data", "path", "judge_engine")]


def make_task(name: str, data: str | Path | None = None, **fields: Any) -> Task:
    """The task called ``name``, reading ``data`` (a JSONL file or a folder) when given.

    ``fields`` are the task's own settings: ``split`` for the math benchmarks and
    ``jsonl`` (None: the split the data names; see ``ponder.tasks.identity``);
    ``question_field``, ``answer_field``, ``id_field`` and ``name`` for ``jsonl``, and
    for free-form answers ``answer_type="free"`` with ``grader`` (``exact`` or
    ``judge``) and ``answer_from`` (``line`` or ``text``; see ``ponder.tasks.freeform``).
    A setting given as None keeps its default, so unset command-line flags pass through.
    """
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        factory, cls = _FACTORIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}; choose one of: {', '.join(task_names())}"
        ) from None
    accepted = _accepted_fields(cls)
    unknown = sorted(set(fields) - set(accepted))
    if unknown:
        raise ConfigError(
            f"task {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or 'no settings'}"
        )
    return factory(data, **fields)
