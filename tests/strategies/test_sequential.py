"""Control flow of the sequential strategies, exactly, against the scripted engine."""

import math
import re
from collections.abc import Sequence

import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.core.types import Completion, GenRequest, Message, Problem, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import BudgetForcing, Context, Revise, make_strategy, strategy_names
from ponder.strategies.revise import REVISION_REQUEST


class BoxedTask:
    name = "boxed"

    def load(self, limit=None):
        return []

    def messages(self, problem):
        return (Message("system", "Answer in \\boxed{}."), Message("user", problem.question))

    def extract(self, text):
        m = re.findall(r"\\boxed\{([^}]*)\}", text)
        return m[-1] if m else None

    def is_correct(self, predicted, problem):
        return predicted == problem.answer


class BatchLoggingEngine(ScriptedEngine):
    """Records how many requests each engine call carried."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        self.batches.append(len(requests))
        return await super().generate(requests)


PROBLEM = Problem("p1", "what is six times seven", answer="42")
BASE = BoxedTask().messages(PROBLEM)


def ctx_for(engine, **kw):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=32, **kw)


def assistant(text):
    return Message("assistant", text)


REVISE = Message("user", REVISION_REQUEST)


def assert_usage_is_on_the_ledger(res, ctx):
    """Result.usage is the ledger's total, and the ledger holds exactly what the
    candidates' completions cost (no scorer ran)."""
    assert res.usage == ctx.ledger.total()
    assert res.usage == sum((c.usage for c in res.candidates), Usage())


# -- revise ---------------------------------------------------------------------------


def test_both_strategies_are_registered():
    assert {"revise", "budget_forcing"} <= set(strategy_names())
    assert make_strategy("revise", {"n": 2}) == Revise(n=2)
    assert make_strategy("budget_forcing", {"num_waits": 1}) == BudgetForcing(num_waits=1)


async def test_revise_one_chain_shows_the_last_attempts_and_asks_for_a_fix():
    texts = ["first \\boxed{41}", "second \\boxed{42}", "third \\boxed{42}", "fourth \\boxed{41}"]
    eng = BatchLoggingEngine(texts)
    ctx = ctx_for(eng)
    res = await Revise(n=4, context_attempts=2)(PROBLEM, ctx)

    reqs = eng.requests
    assert eng.batches == [1, 1, 1, 1]
    assert reqs[0].messages == BASE
    assert reqs[1].messages == (*BASE, assistant(texts[0]), REVISE)
    assert reqs[2].messages == (*BASE, assistant(texts[0]), REVISE, assistant(texts[1]), REVISE)
    # the window keeps the last two attempts: the first drops out
    assert reqs[3].messages == (*BASE, assistant(texts[1]), REVISE, assistant(texts[2]), REVISE)
    for r in reqs:
        assert (r.n, r.temperature, r.top_p, r.max_tokens) == (1, 0.7, 0.95, 32)
        assert r.continuation == "" and r.stop == () and not r.wants_logprobs

    assert [c.text for c in res.candidates] == texts
    assert [c.answer for c in res.candidates] == ["41", "42", "42", "41"]
    # majority over all attempts; 2-2 tie: "42" reached two votes first
    assert res.answer == "42" and res.votes == {"41": 2.0, "42": 2.0}
    assert res.strategy == "revise"
    assert res.meta == {
        "select": "majority",
        "chains": [[0, 1, 2, 3]],
        "attempts": [{"chain": 0, "depth": d} for d in range(4)],
    }
    assert [e.label for e in ctx.ledger.events] == [f"revise depth {d}" for d in range(4)]
    assert_usage_is_on_the_ledger(res, ctx)


async def test_revise_chains_advance_together_one_call_per_depth():
    def script(req, index):
        # each attempt is tagged with its chain (A or B) and depth: "A0", "B1", ...
        shown = [m.content for m in req.messages if m.role == "assistant"]
        if not shown:
            tag, depth = "AB"[index], 0
        else:
            tag, depth = shown[-1][0], int(shown[-1][1]) + 1
        answer = 7 if tag == "A" or depth > 0 else 5
        return f"{tag}{depth} so \\boxed{{{answer}}}"

    eng = BatchLoggingEngine(script)
    ctx = ctx_for(eng, seed=10)
    res = await Revise(n=6, chains=2, context_attempts=1)(PROBLEM, ctx)

    # depth 0: one request sampled twice (shared prompt); then both chains in one call
    assert eng.batches == [1, 2, 2]
    assert [r.n for r in eng.requests] == [2, 1, 1, 1, 1]
    assert len({r.seed for r in eng.requests}) == 5
    texts = [c.text.split()[0] for c in res.candidates]
    assert texts == ["A0", "B0", "A1", "B1", "A2", "B2"]
    # each chain sees only its own latest attempt (context_attempts=1)
    a2, b2 = eng.requests[3], eng.requests[4]
    assert a2.messages == (*BASE, assistant("A1 so \\boxed{7}"), REVISE)
    assert b2.messages == (*BASE, assistant("B1 so \\boxed{7}"), REVISE)

    assert res.meta["chains"] == [[0, 2, 4], [1, 3, 5]]
    assert res.meta["attempts"] == [{"chain": c, "depth": d} for d in range(3) for c in range(2)]
    assert res.answer == "7" and res.votes == {"7": 5.0, "5": 1.0}
    assert len(ctx.ledger.events) == 3
    assert_usage_is_on_the_ledger(res, ctx)


async def test_revise_verifier_weights_votes_by_scores():
    # the lone "1" is confident enough to outweigh two doubtful "2"s
    lp = {"\\boxed{1}": -0.05, "\\boxed{2}": -2.0}
    eng = ScriptedEngine(["\\boxed{2}", "\\boxed{1}", "\\boxed{2}"], logprob=lambda t: lp[t])
    ctx = ctx_for(eng)
    res = await Revise(n=3, select="verifier", scorer="logprob")(PROBLEM, ctx)

    assert all(r.wants_logprobs and r.top_logprobs == 5 for r in eng.requests)
    assert [c.score for c in res.candidates] == pytest.approx(
        [math.exp(-2.0), math.exp(-0.05), math.exp(-2.0)]
    )
    assert res.answer == "1"
    assert res.votes == pytest.approx({"1": math.exp(-0.05), "2": 2 * math.exp(-2.0)})
    assert res.meta["select"] == "verifier"
    # majority would have said "2"
    majority = await Revise(n=3)(PROBLEM, ctx_for(ScriptedEngine(["\\boxed{2}", "\\boxed{1}"])))
    assert majority.answer == "2"


async def test_revise_verifier_bills_the_judge_to_the_ledger():
    def script(req, index):
        if "Is this solution correct" in req.messages[-1].content:
            return "Yes" if "boxed{42}" in req.messages[-1].content else "No"
        return ["\\boxed{41}", "\\boxed{42}"][index % 2]

    eng = ScriptedEngine(script, logprob=-0.2)
    ctx = ctx_for(eng)
    res = await Revise(n=2, select="verifier", scorer="judge")(PROBLEM, ctx)
    assert res.answer == "42"
    assert ctx.ledger.total("score").calls >= 1
    assert res.usage == ctx.ledger.total()
    assert res.usage == ctx.ledger.total("generate") + ctx.ledger.total("score")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"chains": 0}, "chains must be >= 1"),
        ({"n": 5, "chains": 2}, "multiple of chains"),
        ({"context_attempts": 0}, "context_attempts"),
        ({"select": "best"}, "select must be one of majority, verifier"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_revise_rejects_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        Revise(**options)


async def test_revise_unknown_scorer_fails_before_any_generation():
    eng = ScriptedEngine(["\\boxed{1}"])
    with pytest.raises(ConfigError, match="unknown scorer"):
        await Revise(select="verifier", scorer="oracle")(PROBLEM, ctx_for(eng))
    assert eng.requests == []


# -- budget forcing -------------------------------------------------------------------

THINK_STOP = ("</think>",)
INSTRUCTION = (
    "First think the problem through between <think> and </think>. "
    "After </think>, write the final answer."
)


def phased(think, answer="\\boxed{42}", forced="42}"):
    """A script by phase: thinking calls stop at </think>, the forced call at a newline.
    ``think`` is a list of texts, one per thinking call."""
    thoughts = iter(think)

    def script(req, index):
        if req.stop == THINK_STOP:
            return next(thoughts)
        if req.stop == ("\n",):
            return forced
        return answer

    return script


async def test_budget_forcing_model_ends_thinking_then_answers():
    eng = ScriptedEngine(phased(["six sevens are 42 </think> ignored"]))
    ctx = ctx_for(eng)
    res = await BudgetForcing(max_thinking_tokens=20)(PROBLEM, ctx)

    think, answer = eng.requests
    assert think.messages == (BASE[0], Message("user", f"{PROBLEM.question}\n\n{INSTRUCTION}"))
    assert answer.messages == think.messages
    assert think.continuation == "<think>"
    assert (think.stop, think.max_tokens, think.temperature) == (THINK_STOP, 20, 0.0)
    assert answer.continuation == "<think>six sevens are 42 </think>\n\nFinal answer:"
    assert (answer.stop, answer.max_tokens) == ((), 256)

    assert res.answer == "42" and res.votes == {"42": 1.0}
    (cand,) = res.candidates
    assert cand.text == "<think>six sevens are 42 </think>\n\nFinal answer:\\boxed{42}"
    assert res.meta == {
        "thinking_tokens": 4,
        "waits_used": 0,
        "thinking_capped": False,
        "forced_answer": False,
        "answer_tokens": 1,
    }
    assert [e.label for e in ctx.ledger.events] == ["think", "answer"]
    assert_usage_is_on_the_ledger(res, ctx)


async def test_budget_forcing_cap_cuts_thinking_and_forces_the_end():
    eng = ScriptedEngine(phased(["a b c d e f g h </think>"]))
    ctx = ctx_for(eng)
    # waits are for early ends only: a capped thinking is never extended
    res = await BudgetForcing(max_thinking_tokens=5, num_waits=2)(PROBLEM, ctx)

    think, answer = eng.requests
    assert think.max_tokens == 5
    assert answer.continuation == "<think>a b c d e</think>\n\nFinal answer:"
    assert res.meta["thinking_capped"] is True
    assert res.meta["thinking_tokens"] == 5 and res.meta["waits_used"] == 0
    assert res.answer == "42"
    assert_usage_is_on_the_ledger(res, ctx)


async def test_budget_forcing_waits_extend_early_ends_up_to_num_waits():
    eng = ScriptedEngine(phased(["x0 done </think>", "x1 done </think>", "x2 done </think>"]))
    ctx = ctx_for(eng)
    res = await BudgetForcing(max_thinking_tokens=50, num_waits=2)(PROBLEM, ctx)

    *thinks, answer = eng.requests
    assert [r.continuation for r in thinks] == [
        "<think>",
        "<think>x0 done \nWait",
        "<think>x0 done \nWaitx1 done \nWait",
    ]
    # each call gets what is left of the thinking budget
    assert [r.max_tokens for r in thinks] == [50, 48, 46]
    assert all(r.stop == THINK_STOP for r in thinks)
    assert answer.continuation == (
        "<think>x0 done \nWaitx1 done \nWaitx2 done </think>\n\nFinal answer:"
    )
    assert res.meta["waits_used"] == 2 and res.meta["thinking_tokens"] == 6
    assert res.meta["thinking_capped"] is False
    assert [e.label for e in ctx.ledger.events] == ["think", "think", "think", "answer"]
    assert_usage_is_on_the_ledger(res, ctx)


async def test_budget_forcing_min_thinking_stops_waiting_once_reached():
    eng = ScriptedEngine(phased(["x0 done </think>", "x1 done </think>"]))
    res = await BudgetForcing(min_thinking_tokens=3, num_waits=5, wait=" Hmm,")(
        PROBLEM, ctx_for(eng)
    )
    # 2 tokens < 3: wait once; 4 tokens >= 3: the end stands
    *thinks, answer = eng.requests
    assert [r.continuation for r in thinks] == ["<think>", "<think>x0 done  Hmm,"]
    assert answer.continuation.startswith("<think>x0 done  Hmm,x1 done </think>")
    assert res.meta["waits_used"] == 1 and res.meta["thinking_tokens"] == 4


async def test_budget_forcing_wait_then_the_cap():
    eng = ScriptedEngine(phased(["a b c </think>", "d e f g </think>"]))
    res = await BudgetForcing(max_thinking_tokens=5, num_waits=3)(PROBLEM, ctx_for(eng))

    *thinks, answer = eng.requests
    assert [r.max_tokens for r in thinks] == [5, 2]
    assert answer.continuation == "<think>a b c \nWaitd e</think>\n\nFinal answer:"
    assert res.meta["waits_used"] == 1 and res.meta["thinking_tokens"] == 5
    assert res.meta["thinking_capped"] is True


async def test_budget_forcing_default_budget_is_the_context_max_tokens():
    eng = ScriptedEngine(phased(["ok </think>"]))
    await BudgetForcing()(PROBLEM, ctx_for(eng))
    assert eng.requests[0].max_tokens == 32


async def test_budget_forcing_forces_an_answer_when_none_is_extracted():
    eng = ScriptedEngine(phased(["hmm </think>"], answer="I am not sure", forced="42}\nmore"))
    ctx = ctx_for(eng)
    res = await BudgetForcing(temperature=0.7, top_p=0.9)(PROBLEM, ctx)

    _think, answer, forced = eng.requests
    assert answer.temperature == 0.7 and answer.top_p == 0.9
    assert forced.continuation == (
        "<think>hmm </think>\n\nFinal answer:I am not sure\n\nThe final answer is \\boxed{"
    )
    # a short greedy read-out to the end of the line
    assert (forced.stop, forced.max_tokens, forced.temperature, forced.top_p) == (
        ("\n",),
        16,
        0.0,
        1.0,
    )
    assert res.answer == "42"
    assert res.candidates[0].text.endswith("The final answer is \\boxed{42}")
    assert res.meta["forced_answer"] is True
    assert res.meta["answer_tokens"] == 4 + 1
    assert [e.label for e in ctx.ledger.events] == ["think", "answer", "forced_answer"]
    assert_usage_is_on_the_ledger(res, ctx)


async def test_budget_forcing_closes_an_unclosed_forced_answer():
    eng = ScriptedEngine(phased(["hmm </think>"], answer="no idea", forced="42"))
    res = await BudgetForcing()(PROBLEM, ctx_for(eng))
    assert res.answer == "42"
    assert res.candidates[0].text.endswith("\\boxed{42}")


async def test_budget_forcing_answer_never_comes_from_the_thinking():
    # the thinking holds a boxed answer, the answer phase and the forced call hold none
    eng = ScriptedEngine(phased(["maybe \\boxed{41} </think>"], answer="hm", forced="\nx"))
    res = await BudgetForcing(forced_answer_close="")(PROBLEM, ctx_for(eng))
    assert res.answer is None and res.votes == {}
    assert res.meta["forced_answer"] is True
    assert len(res.candidates) == 1 and res.candidates[0].answer is None


async def test_budget_forcing_without_an_answer_says_why():
    eng = ScriptedEngine(phased(["maybe \\boxed{41} </think>"], answer="hm", forced="unsure"))
    res = await BudgetForcing(forced_answer_close="")(PROBLEM, ctx_for(eng))
    assert res.answer is None
    assert res.meta["no_answer"] == (
        "neither the answer nor the forced answer held one (the forced call wrote 'unsure')"
    )
    assert "stopped" not in res.meta


async def budget_forcing_prompt_words() -> int:
    """Words of the thinking call's prompt (the scripted engine's prompt tokens)."""
    eng = ScriptedEngine(phased(["ok </think>"]))
    ctx = ctx_for(eng)
    await BudgetForcing(max_thinking_tokens=20)(PROBLEM, ctx)
    return ctx.ledger.events[0].usage.prompt_tokens


async def test_budget_forcing_answers_by_the_forced_call_when_the_answer_does_not_fit():
    words = await budget_forcing_prompt_words()
    eng = ScriptedEngine(phased(["six sevens are 42 </think>"]))
    ctx = ctx_for(eng)
    # the thinking fits (prompt + 20) and so does the short forced call, but not the
    # answer call's 256 tokens
    limit = 3 * words + 20 + 16 + 20
    with ctx.ledger.budget(total_tokens=limit):
        res = await BudgetForcing(max_thinking_tokens=20)(PROBLEM, ctx)
    assert [e.label for e in ctx.ledger.events] == ["think", "forced_answer"]
    assert res.answer == "42" and res.meta["forced_answer"] is True
    assert res.meta["stopped"] == "budget"
    assert res.meta["stop_reason"].startswith("budget: token budget")
    assert ctx.ledger.total().total_tokens <= limit


async def test_budget_forcing_with_no_room_to_answer_reads_the_thinking():
    words = await budget_forcing_prompt_words()
    eng = ScriptedEngine(phased(["so \\boxed{41} </think>"]))
    ctx = ctx_for(eng)
    limit = words + 20 + 5  # the thinking only
    with ctx.ledger.budget(total_tokens=limit):
        res = await BudgetForcing(max_thinking_tokens=20)(PROBLEM, ctx)
    assert [e.label for e in ctx.ledger.events] == ["think"]
    assert res.answer == "41" and res.meta["answer_from"] == "thinking"
    assert res.meta["stopped"] == "budget"
    assert ctx.ledger.total().total_tokens <= limit


async def test_budget_forcing_with_no_room_at_all_records_the_reason():
    eng = ScriptedEngine(phased(["so \\boxed{41} </think>"]))
    ctx = ctx_for(eng)
    with ctx.ledger.budget(total_tokens=10):
        res = await BudgetForcing(max_thinking_tokens=20)(PROBLEM, ctx)
    assert eng.requests == [] and res.answer is None
    assert res.meta["stopped"] == "budget"
    assert res.meta["no_answer"] == "the token budget left no room to answer"


async def test_budget_forcing_for_a_template_that_opens_the_thinking():
    eng = ScriptedEngine(phased(["ok </think>"]))
    await BudgetForcing(think_start="", answer_cue="\n")(PROBLEM, ctx_for(eng))
    think, answer = eng.requests
    assert think.messages == BASE  # no instruction: the model thinks by itself
    assert think.continuation == ""
    assert answer.continuation == "ok </think>\n"


async def test_budget_forcing_respects_a_custom_format():
    eng = ScriptedEngine(phased(["hm </think>"], answer="dunno", forced="42\n"))

    class HashTask(BoxedTask):
        def extract(self, text):
            m = re.findall(r"#### (\S+)", text)
            return m[-1] if m else None

    ctx = Context(engine=eng, task=HashTask(), ledger=Ledger(), max_tokens=32)
    res = await BudgetForcing(
        think_start="[t]",
        think_end="[/t]",
        instruction="Think inside {think_start}...{think_end}.",
        forced_answer_cue="\n#### ",
        forced_answer_close="\n",
    )(PROBLEM, ctx)
    think, _, forced = eng.requests
    assert think.messages[-1].content.endswith("\n\nThink inside [t]...[/t].")
    assert think.stop == ("[/t]",)
    assert forced.continuation.endswith("dunno\n#### ")
    assert res.answer == "42"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_thinking_tokens": 0}, "max_thinking_tokens must be >= 1"),
        ({"min_thinking_tokens": 0, "num_waits": 1}, "min_thinking_tokens must be >= 1"),
        ({"min_thinking_tokens": 10}, "needs num_waits >= 1"),
        (
            {"min_thinking_tokens": 10, "max_thinking_tokens": 5, "num_waits": 1},
            "exceeds max_thinking_tokens",
        ),
        ({"num_waits": -1}, "num_waits must be >= 0"),
        ({"think_end": ""}, "think_end must not be empty"),
        ({"wait": " "}, "wait must hold some text"),
        ({"max_answer_tokens": 0}, "max_answer_tokens"),
        ({"forced_answer_tokens": 0}, "forced_answer_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_budget_forcing_rejects_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        BudgetForcing(**options)
