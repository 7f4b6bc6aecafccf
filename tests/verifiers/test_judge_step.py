"""StepJudgeVerifier on the scripted engine: which steps are asked, how the prompts are
laid out for prefix caching, the cache, and the ledger."""

import importlib.util
import math
from dataclasses import replace

import pytest
from _stub import StubTask

from ponder.core.budget import Ledger
from ponder.core.errors import BudgetExceeded, CapabilityMissing, ConfigError
from ponder.core.types import Completion, Message, Problem, TokenLogprob, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context
from ponder.verifiers.judge import STEP_JUDGE_SYSTEM, StepJudgeVerifier, step_judge_messages
from ponder.verifiers.registry import make_process_verifier, make_scorer

PROBLEM = Problem("p1", "what is two plus two, doubled")


def last_step(request):
    """The step a request asks about: the text after its last ``Step k:`` label."""
    user = request.messages[-1].content
    body = user[: user.rindex("\n\nIs step ")]
    return body[body.rindex("Step ") :].split("\n", 1)[1]


def judge_engine(**kw):
    """A judge that says Yes to steps containing 'ok' and No to the rest."""
    return ScriptedEngine(lambda req, i: "Yes" if "ok" in last_step(req) else "No", **kw)


def ctx_for(engine):
    return Context(engine=engine, task=StubTask(), ledger=Ledger())


async def test_every_new_step_is_asked_once_in_one_batched_call():
    eng = judge_engine()
    ctx = ctx_for(eng)
    v = StepJudgeVerifier()
    [scores] = await v.score_paths(PROBLEM, [("2 + 2 = 4 ok", "4 * 2 = 9", "so 9 ok")], ctx)
    assert scores == (1.0, 0.0, 1.0)
    assert [last_step(r) for r in eng.requests] == ["2 + 2 = 4 ok", "4 * 2 = 9", "so 9 ok"]
    for req in eng.requests:
        assert req.max_tokens == 1 and req.temperature == 0.0 and req.top_logprobs == 10
        assert req.messages[0] == Message("system", STEP_JUDGE_SYSTEM)
    # one engine call for the whole batch, billed as scoring
    [event] = ctx.ledger.events
    assert (event.kind, event.label) == ("score", "judge:step")


async def test_cached_steps_are_not_asked_again():
    eng = judge_engine()
    ctx = ctx_for(eng)
    v = StepJudgeVerifier()
    await v.score_paths(PROBLEM, [("a ok", "b")], ctx)
    assert len(eng.requests) == 2
    # two beams extend the scored prefix: only their new steps are asked
    out = await v.score_paths(PROBLEM, [("a ok", "b", "c ok"), ("a ok", "b", "d")], ctx)
    assert out == [(1.0, 0.0, 1.0), (1.0, 0.0, 0.0)]
    assert [last_step(r) for r in eng.requests[2:]] == ["c ok", "d"]
    # the new steps are judged with the whole path before them in the prompt
    assert "Step 1:\na ok\n\nStep 2:\nb\n\nStep 3:\nd" in eng.requests[3].messages[1].content
    # everything known already: no engine call, nothing on the ledger
    before = len(ctx.ledger.events)
    assert await v.score_paths(PROBLEM, [("a ok",), ("a ok", "b", "d")], ctx) == [
        (1.0,),
        (1.0, 0.0, 0.0),
    ]
    assert len(eng.requests) == 4 and len(ctx.ledger.events) == before
    assert v.steps_scored == 4


async def test_siblings_sharing_a_new_prefix_ask_it_once():
    eng = judge_engine()
    v = StepJudgeVerifier()
    await v.score_paths(PROBLEM, [("a ok", "b ok"), ("a ok", "c")], ctx_for(eng))
    assert sorted(last_step(r) for r in eng.requests) == ["a ok", "b ok", "c"]


async def test_prompt_for_a_step_extends_the_prompt_for_the_step_before():
    steps = ("Let x be the sum: x = 2 + 2 = 4.", "Double it: 2x = 8.", "So \\boxed{8}.")
    prompts = [step_judge_messages(PROBLEM.question, steps[: k + 1]) for k in range(3)]
    for k in range(2):
        before, after = prompts[k], prompts[k + 1]
        assert before[0] == after[0]  # the instructions, in the system message
        # everything before the closing question is repeated by the next step's prompt
        shared = before[1].content[: before[1].content.rindex("Is step")]
        assert after[1].content.startswith(shared)
        assert shared.startswith(f"Problem:\n{PROBLEM.question}\n\nSolution so far:")
        assert shared.endswith(f"Step {k + 1}:\n{steps[k]}\n\n")
    # the question about the step is the very end, and names the step
    assert prompts[2][1].content.endswith(
        "Is step 3, the last step above, correct? Answer Yes or No."
    )
    assert "Yes" in STEP_JUDGE_SYSTEM and "last step" in STEP_JUDGE_SYSTEM


def test_long_solutions_leave_out_early_steps_but_keep_the_last():
    steps = ["a" * 40, "b" * 40, "c" * 40]
    user = step_judge_messages("q", steps, max_solution_chars=90)[1].content
    assert "(steps 1 to 1 are left out)" in user
    assert "Step 2:\n" + "b" * 40 in user and "Step 3:\n" + "c" * 40 in user
    assert "a" * 40 not in user
    # a single step longer than the limit keeps its end
    user = step_judge_messages("q", ["x" * 50 + "END"], max_solution_chars=10)[1].content
    assert "xxxxxxxEND" in user and "x" * 11 not in user
    with pytest.raises(ValueError, match="at least one step"):
        step_judge_messages("q", [])


async def test_usage_goes_on_the_ledger_as_score():
    eng = judge_engine()
    ctx = ctx_for(eng)
    v = StepJudgeVerifier()
    await v.score_paths(PROBLEM, [("a ok", "b", "c")], ctx)
    # the scripted engine counts words: each prompt is billed, each answer is one token
    prompt_words = sum(
        len("\n".join(f"{m.role}: {m.content}" for m in r.messages).split()) for r in eng.requests
    )
    assert ctx.ledger.total("score") == Usage(
        prompt_tokens=prompt_words, completion_tokens=3, calls=3
    )
    assert ctx.ledger.total("generate") == Usage()


class YesNoEngine(ScriptedEngine):
    """Answers every prompt with a first token whose alternatives spread probability
    over yes and no, as a real model's do."""

    def __init__(self, p_yes_token, p_no_token):
        super().__init__(["Yes"])
        self.alternatives = (("Yes", math.log(p_yes_token)), (" no", math.log(p_no_token)))

    async def generate(self, requests):
        outs = await super().generate(requests)
        first = TokenLogprob(*self.alternatives[0], self.alternatives)
        return [[replace(c, logprobs=(first,)) for c in comps] for comps in outs]


async def test_p_yes_is_read_from_the_first_token_alternatives():
    ctx = ctx_for(YesNoEngine(0.6, 0.3))
    [scores] = await StepJudgeVerifier().score_paths(PROBLEM, [("a", "b")], ctx)
    assert scores == pytest.approx((2 / 3, 2 / 3))


async def test_outcome_scoring_through_the_registry_splits_and_aggregates():
    eng = judge_engine()
    v = make_scorer("judge:step,agg=min,seg=lines")
    assert isinstance(v, StepJudgeVerifier) and v.name == "judge:step"
    assert (v.segmentation, v.aggregation) == ("lines", "min")
    assert not v.needs_logprobs
    assert make_process_verifier("judge:step").segmentation == "blank"
    comps = [
        Completion("x ok\ny ok\nz ok", "stop", Usage()),
        Completion("x ok\ny is wrong\nz ok", "stop", Usage()),
    ]
    scores = await v.score(PROBLEM, comps, ctx_for(eng))
    assert [s.steps for s in scores] == [(1.0, 1.0, 1.0), (1.0, 0.0, 1.0)]
    assert [s.value for s in scores] == [1.0, 0.0]
    assert len(eng.requests) == 5  # "x ok" once for both


async def test_engine_without_logprobs_is_a_clear_error():
    eng = judge_engine(supports_logprobs=False)
    with pytest.raises(CapabilityMissing, match="logprobs"):
        await StepJudgeVerifier().score_paths(PROBLEM, [("a",)], ctx_for(eng))


async def test_budget_is_checked_before_the_judge_runs():
    eng = judge_engine()
    ctx = ctx_for(eng)
    with ctx.ledger.budget(calls=2), pytest.raises(BudgetExceeded, match="call budget"):
        await StepJudgeVerifier().score_paths(PROBLEM, [("a", "b", "c")], ctx)
    assert eng.requests == []


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown aggregation"):
        StepJudgeVerifier(aggregation="max")
    with pytest.raises(ConfigError, match="top_logprobs"):
        StepJudgeVerifier(top_logprobs=0)
    with pytest.raises(ConfigError, match="takes no option"):
        make_scorer("judge:step,window=3")


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_step_judge_on_the_real_embedded_model(smollm2_path):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'ponder[local]'")
    from ponder.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(smollm2_path, n_ctx=1024, n_parallel=2)
    try:
        ctx = ctx_for(engine)
        v = StepJudgeVerifier()
        problem = Problem("q", "A box holds 3 rows of 4 eggs. How many eggs are in 2 boxes?")
        steps = ("One box holds 3 * 4 = 12 eggs.", "Two boxes hold 2 * 12 = 24 eggs.")
        [first] = await v.score_paths(problem, [steps[:1]], ctx)
        both, wrong = await v.score_paths(problem, [steps, (steps[0], "So 2 boxes hold 7.")], ctx)
        # the first call scored one step, the second two new ones; the first is cached
        assert v.steps_scored == 3 and both[0] == wrong[0] == first[0]
        assert len(both) == len(wrong) == 2
        assert all(0.0 <= s <= 1.0 for s in (*first, *both, *wrong))
        usage = ctx.ledger.total("score")
        assert usage.calls == 3 and usage.completion_tokens == 3
        # each prompt is well over 50 tokens; the second call's prompts start with the
        # first call's prompt (up to its closing question), which the engine reuses
        assert usage.prompt_tokens + usage.cached_tokens > 3 * 50
        assert usage.prompt_tokens > 50 and usage.cached_tokens > 50
        assert [e.label for e in ctx.ledger.events] == ["judge:step", "judge:step"]
    finally:
        await engine.aclose()
