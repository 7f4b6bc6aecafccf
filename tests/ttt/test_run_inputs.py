"""What ``ponder ttt`` works out before ``run_ttt``: the tasks and the adapters folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.ttt.run import adapters_folder, load_tasks


def test_adapters_sit_beside_the_store_unless_nothing_trains() -> None:
    assert adapters_folder("runs/ttt.db") == Path("runs/ttt.adapters")
    assert adapters_folder(Path("runs/ttt")) == Path("runs/adapters")
    assert adapters_folder("runs/ttt.db", train=False) is None


def test_load_tasks_keeps_the_limit_and_refuses_one_below_one(tmp_path: Path) -> None:
    pairs = [{"input": "ab", "output": "ba"}, {"input": "cd", "output": "dc"}]
    path = tmp_path / "tasks.jsonl"
    lines = [{"id": f"t{i}", "train": pairs, "test": pairs[:1]} for i in range(3)]
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    assert [t.id for t in load_tasks(str(path), limit=2)] == ["t0", "t1"]
    assert len(load_tasks(str(path))) == 3
    with pytest.raises(ConfigError, match=r"^--limit must be at least 1$"):
        load_tasks(str(path), limit=0)
