"""``sample_until``: the batch loop the adaptive strategies share."""

import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.core.budget import Ledger
from ponder.core.errors import BudgetExceeded
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context
from ponder.strategies.sampling import sample_until


def ctx_for(engine):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=32)


def boxed(*answers):
    return [f"\\boxed{{{a}}}" for a in answers]


class Recorder:
    """A check that stops once ``stop_at`` samples are drawn, recording its calls."""

    def __init__(self, stop_at=None):
        self.stop_at = stop_at
        self.calls = []

    def __call__(self, cands, drawn, asked):
        self.calls.append((len(cands), [c.answer for c in drawn], asked))
        entry = {"samples": len(cands)}
        if self.stop_at is not None and len(cands) >= self.stop_at:
            return entry, f"stopped at {len(cands)}"
        return entry, None


async def draw(ctx, check, max_n=5, batch=2):
    return await sample_until(
        PROBLEM, ctx, check, max_n=max_n, batch=batch, temperature=0.7, top_p=0.95, label="t"
    )


async def test_batches_up_to_the_cap_the_last_one_smaller():
    eng = ScriptedEngine(boxed(1, 2, 3, 4, 5))
    check = Recorder()
    out = await draw(ctx_for(eng), check)
    assert [r.n for r in eng.requests] == [2, 2, 1]
    assert check.calls == [(2, ["1", "2"], 2), (4, ["3", "4"], 2), (5, ["5"], 1)]
    assert [c.answer for c in out.candidates] == ["1", "2", "3", "4", "5"]
    assert out.history == [{"samples": 2}, {"samples": 4}, {"samples": 5}]
    assert out.stop_reason == "cap reached" and out.stopped == {}


async def test_the_check_ends_sampling_with_its_reason():
    eng = ScriptedEngine(boxed(1, 2, 3, 4, 5))
    out = await draw(ctx_for(eng), Recorder(stop_at=4))
    assert [r.n for r in eng.requests] == [2, 2]
    assert out.stop_reason == "stopped at 4" and len(out.history) == 2


async def test_a_batch_over_budget_ends_sampling_with_what_was_drawn():
    ctx = ctx_for(ScriptedEngine(boxed(1, 1, 2)))
    with ctx.ledger.budget(calls=1):
        out = await draw(ctx, Recorder())
    assert len(out.candidates) == 2 and len(out.history) == 1
    assert out.stopped["stopped"] == "budget"
    assert out.stop_reason == "cap reached"  # the budget's reason is in ``stopped``
    result = out.majority_result("t", ctx, 0.0, {"rule": "r"})
    # the budget's stop_reason replaces "cap reached" in place
    assert list(result.meta) == ["samples", "stop_reason", "rule", "history", "stopped"]
    assert result.answer == "1" and result.meta["stop_reason"].startswith("budget: ")


async def test_no_room_for_the_first_batch_raises():
    ctx = ctx_for(ScriptedEngine(boxed(1)))
    with ctx.ledger.budget(calls=0), pytest.raises(BudgetExceeded):
        await draw(ctx, Recorder())
