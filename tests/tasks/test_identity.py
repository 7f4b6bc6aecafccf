"""A task knows which data it read: the split from the data, its content hash, and a
fingerprint per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ponder.core.errors import ConfigError
from ponder.tasks import (
    DemoTask,
    GSM8KTask,
    JsonlTask,
    Math500Task,
    data_identity,
    make_task,
    problem_fingerprint,
)
from ponder.tasks.identity import split_from_name

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def gsm8k_rows(*questions: str) -> list[dict[str, Any]]:
    return [{"question": q, "answer": f"work\n#### {i}"} for i, q in enumerate(questions)]


def test_gsm8k_ids_name_the_split_the_file_name_says(tmp_path: Path) -> None:
    # before: every GSM8K problem was gsm8k-test-NNNN, the train file's too
    train = _write(tmp_path / "train.jsonl", gsm8k_rows("a?", "b?"))
    test = _write(tmp_path / "test.jsonl", gsm8k_rows("c?", "d?"))
    train_ids = [p.id for p in GSM8KTask(train).load()]
    test_ids = [p.id for p in GSM8KTask(test).load()]
    assert train_ids == ["gsm8k-train-0000", "gsm8k-train-0001"]
    assert test_ids == ["gsm8k-test-0000", "gsm8k-test-0001"]
    assert set(train_ids).isdisjoint(test_ids)
    assert GSM8KTask(train).split is None  # resolved only when the data is read
    task = GSM8KTask(train)
    task.load()
    assert task.split == "train"


def test_gsm8k_split_from_the_records_field_or_given(tmp_path: Path) -> None:
    rows = [{**r, "split": "train"} for r in gsm8k_rows("a?")]
    by_field = _write(tmp_path / "gsm8k_sample.jsonl", rows)
    assert GSM8KTask(by_field).load()[0].id == "gsm8k-train-0000"
    unnamed = _write(tmp_path / "gsm8k_sample2.jsonl", gsm8k_rows("a?"))
    assert GSM8KTask(unnamed, split="train").load()[0].id == "gsm8k-train-0000"
    assert make_task("gsm8k", data=unnamed, split="test").load()[0].id == "gsm8k-test-0000"


def test_gsm8k_refuses_a_file_that_names_no_split(tmp_path: Path) -> None:
    unnamed = _write(tmp_path / "problems.jsonl", gsm8k_rows("a?"))
    with pytest.raises(ConfigError, match="--split train or --split test"):
        GSM8KTask(unnamed).load()


def test_an_explicit_split_that_contradicts_the_data_is_refused(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.jsonl", gsm8k_rows("a?"))
    with pytest.raises(ConfigError, match="--split test but the file name says 'train'"):
        GSM8KTask(train, split="test").load()
    mixed = [
        {**r, "split": s} for r, s in zip(gsm8k_rows("a?", "b?"), ("train", "test"), strict=True)
    ]
    with pytest.raises(ConfigError, match="several values"):
        GSM8KTask(_write(tmp_path / "mixed.jsonl", mixed)).load()


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("train.jsonl", "train"),
        ("gsm8k-test.jsonl.gz", "test"),
        ("dev_set.jsonl", "dev"),
        ("validation.jsonl", "validation"),
        ("train/data.jsonl", "train"),
        ("tests/data.jsonl", None),  # a folder counts only when named for a split
        ("train-and-test.jsonl", None),  # two splits: says nothing
        ("qa.jsonl", None),
        ("contest.jsonl", None),  # "test" only as a whole word
    ],
)
def test_split_from_name(name: str, split: str | None) -> None:
    assert split_from_name(Path("/data") / name) == split


def test_jsonl_ids_carry_the_split_when_the_data_names_one(tmp_path: Path) -> None:
    rows = [{"question": "q?", "answer": "1"}]
    assert JsonlTask(_write(tmp_path / "train.jsonl", rows)).load()[0].id == "jsonl-train-0000"
    assert JsonlTask(_write(tmp_path / "qa.jsonl", rows)).load()[0].id == "jsonl-0000"
    free = make_task("jsonl", data=_write(tmp_path / "x" / "test.jsonl", rows), answer_type="free")
    assert free.load()[0].id == "jsonl-test-0000"


def test_data_identity_hashes_the_content_not_the_path(tmp_path: Path) -> None:
    rows = gsm8k_rows("a?", "b?")
    one = GSM8KTask(_write(tmp_path / "a" / "train.jsonl", rows)).data_identity()
    two = GSM8KTask(_write(tmp_path / "b" / "train.jsonl", rows)).data_identity()
    other = GSM8KTask(_write(tmp_path / "c" / "train.jsonl", gsm8k_rows("a?", "B?")))
    assert (
        one.to_config()
        == two.to_config()
        == {
            "task": "gsm8k",
            "split": "train",
            "sha256": one.sha256,
        }
    )
    assert one.source != two.source
    assert other.data_identity().sha256 != one.sha256


def test_a_task_without_data_is_identified_by_its_problems() -> None:
    demo = DemoTask()
    identity = data_identity(demo)
    assert identity.task == "demo" and len(identity.sha256) == 64
    assert data_identity(DemoTask()).sha256 == identity.sha256


def test_problem_fingerprint_covers_question_and_prompt(tmp_path: Path) -> None:
    task = GSM8KTask(_write(tmp_path / "train.jsonl", gsm8k_rows("a?", "b?")))
    a, b = task.load()
    fa, fb = problem_fingerprint(task, a), problem_fingerprint(task, b)
    assert fa["question"] != fb["question"] and fa["prompt"] != fb["prompt"]
    free = make_task("jsonl", data=tmp_path / "train.jsonl", answer_type="free")
    # the same question under another task's prompt: same question, other prompt
    fa_free = problem_fingerprint(free, free.load()[0])
    assert fa_free["question"] == fa["question"] and fa_free["prompt"] != fa["prompt"]


def test_the_shared_math500_file_is_test() -> None:
    path = DATA / "math500" / "test.jsonl"
    if not path.is_file():
        pytest.skip("benchmark data ../shared/data/math500 is absent")
    task = Math500Task(path)
    assert task.data_identity().split == "test"
