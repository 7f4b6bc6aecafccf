"""ProcessVerifier's bookkeeping: the per-(question, prefix) cache, what reaches
``_score_from``, and the outcome-scorer face built on it."""

import pytest
from _stub import StubTask

from ponder.core.budget import Ledger
from ponder.core.context import Scorer
from ponder.core.errors import ConfigError
from ponder.core.types import Completion, Problem, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context
from ponder.verifiers.process import ProcessVerifier

Q1 = Problem("p1", "what is two plus two, doubled")
Q2 = Problem("p2", "what is three plus three")


def make_ctx():
    return Context(engine=ScriptedEngine(["unused"]), task=StubTask(), ledger=Ledger())


def step_value(path, k):
    """A score that depends on the step and on what came before it, so a cache that
    mixed up prefixes would show."""
    return ((len(path[k]) * 7 + k * 3 + sum(len(s) for s in path[:k])) % 97) / 96


class RecordingVerifier(ProcessVerifier):
    """Scores with ``step_value`` and remembers every (path, start) it was asked for."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls: list[list[tuple[tuple[str, ...], int]]] = []

    @property
    def name(self):
        return "recording"

    async def _score_from(self, problem, items, ctx):
        self.calls.append([(tuple(p), s) for p, s in items])
        for path, start in items:
            # the contract: steps before ``start`` are known (cached or scored by
            # another item of this call), so they are never asked for twice
            assert 0 <= start < len(path)
        return [[step_value(p, k) for k in range(s, len(p))] for p, s in items]

    def asked(self):
        """Every (question-independent) prefix whose last step was computed, in order."""
        return [p[: k + 1] for call in self.calls for p, s in call for k in range(s, len(p))]


def expected(path):
    return tuple(step_value(path, k) for k in range(len(path)))


async def test_scores_every_step_of_every_path():
    v = RecordingVerifier()
    paths = [("a", "bb", "ccc"), ("x", "y")]
    out = await v.score_paths(Q1, paths, make_ctx())
    assert out == [expected(paths[0]), expected(paths[1])]
    assert all(0.0 <= s <= 1.0 for scores in out for s in scores)
    assert v.steps_scored == 5 and len(v.calls) == 1


async def test_a_step_is_scored_once_across_calls():
    v = RecordingVerifier()
    ctx = make_ctx()
    await v.score_paths(Q1, [("a", "b")], ctx)
    out = await v.score_paths(Q1, [("a", "b", "c", "d")], ctx)
    assert out == [expected(("a", "b", "c", "d"))]
    # the second call starts at the first unseen step
    assert v.calls[1] == [(("a", "b", "c", "d"), 2)]
    # asking again costs nothing and never reaches the verifier
    again = await v.score_paths(Q1, [("a", "b", "c"), ("a",)], ctx)
    assert again == [expected(("a", "b", "c")), expected(("a",))]
    assert len(v.calls) == 2 and v.steps_scored == 4


async def test_paths_sharing_a_prefix_in_one_call_score_it_once():
    v = RecordingVerifier()
    paths = [("a", "b", "c"), ("a", "b", "d"), ("a", "e")]
    out = await v.score_paths(Q1, paths, make_ctx())
    assert out == [expected(p) for p in paths]
    asked = v.asked()
    assert len(asked) == len(set(asked)) == 5  # a, ab, abc, abd, ae
    assert v.steps_scored == 5


async def test_a_prefix_path_asked_with_a_longer_path_is_covered_by_it():
    v = RecordingVerifier()
    short, long = ("a", "b"), ("a", "b", "c")
    out = await v.score_paths(Q1, [short, long, short], make_ctx())
    assert out == [expected(short), expected(long), expected(short)]
    # one item: the longer path from its first step; the prefix rides along
    assert v.calls == [[(long, 0)]]
    assert v.steps_scored == 3


async def test_the_cache_is_per_question():
    v = RecordingVerifier()
    ctx = make_ctx()
    await v.score_paths(Q1, [("a", "b")], ctx)
    await v.score_paths(Q2, [("a", "b")], ctx)
    assert [call[0] for call in v.calls] == [(("a", "b"), 0), (("a", "b"), 0)]
    # a repeated step text later in a path is a new prefix, so it is scored
    await v.score_paths(Q1, [("a", "b", "a")], ctx)
    assert v.calls[-1] == [(("a", "b", "a"), 2)]


async def test_empty_paths_and_no_paths_cost_nothing():
    v = RecordingVerifier()
    assert await v.score_paths(Q1, [], make_ctx()) == []
    assert await v.score_paths(Q1, [()], make_ctx()) == [()]
    assert v.calls == []


class WrongShape(RecordingVerifier):
    def __init__(self, drop_path=False, **kw):
        super().__init__(**kw)
        self.drop_path = drop_path

    async def _score_from(self, problem, items, ctx):
        scores = await super()._score_from(problem, items, ctx)
        return scores[1:] if self.drop_path else [s[:-1] for s in scores]


async def test_a_verifier_returning_the_wrong_shape_is_an_error():
    with pytest.raises(RuntimeError, match="scored 1 paths of 2"):
        await WrongShape(drop_path=True).score_paths(Q1, [("a",), ("b",)], make_ctx())
    with pytest.raises(RuntimeError, match="returned 1 step scores for 2 steps"):
        await WrongShape().score_paths(Q1, [("a", "b")], make_ctx())


def comp(text):
    return Completion(text, "stop", Usage(completion_tokens=len(text.split())))


async def test_outcome_score_splits_scores_and_aggregates():
    v = RecordingVerifier(segmentation="blank", aggregation="min")
    assert isinstance(v, Scorer) and not v.needs_logprobs
    texts = ["add: 4\n\ndouble: 8\n\nso \\boxed{8}", "add: 4\n\ndouble: 9", ""]
    scores = await v.score(Q1, [comp(t) for t in texts], make_ctx())
    paths = [("add: 4", "double: 8", "so \\boxed{8}"), ("add: 4", "double: 9"), ("",)]
    for score, path in zip(scores, paths, strict=True):
        assert score.steps == expected(path)
        assert score.value == pytest.approx(min(score.steps))
    # the first step, shared by two completions, was computed once
    assert v.steps_scored == 5


@pytest.mark.parametrize(
    ("segmentation", "aggregation", "value"),
    [("lines", "last", "c"), ("lines", "mean", "mean"), ("blank", "prod", "prod")],
)
async def test_segmentation_and_aggregation_options_are_used(segmentation, aggregation, value):
    v = RecordingVerifier(segmentation=segmentation, aggregation=aggregation)
    [score] = await v.score(Q1, [comp("a\nbb\nccc")], make_ctx())
    path = ("a", "bb", "ccc") if segmentation == "lines" else ("a\nbb\nccc",)
    steps = expected(path)
    assert score.steps == steps
    want = {"c": steps[-1], "mean": sum(steps) / len(steps), "prod": steps[0]}[value]
    assert score.value == pytest.approx(want)


def test_bad_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown segmentation"):
        RecordingVerifier(segmentation="sentences")
    with pytest.raises(ConfigError, match="unknown aggregation"):
        RecordingVerifier(aggregation="max")
