"""Per-sample features in the run store, and carried by export and import."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

from tests._stores import config, sampled

from ponder.runs.archive import export_store, import_store
from ponder.runs.store import RunStore


def _bank(path: Path) -> RunStore:
    store = RunStore(path)
    store.init_or_check(config("majority", n=3))
    store.put(sampled("p1", ["A", "B", "A"], idx=0))
    store.put(sampled("p2", ["B", "B", "A"], idx=1))
    return store


def test_features_write_read_and_replace(tmp_path: Path) -> None:
    with _bank(tmp_path / "bank.db") as store:
        assert store.features() == {}
        assert store.featured_samples() == set()
        store.put_features("p1", {0: {"tokens": 5.0, "tail": 1.5}, 2: {"tokens": 0.0}})
        store.put_features("p2", {1: {"tokens": 7.0, "tail": math.nan}})
        store.put_features("p1", {2: {"tokens": 3.0}})  # replaces sample 2's row
        assert store.featured_samples() == {("p1", 0), ("p1", 2), ("p2", 1)}
        assert store.features("p1") == {"p1": {0: {"tail": 1.5, "tokens": 5.0}, 2: {"tokens": 3.0}}}
        nan = store.features()["p2"][1]["tail"]
        assert math.isnan(nan)


def test_features_survive_reopening_and_an_old_store_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "bank.db"
    with _bank(path) as store:
        assert store.features("p1") == {}
        store.put_features("p1", {1: {"tokens": 4.0}})
    with RunStore(path, create=False) as again:
        assert again.features() == {"p1": {1: {"tokens": 4.0}}}


def test_export_import_carries_features_and_adds_only_missing_ones(tmp_path: Path) -> None:
    with _bank(tmp_path / "src.db") as store:
        store.put_features("p1", {0: {"tokens": 5.0, "tail": 1.5}, 1: {"tokens": 2.0}})
    archive = tmp_path / "bank.jsonl.gz"
    export_store(tmp_path / "src.db", archive)
    with gzip.open(archive, "rt") as f:
        lines = [json.loads(x) for x in f]
    assert lines[1]["features"] == {"0": {"tail": 1.5, "tokens": 5.0}, "1": {"tokens": 2.0}}
    assert "features" not in lines[2]  # p2 has none: its line is as before

    with _bank(tmp_path / "dst.db") as dst:
        dst.put_features("p1", {1: {"tokens": 99.0}})  # kept: the store's own
    summary = import_store(archive, tmp_path / "dst.db")
    assert (summary.read, summary.added) == (2, 0)
    with RunStore(tmp_path / "dst.db", create=False) as dst:
        assert dst.features() == {"p1": {0: {"tail": 1.5, "tokens": 5.0}, 1: {"tokens": 99.0}}}

    import_store(archive, tmp_path / "fresh.db")
    with RunStore(tmp_path / "fresh.db", create=False) as fresh:
        assert fresh.features() == {"p1": {0: {"tail": 1.5, "tokens": 5.0}, 1: {"tokens": 2.0}}}


def test_a_store_without_features_exports_the_same_lines_as_before(tmp_path: Path) -> None:
    _bank(tmp_path / "src.db").close()
    export_store(tmp_path / "src.db", tmp_path / "a.jsonl")
    text = (tmp_path / "a.jsonl").read_text()
    assert all("features" not in json.loads(x) for x in text.splitlines())


def test_a_committed_bank_imports_with_no_features(tmp_path: Path) -> None:
    bank = Path(__file__).parents[2] / "bench" / "banks" / "gsm8k-50-single.jsonl.gz"
    summary = import_store(bank, tmp_path / "old.db")
    assert summary.added == summary.read > 0
    with RunStore(tmp_path / "old.db", create=False) as store:
        assert store.features() == {}
