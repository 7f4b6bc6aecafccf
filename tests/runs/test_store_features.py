"""Per-sample features in the run store, and carried by export and import."""

from __future__ import annotations

import base64
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from tests._stores import config, sampled

from ponder.core.errors import ConfigError
from ponder.runs.archive import export_store, import_store
from ponder.runs.store import RunStore
from ponder.verifiers.hidden import Projection, SampleHidden


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


def _hidden(x: float, dim: int = 4) -> SampleHidden:
    return SampleHidden(np.full(dim, x, dtype=np.float16), np.arange(dim, dtype=np.float16) * x)


def test_hidden_states_write_read_replace_and_record_their_projection(tmp_path: Path) -> None:
    projection = Projection(n_embd=8, dim=4)
    with _bank(tmp_path / "bank.db") as store:
        assert store.hidden() == {} and store.hidden_samples() == set()
        assert store.hidden_projection() is None
        store.put_hidden("p1", {0: _hidden(1.0), 2: _hidden(2.0)}, projection)
        store.put_hidden("p1", {2: _hidden(-0.5)}, projection)  # replaces sample 2's
        store.put_hidden("p2", {1: _hidden(3.0)}, projection)
        assert store.hidden_samples() == {("p1", 0), ("p1", 2), ("p2", 1)}
        assert store.hidden_projection() == projection
    with RunStore(tmp_path / "bank.db", create=False) as again:
        p1 = again.hidden("p1")
        assert list(p1) == ["p1"] and sorted(p1["p1"]) == [0, 2]
        assert p1["p1"][2].last.tolist() == [-0.5] * 4
        assert p1["p1"][2].mean.tolist() == [0.0, -0.5, -1.0, -1.5]
        assert again.hidden()["p2"][1].last.dtype == np.float16


def test_hidden_states_of_another_projection_or_shape_are_refused(tmp_path: Path) -> None:
    with _bank(tmp_path / "bank.db") as store:
        store.put_hidden("p1", {0: _hidden(1.0)}, Projection(n_embd=8, dim=4))
        with pytest.raises(ConfigError, match="cannot be compared"):
            store.put_hidden("p1", {1: _hidden(1.0)}, Projection(n_embd=8, dim=4, seed=1))
        with pytest.raises(ConfigError, match="not \\(3,\\)"):
            store.put_hidden("p1", {1: _hidden(1.0)}, Projection(n_embd=8, dim=3))
        assert store.hidden_samples() == {("p1", 0)}


def test_export_import_carries_hidden_states_and_adds_only_missing_ones(tmp_path: Path) -> None:
    projection = Projection(n_embd=8, dim=4)
    with _bank(tmp_path / "src.db") as store:
        store.put_hidden("p1", {0: _hidden(1.0), 1: _hidden(2.0)}, projection)
    archive = tmp_path / "bank.jsonl.gz"
    export_store(tmp_path / "src.db", archive)
    with gzip.open(archive, "rt") as f:
        lines = [json.loads(x) for x in f]
    assert lines[0]["hidden_projection"] == projection.spec()
    assert sorted(lines[1]["hidden"]) == ["0", "1"]
    assert base64.b64decode(lines[1]["hidden"]["1"]) == _hidden(2.0).to_bytes()
    assert "hidden" not in lines[2]

    with _bank(tmp_path / "dst.db") as dst:
        dst.put_hidden("p1", {1: _hidden(9.0)}, projection)  # kept: the store's own
    import_store(archive, tmp_path / "dst.db")
    with RunStore(tmp_path / "dst.db", create=False) as dst:
        got = dst.hidden()["p1"]
        assert got[0].last.tolist() == [1.0] * 4 and got[1].last.tolist() == [9.0] * 4

    import_store(archive, tmp_path / "fresh.db")
    with RunStore(tmp_path / "fresh.db", create=False) as fresh:
        assert fresh.hidden_projection() == projection
        assert fresh.hidden()["p1"][1].mean.tolist() == [0.0, 2.0, 4.0, 6.0]

    with _bank(tmp_path / "other.db") as other:
        other.put_hidden("p2", {0: _hidden(1.0)}, Projection(n_embd=8, dim=4, seed=7))
    with pytest.raises(ConfigError, match="cannot be compared"):
        import_store(archive, tmp_path / "other.db")


def test_hidden_states_without_a_projection_in_the_header_are_refused(tmp_path: Path) -> None:
    projection = Projection(n_embd=8, dim=4)
    with _bank(tmp_path / "src.db") as store:
        store.put_hidden("p1", {0: _hidden(1.0)}, projection)
    export_store(tmp_path / "src.db", tmp_path / "a.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    del lines[0]["hidden_projection"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ConfigError, match=r"broken\.jsonl:2: .*no hidden_projection"):
        import_store(broken, tmp_path / "dst.db")
    lines[0]["hidden_projection"] = projection.spec()
    lines[1]["hidden"]["0"] = "not base64!"
    broken.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ConfigError, match=r"broken\.jsonl:2: .*not base64"):
        import_store(broken, tmp_path / "dst2.db")
