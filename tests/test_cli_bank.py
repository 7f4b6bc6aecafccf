"""``ponder bank features`` on a scripted engine: features written, resumed, checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.types import GenRequest, Message
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.store import RunStore
from ponder.verifiers.features import FEATURE_NAMES, sample_features

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
