"""``ponder bank features`` on a scripted engine: features written, resumed, checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from ponder.cli import main
from ponder.core.errors import CapabilityMissing
from ponder.core.types import GenRequest, Message
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.archive import export_store, import_store
from ponder.runs.store import RunStore
from ponder.verifiers.features import FEATURE_NAMES, sample_features
from ponder.verifiers.hidden import Projection, hidden_arrays

TEXTS = ["so the answer is \\boxed{4}", "hmm \\boxed{5}", "it is \\boxed{4}"]


def _logprob(text: str) -> list[float]:
    """A different logprob per word, so every sample's features differ."""
    return [-0.1 * (i + 1) for i in range(len(text.split()))]


def _engine(name: str = "scripted") -> ScriptedEngine:
    return ScriptedEngine(TEXTS, name=name, logprob=_logprob)


@pytest.fixture
def bank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import ponder.cli.args as cli

    monkeypatch.setattr(cli, "engine", lambda args: _engine())
    out = tmp_path / "bank.db"
    argv = ["eval", "--task", "demo", "--limit", "3", "--strategy", "majority", "--n", "3"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    return out


def test_scripted_continuation_logprobs_score_words_after_the_prompt() -> None:
    engine = _engine()
    request = GenRequest(messages=(Message("user", "two words"),), top_logprobs=2)
    first, second = asyncio.run(engine.continuation_logprobs(request, ["a b c", "d"]))
    assert [t.logprob for t in first.logprobs] == pytest.approx([-0.1, -0.2, -0.3])
    assert [lp for _, lp in first.logprobs[0].top] == pytest.approx([-1.1, -2.1])
    assert (first.usage.prompt_tokens, first.usage.cached_tokens) == (3 + 3, 0)
    assert (second.usage.prompt_tokens, second.usage.cached_tokens) == (1, 3)


def test_features_for_every_sample_then_a_resume_computes_only_the_missing(
    bank: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    argv = ["bank", "features", str(bank), "--no-progress", "--top-k", "3"]
    assert main([*argv, "--limit", "2"]) == 0
    assert "features: 6 samples done (0 had them)" in capsys.readouterr().out
    with RunStore(bank, create=False) as store:
        first = store.features()
        records = store.records()
    assert sorted(first) == [r.problem_id for r in records[:2]]
    record = records[0]
    for i, cand in enumerate(record.candidates):
        assert set(first[record.problem_id][i]) == set(FEATURE_NAMES)
        assert first[record.problem_id][i]["tokens"] == len(cand.text.split())
        # the scripted logprobs depend on the text alone, not on the prompt
        request = GenRequest(messages=(Message("user", "q"),), top_logprobs=3)
        [scored] = asyncio.run(_engine().continuation_logprobs(request, [cand.text]))
        assert first[record.problem_id][i] == pytest.approx(sample_features(scored.logprobs))

    scripted = _engine()
    monkeypatch.setattr(cli, "engine", lambda args: scripted)
    assert main(argv) == 0
    assert "features: 3 samples done (6 had them)" in capsys.readouterr().out
    with RunStore(bank, create=False) as store:
        again = store.features()
    assert len(again) == 3 and all(len(v) == 3 for v in again.values())
    assert {k: again[k] for k in first} == first  # the first pass's rows are untouched


def test_a_bank_drawn_by_another_model_is_refused(
    bank: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    monkeypatch.setattr(cli, "engine", lambda args: _engine("other-model"))
    assert main(["bank", "features", str(bank), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "was drawn by model 'scripted'" in err and "'other-model'" in err
    with RunStore(bank, create=False) as store:
        assert store.features() == {}


def test_an_engine_that_cannot_score_by_prefill_is_refused(
    bank: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    class NoScoring:
        name = "scripted"
        capabilities = _engine().capabilities

        async def generate(self, requests: object) -> list[object]:
            raise AssertionError("nothing is generated")

        async def aclose(self) -> None:
            return None

    monkeypatch.setattr(cli, "engine", lambda args: NoScoring())
    assert main(["bank", "features", str(bank), "--no-progress"]) == 2
    assert "cannot score given continuations by prefill" in capsys.readouterr().err


def _row(word: str) -> list[float]:
    """A scripted hidden row per word: six numbers that differ between words."""
    return [float(len(word)), float(word.count("o")), float(ord(word[0]) % 7), 1.0, -2.0, 0.5]


def _hidden_engine() -> ScriptedEngine:
    return ScriptedEngine(TEXTS, logprob=_logprob, hidden_state=_row)


def test_scripted_hidden_states_are_the_rows_of_every_word_but_the_last() -> None:
    request = GenRequest(messages=(Message("user", "q"),), top_logprobs=2)
    plain, one = asyncio.run(_hidden_engine().continuation_logprobs(request, ["a bo c", "d"]))
    assert plain.hidden is None and one.hidden is None  # not asked
    three, single = asyncio.run(
        _hidden_engine().continuation_logprobs(request, ["a bo c", "d"], hidden=True)
    )
    assert three.logprobs == plain.logprobs  # asking for hidden states changes no logprob
    assert three.hidden is not None and three.hidden.rows == 2
    assert three.hidden.last.tolist() == _row("bo")
    assert three.hidden.mean.tolist() == pytest.approx(
        [(a + b) / 2 for a, b in zip(_row("a"), _row("bo"), strict=True)]
    )
    assert single.hidden is None  # one token: no scored row of its own
    with pytest.raises(CapabilityMissing, match="without a hidden_state script"):
        asyncio.run(_engine().continuation_logprobs(request, ["a b"], hidden=True))


def test_hidden_states_stored_projected_resumed_and_exported(
    bank: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    argv = ["bank", "features", str(bank), "--no-progress", "--top-k", "3"]
    assert main([*argv, "--limit", "2"]) == 0  # features only, for 6 samples
    with RunStore(bank, create=False) as store:
        before = store.features()
        assert store.hidden() == {}
    capsys.readouterr()

    monkeypatch.setattr(cli, "engine", lambda args: _hidden_engine())
    assert main([*argv, "--hidden", "--hidden-dim", "4"]) == 0
    out = capsys.readouterr().out
    assert "features: 9 samples done (0 had them), hidden states for 9 (4 dims" in out
    with RunStore(bank, create=False) as store:
        features, hidden = store.features(), store.hidden()
        records = store.records()
        assert store.hidden_projection() == Projection(n_embd=6, dim=4)
    assert {k: features[k] for k in before} == before  # features computed before are kept
    assert sum(len(v) for v in features.values()) == 9
    request = GenRequest(messages=(Message("user", "q"),), top_logprobs=3)
    for record in records:
        texts = [c.text for c in record.candidates]
        scored = asyncio.run(_hidden_engine().continuation_logprobs(request, texts, hidden=True))
        for i, s in enumerate(scored):
            assert s.hidden is not None
            want = Projection(n_embd=6, dim=4).project(s.hidden)
            got = hidden[record.problem_id][i]
            assert got.last.tolist() == want.last.tolist()
            assert got.mean.tolist() == want.mean.tolist()
    arrays = hidden_arrays(hidden)
    assert arrays.last.shape == (9, 4) and arrays.mean.shape == (9, 4)

    assert main([*argv, "--hidden", "--hidden-dim", "4"]) == 0
    assert "features: 0 samples done (9 had them)" in capsys.readouterr().out
    assert main([*argv, "--hidden", "--hidden-dim", "8"]) == 2
    assert "projected to 4 dims" in capsys.readouterr().err

    archive = tmp_path / "bank.jsonl.gz"
    export_store(bank, archive)
    import_store(archive, tmp_path / "copy.db")
    with RunStore(tmp_path / "copy.db", create=False) as copy:
        back = hidden_arrays(copy.hidden())
        assert copy.features() == features
    assert back.keys == arrays.keys
    np.testing.assert_array_equal(back.last, arrays.last)
    np.testing.assert_array_equal(back.mean, arrays.mean)


def test_samples_with_features_but_no_hidden_states_are_the_ones_recomputed(
    bank: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    scripted = _hidden_engine()
    monkeypatch.setattr(cli, "engine", lambda args: scripted)
    argv = ["bank", "features", str(bank), "--no-progress", "--hidden"]
    assert main([*argv, "--limit", "1"]) == 0
    assert "features: 3 samples done (0 had them), hidden states for 3" in capsys.readouterr().out
    with RunStore(bank, create=False) as store:
        first = store.hidden()
        pid = store.records()[1].problem_id
        store.put_features(pid, {0: {"tokens": -1.0}})  # a sample with features only
    assert main(argv) == 0
    assert "features: 6 samples done (3 had them), hidden states for 6" in capsys.readouterr().out
    with RunStore(bank, create=False) as store:
        assert store.features(pid)[pid][0] == {"tokens": -1.0}  # kept, not recomputed
        assert len(store.hidden_samples()) == 9
        again = store.hidden()
    for pid_done, own in first.items():  # the first problem's rows are untouched
        assert {i: v.to_bytes() for i, v in again[pid_done].items()} == {
            i: v.to_bytes() for i, v in own.items()
        }
