import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.errors import BudgetExceeded, CapabilityMissing, ConfigError
from ponder.core.types import Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy


def ctx_for(engine, **kw):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=32, **kw)


async def test_single_is_greedy_and_counts_usage():
    eng = ScriptedEngine(["so \\boxed{42}"])
    res = await make_strategy("single", {})(PROBLEM, ctx_for(eng))
    assert res.answer == "42"
    assert eng.requests[0].temperature == 0.0 and eng.requests[0].n == 1
    # prompt "user: what is six times seven" = 6 words, completion 2 words
    assert res.usage == Usage(prompt_tokens=6, completion_tokens=2, calls=1)
    assert res.votes == {"42": 1.0}


async def test_majority_votes_over_n_samples_with_shared_prompt():
    eng = ScriptedEngine(["\\boxed{41}", "\\boxed{42}", "\\boxed{42}", "no answer"])
    res = await make_strategy("majority", {"n": 4})(PROBLEM, ctx_for(eng, seed=5))
    assert res.answer == "42"
    assert res.votes == {"41": 1.0, "42": 2.0}
    assert [c.answer for c in res.candidates] == ["41", "42", "42", None]
    assert eng.requests[0].n == 4 and eng.requests[0].temperature == 0.7
    assert eng.requests[0].seed == 5
    # native n: prompt prefilled once, shared by three siblings
    assert res.usage.prompt_tokens == 6 and res.usage.cached_tokens == 18
    assert res.usage.calls == 1


async def test_best_of_n_picks_highest_confidence():
    # logprob per token depends on the text: the wrong answer is "confident"
    lp = {"\\boxed{1}": -0.05, "\\boxed{2}": -2.0}
    eng = ScriptedEngine(["\\boxed{2}", "\\boxed{1}", "\\boxed{2}"], logprob=lambda t: lp[t])
    res = await make_strategy("best_of_n", {"n": 3})(PROBLEM, ctx_for(eng))
    assert res.answer == "1"
    assert eng.requests[0].wants_logprobs
    assert res.candidates[1].score == pytest.approx(2.718281828**-0.05)


async def test_weighted_majority_sums_scores():
    lp = {"\\boxed{1}": -0.1, "\\boxed{2}": -0.5}
    eng = ScriptedEngine(["\\boxed{2}", "\\boxed{1}", "\\boxed{2}"], logprob=lambda t: lp[t])
    res = await make_strategy("weighted_majority", {"n": 3})(PROBLEM, ctx_for(eng))
    # 2 x exp(-0.5) = 1.21 beats exp(-0.1) = 0.90
    assert res.answer == "2"


async def test_judge_scorer_reads_p_yes_and_bills_the_ledger():
    def script(req, i):
        text = req.messages[-1].content
        if "Is this solution correct" in text:
            return "Yes" if "boxed{42}" in text else "No"
        return ["\\boxed{41}", "\\boxed{42}"][i % 2]

    eng = ScriptedEngine(script, logprob=-0.2)
    ctx = ctx_for(eng)
    res = await make_strategy("best_of_n", {"n": 2, "scorer": "judge"})(PROBLEM, ctx)
    assert res.answer == "42"
    assert res.candidates[1].score == pytest.approx(1.0)
    assert res.candidates[0].score == pytest.approx(0.0)
    assert ctx.ledger.total("score").calls == 2
    assert res.usage == ctx.ledger.total()


async def test_logprob_scorer_on_engine_without_logprobs_is_a_clear_error():
    eng = ScriptedEngine(["\\boxed{1}"], supports_logprobs=False)
    with pytest.raises(CapabilityMissing, match="logprobs"):
        await make_strategy("best_of_n", {"n": 2})(PROBLEM, ctx_for(eng))


async def test_budget_refuses_a_call_that_cannot_fit_before_it_runs():
    eng = ScriptedEngine(["\\boxed{1}"])
    ctx = ctx_for(eng)
    with ctx.ledger.budget(completion_tokens=100), pytest.raises(BudgetExceeded):
        await make_strategy("majority", {"n": 8})(PROBLEM, ctx)  # 8 x 32 > 100
    assert eng.requests == []


def test_make_strategy_errors():
    with pytest.raises(ConfigError, match="unknown strategy"):
        make_strategy("nope", {})
    with pytest.raises(ConfigError, match="takes no option"):
        make_strategy("single", {"n": 4})
    with pytest.raises(ConfigError, match="unknown scorer"):
        from ponder.verifiers.registry import make_scorer

        make_scorer("oracle")
