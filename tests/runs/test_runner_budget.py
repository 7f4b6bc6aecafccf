"""``evaluate(budget=...)``: a hard limit on every problem's tokens, recorded and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.runs._toys import ToyTask, toy_responder

from ponder.core.errors import ConfigError
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.runner import EvalSummary, evaluate
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy

TASK = ToyTask(size=3)


async def _run(
    path: Path,
    strategy: str,
    options: dict[str, int],
    budget: int | None,
    engine: ScriptedEngine | None = None,
) -> EvalSummary:
    return await evaluate(
        task=TASK,
        problems=TASK.load(),
        strategy=make_strategy(strategy, options),
        engine=engine or ScriptedEngine(toy_responder),
        store=path,
        max_tokens=16,
        progress=False,
        budget=budget,
    )


async def test_a_budget_no_call_fits_gives_finished_records_with_no_answer(tmp_path: Path) -> None:
    summary = await _run(tmp_path / "r.db", "majority", {"n": 4}, budget=20)
    assert (summary.graded, summary.errors, summary.correct) == (3, 0, 0)
    with RunStore(tmp_path / "r.db") as store:
        records = store.records()
        assert store.config()["budget"] == 20  # type: ignore[index]
    for r in records:
        assert r.ok and r.answer is None and r.usage.total_tokens == 0
        assert r.meta["stopped"] == "budget"
        assert r.meta["stop_reason"].startswith("budget: token budget: 0 of 20 used")
        assert r.meta["grading_status"] == {"status": "wrong", "reason": "no answer"}


async def test_a_strategy_stopped_by_the_budget_keeps_its_answer(tmp_path: Path) -> None:
    # answers that never agree within a window: esc draws all 8, 2 per call, unless cut;
    # each call is checked at 6 prompt + 2 x 16 tokens and costs 6 + 2 x 2
    engine = ScriptedEngine(lambda _request, index: f"answer: {index % 3}")
    options = {"max_n": 8, "window": 2}
    await _run(tmp_path / "free.db", "esc", options, budget=None, engine=engine)
    await _run(tmp_path / "cut.db", "esc", options, budget=60, engine=engine)
    with RunStore(tmp_path / "free.db") as free, RunStore(tmp_path / "cut.db") as cut:
        for whole, part in zip(free.records(), cut.records(), strict=True):
            assert len(whole.candidates) == 8 and "stopped" not in whole.meta
            assert len(part.candidates) == 6 and part.usage.total_tokens == 30
            assert part.meta["stopped"] == "budget" and part.answer is not None
            assert part.meta["stop_reason"] == (
                "budget: token budget: 30 of 60 used, the call may need 38 more "
                "(6 prompt, 32 generated)"
            )


async def test_resuming_under_another_budget_is_refused(tmp_path: Path) -> None:
    await _run(tmp_path / "r.db", "majority", {"n": 2}, budget=100)
    with pytest.raises(ConfigError, match="budget: stored 100, now 200"):
        await _run(tmp_path / "r.db", "majority", {"n": 2}, budget=200)
    with pytest.raises(ConfigError, match="budget must be a positive number of tokens"):
        await _run(tmp_path / "x.db", "majority", {"n": 2}, budget=0)
