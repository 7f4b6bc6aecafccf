"""The pieces of ``ponder eval --features``: the sampling path's capture, the matching
of captured samples to a record's candidates, and the record written with its
features in one transaction."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests._stores import config, sampled

from ponder.core.context import Context
from ponder.core.types import Candidate, Completion, Problem, TokenLogprob, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.solve import captured_features
from ponder.runs.store import RunStore
from ponder.strategies.sampling import sample
from ponder.tasks import make_task
from ponder.verifiers.features import sample_features

PROBLEM = Problem(id="p", question="What is 2 + 2?", answer="4")


def _completion(text: str, logprob: float) -> Completion:
    tokens = tuple(
        TokenLogprob(w, logprob, ((w, logprob), ("x", logprob - 2))) for w in text.split()
    )
    return Completion(text, "stop", Usage(completion_tokens=len(tokens)), tokens)


def _candidate(text: str) -> Candidate:
    return Candidate(text=text, answer=None, usage=Usage())


def test_candidates_take_the_features_of_their_own_samples_in_order() -> None:
    captured = [_completion("a b", -0.1), _completion("c", -0.2), _completion("a b", -0.3)]
    # a strategy may reorder, repeat a text, leave samples out or add one of its own
    candidates = [_candidate("c"), _candidate("a b"), _candidate("new"), _candidate("a b")]
    out = captured_features(candidates, captured)
    assert sorted(out) == [0, 1, 3]
    assert out[0] == sample_features(captured[1].logprobs or ())
    assert out[1] == sample_features(captured[0].logprobs or ())  # first of its text first
    assert out[3] == sample_features(captured[2].logprobs or ())
    # a text drawn once gives features to one candidate only
    assert sorted(captured_features([_candidate("c"), _candidate("c")], captured)) == [0]


def test_a_captured_sample_without_logprobs_is_an_error() -> None:
    bare = dataclasses.replace(_completion("a", -0.1), logprobs=None)
    with pytest.raises(RuntimeError, match="without logprobs"):
        captured_features([_candidate("a")], [bare])


def _ctx(capture: int) -> tuple[Context, ScriptedEngine]:
    engine = ScriptedEngine(["one two \\boxed{4}"], logprob=-0.5)
    return Context(engine, make_task("demo"), capture_top_logprobs=capture), engine


@pytest.mark.parametrize(
    ("logprobs", "top", "alternatives"), [(False, 5, None), (True, 5, 5), (True, 0, 0)]
)
async def test_a_capturing_context_hands_back_what_was_asked(
    logprobs: bool, top: int, alternatives: int | None
) -> None:
    ctx, engine = _ctx(20)
    comps = await sample(PROBLEM, ctx, 2, 0.7, 0.95, logprobs=logprobs, top_logprobs=top)
    [request] = engine.requests
    assert request.logprobs and request.top_logprobs == 20
    assert [len(t.top) for c in ctx.captured for t in c.logprobs or ()] == [20] * 6
    for comp, kept in zip(comps, ctx.captured, strict=True):
        assert comp.text == kept.text
        if alternatives is None:
            assert comp.logprobs is None
        else:
            assert comp.logprobs is not None and kept.logprobs is not None
            # the first alternatives of the top 20 are what a top-k request returns
            assert [t.top for t in comp.logprobs] == [t.top[:alternatives] for t in kept.logprobs]


async def test_a_context_that_does_not_capture_keeps_nothing() -> None:
    ctx, engine = _ctx(0)
    comps = await sample(PROBLEM, ctx, 2, 0.7, 0.95)
    assert not engine.requests[0].wants_logprobs
    assert ctx.captured == [] and all(c.logprobs is None for c in comps)


def test_put_writes_a_record_and_its_features_together_or_not_at_all(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run.db") as store:
        store.init_or_check(config("majority", n=2))
        first = dataclasses.replace(sampled("p1", ["A", "B"]), features={1: {"tokens": 3.0}})
        assert store.put(first)
        assert store.features() == {"p1": {1: {"tokens": 3.0}}}
        assert store.get("p1") == dataclasses.replace(first, features={})  # not in the row
        # a finished record is never replaced, and its features are not either
        again = dataclasses.replace(first, features={0: {"tokens": 9.0}})
        assert not store.put(again)
        assert store.features() == {"p1": {1: {"tokens": 3.0}}}
        # a record without features writes none
        assert store.put(sampled("p2", ["A"], idx=1))
        assert sorted(store.features()) == ["p1"]


async def test_a_context_capturing_hidden_states_keeps_them_from_the_strategy() -> None:
    engine = ScriptedEngine(["one two \\boxed{4}"], logprob=-0.5, hidden_state=lambda w: [1.0])
    ctx = Context(engine, make_task("demo"), capture_top_logprobs=20, capture_hidden=True)
    comps = await sample(PROBLEM, ctx, 2, 0.7, 0.95)
    [request] = engine.requests
    assert request.hidden
    assert all(c.hidden is None and c.logprobs is None for c in comps)
    assert all(c.hidden is not None and c.hidden.rows == 2 for c in ctx.captured)
    # without capture nothing asks for them
    plain = Context(engine, make_task("demo"), capture_top_logprobs=20)
    await sample(PROBLEM, plain, 1, 0.7, 0.95)
    assert not engine.requests[-1].hidden
