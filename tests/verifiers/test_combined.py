"""The combined verifier: its stored model, its probability worked out by hand, its
refusals, and the model as a scorer (``--scorer combined:PATH``) on scripted logprobs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from ponder.cli import main
from ponder.core.context import Context, sample_top_logprobs
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Completion, Problem, TokenLogprob, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.store import RunStore
from ponder.tasks import make_task
from ponder.verifiers.combined import FORMAT, CombinedScorer, CombinedVerifier, transform
from ponder.verifiers.features import sample_features
from ponder.verifiers.registry import SCORER_NAMES, make_scorer

# z_tokens = (log1p(tokens) - 0.5) / 0.25, z_mean = (mean_logprob + 1) / 2
MODEL = CombinedVerifier(
    features=("tokens", "mean_logprob"),
    mean=(0.5, -1.0),
    scale=(0.25, 2.0),
    coef=(2.0, -1.0),
    intercept=-0.5,
    top_k=7,
    window=3,
    trained_on={"bank": "toy.db", "samples": 12},
)


def _dict(**changes: Any) -> dict[str, Any]:
    return {**MODEL.to_dict(), **changes}


def test_the_model_survives_a_round_trip_through_a_file(tmp_path: Path) -> None:
    assert CombinedVerifier.from_dict(MODEL.to_dict()) == MODEL
    path = tmp_path / "model.json"
    MODEL.save(path)
    assert json.loads(path.read_text())["format"] == FORMAT
    assert CombinedVerifier.load(path) == MODEL


def test_the_probability_is_the_logistic_of_the_standardised_features() -> None:
    # tokens = e - 1: log1p gives 1, z = (1 - 0.5) / 0.25 = 2; mean_logprob -3: z = -1
    values = {"tokens": math.e - 1, "mean_logprob": -3.0, "tail": 99.0}  # tail: unused
    assert transform("tokens", math.e - 1) == pytest.approx(1.0)
    assert transform("tail", 2.5) == 2.5
    assert MODEL.logit(values) == pytest.approx(-0.5 + 2.0 * 2 + -1.0 * -1)  # 4.5
    assert MODEL.probability(values) == pytest.approx(1 / (1 + math.exp(-4.5)))
    low = {"tokens": 0.0, "mean_logprob": 3.0}  # z = -2 and 2: logit -0.5 - 4 - 2 = -6.5
    assert MODEL.probability(low) == pytest.approx(math.exp(-6.5) / (1 + math.exp(-6.5)))
    assert MODEL.probabilities([values, low]) == [MODEL.probability(values), MODEL.probability(low)]


def test_extreme_logits_do_not_overflow() -> None:
    assert MODEL.probability({"tokens": 0.0, "mean_logprob": 5000.0}) == 0.0
    assert MODEL.probability({"tokens": 0.0, "mean_logprob": -5000.0}) == 1.0


def test_a_nan_feature_enters_at_its_training_mean() -> None:
    values = {"tokens": 0.0, "mean_logprob": math.nan}  # a sample with no tokens
    # only the tokens term: z = (0 - 0.5) / 0.25 = -2
    assert MODEL.logit(values) == pytest.approx(-0.5 + 2.0 * -2)
    empty = sample_features(())
    assert MODEL.logit(empty) == pytest.approx(-4.5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features": ["tokens", "loudness"]}, "unknown features \\['loudness'\\]"),
        ({"mean": [0.5]}, "of one length"),
        ({"features": [], "mean": [], "scale": [], "coef": []}, "non-empty"),
        ({"scale": [0.25, 0.0]}, "every scale must be > 0"),
        ({"scale": [0.25, math.nan]}, "every scale must be > 0"),
        ({"top_k": 0}, "top_k and window must be >= 1"),
        ({"window": 0}, "top_k and window must be >= 1"),
        ({"format": "something-else"}, "not a combined verifier"),
        ({"coef": [1.0, "heavy"]}, "malformed file"),
        ({"coef": None}, "malformed file"),
    ],
)
def test_a_bad_model_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CombinedVerifier.from_dict(_dict(**changes))


def test_a_file_without_a_key_is_refused() -> None:
    d = _dict()
    del d["intercept"]
    with pytest.raises(ConfigError, match=r"malformed file.*intercept"):
        CombinedVerifier.from_dict(d)


def test_a_sample_without_a_feature_is_refused() -> None:
    with pytest.raises(ConfigError, match="lacks features \\['mean_logprob'\\]"):
        MODEL.logit({"tokens": 3.0})


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        CombinedVerifier.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not JSON"):
        CombinedVerifier.load(bad)


# -- the scorer ---------------------------------------------------------------------


def _model_file(tmp_path: Path) -> Path:
    path = tmp_path / "combined.json"
    MODEL.save(path)
    return path


def _logprobs(lps: list[float], k: int) -> tuple[TokenLogprob, ...]:
    return tuple(
        TokenLogprob(f"w{i}", lp, tuple((f"a{j}", lp - 1 - j) for j in range(k)))
        for i, lp in enumerate(lps)
    )


async def test_the_scorer_scores_by_the_features_of_each_completion(tmp_path: Path) -> None:
    path = _model_file(tmp_path)
    scorer = make_scorer(f"combined:{path}")
    assert isinstance(scorer, CombinedScorer)
    assert scorer.name == f"combined:{path}" and scorer.needs_logprobs
    assert sample_top_logprobs(scorer) == 7
    comps = [
        Completion("a b c", "stop", Usage(), _logprobs([-0.1, -0.2, -0.3], 7)),
        Completion("d", "stop", Usage(), _logprobs([-2.0], 7)),
        Completion("", "stop", Usage(), ()),
    ]
    ctx = Context(ScriptedEngine(["x"]), make_task("demo"))
    scores = await scorer.score(Problem("p", "q", "1"), comps, ctx)
    expected = [MODEL.probability(sample_features(c.logprobs or (), window=3)) for c in comps]
    assert [s.value for s in scores] == pytest.approx(expected)
    # by hand, the second: tokens 1 (z = (log 2 - 0.5) / 0.25), mean logprob -2 (z = -0.5)
    z = -0.5 + 2.0 * (math.log(2) - 0.5) / 0.25 + -1.0 * -0.5
    assert scores[1].value == pytest.approx(1 / (1 + math.exp(-z)))
    assert len(set(expected)) == 3
    assert ctx.ledger.total().calls == 0  # free: nothing generated

    bare = Completion("d", "stop", Usage(), None)
    with pytest.raises(CapabilityMissing, match="needs logprobs"):
        await scorer.score(Problem("p", "q", "1"), [bare], ctx)


def test_the_scorer_spec_is_listed_and_checked(tmp_path: Path) -> None:
    assert "combined:PATH" in SCORER_NAMES
    with pytest.raises(ConfigError, match="does not exist"):
        make_scorer(f"combined:{tmp_path / 'none.json'}")
    with pytest.raises(ConfigError, match="unknown scorer"):
        make_scorer("combined")
    with pytest.raises(ConfigError, match="takes no option"):
        make_scorer(f"combined:{_model_file(tmp_path)},colour=red")


def test_other_scorers_keep_their_alternatives() -> None:
    assert sample_top_logprobs(make_scorer("logprob")) == 5
    assert sample_top_logprobs(make_scorer("judge")) == 0  # no logprobs from the samples


TEXTS = ["so the answer is \\boxed{4}", "hmm \\boxed{5}", "it is \\boxed{5}", "we get \\boxed{4}"]


def _logprob(text: str) -> list[float]:
    """Logprobs that differ by word and text, so every sample's probability differs."""
    return [-0.05 * (i + 1) - 0.02 * len(text) for i in range(len(text.split()))]


def _expected(text: str) -> float:
    """The model's probability for a scripted sample, worked out apart from the run: the
    scripted engine gives the ``k``-th alternative of a token of logprob ``lp`` the
    logprob ``lp - 1 - k``, as ``_logprobs`` does."""
    return MODEL.probability(sample_features(_logprobs(_logprob(text), 7), window=3))


@pytest.mark.parametrize("features", [False, True])
@pytest.mark.parametrize("strategy", ["best_of_n", "weighted_majority"])
def test_sampling_strategies_score_by_the_combined_model(
    strategy: str, features: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    engine = ScriptedEngine(TEXTS, logprob=_logprob)
    monkeypatch.setattr(cli, "engine", lambda args: engine)
    out = tmp_path / "run.db"
    argv = ["eval", "--task", "demo", "--limit", "2", "--no-progress", "--out", str(out)]
    argv += ["--strategy", strategy, "--n", "4", "--scorer", f"combined:{_model_file(tmp_path)}"]
    assert main(argv + (["--features"] if features else [])) == 0
    # the samples carry the model's 7 alternatives, or the capture's 20 (cut to 7)
    assert {r.top_logprobs for r in engine.requests} == {20 if features else 7}
    with RunStore(out, create=False) as store:
        records = store.records()
    for record in records:
        scores = {c.text: c.score for c in record.candidates}
        assert scores == {t: pytest.approx(_expected(t)) for t in TEXTS}
        if strategy == "best_of_n":
            best = max(TEXTS, key=_expected)
            assert record.answer == ("4" if "{4}" in best else "5")
        else:
            votes = {"4": 0.0, "5": 0.0}
            for t in TEXTS:
                votes["4" if "{4}" in t else "5"] += _expected(t)
            assert dict(record.votes) == pytest.approx(votes)
