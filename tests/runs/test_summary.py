"""``grading_cost``: the judge's grading tokens and seconds, summed from a run store."""

from __future__ import annotations

from pathlib import Path

from ponder.core.types import Problem, Usage
from ponder.runs.store import Record, RunStore
from ponder.runs.summary import GradingCost, grading_cost


def _record(pid: str, idx: int, *, meta: dict[str, object], error: str | None = None) -> Record:
    return Record(pid, idx, "q", "1", None if error else "1", not error, error=error, meta=meta)


def _graded(prompt: int, completion: int, calls: int, seconds: float) -> dict[str, object]:
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, calls=calls)
    return {"grading": {"usage": usage.to_dict(), "seconds": seconds}}


def test_grading_cost_sums_the_asked_problems_graded_records(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run.db") as store:
        store.put(_record("a", 0, meta=_graded(100, 10, 2, 1.5)))
        store.put(_record("b", 1, meta=_graded(50, 5, 1, 0.25)))
        store.put(_record("c", 2, meta=_graded(7, 7, 7, 7.0)))  # not asked for
        store.put(_record("d", 3, meta={}))  # exact grading: no judge
        store.put(_record("e", 4, meta=_graded(9, 9, 9, 9.0), error="ValueError: x"))
        problems = [Problem(pid, "q") for pid in ("a", "b", "d", "e")]
        cost = grading_cost(store, problems)
    assert cost == GradingCost(Usage(150, 0, 15, 3), 1.75, 2)
    assert cost.line() == (
        "grading: the judge spent 165 tokens (15 generated) in 3 call(s), 1.8 s, on 2 "
        "problems; not in the strategy's tokens above"
    )


def test_grading_cost_of_a_store_without_judged_records_is_zero(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run.db") as store:
        store.put(_record("a", 0, meta={}))
        cost = grading_cost(store, [Problem("a", "q")])
    assert cost == GradingCost()
    assert cost.line().startswith("grading: the judge spent 0 tokens (0 generated) in 0 call(s)")
