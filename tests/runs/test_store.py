from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record, RunStore

CONFIG: dict[str, Any] = {
    "task": "toy",
    "model": "scripted",
    "strategy": {"name": "majority", "options": {"n": 4, "temperature": 0.7}},
    "max_tokens": 256,
    "seed": 0,
    "ponder_version": "0.1.0",
    "created": "2025-01-01T00:00:00+00:00",
}


def record(pid: str, idx: int = 0, *, answer: str | None = "4", error: str | None = None) -> Record:
    cands = (
        Candidate("answer: 4", "4", Usage(7, 0, 3, 1), score=0.5),
        Candidate("answer: 5", "5", Usage(0, 7, 3, 0), score=None, finish_reason="length"),
        Candidate("no idea", None, Usage(0, 7, 2, 0)),
    )
    return Record(
        problem_id=pid,
        idx=idx,
        question="2 + 2?",
        reference="4",
        answer=answer,
        correct=answer == "4",
        votes={"4": 1.0, "5": 1.0},
        candidates=cands if error is None else (),
        answer_correct={"4": True, "5": False},
        usage=Usage(7, 14, 8, 1),
        seconds=0.25,
        error=error,
    )


def test_records_round_trip(tmp_path: Path) -> None:
    rec = record("a")
    with RunStore(tmp_path / "s.db") as store:
        assert store.put(rec)
        assert store.get("a") == rec
        assert store.get("missing") is None
    with RunStore(tmp_path / "s.db") as reopened:
        assert reopened.records() == [rec]
        assert reopened.done_ids() == {"a"}


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    with RunStore(tmp_path / "s.db") as store:
        store.put(record("a"))
    (mode,) = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_records_come_back_in_problem_order(tmp_path: Path) -> None:
    with RunStore(tmp_path / "s.db") as store:
        for pid, idx in [("c", 2), ("a", 0), ("b", 1)]:
            store.put(record(pid, idx))
        assert [r.problem_id for r in store.records()] == ["a", "b", "c"]
        assert len(store) == 3


def test_config_is_stored_and_checked(tmp_path: Path) -> None:
    with RunStore(tmp_path / "s.db") as store:
        assert store.config() is None
        store.init_or_check(CONFIG)
        assert store.config() == CONFIG
        # creation time and ponder version describe the run; they may differ on resume
        store.init_or_check({**CONFIG, "created": "later", "ponder_version": "9.9"})
        assert store.config() == CONFIG
        changed = {
            **CONFIG,
            "model": "other-model",
            "strategy": {"name": "majority", "options": {"n": 8, "temperature": 0.7}},
        }
        with pytest.raises(ConfigError) as err:
            store.init_or_check(changed)
    message = str(err.value)
    assert 'model: stored "scripted", now "other-model"' in message
    assert "strategy.options.n: stored 4, now 8" in message
    assert "--out" in message and "temperature" not in message


def test_config_keys_added_or_removed_are_mismatches(tmp_path: Path) -> None:
    with RunStore(tmp_path / "s.db") as store:
        store.init_or_check(CONFIG)
        with pytest.raises(ConfigError, match="extra: not in the stored run"):
            store.init_or_check({**CONFIG, "extra": {"top_k": 5}})
        without_seed = {k: v for k, v in CONFIG.items() if k != "seed"}
        with pytest.raises(ConfigError, match="seed: stored 0, now absent"):
            store.init_or_check(without_seed)


def test_an_extended_replay_resumes_a_live_run_and_a_plain_replay_does_not(
    tmp_path: Path,
) -> None:
    extend = {"source": "bank4.db", "samples": 4, "extend": True}
    with RunStore(tmp_path / "live.db") as store:
        store.init_or_check({**CONFIG, "extra": {"top_k": 5}})
        # --replay-extend draws what a live run draws: from any bank, the same run
        store.init_or_check({**CONFIG, "extra": {"top_k": 5, "replay": extend}})
        store.init_or_check({**CONFIG, "extra": {"top_k": 5, "replay": {**extend, "samples": 8}}})
        with pytest.raises(ConfigError, match=r"extra\.top_k"):
            store.init_or_check({**CONFIG, "extra": {"top_k": 6, "replay": extend}})
        with pytest.raises(ConfigError, match=r"extra\.replay: not in the stored run"):
            store.init_or_check(
                {**CONFIG, "extra": {"top_k": 5, "replay": {**extend, "extend": False}}}
            )
    with RunStore(tmp_path / "extended.db") as store:
        store.init_or_check({**CONFIG, "extra": {"replay": extend}})
        store.init_or_check(CONFIG)  # and back: the live run goes on where it stopped
        with pytest.raises(ConfigError, match="extra: not in the stored run"):
            store.init_or_check({**CONFIG, "extra": {"replay": {**extend, "extend": False}}})


def test_tuples_in_config_compare_as_lists(tmp_path: Path) -> None:
    with RunStore(tmp_path / "s.db") as store:
        store.init_or_check({**CONFIG, "stop": ("\n\n",)})
        store.init_or_check({**CONFIG, "stop": ["\n\n"]})


def test_error_records_are_replaced_finished_ones_are_not(tmp_path: Path) -> None:
    with RunStore(tmp_path / "s.db") as store:
        assert store.put(record("a", error="EngineTimeout: slow"))
        assert store.done_ids() == set() and store.error_count() == 1
        # a second failure replaces the first
        assert store.put(record("a", error="EngineTimeout: slower"))
        got = store.get("a")
        assert got is not None and got.error == "EngineTimeout: slower"
        assert store.put(record("a"))
        assert store.done_ids() == {"a"} and store.error_count() == 0
        # finished is final: neither a new answer nor an error replaces it
        assert not store.put(record("a", answer="5"))
        assert not store.put(record("a", error="RuntimeError: late"))
        got = store.get("a")
        assert got is not None and got.answer == "4" and got.ok
        assert len(store) == 1


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, just some bytes\n" * 100)
    with pytest.raises(ConfigError, match="not a readable ponder run store"):
        RunStore(path)


def test_another_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(ConfigError, match="not a ponder run store"):
        RunStore(path)


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run store"):
        RunStore(tmp_path / "absent.db", create=False)
    with pytest.raises(ConfigError, match="directory"):
        RunStore(tmp_path)


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with RunStore(path) as store:
        store.put(record("a"))
        assert len(store) == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    RunStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(ConfigError, match="newer ponder"):
        RunStore(path)


def test_store_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "run.db"
    store = RunStore(path)
    store.close()
    assert path.is_file()


def test_meta_round_trips_with_numpy_values(tmp_path):
    import numpy as np

    with RunStore(tmp_path / "m.db") as store:
        store.init_or_check({"task": "t"})
        meta = {"stop_reason": "cap reached", "samples": np.int64(4), "p": np.float64(0.5),
                "history": [(2, {"A": 2})], "seen": {"b", "a"}}  # fmt: skip
        store.put(Record("p1", 0, "q", "1", "1", True, meta=meta))
    with RunStore(tmp_path / "m.db", create=False) as store:
        (rec,) = store.records()
    assert rec.meta == {
        "stop_reason": "cap reached", "samples": 4, "p": 0.5, "history": [[2, {"A": 2}]],
        "seen": ["a", "b"],
    }  # fmt: skip


def test_a_schema_1_store_gains_the_meta_column_and_keeps_its_records(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE records (problem_id TEXT PRIMARY KEY, idx INTEGER NOT NULL,
            question TEXT NOT NULL, reference TEXT, answer TEXT, correct INTEGER NOT NULL,
            votes TEXT NOT NULL, candidates TEXT NOT NULL, answer_correct TEXT NOT NULL,
            usage TEXT NOT NULL, seconds REAL NOT NULL, error TEXT, finished_at REAL NOT NULL);
        INSERT INTO meta VALUES ('format', 'ponder-run-store'), ('schema_version', '1');
        INSERT INTO records VALUES ('p0', 0, 'q', '1', '1', 1, '{}', '[]', '{"1": true}',
            '{}', 0.5, NULL, 1.0);
        """
    )
    con.commit()
    con.close()
    with RunStore(path, create=False) as store:
        (old,) = store.records()
        assert old.problem_id == "p0" and old.correct and old.meta == {}
        store.put(Record("p1", 1, "q", "2", "2", True, meta={"k": 1}))
        assert [r.meta for r in store.records()] == [{}, {"k": 1}]
    with sqlite3.connect(path) as con:
        version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert version == ("2",)


def test_opening_a_new_store_waits_for_another_connections_write_lock(tmp_path: Path) -> None:
    # SQLite answers "database is locked" at once to the switch to WAL while another
    # connection holds a write lock (as when two processes open one new store)
    path = tmp_path / "new.db"
    held, released = threading.Event(), threading.Event()

    def hold_write_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(0.5)
        conn.execute("COMMIT")
        conn.close()
        released.set()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    held.wait()
    with RunStore(path) as store:
        assert released.is_set()
        store.put(record("p1"))
        assert store.done_ids() == {"p1"}
    holder.join()
