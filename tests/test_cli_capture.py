"""``ponder eval --features`` on a scripted engine: each sample's features stored with its
record, equal to what ``ponder bank features`` computes, nothing else changed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ponder.cli import main
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.store import RunStore
from ponder.verifiers.features import DEFAULT_TOP_K, FEATURE_NAMES

TEXTS = [
    "so the answer is \\boxed{4}",
    "hmm \\boxed{5}",
    "first two then two more makes \\boxed{4}",
    "it is \\boxed{4}",
]


def _logprob(text: str) -> list[float]:
    """Logprobs that differ by word and by text, so every sample's features differ."""
    return [-0.05 * (i + 1) - 0.01 * len(text) for i in range(len(text.split()))]


def _engine(**kw: Any) -> ScriptedEngine:
    return ScriptedEngine(TEXTS, logprob=_logprob, **kw)


def _eval(monkeypatch: pytest.MonkeyPatch, engine: ScriptedEngine, out: Path, *extra: str) -> int:
    import ponder.cli.args as cli

    monkeypatch.setattr(cli, "engine", lambda args: engine)
    argv = ["eval", "--task", "demo", "--limit", "3", "--no-progress", "--out", str(out)]
    return main([*argv, *extra])


def _rows(path: Path) -> list[tuple[Any, ...]]:
    """The records table as stored, but for the time each row was written."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT problem_id, idx, answer, correct, votes, candidates, answer_correct, "
            "usage, error, meta FROM records ORDER BY idx"
        ).fetchall()
    return rows


MAJORITY = ("--strategy", "majority", "--n", "3")


def test_features_match_the_prefill_pass_and_nothing_else_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, featured = tmp_path / "plain.db", tmp_path / "featured.db"
    plain_engine, featured_engine = _engine(), _engine()
    assert _eval(monkeypatch, plain_engine, plain, *MAJORITY) == 0
    assert _eval(monkeypatch, featured_engine, featured, *MAJORITY, "--features") == 0
    plain_summary, featured_summary = capsys.readouterr().out.splitlines()
    # the summary lines differ only in their wall seconds
    assert plain_summary.rsplit(",", 1)[0] == featured_summary.rsplit(",", 1)[0]
    assert _rows(plain) == _rows(featured)  # records as they were, byte for byte
    assert all(not r.wants_logprobs for r in plain_engine.requests)
    assert all(r.top_logprobs == DEFAULT_TOP_K for r in featured_engine.requests)
    with RunStore(plain, create=False) as store:
        assert store.features() == {}
        plain_config = store.config() or {}
    with RunStore(featured, create=False) as store:
        captured = store.features()
        records = store.records()
        featured_config = store.config() or {}
    # the flag changes no result, so it is not part of the configuration
    plain_config.pop("created"), featured_config.pop("created")
    assert plain_config == featured_config != {}
    assert sorted(captured) == sorted(r.problem_id for r in records)
    for record in records:
        assert sorted(captured[record.problem_id]) == list(range(3))
        for i, cand in enumerate(record.candidates):
            row = captured[record.problem_id][i]
            assert set(row) == set(FEATURE_NAMES)
            assert row["tokens"] == len(cand.text.split())

    # the prefill pass over the same samples, on a copy with the features cleared
    copy = tmp_path / "copy.db"
    with sqlite3.connect(featured) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the write-ahead log's pages included
        dst.execute("DELETE FROM features")
    import ponder.cli.args as cli

    monkeypatch.setattr(cli, "engine", lambda args: _engine())
    assert main(["bank", "features", str(copy), "--no-progress"]) == 0
    with RunStore(copy, create=False) as store:
        prefilled = store.features()
    assert prefilled == captured


def test_a_resumed_run_computes_no_features_for_finished_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run.db"
    # two problems without features, then the third (and only it) with them
    import ponder.cli.args as cli

    monkeypatch.setattr(cli, "engine", lambda args: _engine())
    argv = ["eval", "--task", "demo", "--no-progress", "--out", str(out), *MAJORITY]
    assert main([*argv, "--limit", "2"]) == 0
    resumed = _engine()
    assert _eval(monkeypatch, resumed, out, *MAJORITY, "--features") == 0
    assert len(resumed.requests) == 1  # one problem drawn
    with RunStore(out, create=False) as store:
        records = store.records()
        assert sorted(store.features()) == [records[2].problem_id]


def test_best_of_n_scores_as_without_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scorer reads the top 5 alternatives it always got, cut from the top 20."""
    argv = ("--strategy", "best_of_n", "--n", "4", "--scorer", "logprob:lowest_group:2")
    plain, featured = tmp_path / "plain.db", tmp_path / "featured.db"
    assert _eval(monkeypatch, _engine(), plain, *argv) == 0
    featured_engine = _engine()
    assert _eval(monkeypatch, featured_engine, featured, *argv, "--features") == 0
    assert _rows(plain) == _rows(featured)
    scores = [c["score"] for r in _rows(featured) for c in json.loads(r[5])]
    assert len(set(scores)) > 1  # the scores tell the samples apart
    with RunStore(featured, create=False) as store:
        assert sum(len(v) for v in store.features().values()) == 12


def test_adaptive_sampling_captures_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run.db"
    argv = ("--strategy", "esc", "-o", "max_n=6", "-o", "window=2", "--features")
    assert _eval(monkeypatch, _engine(), out, *argv) == 0
    with RunStore(out, create=False) as store:
        features = store.features()
        for record in store.records():
            assert len(record.candidates) > 2  # more than one batch was drawn
            assert sorted(features[record.problem_id]) == list(range(len(record.candidates)))


def test_features_refused_without_logprobs_or_with_a_replayed_bank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_logprobs = _engine(supports_logprobs=False)
    assert _eval(monkeypatch, no_logprobs, tmp_path / "a.db", *MAJORITY, "--features") == 2
    assert "--features needs the logprobs" in capsys.readouterr().err
    assert no_logprobs.requests == []

    bank = tmp_path / "bank.db"
    assert _eval(monkeypatch, _engine(), bank, *MAJORITY) == 0
    replayed = _engine()
    argv = (*MAJORITY, "--replay", str(bank), "--features")
    assert _eval(monkeypatch, replayed, tmp_path / "b.db", *argv) == 2
    err = capsys.readouterr().err
    assert "replays samples without logprobs" in err and "ponder bank features" in err
    assert replayed.requests == []
    with RunStore(tmp_path / "b.db", create=False) as store:
        assert len(store) == 0


def _row(word: str) -> list[float]:
    """A scripted hidden row per word: distinct words, distinct rows."""
    return [float(len(word)), float(sum(map(ord, word)) % 7), 1.0, -float(word.count("o"))]


def test_hidden_states_match_the_prefill_pass_and_nothing_else_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, hidden = tmp_path / "plain.db", tmp_path / "hidden.db"
    assert _eval(monkeypatch, _engine(hidden_state=_row), plain, *MAJORITY, "--features") == 0
    engine = _engine(hidden_state=_row)
    argv = (*MAJORITY, "--features", "--hidden", "--hidden-dim", "3")
    assert _eval(monkeypatch, engine, hidden, *argv) == 0
    assert all(r.hidden for r in engine.requests)
    assert _rows(plain) == _rows(hidden)
    with RunStore(plain, create=False) as store:
        plain_features = store.features()
        assert store.hidden() == {}
    with RunStore(hidden, create=False) as store:
        assert store.features() == plain_features
        captured = store.hidden()
        projection = store.hidden_projection()
        records = store.records()
    assert projection is not None and (projection.n_embd, projection.dim) == (4, 3)
    # every sample of two words or more has them ("hmm \\boxed{5}" has two)
    assert {pid: sorted(s) for pid, s in captured.items()} == {
        r.problem_id: [0, 1, 2] for r in records
    }

    copy = tmp_path / "copy.db"
    with sqlite3.connect(hidden) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("DELETE FROM hidden")
    import ponder.cli.args as cli

    monkeypatch.setattr(cli, "engine", lambda args: _engine(hidden_state=_row))
    argv2 = ["bank", "features", str(copy), "--no-progress", "--hidden", "--hidden-dim", "3"]
    assert main(argv2) == 0
    with RunStore(copy, create=False) as store:
        prefilled = store.hidden()

    def as_bytes(h: dict[str, dict[int, Any]]) -> dict[str, dict[int, bytes]]:
        return {pid: {i: s.to_bytes() for i, s in v.items()} for pid, v in h.items()}

    assert as_bytes(prefilled) == as_bytes(captured)


def test_hidden_states_refused_without_features_an_able_engine_or_the_bank_s_projection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.db"
    engine = _engine(hidden_state=_row)
    assert _eval(monkeypatch, engine, out, *MAJORITY, "--hidden") == 2
    assert "add --features" in capsys.readouterr().err
    blind = _engine()
    assert _eval(monkeypatch, blind, out, *MAJORITY, "--features", "--hidden") == 2
    assert "--hidden needs the hidden states" in capsys.readouterr().err
    assert engine.requests == [] and blind.requests == []

    argv = (*MAJORITY, "--features", "--hidden", "--hidden-dim", "3")
    assert _eval(monkeypatch, _engine(hidden_state=_row), out, "--limit", "1", *argv) == 0
    other = _engine(hidden_state=_row)
    assert _eval(monkeypatch, other, out, *MAJORITY, "--features", "--hidden") == 2
    assert "pass --hidden-dim 3" in capsys.readouterr().err
    assert other.requests == []
