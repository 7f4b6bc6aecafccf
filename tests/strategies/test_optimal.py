"""The optimal strategy: pilot, bin, the policy's configuration, pilot samples reused."""

import json
import math

import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import ComputeOptimal, Context, make_strategy
from ponder.verifiers.confidence import ConfidenceScorer

SAMPLING = {"temperature": 0.7, "top_p": 0.95}


def write_policy(tmp_path, cells, *, samples=2, thresholds=(1.0,), signal="agreement",
                 scorer=None, budgets=(100,)):  # fmt: skip
    """cells: {bin: (strategy, options, reuses_pilot)}, the same at every budget."""
    table = [
        cell(b, budget, s, o, reuse) for budget in budgets for b, (s, o, reuse) in cells.items()
    ]
    policy = {
        "format": "ponder-optimal-policy", "version": 1, "task": "boxed", "model": "scripted",
        "pilot": {"samples": samples, **SAMPLING, "scorer": scorer, "signal": signal},
        "bins": {"thresholds": list(thresholds)}, "budgets": list(budgets), "table": table,
    }  # fmt: skip
    path = tmp_path / f"policy-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(policy))
    return str(path)


def cell(b, budget, strategy, options, reuse):
    return {
        "bin": b, "budget": budget, "config": {"strategy": strategy, "options": options},
        "reuses_pilot": reuse, "accuracy": 0.5, "tokens": 50.0, "problems": 1,
    }  # fmt: skip


def ctx_for(engine):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=32, seed=0)


def majority(n):
    return ("majority", {"n": n, **SAMPLING}, True)


async def test_an_agreeing_pilot_is_the_whole_run_when_its_bin_wants_n_equal_k(tmp_path):
    policy = write_policy(tmp_path, {1: majority(2), 2: majority(4)})
    eng = ScriptedEngine(["\\boxed{42}"])
    res = await make_strategy("optimal", {"policy": policy, "budget": 100})(PROBLEM, ctx_for(eng))
    assert res.answer == "42" and len(res.candidates) == 2
    assert [(r.n, r.temperature, r.top_p, r.wants_logprobs) for r in eng.requests] == [
        (2, 0.7, 0.95, False)
    ]
    assert res.meta == {
        "pilot": 2, "signal": "agreement", "signal_value": 1.0, "bin": 1, "budget": 100.0,
        "config": {"strategy": "majority", "options": {"n": 2, **SAMPLING}},
        "reused_pilot": True, "decided_by": 2,
    }  # fmt: skip


async def test_a_split_pilot_draws_only_the_rest_and_votes_over_all(tmp_path):
    policy = write_policy(tmp_path, {1: majority(2), 2: majority(4)})
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{42}", "\\boxed{41}"])
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx_for(eng))
    assert [r.n for r in eng.requests] == [2, 2]
    assert [c.answer for c in res.candidates] == ["41", "42", "42", "41"]
    # 2-2 tie: 42 reached two votes first (sample 3)
    assert res.answer == "42" and res.votes == {"41": 2.0, "42": 2.0}
    assert (res.meta["bin"], res.meta["signal_value"], res.meta["decided_by"]) == (2, 0.5, 4)
    # two requests: the 6-word prompt is prefilled twice; four 1-word samples
    assert (res.usage.prompt_tokens, res.usage.completion_tokens) == (12, 4)


async def test_fewer_samples_than_the_pilot_read_the_first_ones(tmp_path):
    policy = write_policy(tmp_path, {1: majority(1), 2: majority(3)}, samples=3, thresholds=(0.5,))
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{42}"])
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx_for(eng))
    # agreement 2/3 >= 0.5: bin 1, majority of the first sample only
    assert res.meta["bin"] == 1 and res.meta["signal_value"] == pytest.approx(2 / 3)
    assert res.answer == "41" and res.meta["decided_by"] == 1
    assert len(res.candidates) == 3 and len(eng.requests) == 1


async def test_another_strategy_runs_after_the_pilot_on_the_same_ledger(tmp_path):
    single = ("single", {"temperature": 0.0, "top_p": 1.0}, False)
    policy = write_policy(tmp_path, {1: majority(2), 2: single})
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{7}"])
    ctx = ctx_for(eng)
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx)
    assert [(r.n, r.temperature) for r in eng.requests] == [(2, 0.7), (1, 0.0)]
    assert res.answer == "7" and res.votes == {"7": 1.0}
    assert [c.answer for c in res.candidates] == ["41", "42", "7"]
    assert res.meta["reused_pilot"] is False and res.meta["inner"] == {}
    assert res.usage == ctx.ledger.total() and res.usage.calls == 2


class CountingScorer(ConfidenceScorer):
    scored: list[int] = []  # noqa: RUF012

    async def score(self, problem, completions, ctx):
        CountingScorer.scored.append(len(completions))
        return await super().score(problem, completions, ctx)


@pytest.mark.parametrize(("signal", "scored"), [("score", [2, 1]), ("agreement", [3])])
async def test_scored_rules_score_each_sample_once(tmp_path, monkeypatch, signal, scored):
    monkeypatch.setattr("ponder.strategies.optimal.make_scorer", lambda spec: CountingScorer())
    CountingScorer.scored = []
    best = ("best_of_n", {"n": 3, **SAMPLING, "scorer": "logprob"}, True)
    policy = write_policy(
        tmp_path, {1: best, 2: majority(2)}, thresholds=(0.5,), signal=signal, scorer="logprob"
    )
    lp = {"\\boxed{41}": -0.1, "\\boxed{42}": -0.05}
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{41}", "\\boxed{42}"], logprob=lambda t: lp[t])
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx_for(eng))
    # the pilot asks for logprobs because its scorer needs them
    assert [(r.n, r.top_logprobs) for r in eng.requests] == [(2, 5), (1, 5)]
    assert CountingScorer.scored == scored
    assert [c.score for c in res.candidates] == pytest.approx(
        [math.exp(-0.1), math.exp(-0.1), math.exp(-0.05)]
    )
    assert res.answer == "42" and res.meta["bin"] == 1


def test_construction_checks_the_policy_and_the_budget(tmp_path):
    policy = write_policy(tmp_path, {1: majority(2), 2: majority(4)}, budgets=(100, 200))
    assert ComputeOptimal(policy=policy, budget=150).budget == 150
    with pytest.raises(ConfigError, match="below the policy's smallest budget 100"):
        ComputeOptimal(policy=policy, budget=99)
    with pytest.raises(ConfigError, match="needs a policy file"):
        make_strategy("optimal", {"budget": 100})
    with pytest.raises(ConfigError, match="positive token budget"):
        make_strategy("optimal", {"policy": policy})
    with pytest.raises(ConfigError, match="no policy file"):
        ComputeOptimal(policy=str(tmp_path / "nope.json"), budget=100)
    broken = write_policy(tmp_path, {1: majority(2), 2: ("single", {"n": 3}, False)})
    with pytest.raises(ConfigError, match="takes no option"):
        ComputeOptimal(policy=broken, budget=100)


async def test_the_budget_picks_the_largest_column_below_it(tmp_path):
    policy = write_policy(tmp_path, {1: majority(2), 2: majority(4)}, budgets=(100, 200))
    eng = ScriptedEngine(["\\boxed{42}"])
    res = await ComputeOptimal(policy=policy, budget=199)(PROBLEM, ctx_for(eng))
    assert res.meta["budget"] == 100.0


async def test_no_logprobs_are_asked_for_when_nothing_is_scored(tmp_path):
    # the pilot run was best_of_n with logprob, but this policy only votes
    policy = write_policy(tmp_path, {1: majority(2), 2: majority(3)}, scorer="logprob")
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{42}"], supports_logprobs=False)
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx_for(eng))
    assert [(r.n, r.wants_logprobs) for r in eng.requests] == [(2, False), (1, False)]
    assert res.answer == "42" and all(c.score is None for c in res.candidates)


def stop(tau, min_n=2, scorer="", **extra):
    options = {
        "max_n": 6, "batch": 1, "min_n": min_n, "by": "margin", "tau": tau, "give_up": 0.0,
        "give_up_after": 4, "scorer": scorer, **SAMPLING, **extra,
    }  # fmt: skip
    return ("weighted_stop", options, True)


async def test_a_stop_that_reuses_the_pilot_checks_it_first_then_samples_one_at_a_time(tmp_path):
    policy = write_policy(tmp_path, {1: majority(2), 2: stop(2.0)})
    # pilot 41, 42 (split: bin 2); then 42 (lead 1), 42 (lead 2): stop at four samples
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{42}", "\\boxed{42}", "\\boxed{9}"])
    ctx = ctx_for(eng)
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx)
    assert [r.n for r in eng.requests] == [2, 1, 1]
    assert [c.answer for c in res.candidates] == ["41", "42", "42", "42"]
    assert res.answer == "42" and res.votes == {"41": 1.0, "42": 3.0}
    assert res.meta["bin"] == 2 and res.meta["decided_by"] == 4
    assert res.meta["inner"]["stop_reason"] == "margin 2.0000 >= 2"
    assert [h["lead"] for h in res.meta["inner"]["history"]] == [0.0, 1.0, 2.0]
    assert res.usage == ctx.ledger.total() and res.usage.calls == 3


async def test_a_settled_pilot_ends_a_stop_without_another_sample(tmp_path):
    policy = write_policy(tmp_path, {1: stop(2.0), 2: majority(4)})
    eng = ScriptedEngine(["\\boxed{42}"])
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx_for(eng))
    assert [r.n for r in eng.requests] == [2]
    assert res.answer == "42" and res.meta["decided_by"] == 2


async def test_a_weighted_stop_scores_the_pilot_with_the_pilot_s_scorer(tmp_path, monkeypatch):
    monkeypatch.setattr("ponder.strategies.optimal.make_scorer", lambda spec: CountingScorer())
    monkeypatch.setattr(
        "ponder.strategies.weighted_stop.make_scorer", lambda spec: CountingScorer()
    )
    CountingScorer.scored = []
    policy = write_policy(
        tmp_path, {1: majority(2), 2: stop(0.5, scorer="logprob")}, scorer="logprob"
    )
    lp = {"\\boxed{41}": math.log(0.2), "\\boxed{42}": math.log(0.9)}
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{42}"], logprob=lambda t: lp[t])
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx_for(eng))
    # the pilot is drawn with logprobs and scored once; 42 (0.9) leads 41 (0.2) by 0.7
    assert [(r.n, r.wants_logprobs) for r in eng.requests] == [(2, True)]
    assert CountingScorer.scored == [2]
    assert res.answer == "42" and res.meta["decided_by"] == 2


def test_a_stop_must_start_from_the_whole_pilot_and_weigh_as_it_does(tmp_path):
    short = write_policy(tmp_path, {1: majority(2), 2: stop(2.0, min_n=1)})
    with pytest.raises(ConfigError, match="min_n must be at least 2"):
        ComputeOptimal(policy=short, budget=100)
    other = write_policy(tmp_path, {1: majority(2), 2: stop(0.5, scorer="logprob")})
    with pytest.raises(ConfigError, match="does not sample \\(and score\\) as the pilot"):
        ComputeOptimal(policy=other, budget=100)


def hybrid(n, programs=1, **extra):
    options = {"n": n, "programs": programs, "program_temperature": 0.0, **SAMPLING, **extra}
    return ("hybrid", options, True)


PRINTS_42 = 'print("\\\\boxed{42}")\n```'


async def test_a_hybrid_takes_the_pilot_as_its_first_chains_then_its_programs(
    tmp_path, monkeypatch
):
    from ponder.core.sandbox import ALLOW_UNISOLATED_ENV

    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")
    policy = write_policy(tmp_path, {1: majority(2), 2: hybrid(3)})
    # pilot 41, 42 (split: bin 2); one more chain, 41; the program prints 42
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{41}", PRINTS_42])
    ctx = ctx_for(eng)
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx)
    assert [r.n for r in eng.requests] == [2, 1, 1]
    assert eng.requests[2].continuation.startswith("```python")
    assert eng.requests[2].temperature == 0.0
    assert [c.answer for c in res.candidates] == ["41", "42", "41", "42"]
    # 41 and 42 two votes each: 41 reached two first (the third chain)
    assert res.votes == {"41": 2.0, "42": 2.0} and res.answer == "41"
    assert res.meta["decided_by"] == 4 and res.meta["inner"]["pal"]["ran"] == 1
    assert res.usage == ctx.ledger.total() and res.usage.calls == 3
    # fewer chains than the pilot: the first pilot sample and the program
    policy = write_policy(tmp_path, {1: majority(2), 2: hybrid(1, program_weight=1.0)})
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", PRINTS_42])
    res = await ComputeOptimal(policy=policy, budget=100)(PROBLEM, ctx_for(eng))
    assert [r.n for r in eng.requests] == [2, 1]
    assert [c.answer for c in res.candidates] == ["41", "42", "42"]
    assert res.votes == {"41": 1.0, "42": 1.0} and res.answer == "41"


def test_a_hybrid_must_weigh_as_the_pilot_does(tmp_path):
    other = write_policy(tmp_path, {1: majority(2), 2: hybrid(3, scorer="logprob")})
    with pytest.raises(ConfigError, match="does not sample \\(and score\\) as the pilot"):
        ComputeOptimal(policy=other, budget=100)
