"""``hybrid``: CoT samples and programs (run for real in the sandbox) in one vote,
unweighted and weighted by a scorer, as the replay's ``hybrid[k,m]`` and
``hybrid[k,m,w]`` count them."""

from __future__ import annotations

import math

import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.core.sandbox import ALLOW_UNISOLATED_ENV
from ponder.core.types import Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy
from ponder.strategies.hybrid import Hybrid
from ponder.strategies.pal import PROGRAM_START
from ponder.tasks.demo import DemoTask

PROBLEM = Problem("p1", "What is six times seven?", answer="42")
SAYS_41 = "Six sevens are 41. \\boxed{41}"
SAYS_42 = "Six sevens are 42. \\boxed{42}"
PRINTS_42 = "print(6 * 7)\n```"
PRINTS_41 = "print(41)\n```"


def ctx_for(engine: ScriptedEngine, **kw) -> Context:
    return Context(engine=engine, task=DemoTask(), ledger=Ledger(), max_tokens=64, **kw)


@pytest.fixture(autouse=True)
def _opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")


async def test_cot_samples_then_programs_one_vote_each() -> None:
    engine = ScriptedEngine([SAYS_41, SAYS_42, SAYS_41, PRINTS_42, PRINTS_42])
    ctx = ctx_for(engine, seed=3)
    result = await Hybrid(n=3, programs=2)(PROBLEM, ctx)
    # two requests: the task's own prompt for 3 samples, then the pal prompt for 2
    cot, programs = engine.requests
    assert cot.n == 3 and not cot.continuation and (cot.temperature, cot.top_p) == (0.7, 0.95)
    assert programs.n == 2 and programs.continuation == PROGRAM_START
    assert programs.temperature == 0.7  # more than one program: sampled
    assert [c.answer for c in result.candidates] == ["41", "42", "41", "42", "42"]
    assert result.votes == {"41": 2.0, "42": 3.0} and result.answer == "42"
    assert result.meta["cot"] == 3 and result.meta["programs"] == 2
    assert result.meta["pal"]["ran"] == 2 and result.meta["scored"] is False
    # the cost is both kinds of sample, and the programs' executions are on the ledger
    assert ctx.ledger.executions() == 2
    assert result.usage.calls == 2


async def test_one_program_is_greedy_and_a_tie_goes_to_the_cot_sample() -> None:
    engine = ScriptedEngine([SAYS_41, PRINTS_42])
    result = await Hybrid(n=1, programs=1)(PROBLEM, ctx_for(engine))
    assert engine.requests[1].temperature == 0.0
    assert result.votes == {"41": 1.0, "42": 1.0} and result.answer == "41"


@pytest.mark.parametrize(("weight", "answer"), [(0.5, "41"), (1.0, "42")])
async def test_a_scorer_weighs_cot_samples_and_programs_weigh_program_weight(
    weight: float, answer: str
) -> None:
    # the scripted logprob makes the 41 sample's confidence 0.9 and the 42 sample's 0.3
    engine = ScriptedEngine(
        [SAYS_41, SAYS_42, PRINTS_42],
        logprob=lambda text: math.log(0.9) if "41" in text else math.log(0.3),
    )
    result = await Hybrid(n=2, programs=1, scorer="logprob", program_weight=weight)(
        PROBLEM, ctx_for(engine)
    )
    scores = [c.score for c in result.candidates]
    assert scores[:2] == [pytest.approx(0.9), pytest.approx(0.3)] and scores[2] is None
    assert result.votes == {"41": pytest.approx(0.9), "42": pytest.approx(0.3 + weight)}
    assert result.answer == answer and result.meta["scored"] is True


async def test_programs_that_do_not_fit_the_budget_leave_the_vote_to_the_cot_samples() -> None:
    engine = ScriptedEngine([SAYS_42, PRINTS_41])
    # room for the CoT sample's request only
    ctx = ctx_for(engine)
    with ctx.ledger.budget(calls=1):
        result = await Hybrid(n=1, programs=1)(PROBLEM, ctx)
    assert result.answer == "42" and [c.answer for c in result.candidates] == ["42"]
    assert result.meta["stopped"] == "budget" and "pal" not in result.meta


def test_bad_settings_are_refused_and_the_cli_can_make_it() -> None:
    with pytest.raises(ConfigError, match="not both 0"):
        Hybrid(n=0, programs=0)
    with pytest.raises(ConfigError, match="program_weight"):
        Hybrid(program_weight=0)
    with pytest.raises(ConfigError, match="n is 0"):
        Hybrid(n=0, scorer="logprob")
    options = {"n": 8, "programs": 2, "scorer": "logprob", "program_weight": 2.0}
    made = make_strategy("hybrid", options)
    assert isinstance(made, Hybrid) and made.programs == 2 and made.program_weight == 2.0
