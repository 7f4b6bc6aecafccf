from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest
from tests._stores import config, sampled

from ponder.cli import main
from ponder.core.errors import ConfigError
from ponder.runs.archive import export_store, import_store
from ponder.runs.store import Record, RunStore


def _store(path: Path, records: list[Record]) -> Path:
    with RunStore(path) as store:
        store.init_or_check(config("majority", n=3))
        for r in records:
            store.put(r)
    return path


@pytest.mark.parametrize("name", ["bank.jsonl", "bank.jsonl.gz"])
def test_export_then_import_gives_the_same_records(tmp_path: Path, name: str) -> None:
    records = [
        sampled("p1", ["A", "B", "A"], idx=0, scores=[0.1, 0.9, 0.5]),
        sampled("p2", [None, "B", "B"], idx=1),
    ]
    src = _store(tmp_path / "src.db", records)
    assert export_store(src, tmp_path / name) == 2
    summary = import_store(tmp_path / name, tmp_path / "copy.db")
    assert (summary.read, summary.added) == (2, 2)
    with RunStore(src, create=False) as a, RunStore(tmp_path / "copy.db", create=False) as b:
        assert a.config() == b.config()
        assert a.records() == b.records()
    if name.endswith(".gz"):
        with gzip.open(tmp_path / name, "rt") as f:
            assert f.readline().startswith('{"config"')


def test_import_adds_only_missing_records_and_checks_the_config(tmp_path: Path) -> None:
    src = _store(tmp_path / "src.db", [sampled("p1", ["A"]), sampled("p2", ["B"], idx=1)])
    export_store(src, tmp_path / "all.jsonl")
    partial = _store(tmp_path / "partial.db", [sampled("p1", ["A"])])
    summary = import_store(tmp_path / "all.jsonl", partial)
    assert (summary.read, summary.added) == (2, 1)
    with RunStore(partial, create=False) as s:
        assert [r.problem_id for r in s.records()] == ["p1", "p2"]

    other = tmp_path / "other.db"
    with RunStore(other) as store:
        store.init_or_check(config("majority", n=5))
    with pytest.raises(ConfigError, match="different configuration"):
        import_store(tmp_path / "all.jsonl", other)


def test_errors_are_left_out_unless_asked(tmp_path: Path) -> None:
    failed = Record(
        problem_id="p3",
        idx=2,
        question="q",
        reference="A",
        answer=None,
        correct=False,
        error="EngineError: down",
    )
    src = _store(tmp_path / "src.db", [sampled("p1", ["A"]), failed])
    assert export_store(src, tmp_path / "ok.jsonl") == 1
    assert export_store(src, tmp_path / "all.jsonl", include_errors=True) == 2


def test_malformed_archives_are_refused_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "nope"}\n')
    with pytest.raises(ConfigError, match="not a ponder run archive"):
        import_store(bad, tmp_path / "x.db")
    src = _store(tmp_path / "src.db", [sampled("p1", ["A"])])
    export_store(src, tmp_path / "good.jsonl")
    lines = (tmp_path / "good.jsonl").read_text().splitlines()
    bad.write_text("\n".join([lines[0], lines[1], "{not json", ""]))
    with pytest.raises(ConfigError, match=r"bad.jsonl:3: not JSON"):
        import_store(bad, tmp_path / "y.db")
    with RunStore(tmp_path / "y.db", create=False) as s:
        assert len(s) == 1  # the record before the bad line is kept
    bad.write_text("\n".join([lines[0], '{"idx": 0}', ""]))
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: not a record"):
        import_store(bad, tmp_path / "z.db")
    with pytest.raises(ConfigError, match="no archive"):
        import_store(tmp_path / "missing.jsonl", tmp_path / "w.db")


def test_cli_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _store(tmp_path / "src.db", [sampled("p1", ["A"])])
    assert main(["export", str(src), str(tmp_path / "a.jsonl.gz")]) == 0
    assert main(["import", str(tmp_path / "a.jsonl.gz"), str(tmp_path / "b.db")]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 records" in out and "added 1" in out
    assert main(["export", str(tmp_path / "nothing.db"), str(tmp_path / "n.jsonl")]) == 2


def test_exporting_the_same_records_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    src = _store(tmp_path / "src.db", [sampled("p1", ["A", "B"], idx=0)])
    export_store(src, tmp_path / "a.jsonl.gz")
    time.sleep(1.1)  # gzip's header timestamp has a resolution of one second
    export_store(src, tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


def test_export_can_leave_problems_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _store(tmp_path / "src.db", [sampled(p, ["A", "B"], idx=i)
                                       for i, p in enumerate(["p1", "p2", "p3"])])  # fmt: skip
    ids = tmp_path / "ids.txt"
    ids.write_text("p2\n\np3\n")
    assert main(["export", str(src), str(tmp_path / "a.jsonl"), "--exclude", str(ids)]) == 0
    assert "wrote 1 records" in capsys.readouterr().out
    import_store(tmp_path / "a.jsonl", tmp_path / "a.db")
    with RunStore(tmp_path / "a.db", create=False) as store:
        assert [r.problem_id for r in store.records()] == ["p1"]
    # an id the store does not know is a mistake, said before anything is written
    with pytest.raises(ConfigError, match="not in"):
        export_store(src, tmp_path / "b.jsonl", exclude={"p9"})
    assert not (tmp_path / "b.jsonl").exists()
