"""behaviour_majority and best_of_n with the visible-test scorer, on the scripted engine
and real sandboxed execution."""

from __future__ import annotations

import pytest

from _coding import PROBLEM, fenced, tight_sandbox
from ponder.core.budget import Ledger
from ponder.core.context import Context
from ponder.core.errors import ConfigError
from ponder.core.execution import CaseResult
from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import make_strategy
from ponder.strategies.behaviour_majority import INPUTS_PROMPT, behaviour_groups
from ponder.tasks.humaneval import HumanEvalTask

SANDBOX = tight_sandbox()
RIGHT = fenced("def add(a, b):\n    return a + b\n")
SWAPPED = fenced("def add(a, b):\n    return b + a\n")
SUMMED = fenced("def add(a, b):\n    return sum((a, b))\n")
# passes the visible examples (add(1, 2) == 3, add(-1, 1) == 0) by rote, wrong elsewhere
ROTE = fenced("def add(a, b):\n    if (a, b) == (1, 2):\n        return 3\n    return 0\n")
WRONG = fenced("def add(a, b):\n    return a - b\n")
INPUTS = "```python\nadd(5, 7)\nadd(0, 0)\nadd(1, 2)\nadd(x, 1)\n```"


def engine(samples: list[str], inputs: str = INPUTS) -> ScriptedEngine:
    def respond(request: GenRequest, index: int) -> str:
        assert request.messages is not None
        if request.messages[-1].content.startswith("Here is a Python function to test"):
            return inputs
        return samples[index % len(samples)]

    return ScriptedEngine(respond)


def ctx(eng: ScriptedEngine) -> Context:
    return Context(engine=eng, task=HumanEvalTask(sandbox=SANDBOX), ledger=Ledger(),
                   max_tokens=64, seed=3, sandbox=SANDBOX)  # fmt: skip


async def test_the_most_common_behaviour_wins_over_the_most_common_text() -> None:
    eng = engine([ROTE, RIGHT, WRONG, SWAPPED, SUMMED, ROTE])
    c = ctx(eng)
    res = await make_strategy("behaviour_majority", {"n": 6})(PROBLEM, c)
    # by text ROTE is the plurality (2 of 6); by behaviour RIGHT, SWAPPED and SUMMED agree
    assert res.answer == c.extract(RIGHT)
    assert res.meta["survivors"] == [0, 1, 3, 4, 5]
    assert res.meta["groups"] == [{"members": [0, 5], "passed": 2},
                                  {"members": [1, 3, 4], "passed": 2}]  # fmt: skip
    assert res.votes == {c.extract(ROTE): 2.0, c.extract(RIGHT): 3.0}
    # the visible calls are not asked again; the one that is not literal is dropped
    assert res.meta["inputs"] == ["add(5, 7)", "add(0, 0)"]
    assert [s.score for s in res.candidates] == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert res.meta["candidates"][2] == {"passed": 0, "reason": "expected 3, got -1"}
    sample, ask = eng.requests
    assert (sample.n, sample.temperature, sample.seed) == (6, 0.7, 3)
    assert (ask.n, ask.temperature, ask.max_tokens) == (1, 0.0, 256)
    assert ask.messages is not None and "Write 8 different calls of `add`" in (
        ask.messages[-1].content
    )
    # executions: 5 distinct programs on the visible tests, 4 distinct survivors on the
    # inputs; the inputs request is generation, on the ledger with the samples
    assert res.meta["execution"]["executions"] == 9
    assert c.ledger.executions() == 9
    generated = [e for e in c.ledger.events if e.kind == "generate"]
    assert [e.label for e in generated] == ["", "test-inputs"]
    assert res.usage == c.ledger.total()
    assert res.usage.completion_tokens == sum(comp.usage.completion_tokens for comp in
                                              res.candidates) + len(INPUTS.split())  # fmt: skip


async def test_ties_go_to_the_group_first_in_sample_order() -> None:
    eng = engine([ROTE, RIGHT])
    res = await make_strategy("behaviour_majority", {"n": 2})(PROBLEM, ctx(eng))
    assert res.answer == ctx(eng).extract(ROTE)
    assert [g["members"] for g in res.meta["groups"]] == [[0], [1]]


async def test_one_distinct_survivor_needs_no_inputs_request() -> None:
    eng = engine([RIGHT, WRONG, RIGHT])
    c = ctx(eng)
    res = await make_strategy("behaviour_majority", {"n": 3})(PROBLEM, c)
    assert res.answer == c.extract(RIGHT) and len(eng.requests) == 1
    assert res.meta["inputs"] == [] and res.votes == {c.extract(RIGHT): 2.0}
    assert c.ledger.executions() == 2


async def test_without_generated_inputs_groups_use_the_visible_outputs() -> None:
    eng = engine([ROTE, RIGHT, SWAPPED])
    res = await make_strategy("behaviour_majority", {"n": 3, "inputs": 0})(PROBLEM, ctx(eng))
    # on the visible inputs alone every survivor behaves alike: one group, the first wins
    assert len(eng.requests) == 1 and res.meta["groups"][0]["members"] == [0, 1, 2]
    assert res.answer == ctx(eng).extract(ROTE)


async def test_when_none_passes_every_visible_test_the_best_passing_survive() -> None:
    half = fenced("def add(a, b):\n    return 3\n")  # add(1, 2) == 3 only
    eng = engine([WRONG, half, WRONG])
    res = await make_strategy("behaviour_majority", {"n": 3, "inputs": 0})(PROBLEM, ctx(eng))
    assert res.answer == ctx(eng).extract(half)
    assert res.meta["survivors"] == [1]
    assert "no program passed every visible test" in res.meta["fallback"]


async def test_when_nothing_loads_the_texts_are_voted_and_no_code_gives_none() -> None:
    broken = fenced("def add(a, b):\n    return a\nx = undefined_name\n")
    eng = engine([broken, "no code", broken])
    res = await make_strategy("behaviour_majority", {"n": 3})(PROBLEM, ctx(eng))
    assert res.answer == ctx(eng).extract(broken) and res.votes == {res.answer: 2.0}
    assert res.meta["fallback"].startswith("no program loaded")
    assert res.meta["candidates"][1] == {"passed": None, "reason": "no code found"}
    empty = await make_strategy("behaviour_majority", {"n": 2})(
        PROBLEM, ctx(engine(["I do not know."]))
    )
    assert empty.answer is None and empty.votes == {}


async def test_filter_off_clusters_every_program_that_loads() -> None:
    eng = engine([WRONG, WRONG, RIGHT], inputs="```python\nadd(2, 2)\n```")
    res = await make_strategy("behaviour_majority", {"n": 3, "filter": False})(PROBLEM, ctx(eng))
    # the wrong program is the bigger group: without the filter it wins
    assert res.answer == ctx(eng).extract(WRONG) and res.meta["fallback"] is None


async def test_best_of_n_with_the_visible_tests_scorer() -> None:
    eng = engine([WRONG, ROTE, RIGHT])
    c = ctx(eng)
    res = await make_strategy("best_of_n", {"n": 3, "scorer": "tests:visible"})(PROBLEM, c)
    assert res.answer == c.extract(ROTE)  # the first to pass every visible test
    assert [cand.score for cand in res.candidates] == [0.0, 1.0, 1.0]
    assert not eng.requests[0].wants_logprobs
    assert res.meta["execution"]["executions"] == 3 and res.meta["execution"]["seconds"] > 0


def test_settings_and_problems_are_checked() -> None:
    with pytest.raises(ConfigError):
        make_strategy("behaviour_majority", {"inputs": -1})
    with pytest.raises(ConfigError):
        make_strategy("behaviour_majority", {"top_p": 0})


async def test_a_problem_that_is_not_code_is_refused() -> None:
    from ponder.core.types import Problem

    with pytest.raises(ConfigError, match="not a code problem"):
        await make_strategy("behaviour_majority", {})(Problem("q", "2+2?"), ctx(engine([RIGHT])))


def test_behaviour_groups_treat_errors_as_behaviour() -> None:
    same_error = [CaseResult(False, None, "TypeError: bad (at: x)")]
    groups = behaviour_groups(
        [0, 1, 2, 3],
        [[CaseResult(True, "1")], same_error, [CaseResult(True, "1")], same_error],
    )
    assert groups == [[0, 2], [1, 3]]
    assert "{k}" in INPUTS_PROMPT and "{entry}" in INPUTS_PROMPT
