"""Search guided by the hidden-state probe (``--verifier hidden:PATH``): every step drawn
with its scripted hidden states, each partial solution scored by the probe from its
steps' states, pooled."""

from pathlib import Path

import numpy as np
import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.errors import CapabilityMissing
from ponder.core.types import Completion, HiddenStates, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy
from ponder.strategies.search import Tree
from ponder.verifiers.hidden import Projection
from ponder.verifiers.hidden_probe import HiddenProbe
from ponder.verifiers.hidden_steps import HiddenStepVerifier
from ponder.verifiers.registry import make_process_verifier

PROJECTION = Projection(n_embd=3, dim=2)
# the probe reads the projected mean only: p = sigmoid(3 * (projected mean, first dim))
PROBE = HiddenProbe(
    projection=PROJECTION, features=(), mean=(0.0,) * 4, scale=(1.0,) * 4,
    coef=(0.0, 0.0, 3.0, 0.0), intercept=0.0,
)  # fmt: skip
GOOD, BAD = np.array([1.0, 0.0, 0.0], np.float32), np.array([-1.0, 0.0, 0.0], np.float32)
SIGN = 1.0 if float((GOOD @ PROJECTION.matrix())[0]) > 0 else -1.0


def row(word: str) -> list[float]:
    """Words of a bad step lean one way in the hidden space, every other word the other
    (oriented so that good words raise the probe's first projected dim)."""
    return list((BAD if "bad" in word else GOOD) * SIGN)


def responder(request, index):
    depth = request.continuation.count("\n\n")
    if depth == 0:
        return ("good start here\n\n", "bad badly start\n\n")[index % 2]
    return "so it is \\boxed{42}" if "good" in request.continuation else "so it is \\boxed{3}"


def probability(rows: list[list[float]]) -> float:
    mean = np.mean(np.asarray(rows, np.float32), axis=0)
    states = HiddenStates(np.asarray(rows[-1], np.float32), mean.astype(np.float32), len(rows))
    projected = PROJECTION.project(states)
    return float(PROBE.probabilities(PROBE.row(projected, {})[None])[0])


@pytest.fixture
def spec(tmp_path: Path) -> str:
    path = tmp_path / "probe.json"
    PROBE.save(path)
    return f"hidden:{path}"


def ctx_for(engine):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=64, seed=0)


async def test_beam_search_ranks_partial_solutions_by_their_hidden_states(spec):
    eng = ScriptedEngine(responder, hidden_state=row)
    strategy = make_strategy("beam_search", {"n": 4, "width": 2, "verifier": spec})
    res = await strategy(PROBLEM, ctx_for(eng))
    # every step drawn with its hidden states and no logprobs (the probe is not joint)
    assert all(r.hidden and not r.logprobs for r in eng.requests)
    assert [(r.n, r.continuation) for r in eng.requests] == [
        (4, ""),
        (2, "good start here\n\n"),
        (2, "good start here\n\n"),
    ]
    assert res.answer == "42"
    # a step's rows are its words but the last ("good start", "bad badly"): scored on them
    good, bad = probability([row("good")] * 2), probability([row("bad")] * 2)
    assert good > 0.5 > bad
    ranked = {n["step"].strip(): n["score"] for n in res.meta["tree"] if n["depth"] == 1}
    assert ranked == {"good start here": pytest.approx(good), "bad badly start": pytest.approx(bad)}
    # a finished solution: both steps' rows pooled, 2 + 3 of them
    finished = probability([row("good")] * 2 + [row("so")] * 3)
    assert [c.score for c in res.candidates] == pytest.approx([finished] * len(res.candidates))


def test_the_tree_pools_its_steps_states_by_their_rows() -> None:
    tree = Tree(hidden=True)
    a = HiddenStates(np.array([1, 0], np.float32), np.array([1, 1], np.float32), 1)
    b = HiddenStates(np.array([0, 5], np.float32), np.array([4, 0], np.float32), 3)
    first = tree.add(
        tree.root, Completion("x", "stop", Usage(completion_tokens=2), None, None, a), "\n\n"
    )
    second = tree.add(first, Completion("y", "stop", Usage(completion_tokens=4), None, None, b), "")
    pooled = tree.hidden_states(second)
    assert pooled is not None and pooled.rows == 4
    assert pooled.mean.tolist() == pytest.approx([(1 + 12) / 4, 1 / 4])
    assert pooled.last.tolist() == [0, 5]
    assert tree.hidden_states(tree.root) is None
    # a tree that does not draw hidden states keeps none
    plain = Tree()
    assert plain.add(plain.root, Completion("x", "stop", Usage(), None, None, a), "").hidden is None


async def test_a_prefix_it_was_not_shown_is_refused(spec):
    verifier = make_process_verifier(spec)
    assert isinstance(verifier, HiddenStepVerifier) and verifier.step_hidden
    with pytest.raises(CapabilityMissing, match="not given them"):
        await verifier.score_paths(PROBLEM, [("some step",)], None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("dvts", {"n": 4, "width": 2}),
        ("lookahead", {"n": 4, "width": 2, "lookahead": 1}),
        ("mcts", {"iterations": 4, "width": 2}),
    ],
)
async def test_every_search_follows_the_probe_to_the_good_answer(spec, name, options):
    eng = ScriptedEngine(responder, hidden_state=row)
    strategy = make_strategy(name, {**options, "verifier": spec})
    res = await strategy(PROBLEM, ctx_for(eng))
    # every request asked for hidden states, and the probe's choice wins
    assert eng.requests and all(r.hidden for r in eng.requests)
    assert res.answer == "42"
    scored = [n for n in res.meta["tree"] if n["depth"] == 1 and n.get("score") is not None]
    good = [n["score"] for n in scored if "good" in n["step"]]
    bad = [n["score"] for n in scored if "bad" in n["step"]]
    # every good first step outranks every bad one (lookahead scores a step after its
    # rollout, so its scores are not the step's own)
    assert good and bad and min(good) > max(bad), scored
