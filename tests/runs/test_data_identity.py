"""A run knows which data it ran on: resume refuses other data, replay refuses another
problem, prompt or model, and older runs are migrated onto their data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from ponder.cli import main
from ponder.core.errors import ConfigError
from ponder.core.types import GenRequest
from ponder.engines.models import file_sha256
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.archive import export_store, import_store
from ponder.runs.migrate import migrate_run
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.runs.runner import run_eval
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy
from ponder.tasks import FreeformTask, GSM8KTask


def _write(path: Path, questions: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"question": q, "answer": f"so\n#### {i}"} for i, q in enumerate(questions)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": _write(tmp_path / "gsm8k" / "train.jsonl", [f"train {i}?" for i in range(4)]),
        "test": _write(tmp_path / "gsm8k" / "test.jsonl", [f"test {i}?" for i in range(4)]),
    }


def answer_one(request: GenRequest, index: int) -> str:
    return f"so \\boxed{{{index}}}"


class Named(ScriptedEngine):
    """A scripted engine that says which weights it runs."""

    def __init__(self, sha: str | None) -> None:
        super().__init__(answer_one)
        self._sha = sha

    @property
    def model_sha256(self) -> str | None:
        return self._sha


def bank(task: GSM8KTask, path: Path, engine: ScriptedEngine | None = None) -> Path:
    run_eval(
        task=task,
        problems=task.load(),
        strategy=make_strategy("majority", {"n": 2}),
        engine=engine or ScriptedEngine(answer_one),
        store=path,
        concurrency=1,
        max_tokens=16,
        progress=False,
    )
    return path


def replay(task: GSM8KTask, bank_path: Path, out: Path, inner: Any = None) -> None:
    engine = ReplayEngine(SampleBank.from_store(bank_path), task, inner=inner)
    run_eval(
        task=task,
        problems=task.load(),
        strategy=make_strategy("majority", {"n": 2}),
        engine=engine,
        store=out,
        max_tokens=16,
        progress=False,
    )


def rename_ids(path: Path, old: str, new: str) -> None:
    """Give a store's records the ids an older ponder gave them (and forget their
    fingerprints, which an older ponder did not write)."""
    with RunStore(path) as store:
        store._conn.execute(f"UPDATE records SET problem_id=replace(problem_id, '{old}', '{new}')")
        store._conn.execute("DELETE FROM meta WHERE key='problems'")


def test_the_config_records_task_split_data_hash_and_problem_fingerprints(
    tmp_path: Path, data: dict[str, Path]
) -> None:
    task = GSM8KTask(data["train"])
    path = bank(task, tmp_path / "train.db")
    with RunStore(path, create=False) as store:
        config = store.config()
        fingerprints = store.problem_fingerprints()
    assert config is not None
    assert config["data"] == {"task": "gsm8k", "split": "train", "sha256": config["data"]["sha256"]}
    assert config["data_source"] == str(data["train"])
    assert sorted(fingerprints) == [f"gsm8k-train-000{i}" for i in range(4)]
    assert set(fingerprints["gsm8k-train-0000"]) == {"question", "prompt"}


def test_resuming_with_other_data_is_refused_with_both_descriptions(
    tmp_path: Path, data: dict[str, Path]
) -> None:
    path = bank(GSM8KTask(data["test"]), tmp_path / "run.db")
    # the same file name and split, one question edited: another data set
    edited = _write(
        tmp_path / "edited" / "test.jsonl", ["test 0?", "test 1!", "test 2?", "test 3?"]
    )
    with pytest.raises(ConfigError) as caught:
        bank(GSM8KTask(edited), path)
    message = str(caught.value)
    assert "data.sha256: stored" in message
    old = GSM8KTask(data["test"]).data_identity().sha256
    new = GSM8KTask(edited).data_identity().sha256
    assert old in message and new in message
    assert f"the stored run read {data['test']}, this one {edited}" in message


def test_a_problem_id_seen_with_another_question_is_refused(tmp_path: Path) -> None:
    store_path = tmp_path / "run.db"
    with RunStore(store_path) as store:
        store.add_problem_fingerprints({"p1": {"question": "a", "prompt": "x"}})
        store.add_problem_fingerprints({"p2": {"question": "b", "prompt": "x"}})  # grows
        with pytest.raises(ConfigError, match="p1: question sha256 stored a, now c"):
            store.add_problem_fingerprints({"p1": {"question": "c", "prompt": "x"}})
        assert sorted(store.problem_fingerprints()) == ["p1", "p2"]


def test_a_train_bank_does_not_replay_against_the_test_file(
    tmp_path: Path, data: dict[str, Path]
) -> None:
    # the case the committed train bank was: train questions under test ids
    path = bank(GSM8KTask(data["train"]), tmp_path / "train.db")
    rename_ids(path, "gsm8k-train-", "gsm8k-test-")
    with pytest.raises(ConfigError, match="does not record which data"):
        replay(GSM8KTask(data["test"]), path, tmp_path / "out.db")
    # migrated onto the data it ran on, it replays its own problems only
    migrate_run(path, GSM8KTask(data["train"]), model_sha256="w")
    with RunStore(path, create=False) as store:
        assert store.records()[0].problem_id == "gsm8k-train-0000"
    with pytest.raises(ConfigError, match="no samples for 4 of the 4 problems"):
        replay(GSM8KTask(data["test"]), path, tmp_path / "out.db")
    # and a bank that claims the test ids but holds train questions is named at once
    fake = bank(GSM8KTask(data["train"]), tmp_path / "fake.db")
    rename_ids(fake, "gsm8k-train-", "gsm8k-test-")
    test_task = GSM8KTask(data["test"])
    with RunStore(fake) as store:
        fingerprints = {p.id: {"question": "x", "prompt": "y"} for p in test_task.load()}
        store.add_problem_fingerprints(fingerprints)
    with pytest.raises(ConfigError, match="'gsm8k-test-0000' is another question"):
        replay(test_task, fake, tmp_path / "out2.db")
    assert not (tmp_path / "out2.db").exists() or not RunStore(tmp_path / "out2.db").records()


def test_replay_refuses_another_prompt(tmp_path: Path, data: dict[str, Path]) -> None:
    path = bank(GSM8KTask(data["train"]), tmp_path / "train.db")
    # the same file read as a free-form jsonl task: same questions, another prompt
    other = FreeformTask(data["train"], name="gsm8k")
    bank_ = SampleBank.from_store(path)
    problem = other.load()[0]
    assert problem.id == "gsm8k-train-0000"
    with pytest.raises(ConfigError, match="sampled from another prompt"):
        ReplayEngine(bank_, other).check_problems([problem])
    with pytest.raises(ConfigError, match="sampled from another prompt"):
        ReplayEngine(bank_, other).for_problem(problem)


def test_replay_refuses_another_model(tmp_path: Path, data: dict[str, Path]) -> None:
    task = GSM8KTask(data["train"])
    path = bank(task, tmp_path / "train.db", Named("aaa"))
    with RunStore(path, create=False) as store:
        assert (store.config() or {})["model_sha256"] == "aaa"
    replay(task, path, tmp_path / "same.db", inner=Named("aaa"))  # the same weights
    with pytest.raises(ConfigError, match="weights sha256 aaa, but this run's 'scripted' has bbb"):
        replay(task, path, tmp_path / "other.db", inner=Named("bbb"))
    renamed = ScriptedEngine(answer_one, name="other")
    with pytest.raises(ConfigError, match="drawn by model 'scripted', but this run's model is"):
        replay(task, path, tmp_path / "other2.db", inner=renamed)


def test_export_and_import_keep_the_fingerprints(tmp_path: Path, data: dict[str, Path]) -> None:
    path = bank(GSM8KTask(data["train"]), tmp_path / "train.db")
    archive = tmp_path / "train.jsonl.gz"
    export_store(path, archive)
    with gzip.open(archive, "rt") as f:
        header = json.loads(f.readline())
    assert sorted(header["problems"]) == [f"gsm8k-train-000{i}" for i in range(4)]
    import_store(archive, tmp_path / "copy.db")
    with RunStore(path, create=False) as a, RunStore(tmp_path / "copy.db", create=False) as b:
        assert a.problem_fingerprints() == b.problem_fingerprints()
    replay(GSM8KTask(data["train"]), tmp_path / "copy.db", tmp_path / "out.db")


def test_migrate_command_renames_ids_and_records_the_data(
    tmp_path: Path, data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = bank(GSM8KTask(data["train"]), tmp_path / "train.db")
    rename_ids(path, "gsm8k-train-", "gsm8k-test-")
    with RunStore(path) as store:  # an older store had no data in its configuration
        config = store.config() or {}
        for key in ("data", "data_source"):
            config.pop(key)
        store._conn.execute("UPDATE meta SET value=? WHERE key='config'", (json.dumps(config),))
    archive = tmp_path / "old.jsonl.gz"
    export_store(path, archive)
    with RunStore(path, create=False) as store:
        before = [(r.answer, r.correct, r.usage, r.candidates) for r in store.records()]
    # resuming the older store is refused, with the way out named
    with pytest.raises(ConfigError, match="ponder migrate"):
        bank(GSM8KTask(data["train"]), path)
    # the test file is not the data it ran on: refused, nothing written
    argv = ["migrate", str(archive), "--task", "gsm8k", "--model-file", str(data["train"])]
    assert main([*argv, "--data", str(data["test"])]) == 2
    assert "is not in the task's data" in capsys.readouterr().err
    assert main([*argv, "--data", str(data["train"])]) == 0
    assert "migrated 4 records (4 renamed)" in capsys.readouterr().out
    import_store(archive, tmp_path / "migrated.db")
    with RunStore(tmp_path / "migrated.db", create=False) as store:
        after = store.records()
        config = store.config() or {}
    assert [r.problem_id for r in after] == [f"gsm8k-train-000{i}" for i in range(4)]
    assert [(r.answer, r.correct, r.usage, r.candidates) for r in after] == before
    assert config["data"]["split"] == "train" and len(config["model_sha256"]) == 64
    # the migrated run resumes on the same weights, and replays on its own data
    weights = Named(file_sha256(data["train"]))
    bank(GSM8KTask(data["train"]), tmp_path / "migrated.db", weights)
    replay(GSM8KTask(data["train"]), tmp_path / "migrated.db", tmp_path / "replayed.db")
