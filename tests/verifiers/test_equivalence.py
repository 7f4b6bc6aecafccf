"""Answer normalisation and the three clusterers, on hand-made answers."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from ponder.core.budget import Ledger
from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Completion, GenRequest, Problem, TokenLogprob, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.grading.freeform import normalize_answer, read_verdict
from ponder.tasks.freeform import FreeformTask
from ponder.verifiers.embedding import Embedded
from ponder.verifiers.equivalence import (
    EmbeddingClusterer,
    JudgeClusterer,
    TextClusterer,
    make_clusterer,
)

PROBLEM = Problem("q1", "What is the capital of France?", answer="Paris")


def ctx_for(engine: ScriptedEngine | None = None) -> Context:
    return Context(
        engine=engine or ScriptedEngine(["unused"]), task=FreeformTask(), ledger=Ledger()
    )


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The  Eiffel-Tower.", "eiffel tower"),
        ("PARIS!", "paris"),
        ("an apple", "apple"),
        ("Café au lait", "cafe au lait"),
        ("1,000 people", "1000 people"),
        ("3.5", "3.5"),
        ("35", "35"),
        ("U.S.A.", "usa"),
        ("rock/paper", "rock paper"),
        ("A", "a"),  # a multiple-choice letter is not an article
        ("the", "the"),
        ("  ", ""),
        ("$5", "5"),
        ("“Hamlet”", "hamlet"),
    ],
)
def test_normalize_answer(text: str, normal: str) -> None:
    assert normalize_answer(text) == normal


def test_decimal_point_is_not_dropped() -> None:
    assert normalize_answer("3.5") != normalize_answer("35")


async def test_text_clusters_by_normalised_text() -> None:
    answers = ["Paris", "paris.", None, "The Paris", "London", "PARIS!"]
    c = await TextClusterer().cluster(PROBLEM, answers, ctx_for())
    assert c.labels == (0, 0, None, 0, 1, 0)
    assert c.representatives == (0, 4)
    assert c.sizes() == [4, 1]
    assert c.members(1) == [4]


class FakeEmbedder:
    """Vectors by hand: each text's vector is looked up; calls are counted."""

    def __init__(self, vectors: dict[str, Sequence[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return "fake"

    def embed(self, texts: Sequence[str]) -> Embedded:
        self.calls.append(list(texts))
        rows = np.asarray([self.vectors[t] for t in texts], dtype=np.float32)
        return Embedded(rows, tokens=sum(len(t.split()) for t in texts))


async def test_embedding_clusters_above_the_threshold_and_bills_the_ledger() -> None:
    embedder = FakeEmbedder(
        {
            "Paris": [1.0, 0.0, 0.0],
            "The city of Paris": [0.9, 0.1, 0.0],  # cos ~0.994 with Paris
            "London": [0.0, 1.0, 0.0],
            "Londres": [0.1, 0.95, 0.0],  # cos ~0.995 with London
            "Rome": [0.5, 0.0, 0.87],  # cos 0.5 with Paris: its own cluster
        }
    )
    answers = ["Paris", "London", "paris", "The city of Paris", None, "Londres", "Rome"]
    ctx = ctx_for()
    c = await EmbeddingClusterer(embedder, threshold=0.8).cluster(PROBLEM, answers, ctx)
    assert c.labels == (0, 1, 0, 0, None, 1, 2)
    assert c.representatives == (0, 1, 6)
    # "paris" joined "Paris" by its text: only one text per text group is embedded
    assert embedder.calls == [["Paris", "London", "The city of Paris", "Londres", "Rome"]]
    assert c.meta["embedded"] == 5 and c.meta["threshold"] == 0.8
    (event,) = ctx.ledger.events
    assert event.kind == "score" and event.label == "embed:fake"
    assert event.usage == Usage(prompt_tokens=1 + 1 + 4 + 1 + 1, calls=1)


async def test_embedding_joins_the_most_similar_representative() -> None:
    embedder = FakeEmbedder(
        {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.7, 0.714]}  # c: 0.70 to a, 0.99 to b
    )
    c = await EmbeddingClusterer(embedder, threshold=0.65).cluster(
        PROBLEM, ["a", "b", "c"], ctx_for()
    )
    # b (0.6 to a) starts its own cluster; c is above the threshold for both, b wins
    assert c.labels == (0, 1, 1)


async def test_embedding_is_not_called_for_fewer_than_two_texts() -> None:
    embedder = FakeEmbedder({})
    ctx = ctx_for()
    c = await EmbeddingClusterer(embedder).cluster(PROBLEM, ["Paris", "paris", None], ctx)
    assert c.labels == (0, 0, None) and embedder.calls == [] and ctx.ledger.events == ()


async def test_embedding_respects_the_call_budget() -> None:
    embedder = FakeEmbedder({"a": [1.0], "b": [1.0]})
    ctx = ctx_for()
    with ctx.ledger.budget(calls=0), pytest.raises(BudgetExceeded):
        await EmbeddingClusterer(embedder).cluster(PROBLEM, ["a", "b"], ctx)
    assert embedder.calls == []


def test_embedding_threshold_is_checked() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        EmbeddingClusterer(FakeEmbedder({}), threshold=1.5)


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="text, embed, judge"):
        make_clusterer("vibes")


# the judge's meanings: answers that mean the same map to one key
MEANING = {
    "Paris": "paris",
    "The city of Paris": "paris",
    "Paris, France": "paris",
    "London": "london",
    "Londres": "london",
    "Rome": "rome",
}
_PAIR_RE = re.compile(r"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\n", re.DOTALL)


def judge_script(reply_for_unknown: str = "No") -> ScriptedEngine:
    def respond(req: GenRequest, _i: int) -> str:
        assert req.messages is not None
        m = _PAIR_RE.search(req.messages[-1].content)
        assert m, req.messages[-1].content
        a, b = m.groups()
        if a not in MEANING or b not in MEANING:
            return reply_for_unknown
        return "Yes" if MEANING[a] == MEANING[b] else "No"

    return ScriptedEngine(respond)


async def test_judge_clusters_against_representatives_only() -> None:
    engine = judge_script()
    ctx = ctx_for(engine)
    answers = ["Paris", "London", "The city of Paris", "paris", "Londres", "Rome", None]
    c = await JudgeClusterer().cluster(PROBLEM, answers, ctx)
    assert c.labels == (0, 1, 0, 0, 1, 2, None)
    assert c.representatives == (0, 1, 5)
    # London vs 1 cluster, City of Paris vs 2, Londres vs 2, Rome vs 2 ("paris": by text)
    assert c.meta["asked"] == 1 + 2 + 2 + 2 == len(engine.requests)
    assert all(r.temperature == 0.0 and r.max_tokens == 1 for r in engine.requests)
    asked_pairs = [_PAIR_RE.findall(r.messages[-1].content)[0] for r in engine.requests]
    assert ("London", "Rome") in asked_pairs and ("The city of Paris", "Rome") not in asked_pairs
    # one batch per new text group, all on the ledger as score events
    assert [e.kind for e in ctx.ledger.events] == ["score"] * 4
    assert ctx.ledger.total().calls == 7
    assert ctx.ledger.total().completion_tokens == 7


async def test_judge_unclear_replies_count_as_different_and_are_listed() -> None:
    engine = judge_script(reply_for_unknown="Maybe?")
    c = await JudgeClusterer().cluster(PROBLEM, ["Paris", "Lutetia"], ctx_for(engine))
    assert c.labels == (0, 1)
    assert c.meta["unclear"] == [{"answer": 1, "representative": 0, "reply": "Maybe?"}]


async def test_judge_reads_text_when_the_engine_has_no_logprobs() -> None:
    def respond(req: GenRequest, _i: int) -> str:
        return "yes, they are the same"

    engine = ScriptedEngine(respond, supports_logprobs=False)
    c = await JudgeClusterer().cluster(PROBLEM, ["Paris", "Lutetia"], ctx_for(engine))
    assert c.labels == (0, 0)
    assert not engine.requests[0].wants_logprobs and engine.requests[0].max_tokens == 4


def _completion(text: str, logprobs: tuple[TokenLogprob, ...] | None = None) -> Completion:
    return Completion(text, "stop", Usage(), logprobs)


def test_read_verdict_prefers_informative_logprobs() -> None:
    lp = TokenLogprob("No", -0.9, (("No", -0.9), (" Yes", -0.5)))
    v = read_verdict(_completion("No", (lp,)))
    assert v.yes is True and v.p_yes == pytest.approx(np.exp(-0.5) / (np.exp(-0.5) + np.exp(-0.9)))


def test_read_verdict_falls_back_to_text() -> None:
    unrelated = TokenLogprob("Sure", -0.1, (("Sure", -0.1), ("Ok", -2.0)))
    assert read_verdict(_completion("Sure", (unrelated,))).yes is None
    assert read_verdict(_completion("No.")).yes is False
    assert read_verdict(_completion("  YES!")).yes is True
    v = read_verdict(_completion("I cannot tell"))
    assert v.yes is None and v.reply == "I cannot tell"
    assert read_verdict(_completion("")).yes is None
