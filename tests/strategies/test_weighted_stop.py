"""``weighted_stop`` on scripted engines: the weighted vote settles by share or margin,
gives up on a scattered vote, and answers by the weighted vote; stopping points worked
out by hand."""

import math

import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy
from ponder.strategies.weighted_stop import WeightedStop

# the logprob scorer weighs a sample by exp(mean logprob): each text says its own
CONFIDENT = {"\\boxed{4}": -0.01}  # every other answer: log 0.3


def _engine(answers):
    texts = [f"\\boxed{{{a}}}" for a in answers]
    return ScriptedEngine(
        texts, logprob=lambda text: [CONFIDENT.get(text, math.log(0.3))] * len(text.split())
    )


def _run(strategy, answers):
    import asyncio

    ctx = Context(_engine(answers), BoxedTask(), Ledger(), max_tokens=32)
    return asyncio.run(strategy(PROBLEM, ctx)), ctx


def test_one_sample_the_scorer_is_sure_of_ends_a_margin_rule():
    result, ctx = _run(WeightedStop(max_n=8, tau=0.9), ["4", "5"])
    assert result.meta["samples"] == 1
    assert result.answer == "4"
    assert result.meta["stop_reason"].startswith("margin 0.99")
    assert ctx.ledger.total().calls == 1


def test_unsure_samples_need_a_lead_of_votes():
    # weights 0.3 each: 5, 5, 5 leads by 0.9 after three samples, not before
    result, _ = _run(WeightedStop(max_n=8, tau=0.9), ["5", "5", "5", "5"])
    assert result.meta["samples"] == 3
    assert [h["lead"] for h in result.meta["history"]] == pytest.approx([0.3, 0.6, 0.9])
    # 5, 6, 5, 6, ...: never ahead by more than 0.3, so every sample is drawn
    result, _ = _run(WeightedStop(max_n=6, tau=0.9), ["5", "6"])
    assert result.meta["samples"] == 6 and result.meta["stop_reason"] == "cap reached"


def test_a_share_rule_waits_for_min_n_and_the_vote_is_weighted():
    # 5 (0.3), 4 (0.99): after two the leader 4 holds 0.99 / 1.29 = 0.767 of the weight
    strategy = WeightedStop(max_n=8, by="share", tau=0.75, min_n=2)
    result, _ = _run(strategy, ["5", "4"])
    assert result.meta["samples"] == 2
    assert result.answer == "4"  # one confident sample outweighs one unsure
    assert result.votes == pytest.approx({"5": 0.3, "4": math.exp(-0.01)})


def test_a_scattered_vote_is_given_up():
    # 5, 6, 7, 5, ... weigh 0.3 each: the leader's share is 1/3 after three samples
    strategy = WeightedStop(max_n=8, tau=0.9, give_up=0.4, give_up_after=3)
    result, _ = _run(strategy, ["5", "6", "7"])
    assert result.meta["samples"] == 3
    assert result.meta["stop_reason"] == "gave up: share 0.3333 < 0.4"
    # below 0.3 it never falls (1/3, then 1/2, 2/5, 1/3, ...), so the cap is reached
    result, _ = _run(WeightedStop(max_n=8, tau=0.9, give_up=0.3, give_up_after=3), ["5", "6", "7"])
    assert result.meta["samples"] == 8


def test_bad_settings_are_refused_before_sampling():
    for bad in (
        {"by": "vote"},
        {"by": "share", "tau": 1.5},
        {"tau": 0},
        {"min_n": 0},
        {"give_up": 1.0},
        {"give_up_after": 1},
        {"scorer": "nope"},
    ):
        with pytest.raises(ConfigError):
            WeightedStop(**bad)
    assert isinstance(make_strategy("weighted_stop", {"tau": 0.5}), WeightedStop)


def test_an_empty_scorer_counts_every_sample_once():
    # unweighted: 5, 5 leads by two votes after two samples, whatever the logprobs say
    result, ctx = _run(WeightedStop(max_n=8, tau=2.0, scorer=""), ["5", "5", "4"])
    assert result.meta["samples"] == 2 and result.meta["scorer"] == "count"
    assert result.votes == {"5": 2.0}
    assert not any(r.wants_logprobs for r in ctx.engine.requests)
