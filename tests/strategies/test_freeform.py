"""semantic_majority and universal_self_consistency on hand-made free-form answers."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.core.types import GenRequest, Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy
from ponder.strategies.universal_self_consistency import parse_choice
from ponder.tasks.freeform import FreeformTask
from ponder.verifiers.embedding import Embedded

PROBLEM = Problem("q1", "What is the capital of France?", answer="Paris")


def ctx_for(engine: ScriptedEngine) -> Context:
    return Context(engine=engine, task=FreeformTask(), ledger=Ledger(), max_tokens=64)


def samples(*answers: str) -> list[str]:
    return [f"Let me think.\nAnswer: {a}" for a in answers]


async def test_semantic_majority_counts_meanings_where_plain_majority_counts_spellings() -> None:
    texts = samples("Paris", "London", "paris.", "London", "The Paris")
    plain = await make_strategy("majority", {"n": 5})(PROBLEM, ctx_for(ScriptedEngine(texts)))
    assert plain.answer == "London" and plain.votes["London"] == 2.0
    res = await make_strategy("semantic_majority", {"n": 5})(
        PROBLEM, ctx_for(ScriptedEngine(texts))
    )
    assert res.answer == "Paris"  # the cluster's first member, as it was written
    assert res.votes == {"Paris": 3.0, "London": 2.0}
    assert res.meta["method"] == "text"
    assert res.meta["clusters"] == [
        {"answer": "Paris", "members": [0, 2, 4]},
        {"answer": "London", "members": [1, 3]},
    ]
    assert [c.answer for c in res.candidates] == [
        "Paris",
        "London",
        "paris.",
        "London",
        "The Paris",
    ]
    assert res.usage.calls == 1  # text clustering costs nothing


async def test_semantic_majority_ties_go_to_the_cluster_that_reached_the_count_first() -> None:
    # London's first vote comes first, but Paris reaches two votes first (sample 2)
    texts = samples("London", "Paris", "paris", "london")
    res = await make_strategy("semantic_majority", {"n": 4})(
        PROBLEM, ctx_for(ScriptedEngine(texts))
    )
    assert res.votes == {"London": 2.0, "Paris": 2.0}
    assert res.answer == "Paris"


async def test_semantic_majority_without_answers_answers_none() -> None:
    eng = ScriptedEngine(["", "   "])
    res = await make_strategy("semantic_majority", {"n": 2})(PROBLEM, ctx_for(eng))
    assert res.answer is None and res.votes == {} and res.meta["clusters"] == []


_PAIR_RE = re.compile(r"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\n", re.DOTALL)
MEANING = {"Paris": "p", "The capital is Paris": "p", "Lyon": "l", "It is Lyon": "l"}


def sampler_and_judge(answers: Sequence[str]) -> ScriptedEngine:
    """Samples ``answers`` in turn; answers judge questions from MEANING."""
    drawn = iter(samples(*answers))

    def respond(req: GenRequest, _i: int) -> str:
        assert req.messages is not None
        m = _PAIR_RE.search(req.messages[-1].content)
        if m is None:
            return next(drawn)
        a, b = m.groups()
        return "Yes" if MEANING[a] == MEANING[b] else "No"

    return ScriptedEngine(respond)


async def test_semantic_majority_by_judge_bills_the_judge_as_score() -> None:
    eng = sampler_and_judge(["Lyon", "Paris", "The capital is Paris", "It is Lyon", "Paris"])
    ctx = ctx_for(eng)
    res = await make_strategy("semantic_majority", {"n": 5, "cluster": "judge"})(PROBLEM, ctx)
    # Lyon | Paris vs Lyon: no | capital-Paris vs Lyon, Paris | It-is-Lyon vs Lyon, Paris
    assert res.meta["asked"] == 1 + 2 + 2
    assert res.votes == {"Lyon": 2.0, "Paris": 3.0} and res.answer == "Paris"
    kinds = [e.kind for e in ctx.ledger.events]
    assert kinds == ["generate", "score", "score", "score"]
    judged = ctx.ledger.total("score")
    assert judged.calls == 5 and judged.completion_tokens == 5
    assert res.usage == ctx.ledger.total()


class FixedEmbedder:
    name = "fixed"

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed(self, texts: Sequence[str]) -> Embedded:
        return Embedded(np.asarray([self.vectors[t] for t in texts], dtype=np.float32), 7)


async def test_semantic_majority_by_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    import ponder.verifiers.embedding as embedding

    vectors = {"Paris": [1.0, 0.0], "The capital is Paris": [0.95, 0.2], "Lyon": [0.0, 1.0]}
    seen: list[str] = []

    def fake_loader(model: str = "all-MiniLM-L6-v2") -> FixedEmbedder:
        seen.append(model)
        return FixedEmbedder(vectors)

    monkeypatch.setattr(embedding, "load_sentence_embedder", fake_loader)
    texts = samples("Lyon", "Paris", "Lyon", "The capital is Paris", "Paris")
    ctx = ctx_for(ScriptedEngine(texts))
    strategy = make_strategy(
        "semantic_majority", {"n": 5, "cluster": "embed", "threshold": 0.9, "embed_model": "m"}
    )
    res = await strategy(PROBLEM, ctx)
    assert res.votes == {"Lyon": 2.0, "Paris": 3.0} and res.answer == "Paris"
    assert res.meta["embedded"] == 3 and res.meta["model"] == "fixed"
    assert seen and set(seen) == {"m"}
    assert ctx.ledger.total("score").prompt_tokens == 7


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cluster": "vibes"}, "cluster must be one of text, embed, judge"),
        ({"n": 0}, "n must be >= 1"),
        ({"temperature": -1.0}, "temperature"),
    ],
)
def test_semantic_majority_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_strategy("semantic_majority", options)


def usc_engine(answers: Sequence[str], reply: str) -> ScriptedEngine:
    drawn = iter(samples(*answers))

    def respond(req: GenRequest, _i: int) -> str:
        assert req.messages is not None
        if "most consistent" in req.messages[-1].content:
            return reply
        return next(drawn)

    return ScriptedEngine(respond)


async def test_usc_shows_every_candidate_numbered_and_takes_the_models_pick() -> None:
    eng = usc_engine(
        ["Paris", "London", "Paris, France", "Lyon"], "The most consistent response is Response 3."
    )
    ctx = ctx_for(eng)
    res = await make_strategy("universal_self_consistency", {"n": 4})(PROBLEM, ctx)
    assert res.answer == "Paris, France"
    assert res.meta["selection"] == {
        "shown": [0, 1, 2, 3],
        "reply": "The most consistent response is Response 3.",
        "chosen": 2,
        "reason": "named as most consistent",
    }
    select = eng.requests[1]
    prompt = select.messages[-1].content  # type: ignore[index]
    assert select.temperature == 0.0 and select.max_tokens == 32 and select.n == 1
    assert "Question:\nWhat is the capital of France?" in prompt
    for i, a in enumerate(["Paris", "London", "Paris, France", "Lyon"], start=1):
        assert f"Response {i}:\nLet me think.\nAnswer: {a}\n" in prompt
    assert [e.kind for e in ctx.ledger.events] == ["generate", "score"]
    assert ctx.ledger.events[1].label == "usc"
    assert res.usage == ctx.ledger.total() and res.usage.calls == 2
    # votes: the candidates' answers by normalised text, for information
    assert res.votes == {"Paris": 1.0, "London": 1.0, "Paris, France": 1.0, "Lyon": 1.0}


async def test_usc_show_answer_lists_only_candidates_with_answers() -> None:
    eng = usc_engine(["Paris", "", "London", "Paris"], "2")
    res = await make_strategy("universal_self_consistency", {"n": 4, "show": "answer"})(
        PROBLEM, ctx_for(eng)
    )
    prompt = eng.requests[1].messages[-1].content  # type: ignore[index]
    assert "Response 1:\nParis\n" in prompt and "Response 2:\nLondon\n" in prompt
    assert "Response 4" not in prompt and "Let me think" not in prompt
    # Response 2 is the third candidate: the one without an answer is not shown
    assert res.meta["selection"]["shown"] == [0, 2, 3]
    assert res.meta["selection"]["chosen"] == 2 and res.answer == "London"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I like turtles", "no response number in the reply"),
        ("The most consistent response is Response 9", "chose response 9, but there are 3"),
        ("Response 1 and Response 3 agree", "mentions several responses (1, 3)"),
        ("", "no response number in the reply"),
    ],
)
async def test_usc_falls_back_to_text_majority_on_a_garbage_reply(reply: str, reason: str) -> None:
    eng = usc_engine(["London", "Paris", "paris"], reply)
    res = await make_strategy("universal_self_consistency", {"n": 3})(PROBLEM, ctx_for(eng))
    assert res.answer == "Paris"  # the largest text cluster's first member
    sel = res.meta["selection"]
    assert sel["chosen"] == 1 and sel["fallback"] == "text_majority" and sel["reason"] == reason
    assert sel["reply"] == reply
    assert res.usage.calls == 2  # the failed selection was paid for and is counted


async def test_usc_skips_the_selection_when_all_answers_agree() -> None:
    eng = usc_engine(["Paris", "paris!", "The Paris"], "unused")
    res = await make_strategy("universal_self_consistency", {"n": 3})(PROBLEM, ctx_for(eng))
    assert len(eng.requests) == 1 and res.answer == "Paris"
    assert res.meta["selection"] == {"shown": [0, 1, 2], "chosen": 0, "reason": "all answers agree"}
    eng = usc_engine(["Paris", "paris!"], "Response 2")
    res = await make_strategy("universal_self_consistency", {"n": 2, "skip_unanimous": False})(
        PROBLEM, ctx_for(eng)
    )
    assert len(eng.requests) == 2 and res.answer == "paris!"


async def test_usc_with_no_answers_makes_no_selection() -> None:
    eng = usc_engine(["", ""], "unused")
    res = await make_strategy("universal_self_consistency", {"n": 2})(PROBLEM, ctx_for(eng))
    assert res.answer is None and len(eng.requests) == 1
    assert res.meta["selection"]["reason"] == "no candidate has an answer"


async def test_usc_shows_the_end_of_long_responses() -> None:
    long = "x " * 500 + "Answer: Paris"
    eng = ScriptedEngine(
        lambda req, i: "Response 1" if "most consistent" in req.messages[-1].content
        else (long if i == 0 else "Answer: London")
    )  # fmt: skip
    ctx = Context(engine=eng, task=FreeformTask(), ledger=Ledger(), max_tokens=600)
    await make_strategy("universal_self_consistency", {"n": 2, "max_chars": 40})(PROBLEM, ctx)
    prompt = eng.requests[1].messages[-1].content  # type: ignore[index]
    assert "Response 1:\n..." in prompt and prompt.count("x ") < 25 and "Answer: Paris" in prompt


@pytest.mark.parametrize(
    ("reply", "count", "expected"),
    [
        ("The most consistent response is Response 2.", 3, (2, "named as most consistent")),
        ("the most consistent response is 3", 3, (3, "named as most consistent")),
        ("Most consistent: #1", 3, (1, "named as most consistent")),
        ("  2. ", 3, (2, "bare number")),
        ("I pick Response 3, it matches the others.", 3, (3, "the one response mentioned")),
        ("Response 3 and response 3 again", 3, (3, "the one response mentioned")),
        ("Response 0", 3, (None, "chose response 0, but there are 3")),
        ("no idea", 3, (None, "no response number in the reply")),
    ],
)
def test_parse_choice(reply: str, count: int, expected: tuple[int | None, str]) -> None:
    assert parse_choice(reply, count) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"show": "all"}, "show must be text or answer"),
        ({"n": 0}, "n must be >= 1"),
        ({"select_tokens": 0}, "select_tokens must be >= 1"),
    ],
)
def test_usc_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_strategy("universal_self_consistency", options)
