"""Step-level search on the scripted engine with a verifier whose scores are known."""

import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.core.types import Completion, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy
from ponder.strategies.beam_search import BeamSearch
from ponder.strategies.search import Tree
from ponder.verifiers import registry
from ponder.verifiers.process import ProcessVerifier


class KeywordVerifier(ProcessVerifier):
    """A step containing 'good' or '42' scores 0.9, anything else 0.1; every scored
    prefix is recorded."""

    def __init__(self):
        super().__init__()
        self.asked: list[tuple[str, ...]] = []

    @property
    def name(self):
        return "keyword"

    async def _score_from(self, problem, items, ctx):
        out = []
        for path, start in items:
            scores = []
            for k in range(start, len(path)):
                self.asked.append(path[: k + 1])
                scores.append(0.9 if ("good" in path[k] or "42" in path[k]) else 0.1)
            out.append(scores)
        ctx.ledger.record("score", Usage(prompt_tokens=len(items), calls=1), 0.0, "keyword")
        return out


@pytest.fixture
def keyword_verifier(monkeypatch):
    made: list[KeywordVerifier] = []

    def fake(spec, **kw):
        v = KeywordVerifier()
        made.append(v)
        return v

    monkeypatch.setattr("ponder.strategies.search.make_process_verifier", fake)
    return made


def two_step_responder(request, index):
    """First step alternates good/bad; the second answers 42 after a good step and 3
    after a bad one, then the model ends (no delimiter)."""
    depth = request.continuation.count("\n\n")
    if depth == 0:
        return ("good start\n\n", "bad start\n\n")[index % 2]
    if "good" in request.continuation:
        return "so \\boxed{42}"
    return "so \\boxed{3}"


def ctx_for(engine, max_tokens=64):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=max_tokens, seed=0)


async def test_beam_search_keeps_the_best_beams_and_extends_them(keyword_verifier):
    eng = ScriptedEngine(two_step_responder)
    res = await make_strategy("beam_search", {"n": 4, "width": 2})(PROBLEM, ctx_for(eng))
    assert res.answer == "42"
    # round 1: the root sampled 4 times; round 2: the two good beams, 2 children each
    assert [(r.n, r.continuation) for r in eng.requests] == [
        (4, ""),
        (2, "good start\n\n"),
        (2, "good start\n\n"),
    ]
    assert all(r.stop == ("\n\n",) for r in eng.requests)
    assert len(res.candidates) == 4 and {c.answer for c in res.candidates} == {"42"}
    assert res.candidates[0].text == "good start\n\nso \\boxed{42}"
    tree = res.meta["tree"]
    assert len(tree) == 1 + 4 + 4
    assert sum(n["finished"] for n in tree) == 4
    # each distinct prefix scored once: 4 first steps share 2 texts, then 1 finished path
    v = keyword_verifier[0]
    assert sorted(set(v.asked)) == sorted(v.asked)
    assert ("good start", "so \\boxed{42}") in v.asked


async def test_beam_search_result_cost_is_the_ledger(keyword_verifier):
    eng = ScriptedEngine(two_step_responder)
    ctx = ctx_for(eng)
    res = await make_strategy("beam_search", {"n": 4, "width": 2})(PROBLEM, ctx)
    assert res.usage == ctx.ledger.total()
    assert res.meta["score"]["calls"] >= 1
    assert res.meta["generate"]["calls"] == 3


async def test_select_best_picks_the_highest_scoring_finished_beam(keyword_verifier):
    def responder(request, index):
        # every path ends at once; answers differ and only "42" passes the verifier
        return ("so \\boxed{42}", "so \\boxed{7}", "so \\boxed{7}")[index % 3]

    eng = ScriptedEngine(responder)
    weighted = await make_strategy("beam_search", {"n": 3, "width": 1, "select": "weighted"})(
        PROBLEM, ctx_for(eng)
    )
    # weighted: 42 has 0.9, 7 has 0.1 + 0.1
    assert weighted.answer == "42"
    assert weighted.votes == pytest.approx({"42": 0.9, "7": 0.2})
    best = await make_strategy("beam_search", {"n": 3, "width": 1, "select": "best"})(
        PROBLEM, ctx_for(ScriptedEngine(responder))
    )
    assert best.answer == "42"


async def test_paths_stop_at_max_steps_and_token_cap(keyword_verifier):
    eng = ScriptedEngine(lambda req, i: "good step\n\n")  # never ends by itself
    res = await make_strategy("beam_search", {"n": 2, "width": 1, "max_steps": 3})(
        PROBLEM, ctx_for(eng)
    )
    assert all(c.finish_reason == "length" for c in res.candidates)
    assert max(n["depth"] for n in res.meta["tree"]) == 3
    # the token cap: 2 words a step, 5 tokens per solution at most
    eng = ScriptedEngine(lambda req, i: "good step\n\n")
    res = await make_strategy("beam_search", {"n": 2, "width": 1})(
        PROBLEM, ctx_for(eng, max_tokens=5)
    )
    assert all(r.max_tokens <= 5 for r in eng.requests)
    assert eng.requests[-1].max_tokens == 1
    assert all(c.usage.completion_tokens <= 5 for c in res.candidates)


async def test_lookahead_scores_after_greedy_rollouts(keyword_verifier):
    eng = ScriptedEngine(two_step_responder)
    res = await make_strategy("lookahead", {"n": 4, "width": 2, "lookahead": 1})(
        PROBLEM, ctx_for(eng)
    )
    assert res.answer == "42"
    # root x4, then one greedy rollout step for each of the 4 beams, then expansion
    rollout = eng.requests[1:5]
    assert [r.temperature for r in rollout] == [0.0] * 4 and all(r.n == 1 for r in rollout)
    assert sum(n["rollout"] for n in res.meta["tree"]) == 4


async def test_dvts_runs_independent_subtrees(keyword_verifier):
    eng = ScriptedEngine(two_step_responder)
    res = await make_strategy("dvts", {"n": 4, "width": 2})(PROBLEM, ctx_for(eng))
    assert res.meta["subtrees"] == 2
    # 4 first steps in 2 groups (good, bad) and (good, bad): each subtree extends its good one
    assert [(r.n, r.continuation) for r in eng.requests] == [
        (4, ""),
        (2, "good start\n\n"),
        (2, "good start\n\n"),
    ]
    assert res.answer == "42"
    assert len(res.candidates) == 2


async def test_mcts_expands_and_backs_up_values(keyword_verifier):
    eng = ScriptedEngine(two_step_responder)
    res = await make_strategy("mcts", {"iterations": 3, "width": 2})(PROBLEM, ctx_for(eng))
    assert res.answer == "42"
    tree = res.meta["tree"]
    # 1: root -> good, bad; 2: UCT picks good -> two finished "42" children;
    # 3: UCT picks good again, reaches a finished child and backs its value up
    assert res.meta["expansions"] == 2
    assert tree[0]["visits"] == 2 + 2 + 1
    good = next(n for n in tree if n["step"] == "good start")
    assert good["visits"] == 1 + 2 + 1
    assert [r.continuation for r in eng.requests] == ["", "good start\n\n"]
    assert len(res.candidates) == 2


def test_tree_text_keeps_generated_delimiters():
    tree = Tree()
    a = tree.add(
        tree.root, Completion("step one", "stop", Usage(completion_tokens=2), None, "\n\n"), "\n\n"
    )
    b = tree.add(a, Completion("step two", "stop", Usage(completion_tokens=2)), "")
    assert tree.text(b) == "step one\n\nstep two"
    assert tree.steps(b) == ("step one", "step two")
    assert b.tokens == 4 and b.depth == 2


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        BeamSearch(n=2, width=3)
    with pytest.raises(ConfigError):
        BeamSearch(select="vote")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        registry.make_process_verifier("logprob")
