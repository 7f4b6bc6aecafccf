"""The shared task bases: ``HubTask`` (the hub benchmarks), ``field_problems`` and
``FileTask`` (the JSONL and free-form tasks' one loader path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ponder.core.errors import ConfigError
from ponder.core.types import Problem
from ponder.tasks.hub import HubTask
from ponder.tasks.jsonl import FileTask, LoadedData, field_problems


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class _Toy(HubTask):
    task_name = "toy"
    hub_path = "nobody/toy"
    fields = ("key", "q", "a")
    question_field = "q"
    answer_field = "a"
    id_field = "key"
    meta_fields = ("level",)


class _Picky(_Toy):
    def _check(self, loaded: LoadedData) -> None:
        raise ConfigError(f"refused {loaded.split}")


def test_hub_task_maps_fields_and_keeps_only_meta_fields(tmp_path: Path) -> None:
    rows = [{"key": "k1", "q": " x? ", "a": 12.0, "level": 3, "other": "dropped"}]
    task = _Toy(_write(tmp_path / "train.jsonl", rows))
    assert task.name == "toy"
    assert task.load() == [Problem("k1", " x? ", "12", {"level": 3})]
    assert task.split == "train"  # resolved from the file's name when read
    assert task.data_identity().task == "toy"


def test_hub_task_names_the_missing_field(tmp_path: Path) -> None:
    task = _Toy(_write(tmp_path / "test.jsonl", [{"q": "x?", "a": "1"}]))
    with pytest.raises(ConfigError, match=r"test\.jsonl:1: missing field 'key'"):
        task.load()


def test_hub_task_check_runs_before_any_record_is_read(tmp_path: Path) -> None:
    task = _Picky(_write(tmp_path / "test.jsonl", [{"broken": True}]))
    with pytest.raises(ConfigError, match="refused test"):
        task.load()
    assert task.split is None  # nothing was kept from the refused data


def test_field_problems_numbers_when_no_id_field_and_drops_solution() -> None:
    records = [
        ("f:1", {"question": "a?", "answer": "1", "solution": "s", "topic": "t"}),
        ("f:2", {"question": "b?", "answer": "2"}),
    ]
    out = field_problems(
        records,
        prefix="p-train",
        question_field="question",
        answer_field="answer",
        id_field=None,
        references=lambda value, _where: (f"{value}!", "alt"),
    )
    assert out == [
        (Problem("p-train-0000", "a?", "1!", {"topic": "t"}), ("1!", "alt")),
        (Problem("p-train-0001", "b?", "2!", {}), ("2!", "alt")),
    ]


def test_field_problems_checks_the_answer_before_the_id() -> None:
    def refuse(value: Any, where: str) -> tuple[str, ...]:
        raise ConfigError(f"{where}: bad answer {value!r}")

    with pytest.raises(ConfigError, match=r"f:1: bad answer 'x'"):
        field_problems(
            [("f:1", {"question": "q", "answer": "x"})],
            prefix="p",
            question_field="question",
            answer_field="answer",
            id_field="id",
            references=refuse,
        )


class _Lines(FileTask):
    def _load_all(self) -> list[Problem]:
        return [p for p, _ in self._file_problems(lambda value, _where: (str(value),))]


def test_file_task_reads_through_field_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "qa.jsonl", [{"prompt": "x?", "target": 3}])
    task = _Lines(path, "prompt", "target", None, "mine", None)
    assert task.load() == [Problem("mine-0000", "x?", "3", {})]
    identity = task.data_identity()
    assert (identity.task, identity.split, identity.source) == ("mine", None, str(path))


def test_file_task_without_a_path_has_no_problems() -> None:
    with pytest.raises(ConfigError, match="made without a data file"):
        _Lines(None, "q", "a", None, "empty", None).load()
