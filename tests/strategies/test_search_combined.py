"""Search guided by the combined verifier (``--verifier combined:PATH``): each partial
solution scored from the scripted logprobs its steps were generated with."""

from pathlib import Path

import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import TokenLogprob
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy
from ponder.verifiers.combined import CombinedStepVerifier, CombinedVerifier
from ponder.verifiers.features import sample_features
from ponder.verifiers.process import ProcessVerifier
from ponder.verifiers.registry import make_process_verifier

TOP_K = 3
# the higher a prefix's mean logprob, the likelier right: z = (mean_logprob + 1) / 0.5
MODEL = CombinedVerifier(
    features=("mean_logprob",), mean=(-1.0,), scale=(0.5,), coef=(1.5,), intercept=0.0, top_k=TOP_K
)


def responder(request, index):
    """The first step alternates good and bad; the second answers 42 after a good step
    and 3 after a bad one, and the model ends the solution there."""
    depth = request.continuation.count("\n\n")
    if depth == 0:
        return ("good start\n\n", "bad start\n\n")[index % 2]
    return "so \\boxed{42}" if "good" in request.continuation else "so \\boxed{3}"


def logprob(text):
    """Confident words, but for the bad first step's."""
    return [-2.0 if "bad" in text else -0.05 for _ in text.split()]


def tokens(*texts):
    """The scripted engine's logprobs of ``texts``' words, as the search draws them."""
    return [
        TokenLogprob(w, lp, tuple((f"{w}~{k}", lp - 1 - k) for k in range(TOP_K)))
        for text in texts
        for w, lp in zip(text.split(), logprob(text), strict=True)
    ]


def expected(*texts):
    return MODEL.probability(sample_features(tokens(*texts)))


@pytest.fixture
def spec(tmp_path: Path) -> str:
    path = tmp_path / "combined.json"
    MODEL.save(path)
    return f"combined:{path}"


def ctx_for(engine):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=64, seed=0)


async def test_beam_search_ranks_partial_solutions_by_their_own_logprobs(spec):
    eng = ScriptedEngine(responder, logprob=logprob)
    strategy = make_strategy("beam_search", {"n": 4, "width": 2, "verifier": spec})
    res = await strategy(PROBLEM, ctx_for(eng))
    # every step drawn with the model's alternatives; the two good beams extended
    assert all(r.logprobs and r.top_logprobs == TOP_K for r in eng.requests)
    assert [(r.n, r.continuation) for r in eng.requests] == [
        (4, ""),
        (2, "good start\n\n"),
        (2, "good start\n\n"),
    ]
    assert res.answer == "42"
    good, bad = expected("good start"), expected("bad start")
    assert good > 0.5 > bad
    ranked = {n["step"].strip(): n["score"] for n in res.meta["tree"] if n["depth"] == 1}
    assert ranked == {"good start": pytest.approx(good), "bad start": pytest.approx(bad)}
    # a finished solution: the features of all its tokens, both steps' (agg last)
    whole = expected("good start", "so \\boxed{42}")
    assert [c.score for c in res.candidates] == pytest.approx([whole] * 4)
    assert res.meta["score"]["calls"] == 0  # nothing generated to score


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("dvts", {"n": 4, "width": 2}),
        ("lookahead", {"n": 4, "width": 2, "lookahead": 1}),
        ("mcts", {"iterations": 3, "width": 2}),
    ],
)
async def test_every_search_runs_on_the_combined_verifier(spec, name, options):
    eng = ScriptedEngine(responder, logprob=logprob)
    res = await make_strategy(name, {**options, "verifier": spec})(PROBLEM, ctx_for(eng))
    assert all(r.top_logprobs == TOP_K for r in eng.requests)
    assert res.answer == "42"
    scores = [c.score for c in res.candidates if c.answer == "42"]
    assert scores and scores == pytest.approx(
        [expected("good start", "so \\boxed{42}")] * len(scores)
    )


async def test_a_verifier_without_step_logprobs_draws_steps_without_them(monkeypatch):
    class Flat(ProcessVerifier):
        name = "flat"

        async def _score_from(self, problem, items, ctx):
            return [[0.5] * (len(path) - start) for path, start in items]

    monkeypatch.setattr("ponder.strategies.search.make_process_verifier", lambda s, **k: Flat())
    eng = ScriptedEngine(responder, logprob=logprob)
    await make_strategy("beam_search", {"n": 2, "width": 1})(PROBLEM, ctx_for(eng))
    assert eng.requests and not any(r.wants_logprobs for r in eng.requests)
    with pytest.raises(NotImplementedError, match="reads no step logprobs"):
        Flat().observe_prefix(PROBLEM, ("a",), ())


async def test_a_prefix_it_was_not_handed_is_refused(spec):
    verifier = make_process_verifier(spec)
    assert isinstance(verifier, CombinedStepVerifier)
    assert verifier.step_top_logprobs == TOP_K and verifier.needs_logprobs
    ctx = ctx_for(ScriptedEngine(responder))
    with pytest.raises(CapabilityMissing, match="was not given them"):
        await verifier.score_paths(PROBLEM, [("good start",)], ctx)
    verifier.observe_prefix(PROBLEM, ("good start",), tokens("good start"))
    [(score,)] = await verifier.score_paths(PROBLEM, [("good start",)], ctx)
    assert score == pytest.approx(expected("good start"))


def test_the_verifier_spec_is_checked(spec, tmp_path):
    verifier = make_process_verifier(f"{spec},agg=min")
    assert verifier.aggregation == "min"
    with pytest.raises(ConfigError, match="takes no option"):
        make_process_verifier(f"{spec},colour=red")
    with pytest.raises(ConfigError, match="does not exist"):
        make_process_verifier(f"combined:{tmp_path / 'none.json'}")
