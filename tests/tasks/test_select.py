"""Choosing problems by their metadata (``ponder eval --where``, ``--limit-each``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.errors import ConfigError
from ponder.core.types import Problem
from ponder.tasks import Math500Task
from ponder.tasks.select import parse_where, pick_problems, select_problems


def problems() -> list[Problem]:
    levels = [1, 5, 1, 3, 5, 1, 5, 3]
    a, g = "Algebra", "Geometry"
    subjects = [a, a, g, a, g, a, a, g]
    out = [
        Problem(id=f"p{i}", question=f"q{i}", answer="1", meta={"level": lv, "subject": s})
        for i, (lv, s) in enumerate(zip(levels, subjects, strict=True))
    ]
    return [*out, Problem(id="bare", question="q", answer="1")]


def ids(ps: list[Problem]) -> list[str]:
    return [p.id for p in ps]


def test_parse_where() -> None:
    assert parse_where(["level=1, 5", "subject=Algebra"]) == {
        "level": frozenset({"1", "5"}),
        "subject": frozenset({"Algebra"}),
    }
    for bad in ("level", "=1", "level=", "level=,"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_where([bad])
    with pytest.raises(ConfigError, match="twice"):
        parse_where(["level=1", "level=2"])


def test_conditions_keep_task_order_and_must_all_hold() -> None:
    ps = problems()
    assert ids(select_problems(ps, parse_where(["level=5"]))) == ["p1", "p4", "p6"]
    both = parse_where(["level=1,5", "subject=Algebra"])
    assert ids(select_problems(ps, both)) == ["p0", "p1", "p5", "p6"]


def test_limit_each_counts_per_value_then_limit_cuts() -> None:
    ps = problems()
    where = parse_where(["level=1,3,5"])
    assert ids(select_problems(ps, where, limit_each=1)) == ["p0", "p1", "p3"]
    assert ids(select_problems(ps, where, limit_each=2)) == ["p0", "p1", "p2", "p3", "p4", "p7"]
    assert ids(select_problems(ps, where, limit_each=2, limit=3)) == ["p0", "p1", "p2"]
    # per combination of the keys' values
    pair = parse_where(["level=1", "subject=Algebra,Geometry"])
    assert ids(select_problems(ps, pair, limit_each=1)) == ["p0", "p2"]


def test_clear_errors() -> None:
    ps = problems()
    with pytest.raises(ConfigError, match=r"no problem has 'topic'.*level, subject"):
        select_problems(ps, parse_where(["topic=x"]))
    with pytest.raises(ConfigError, match="no problem matches --where level=4"):
        select_problems(ps, parse_where(["level=4"]))
    with pytest.raises(ConfigError, match="add --where"):
        select_problems(ps, {}, limit_each=2)
    with pytest.raises(ConfigError, match=">= 1"):
        select_problems(ps, parse_where(["level=1"]), limit_each=0)


class _Listed:
    """A task's ``load``, recording the limit each call asked for."""

    def __init__(self) -> None:
        self.asked: list[int | None] = []

    def load(self, limit: int | None = None) -> list[Problem]:
        self.asked.append(limit)
        return problems()[:limit]


def test_pick_problems_loads_only_the_limit_without_conditions() -> None:
    task = _Listed()
    assert ids(pick_problems(task, limit=3)) == ["p0", "p1", "p2"]  # type: ignore[arg-type]
    assert task.asked == [3]


def test_pick_problems_selects_from_all_problems_with_conditions() -> None:
    task = _Listed()
    chosen = pick_problems(task, limit=3, where=["level=1,5"], limit_each=2)  # type: ignore[arg-type]
    assert ids(chosen) == ["p0", "p1", "p2"]
    assert task.asked == [None]
    with pytest.raises(ConfigError, match="add --where"):
        pick_problems(task, limit_each=2)  # type: ignore[arg-type]


def test_math500_by_level_on_the_real_data(shared_data: Path) -> None:
    ps = Math500Task(shared_data / "math500" / "test.jsonl").load()
    chosen = select_problems(ps, parse_where(["level=1,5"]), limit_each=4)
    assert [p.meta["level"] for p in chosen].count(1) == 4
    assert [p.meta["level"] for p in chosen].count(5) == 4
    assert len(chosen) == 8
    order = {p.id: i for i, p in enumerate(ps)}
    assert [order[p.id] for p in chosen] == sorted(order[p.id] for p in chosen)
    # the first level-1 problems of the file, none skipped
    first_ones = [p.id for p in ps if p.meta.get("level") == 1][:4]
    assert [p.id for p in chosen if p.meta["level"] == 1] == first_ones


def test_the_cli_refuses_a_key_the_task_lacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["eval", "--task", "demo", "--where", "level=1", "--out", str(tmp_path / "r.db")])
    assert code == 2
    assert "no problem has 'level'" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()
    code = main(["eval", "--task", "demo", "--limit-each", "2", "--out", str(tmp_path / "r.db")])
    assert code == 2
    assert "add --where" in capsys.readouterr().err
