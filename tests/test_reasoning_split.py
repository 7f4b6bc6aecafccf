"""A reasoning model's thinking apart from its final answer: the split, and every reader
of answers (extraction, votes, free-form clusters, USC's selection) reading the answer
only."""

from __future__ import annotations

import pytest
from tests.strategies._boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.reasoning import Reasoned, final_answer, join_reasoning, split_reasoning
from ponder.core.types import Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.serve.chat import ChatTask
from ponder.strategies import Context, make_strategy
from ponder.tasks.freeform import FreeformTask


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a b</think>\n\nthe answer", Reasoned("a b", "the answer")),
        ("  \n<think>\nx\n</think>y", Reasoned("x", "y")),
        # the chat template opened the thinking, the model only closes it
        ("so it is 4\n</think>\n\n\\boxed{4}", Reasoned("so it is 4", "\\boxed{4}")),
        # cut off by the token limit while thinking: no answer yet
        ("<think>still going \\boxed{3}", Reasoned("still going \\boxed{3}", "")),
        # an empty think block (a thinking model asked not to think)
        ("<think>\n\n</think>\n\nhi", Reasoned("", "hi")),
        # no thinking at all: the text as it is, blank space kept
        ("  plain answer \\boxed{2}\n", Reasoned(None, "  plain answer \\boxed{2}\n")),
        # the tag further in is the answer talking about it, not thinking
        ("Use tags: <think>x</think>", Reasoned(None, "Use tags: <think>x</think>")),
        # only the first block is the thinking
        ("<think>a</think>b</think>c", Reasoned("a", "b</think>c")),
    ],
)
def test_the_split(text: str, expected: Reasoned) -> None:
    assert split_reasoning(text) == expected
    assert final_answer(text) == expected.answer


def test_other_delimiters_and_the_join_round_trip() -> None:
    assert split_reasoning("[T]hm[/T] ok", "[T]", "[/T]") == Reasoned("hm", "ok")
    joined = join_reasoning("step one\nstep two", "It is 4.")
    assert split_reasoning(joined) == Reasoned("step one\nstep two", "It is 4.")
    assert join_reasoning(None, "x") == "x" and join_reasoning("", "x") == "x"


def boxed_ctx(engine: ScriptedEngine) -> Context:
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=64)


async def test_votes_count_final_answers_never_the_thinking() -> None:
    # each sample considers 7 while thinking; only two of them answer 7
    texts = [
        "<think>maybe \\boxed{7} no</think> \\boxed{6}",
        "<think>\\boxed{7}? yes</think> \\boxed{7}",
        "<think>try \\boxed{7}</think> \\boxed{6}",
        "<think>\\boxed{7}</think> \\boxed{7}",
        "<think>\\boxed{7} then ran out of tokens",
    ]
    res = await make_strategy("majority", {"n": 5})(PROBLEM, boxed_ctx(ScriptedEngine(texts)))
    assert [c.answer for c in res.candidates] == ["6", "7", "6", "7", None]
    assert res.votes == {"6": 2.0, "7": 2.0} and res.answer == "6"


async def test_free_form_clusters_and_usc_read_the_answer_only() -> None:
    problem = Problem("q", "What is the capital of France?", answer="Paris")
    texts = [
        "<think>London? no.</think>\nAnswer: Paris",
        "<think>It is not Paris... or is it. Answer: London</think>\nAnswer: paris",
        "<think>hmm</think>\nAnswer: London",
    ]
    ctx = Context(engine=ScriptedEngine(texts), task=FreeformTask(), ledger=Ledger())
    res = await make_strategy("semantic_majority", {"n": 3})(problem, ctx)
    assert res.answer == "Paris" and res.votes == {"Paris": 2.0, "London": 1.0}

    shown: list[str] = []

    def engine_script(request, i):  # type: ignore[no-untyped-def]
        if i < 3:
            return texts[i]
        shown.append(request.messages[-1].content)
        # the thinking names another response first; the answer after it decides
        return "<think>the most consistent is 1? no</think>The most consistent response is 3"

    ctx = Context(engine=ScriptedEngine(engine_script), task=FreeformTask(), ledger=Ledger())
    usc = await make_strategy("universal_self_consistency", {"n": 3})(problem, ctx)
    # USC's prompt shows no thinking, and its own thinking does not pick a response
    assert "London? no." not in shown[0] and "Answer: Paris" in shown[0]
    assert usc.meta["selection"]["chosen"] == 2 and usc.answer == "London"


def test_the_serve_task_votes_on_the_answer_only() -> None:
    task = ChatTask()
    assert task.extract("<think>a long\n  thought</think>\n\nHello   there") == "Hello there"
    assert task.extract("<think>x = \\boxed{3}</think> so \\boxed{5}") == "5"
    assert task.extract("<think>never finished") is None
