"""The hidden-state probe as a file and as a scorer (``--scorer hidden:PATH``): its
formula by hand, its refusals, and weighted voting by it on a scripted engine whose
samples carry scripted hidden states."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ponder.core.context import Context, sample_hidden
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Completion, HiddenStates, Problem, TokenLogprob, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies.weighted_majority import WeightedMajority
from ponder.tasks import make_task
from ponder.verifiers.features import sample_features
from ponder.verifiers.hidden import Projection
from ponder.verifiers.hidden_probe import HiddenProbe, HiddenProbeScorer
from ponder.verifiers.registry import SCORER_NAMES, make_scorer

PROJECTION = Projection(n_embd=3, dim=2)


def _probe(features: tuple[str, ...] = ()) -> HiddenProbe:
    width = len(features) + 4
    coef = [0.0] * len(features) + [2.0, 0.0, 0.0, -1.0]
    if features:
        coef[0] = 0.5
    return HiddenProbe(
        projection=PROJECTION,
        features=features,
        mean=(0.0,) * width,
        scale=(1.0,) * (width - 1) + (2.0,),
        coef=tuple(coef),
        intercept=-0.25,
        top_k=3,
    )


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _states(last: list[float], mean: list[float]) -> HiddenStates:
    return HiddenStates(np.array(last, np.float32), np.array(mean, np.float32), 2)


def _completion(states: HiddenStates | None, tokens: int = 3) -> Completion:
    logprobs = tuple(
        TokenLogprob(f"w{i}", -0.1 * (i + 1), (("a", -1.0), ("b", -2.0), ("c", -3.0)))
        for i in range(tokens)
    )
    return Completion(
        "x " * tokens, "stop", Usage(completion_tokens=tokens), logprobs, None, states
    )


async def test_the_scorer_reads_the_projected_hidden_states_by_the_formula(
    tmp_path: Path,
) -> None:
    path = tmp_path / "probe.json"
    _probe().save(path)
    scorer = make_scorer(f"hidden:{path}")
    assert isinstance(scorer, HiddenProbeScorer) and sample_hidden(scorer)
    assert not scorer.needs_logprobs  # the hidden states alone
    states = _states([1.0, -2.0, 0.5], [0.0, 1.0, 1.0])
    ctx = Context(ScriptedEngine(["x"]), make_task("demo"))
    [score] = await scorer.score(Problem("p", "q", "1"), [_completion(states)], ctx)
    last = PROJECTION.apply(states.last).astype(np.float64)
    mean = PROJECTION.apply(states.mean).astype(np.float64)
    # coef 2 on the first of last, -1 on the second of mean (scale 2)
    assert score.value == pytest.approx(_sigmoid(-0.25 + 2 * last[0] - mean[1] / 2), rel=1e-6)
    assert ctx.ledger.total().calls == 0


async def test_a_joint_probe_reads_the_features_too_and_a_short_sample_enters_at_the_means() -> (
    None
):
    probe = _probe(("mean_logprob",))
    scorer = HiddenProbeScorer(probe)
    assert scorer.needs_logprobs and scorer.sample_top_logprobs == 3
    ctx = Context(ScriptedEngine(["x"]), make_task("demo"))
    one = _completion(None, tokens=1)  # one token: no scored row of its own
    [score] = await scorer.score(Problem("p", "q", "1"), [one], ctx)
    mean_logprob = sample_features(one.logprobs or ())["mean_logprob"]
    assert score.value == pytest.approx(_sigmoid(-0.25 + 0.5 * mean_logprob))
    with pytest.raises(CapabilityMissing, match="came without them"):
        await scorer.score(Problem("p", "q", "1"), [_completion(None, tokens=3)], ctx)


def test_malformed_probe_files_are_refused(tmp_path: Path) -> None:
    assert "hidden:PATH" in SCORER_NAMES
    with pytest.raises(ConfigError, match="does not exist"):
        make_scorer(f"hidden:{tmp_path / 'none.json'}")
    bad = tmp_path / "bad.json"
    data = _probe().to_dict()
    bad.write_text(json.dumps({**data, "format": "other"}))
    with pytest.raises(ConfigError, match="not a hidden-state probe"):
        HiddenProbe.load(bad)
    bad.write_text(json.dumps({**data, "coef": [1.0]}))
    with pytest.raises(ConfigError, match="must have 4 numbers"):
        HiddenProbe.load(bad)
    bad.write_text(json.dumps({**data, "features": ["colour"], "mean": [0.0] * 5}))
    with pytest.raises(ConfigError, match="unknown features"):
        HiddenProbe.load(bad)


def _row(word: str) -> list[float]:
    """Scripted hidden rows: a word containing 7 points one way, any other the other (the
    last row read is the second-to-last word's)."""
    return [1.0, 0.0, 0.0] if "7" in word else [-1.0, 0.0, 0.0]


async def test_weighted_majority_by_the_probe_draws_hidden_states_and_follows_them(
    tmp_path: Path,
) -> None:
    # two samples say 5, one says 7; the probe trusts samples whose words hold a 7
    texts = ["so 5 is it \\boxed{5}", "then 5 \\boxed{5}", "7 and 7 make 7 \\boxed{7}"]
    path = tmp_path / "probe.json"
    matrix = PROJECTION.matrix().astype(np.float64)
    # the probe's weight on the projected last row undoes the projection's first column
    direction = matrix[0] / float(matrix[0] @ matrix[0])
    HiddenProbe(
        projection=PROJECTION,
        features=(),
        mean=(0.0,) * 4,
        scale=(1.0,) * 4,
        coef=(*(8.0 * direction), 0.0, 0.0),
        intercept=0.0,
    ).save(path)
    engine = ScriptedEngine(texts, hidden_state=_row)
    ctx = Context(engine, make_task("demo"))
    strategy = WeightedMajority(n=3, scorer=f"hidden:{path}")
    result = await strategy(Problem("p", "q", "7"), ctx)
    assert all(r.hidden for r in engine.requests)
    assert result.answer == "7"
    assert result.votes["7"] > 0.9 and result.votes["5"] < 0.1

    blind = Context(ScriptedEngine(texts), make_task("demo"))
    with pytest.raises(CapabilityMissing, match="hidden states"):
        await strategy(Problem("p", "q", "7"), blind)
